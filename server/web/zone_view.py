"""The zone page's reads: the zone as the API sees it, its open incidents, its state history and availability."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlmodel import Session, select

from ..api import schemas as S
from ..api.fleet_queries import zone_by_code, zone_detail
from ..api.params import IncidentQuery
from ..api.routes_incidents import list_incidents
from ..api.schemas_incidents import IncidentItem
from ..db.models import History
from .availability import Availability, availability, state_segments
from .device_view import NOT_PRINTER_CHECK

HISTORY_ROWS = 200


@dataclass
class ZoneView:
    zone_id: int
    detail: S.ZoneDetail
    incidents: list[IncidentItem]
    segments: list[tuple[float, float, str]]
    changes: list[History]  # newest first, at most HISTORY_ROWS
    availability: Availability
    start: float
    end: float


def zone_view(session: Session, code: str, days: int, now: float | None = None) -> ZoneView | None:
    zone = zone_by_code(session, code)
    if zone is None:
        return None
    detail = zone_detail(session, code)
    now = time.time() if now is None else now
    start = now - days * 86400
    own = select(History).where(History.zone_id == zone.id, History.subject == "zone")
    before = session.exec(own.where(History.at < start).order_by(History.at.desc(), History.id.desc())
                          .limit(1)).first()
    rows = session.exec(own.where(History.at >= start).order_by(History.at, History.id)).all()
    changes = [(r.at, r.to_status) for r in rows]
    first = before.to_status if before is not None else (rows[0].from_status if rows else zone.status)
    hours = zone.opening_hours if isinstance(zone.opening_hours, dict) else {}
    holidays = zone.holidays if isinstance(zone.holidays, list) else []
    avail = availability(hours, holidays, zone.timezone, first, changes, start, now)
    recent = session.exec(select(History).where(History.zone_id == zone.id, History.at >= start, NOT_PRINTER_CHECK)
                          .order_by(History.at.desc(), History.id.desc()).limit(HISTORY_ROWS)).all()
    incidents = list_incidents(session, IncidentQuery(zone=code, status="active", limit=100))
    return ZoneView(zone.id, detail, incidents.items if incidents else [], state_segments(first, changes, start, now),
                    list(recent), avail, start, now)
