"""A device's and a zone's history: every state change (from, to, at, why), by time range, paged.

Rows are ordered by ``at`` (when it happened), then ``id``. Paging is by ``cursor`` — the
``next_cursor`` of the previous page, a position in that order, so rows written meanwhile
never shift a page — or by plain ``offset``.
"""

from __future__ import annotations

from sqlalchemy import and_, or_
from sqlmodel import Session, select

from ..db.models import History
from . import schemas as S
from .errors import ApiError, not_found
from .fleet_queries import device_by_id, zone_by_code, zone_refs
from .params import HistoryQuery, make_cursor, read_cursor
from .routes_fleet import read


def check_range(q: HistoryQuery) -> None:
    if q.cursor is not None and q.offset is not None:
        raise ApiError(400, "give either cursor or offset, not both: cursor continues from the previous page",
                       parameter="offset", allowed="no offset when cursor is given")
    if q.since is not None and q.until is not None and q.until < q.since:
        raise ApiError(400, f"until ({_show(q.until)}) is before since ({_show(q.since)}); the range would be empty",
                       parameter="until", allowed="a time at or after since")
    if q.cursor is not None:
        read_cursor(q.cursor)


def _show(ts: float) -> str:
    moment = S.utc(ts)
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else f"{ts:g} s"


def history_page(session: Session, where, q: HistoryQuery) -> S.HistoryPage:
    stmt = select(History).where(where)
    if q.since is not None:
        stmt = stmt.where(History.at >= q.since)
    if q.until is not None:
        stmt = stmt.where(History.at < q.until)
    if q.subject is not None:
        stmt = stmt.where(History.subject == q.subject)
    if q.cursor is not None:
        at, row_id = read_cursor(q.cursor)
        stmt = stmt.where(or_(History.at > at, and_(History.at == at, History.id > row_id)))
    offset = q.offset or 0
    rows = session.exec(stmt.order_by(History.at, History.id).offset(offset).limit(q.limit + 1)).all()
    more = len(rows) > q.limit
    rows = rows[:q.limit]
    zones = zone_refs(session)
    items = [S.HistoryEntry(
        id=r.id, subject=S.known(r.subject, S.SUBJECTS, "device"), subject_id=r.subject_id, device_id=r.device_id,
        zone=zones[r.zone_id].code if r.zone_id in zones else None, from_=r.from_status, to=r.to_status,
        at=S.utc(r.at), recorded_at=S.utc(r.recorded_at), why=r.why, seq=r.seq) for r in rows]
    return S.HistoryPage(items=items, limit=q.limit,
                         next_cursor=make_cursor(rows[-1].at, rows[-1].id) if more else None,
                         next_offset=offset + len(rows) if more and q.cursor is None else None)


def _device_history(session: Session, device_id: str, q: HistoryQuery) -> S.HistoryPage | None:
    device = device_by_id(session, device_id)
    return None if device is None else history_page(session, History.device_id == device.id, q)


def _zone_history(session: Session, code: str, q: HistoryQuery) -> S.HistoryPage | None:
    zone = zone_by_code(session, code)
    return None if zone is None else history_page(session, History.zone_id == zone.id, q)


async def device_history(request, query: HistoryQuery) -> S.HistoryPage:
    check_range(query)
    device_id = request.match_info["device_id"]
    page = await read(request, _device_history, device_id, query)
    if page is None:
        raise not_found("device", device_id, "/api/v1/devices lists the devices, including unassigned ones")
    return page


async def zone_history(request, query: HistoryQuery) -> S.HistoryPage:
    check_range(query)
    code = request.match_info["code"]
    page = await read(request, _zone_history, code, query)
    if page is None:
        raise not_found("zone with code", code, "/api/v1/zones lists the zones and their codes")
    return page
