"""Who is told about an incident, and when: inhibit → silence → opening hours → route.

Each stage is a small function that either lets the notice through or says why it is held
(Alertmanager's notification pipeline, for zones). A held incident stays recorded; the engine's
periodic tick asks again, so it is told once the breach, silence or closing time is over.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..db.models import Incident
from ..opening_hours import is_open
from ..settings import AlertsSection, RouteSection
from .store import IncidentStore, ZoneFacts


@dataclass(frozen=True)
class Decision:
    held: str  # "" when the notice goes out; else inhibited / silenced / closed / no-receivers
    detail: str
    #: Who is told at each escalation level: level 0 all at once, then one escalation receiver per level.
    chain: tuple[tuple[str, ...], ...] = ()
    urgency: str = "high"


def route_for(alerts: AlertsSection, incident: Incident, zone: ZoneFacts) -> RouteSection | None:
    for route in alerts.routes:
        if route.zone is not None and route.zone != zone.code:
            continue
        if route.region is not None and route.region not in zone.region_names:
            continue
        if route.severity is not None and route.severity != incident.severity:
            continue
        if route.rule is not None and route.rule != incident.rule:
            continue
        return route
    return None


def decide(alerts: AlertsSection, store: IncidentStore, incident: Incident, zone: ZoneFacts,
           breach_open: int | None, now: float) -> Decision:
    # inhibit: a zone in breach pages once, for the zone; what broke inside it is listed there
    if incident.rule != "zone_breach" and breach_open is not None:
        return Decision("inhibited", f"part of the zone breach, incident #{breach_open}")
    silence = store.active_silence(zone.code, incident.device_id, incident.rule, now)
    if silence is not None:
        return Decision("silenced", f"silence #{silence.id} by {silence.created_by} until {silence.ends_at:.0f}: "
                                    f"{silence.comment}")
    route = route_for(alerts, incident, zone)
    chain = chain_of(alerts, route)
    if not is_open(zone.opening_hours, zone.holidays, zone.timezone, now):
        after = tuple(route.after_hours) if route is not None else ()
        if alerts.after_hours == "route" and after:
            return Decision("", "outside opening hours: after-hours receivers, low urgency", (after,), "low")
        return Decision("closed", "outside the zone's opening hours: told when it opens, if still open",
                        urgency="low")
    if not chain[0]:
        return Decision("no-receivers", "no route and no default receivers: set alerts.default_receivers")
    return Decision("", "routed" if route is not None else "default receivers", chain)


def chain_of(alerts: AlertsSection, route: RouteSection | None) -> tuple[tuple[str, ...], ...]:
    if route is None:
        return (tuple(alerts.default_receivers),)
    return (tuple(route.receivers), *((name,) for name in route.escalation))
