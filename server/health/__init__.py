"""Health: device status from checks and presence, printer items, the zone rule, the history of changes."""
