"""Incidents: conditions from the fleet's health, held, deduplicated, routed, escalated, acknowledged.

The flow, each a place you can point at: conditions.py (which rules hold for which subject, from
the health views) → engine.py (hold time, one incident per rule and subject, flapping, resolve)
→ pipeline.py (inhibit, silence, opening hours, route) → server/notify (receivers, retries).
"""
