"""The alert rules: what opens an incident, how severe it is, and how long it must last first."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str  # critical | warning
    hold: float  # seconds a condition must last before an incident opens
    title: str  # "{subject} is out of paper"


RULES: dict[str, Rule] = {r.name: r for r in (
    Rule("zone_breach", "critical", 0.0, "{zone} breaks the rule"),
    Rule("device_offline", "critical", 0.0, "{subject} is offline"),
    Rule("printer_media_empty", "critical", 0.0, "{subject} is out of paper"),
    Rule("printer_media_jam", "critical", 0.0, "{subject} has a paper jam"),
    Rule("printer_door_open", "critical", 0.0, "{subject} has a door or cover open"),
    Rule("printer_toner_empty", "critical", 0.0, "{subject} is out of toner or ink"),
    Rule("printer_stuck_queue", "critical", 0.0, "{subject} has jobs stuck in its queue"),
    Rule("printer_media_low", "warning", 60.0, "{subject} is low on paper"),
    Rule("printer_toner_low", "warning", 60.0, "{subject} is low on toner or ink"),
    Rule("network_slow", "warning", 60.0, "{subject}: slow or lossy network"),
)}

#: Printer condition codes (agent/printer_state.py) → rule.
PRINTER_RULES = {
    "media-empty": "printer_media_empty",
    "media-jam": "printer_media_jam",
    "door-open": "printer_door_open",
    "toner-empty": "printer_toner_empty",
    "marker-supply-empty": "printer_toner_empty",
    "stuck-queue": "printer_stuck_queue",
    "media-low": "printer_media_low",
    "toner-low": "printer_toner_low",
    "marker-supply-low": "printer_toner_low",
}
