"""Incidents, silences and the alerting configuration, over the API.

Reads are plain functions of a session, run in a worker thread. Writes go through the incidents
package: an acknowledgement through the incident engine (the one author of an incident's status,
which also holds the open incidents in memory), silences through its store. Silences are never
deleted: DELETE ends one now and keeps the record — who silenced what, and why, is audit data.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import func
from sqlmodel import Session, select

from ..app import SERVICE
from ..db.models import Incident, IncidentEvent, Silence
from ..incidents.engine import IncidentEngine
from ..incidents.rules import RULES
from . import schemas_incidents as I
from .errors import ApiError, echo, not_found
from .fleet_queries import device_by_id, zone_by_code, zone_refs
from .params import AckBody, IncidentQuery, SilenceBody, SilenceQuery
from .routes_fleet import read
from .schemas import ZoneRef, known, utc

MAX_ID = 2**31 - 1  # ids are 32-bit integers in every supported database
MAX_SILENCE = 31 * 86400.0
MAX_LEAD = 366 * 86400.0  # how far ahead a silence may be scheduled
HALF_MICROSECOND = 0.5e-6
LIST_INCIDENTS = "/api/v1/incidents lists the incidents and their ids"
LIST_SILENCES = "/api/v1/silences?all=true lists the silences and their ids"


def _iso(ts: float) -> str:
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"{ts:g} s"


def path_id(request: web.Request, what: str, where: str) -> int:
    """The ``{id}`` of the path; 404 for anything that cannot be an id (as for an unknown one)."""
    raw = request.match_info["id"]
    if re.fullmatch(r"[0-9]{1,10}", raw) and 1 <= int(raw) <= MAX_ID:
        return int(raw)
    raise not_found(what, raw, where)


def _engine(request: web.Request) -> IncidentEngine:
    engine = request.app[SERVICE].incidents
    if engine is None:
        raise ApiError(503, "the incident engine is not running yet; try again shortly, and see /healthz")
    return engine


# -- incidents ---------------------------------------------------------------------------------


def _title(incident: Incident, zone: ZoneRef | None) -> str:
    rule = RULES.get(incident.rule)
    if rule is None:
        return incident.label
    try:
        return rule.title.format(subject=incident.label, zone=zone.name if zone is not None else incident.label)
    except (KeyError, IndexError, ValueError):
        return incident.label


def _incident_fields(i: Incident, zones: dict[int, ZoneRef]) -> dict:
    zone = zones.get(i.zone_id) if i.zone_id is not None else None
    return {"id": i.id, "rule": i.rule, "title": _title(i, zone),
            "severity": known(i.severity, I.SEVERITIES, "critical"),
            "status": known(i.status, I.INCIDENT_STATUSES, "open"), "subject": i.subject, "label": i.label,
            "summary": i.summary, "zone": zone, "device_id": i.device_id, "started_at": utc(i.started_at),
            "opened_at": utc(i.opened_at), "acked_at": utc(i.acked_at), "acked_by": i.acked_by,
            "resolved_at": utc(i.resolved_at), "flapping": i.flapping, "reactivations": i.reactivations,
            "urgency": known(i.urgency, ("high", "low"), "high"), "deferred": i.deferred or None,
            "notified_at": utc(i.notified_at), "last_notified_at": utc(i.last_notified_at),
            "escalation_level": i.escalation_level}


def list_incidents(session: Session, q: IncidentQuery) -> I.IncidentPage | None:
    """None when the zone filter names no zone."""
    stmt = select(Incident)
    if q.zone is not None:
        zone = zone_by_code(session, q.zone)
        if zone is None:
            return None
        stmt = stmt.where(Incident.zone_id == zone.id)
    if q.status == "active":
        stmt = stmt.where(Incident.status.in_(("open", "acknowledged")))
    elif q.status is not None:
        stmt = stmt.where(Incident.status == q.status)
    for column, value in ((Incident.severity, q.severity), (Incident.rule, q.rule), (Incident.device_id, q.device)):
        if value is not None:
            stmt = stmt.where(column == value)
    # Times are shown to the microsecond (rounded), so a time read from an answer selects the same incident.
    if q.since is not None:
        stmt = stmt.where(Incident.opened_at >= q.since - HALF_MICROSECOND)
    if q.until is not None:
        stmt = stmt.where(Incident.opened_at < q.until - HALF_MICROSECOND)
    total = session.exec(select(func.count()).select_from(stmt.subquery())).one()
    rows = session.exec(stmt.order_by(Incident.opened_at.desc(), Incident.id.desc())
                        .offset(q.offset).limit(q.limit)).all()
    zones = zone_refs(session)
    return I.IncidentPage(total=total, limit=q.limit, offset=q.offset,
                          items=[I.IncidentItem(**_incident_fields(i, zones)) for i in rows])


def incident_detail(session: Session, incident_id: int) -> I.IncidentDetail | None:
    incident = session.get(Incident, incident_id)
    if incident is None:
        return None
    events = session.exec(select(IncidentEvent).where(IncidentEvent.incident_id == incident_id)
                          .order_by(IncidentEvent.at, IncidentEvent.id))
    timeline = [I.TimelineEvent(at=utc(e.at), kind=e.kind, actor=e.actor, receiver=e.receiver, detail=e.detail)
                for e in events]
    return I.IncidentDetail(**_incident_fields(incident, zone_refs(session)), timeline=timeline)


async def incidents(request: web.Request, query: IncidentQuery) -> I.IncidentPage:
    if query.since is not None and query.until is not None and query.until < query.since:
        raise ApiError(400, f"until ({_iso(query.until)}) is before since ({_iso(query.since)}); the range would "
                            "be empty", parameter="until", allowed="a time at or after since")
    page = await read(request, list_incidents, query)
    if page is None:
        raise not_found("zone with code", query.zone, "/api/v1/zones lists the zones and their codes")
    return page


async def incident(request: web.Request, _query: None) -> I.IncidentDetail:
    incident_id = path_id(request, "incident", LIST_INCIDENTS)
    detail = await read(request, incident_detail, incident_id)
    if detail is None:
        raise not_found("incident", str(incident_id), LIST_INCIDENTS)
    return detail


async def ack_incident(request: web.Request, body: AckBody) -> I.IncidentDetail:
    incident_id = path_id(request, "incident", LIST_INCIDENTS)
    engine = _engine(request)
    before = next((i for i in engine.open.values() if i.id == incident_id), None)
    was_open = before is not None and before.status == "open"
    try:
        acked = await engine.acknowledge(incident_id, body.by, how="api")
    except LookupError:
        raise not_found("incident", str(incident_id), LIST_INCIDENTS) from None
    if acked.status == "resolved":
        when = f" at {_iso(acked.resolved_at)}" if acked.resolved_at is not None else ""
        raise ApiError(409, f"incident #{incident_id} is already resolved{when}: there is nothing to acknowledge; "
                            "if the fault comes back, a new incident opens")
    if was_open and acked.acked_by == body.by and body.comment.strip():
        await asyncio.to_thread(engine.store.event, incident_id, "comment", body.comment, actor=body.by)
    detail = await read(request, incident_detail, incident_id)
    if detail is None:
        raise not_found("incident", str(incident_id), LIST_INCIDENTS)
    return detail


# -- silences ----------------------------------------------------------------------------------


def silence_item(s: Silence, now: float) -> I.SilenceItem:
    state = "ended" if s.ends_at <= now else "scheduled" if s.starts_at > now else "active"
    return I.SilenceItem(id=s.id, zone=s.zone_code, device=s.device_id, rule=s.rule, starts_at=utc(s.starts_at),
                         ends_at=utc(s.ends_at), state=state, created_by=s.created_by, comment=s.comment,
                         created_at=utc(s.created_at))


def list_silences(session: Session, q: SilenceQuery, now: float) -> I.SilencePage:
    stmt = select(Silence) if q.all else select(Silence).where(Silence.ends_at > now)
    total = session.exec(select(func.count()).select_from(stmt.subquery())).one()
    rows = session.exec(stmt.order_by(Silence.id.desc()).offset(q.offset).limit(q.limit)).all()
    return I.SilencePage(total=total, limit=q.limit, offset=q.offset, items=[silence_item(s, now) for s in rows])


def get_silence(session: Session, silence_id: int) -> Silence | None:
    return session.get(Silence, silence_id)


async def silences(request: web.Request, query: SilenceQuery) -> I.SilencePage:
    return await read(request, list_silences, query, time.time())


async def silence(request: web.Request, _query: None) -> I.SilenceItem:
    silence_id = path_id(request, "silence", LIST_SILENCES)
    row = await read(request, get_silence, silence_id)
    if row is None:
        raise not_found("silence", str(silence_id), LIST_SILENCES)
    return silence_item(row, time.time())


def _bad(field: str, error: str, allowed: str) -> ApiError:
    return ApiError(400, error, parameter=field, allowed=allowed)


def silence_window(body: SilenceBody, now: float) -> tuple[float, float]:
    """``(starts_at, ends_at)`` of a new silence, or a 400 naming the field at fault."""
    if body.zone is None and body.device is None and body.rule is None:
        raise _bad("zone", "a silence needs at least one matcher — zone, device or rule; without one it would "
                           "silence every incident", "at least one of zone, device, rule")
    if body.ends_at is not None and body.duration_minutes is not None:
        raise _bad("duration_minutes", "give ends_at or duration_minutes, not both", "no duration_minutes "
                                       "when ends_at is given")
    if body.ends_at is None and body.duration_minutes is None:
        raise _bad("ends_at", "a silence needs an end: give ends_at or duration_minutes",
                   "a time after starts_at, at most 31 days later")
    starts = now if body.starts_at is None else body.starts_at
    if starts > now + MAX_LEAD:
        raise _bad("starts_at", f"starts_at ({_iso(starts)}) is more than a year ahead", "a time within a year")
    field = "ends_at" if body.ends_at is not None else "duration_minutes"
    ends = body.ends_at if body.ends_at is not None else starts + body.duration_minutes * 60
    if ends <= now:
        raise _bad(field, f"ends_at ({_iso(ends)}) is in the past; the silence would never apply",
                   "a time in the future")
    if ends <= starts:
        raise _bad(field, f"ends_at ({_iso(ends)}) is not after starts_at ({_iso(starts)})", "a time after starts_at")
    if ends - starts > MAX_SILENCE:
        raise _bad(field, f"a silence lasts at most 31 days; this one would last {(ends - starts) / 86400:.1f} days "
                          "— set a new one when it ends", "at most 31 days after starts_at")
    return starts, ends


def check_matchers(session: Session, body: SilenceBody) -> None:
    """The zone and device a silence names exist (a typo must not silence nothing, quietly)."""
    zone = None
    if body.zone is not None:
        zone = zone_by_code(session, body.zone)
        if zone is None:
            raise _bad("zone", f"no zone with code {echo(body.zone)}; /api/v1/zones lists the zones and their codes",
                       "the code of an existing zone")
    if body.device is not None:
        device = device_by_id(session, body.device)
        if device is None:
            raise _bad("device", f"no device {echo(body.device)}; /api/v1/devices lists the devices",
                       "the id of an existing device")
        if zone is not None and device.zone_id != zone.id:
            raise _bad("device", f"device {echo(body.device)} is not in zone {echo(body.zone)}, so the silence "
                                 "would match nothing; give only the device, or only the zone",
                       "a device in the given zone")


async def create_silence(request: web.Request, body: SilenceBody) -> I.SilenceItem:
    now = time.time()
    starts, ends = silence_window(body, now)
    await read(request, check_matchers, body)
    row = Silence(zone_code=body.zone, device_id=body.device, rule=body.rule, starts_at=starts, ends_at=ends,
                  created_by=body.created_by, comment=body.comment, created_at=now)
    row = await asyncio.to_thread(_engine(request).store.add_silence, row)
    return silence_item(row, now)


async def end_silence(request: web.Request, _body: None) -> I.SilenceItem:
    silence_id = path_id(request, "silence", LIST_SILENCES)
    now = time.time()
    row = await asyncio.to_thread(_engine(request).store.end_silence, silence_id, now)
    if row is None:
        raise not_found("silence", str(silence_id), LIST_SILENCES)
    return silence_item(row, now)


# -- the alerting configuration ----------------------------------------------------------------


async def alerting(request: web.Request, _query: None) -> I.Alerting:
    settings = request.app[SERVICE].settings
    a = settings.alerts
    rules = []
    for name, rule in RULES.items():
        opts = a.rules.get(name)
        rules.append(I.RuleItem(
            name=name, title=rule.title, enabled=opts.enabled if opts else True,
            severity=(opts.severity if opts and opts.severity else rule.severity),
            hold=rule.hold if opts is None or opts.hold is None else opts.hold, configured=opts is not None,
            default_severity=rule.severity, default_hold=rule.hold))
    routes = [I.RouteItem(index=n, matchers=I.RouteMatchers(region=r.region, zone=r.zone, severity=r.severity,
                                                            rule=r.rule),
                          receivers=list(r.receivers), escalation=list(r.escalation), after_hours=list(r.after_hours))
              for n, r in enumerate(a.routes)]
    receivers = [I.ReceiverItem(name=name, kind=str(options.get("kind", "")))  # never the options: they hold keys
                 for name, options in sorted(settings.receivers.items())]
    timing = I.AlertTiming(resolve_hold=a.resolve_hold, escalate_after=a.escalate_after,
                           renotify_every=a.renotify_every, flap_window=a.flap_window, flap_threshold=a.flap_threshold,
                           after_hours=a.after_hours, ack_link_ttl=a.ack_link_ttl, retry_first=a.retry_first,
                           retry_attempts=a.retry_attempts)
    return I.Alerting(routes=routes, default_receivers=list(a.default_receivers), rules=rules, receivers=receivers,
                      timing=timing)
