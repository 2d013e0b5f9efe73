"""Reads of the fleet's state for the API: plain functions of a session, run in a worker thread.

Nothing here writes; the ingest writer is the one author of the fleet's state. Rows become
response models (:mod:`.schemas`) here, so handlers stay small.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import msgspec
from sqlalchemy import func
from sqlmodel import Session, select

from protocol import Codec, ProtocolError

from ..db.models import CheckState, Device, Printer, Region, Report, Zone
from . import schemas as S
from .params import DeviceQuery, PrinterQuery, ZoneQuery
from .schemas import utc


def tally(model: type[S.ZoneCounts | S.DeviceCounts | S.PrinterCounts], counts: Counter) -> dict[str, Any]:
    """``{"total", "by_status"}``; a status the schema does not name is counted as unknown."""
    by_status = Counter()
    for status, n in counts.items():
        by_status[status if status in model.model_fields else "unknown"] += n
    return {"total": sum(counts.values()), "by_status": model(**by_status)}


def _count_by(session: Session, column, *where) -> Counter:
    stmt = select(column, func.count()).group_by(column)
    for clause in where:
        stmt = stmt.where(clause)
    return Counter({status: n for status, n in session.exec(stmt)})


def fleet_counts(session: Session) -> dict[str, Any]:
    unassigned = session.exec(select(func.count()).select_from(Device).where(Device.zone_id.is_(None))).one()
    return {
        "zones": S.ZoneTally(**tally(S.ZoneCounts, _count_by(session, Zone.status))),
        "devices": S.DeviceTally(**tally(S.DeviceCounts, _count_by(session, Device.status)), unassigned=unassigned),
        "printers": S.PrinterTally(**tally(S.PrinterCounts, _count_by(session, Printer.status))),
    }


# -- regions -----------------------------------------------------------------------------------


class Regions:
    """Every region (a small table), with paths and subtrees; safe against loops in bad data.

    Read as plain rows (id, name, level, parent_id), not ORM objects, and each path built once per
    request: a zone list names the same few districts over and over.
    """

    def __init__(self, session: Session) -> None:
        rows = session.exec(select(Region.id, Region.name, Region.level, Region.parent_id)).all()
        self.by_id = {r.id: r for r in rows}
        self.children: dict[int | None, list] = {}
        for r in sorted(rows, key=lambda r: (r.name, r.id)):
            parent = r.parent_id if r.parent_id in self.by_id else None
            self.children.setdefault(parent, []).append(r)

    def path(self, region_id: int | None) -> list[S.RegionRef]:
        """City first; each region's path is built once per request from its parent's."""
        paths: dict[int | None, list[S.RegionRef]] = self.__dict__.setdefault("_paths", {})
        if region_id in paths:
            return paths[region_id]
        chain: list[int] = []  # up from region_id to the first region whose path is known, or the top
        rid = region_id
        while rid in self.by_id and rid not in paths and rid not in chain:
            chain.append(rid)
            rid = self.by_id[rid].parent_id
        above = paths.get(rid, []) if rid not in chain else []  # a loop in bad data ends the path
        for rid in reversed(chain):
            r = self.by_id[rid]
            # Trusted rows of our own table: no validation (it was the largest cost of a zone list).
            above = paths[rid] = [*above, S.RegionRef.model_construct(id=r.id, name=r.name, level=r.level)]
        paths.setdefault(region_id, [])
        return paths[region_id]

    def subtree(self, region_id: int) -> set[int]:
        found, todo = set(), [region_id]
        while todo:
            rid = todo.pop()
            if rid not in found:
                found.add(rid)
                todo += [c.id for c in self.children.get(rid, [])]
        return found

    def roots(self) -> list:
        """Top-level regions, plus one region of any loop (unreachable otherwise)."""
        roots = list(self.children.get(None, []))
        reached = set().union(*(self.subtree(r.id) for r in roots)) if roots else set()
        for r in sorted(self.by_id.values(), key=lambda r: r.id):
            if r.id not in reached:
                roots.append(r)
                reached |= self.subtree(r.id)
        return roots


def region_tree(session: Session) -> S.RegionTree:
    regions = Regions(session)
    by_region: dict[int | None, Counter] = {}
    for region_id, status in session.exec(select(Zone.region_id, Zone.status)):
        key = region_id if region_id in regions.by_id else None
        by_region.setdefault(key, Counter())[status] += 1

    def node(region, above: set[int]) -> S.RegionNode:
        above = above | {region.id}
        children = [node(c, above) for c in regions.children.get(region.id, []) if c.id not in above]
        counts = Counter(by_region.get(region.id, Counter()))
        for child in children:
            counts.update({k: v for k, v in child.zones.by_status.model_dump().items() if v})
        present = [s for s, n in counts.items() if n]
        worst = max(present, key=lambda s: S.ZONE_RANK.get(s, 1)) if present else None
        return S.RegionNode(id=region.id, name=region.name, level=region.level,
                            zones=S.ZoneTally(**tally(S.ZoneCounts, counts)),
                            worst_status=S.known(worst, tuple(S.ZONE_RANK)) if worst else None, children=children)

    return S.RegionTree(regions=[node(r, set()) for r in regions.roots()],
                        unplaced_zones=S.ZoneTally(**tally(S.ZoneCounts, by_region.get(None, Counter()))))


# -- zones -------------------------------------------------------------------------------------


def _zone_counts(session: Session, zone_ids: list[int]) -> tuple[Counter, Counter]:
    if not zone_ids:
        return Counter(), Counter()
    devices = Counter(dict(session.exec(select(Device.zone_id, func.count()).where(Device.zone_id.in_(zone_ids))
                                        .group_by(Device.zone_id)).all()))
    printers = Counter(dict(session.exec(select(Device.zone_id, func.count()).join(Printer, Printer.device_id ==
                                                                                   Device.id)
                                         .where(Device.zone_id.in_(zone_ids)).group_by(Device.zone_id)).all()))
    return devices, printers


def _zone_fields(zone: Zone, regions: Regions, devices: int, printers: int) -> dict[str, Any]:
    return {"code": zone.code, "name": zone.name, "kind": zone.kind,
            "status": S.known(zone.status, tuple(S.ZONE_RANK)), "since": utc(zone.status_since),
            "reasons": [str(r) for r in zone.reasons] if isinstance(zone.reasons, list) else [],
            "region": regions.path(zone.region_id), "device_count": devices, "printer_count": printers}


def list_zones(session: Session, q: ZoneQuery) -> S.ZonePage | None:
    """None when the region filter names no region."""
    regions = Regions(session)
    stmt = select(Zone.id, Zone.code, Zone.name, Zone.kind, Zone.status, Zone.status_since, Zone.reasons,
                  Zone.region_id)  # plain rows: loading ORM objects cost more than the query
    if q.status is not None:
        stmt = stmt.where(Zone.status == q.status)
    if q.region_id is not None:
        if q.region_id not in regions.by_id:
            return None
        stmt = stmt.where(Zone.region_id.in_(regions.subtree(q.region_id)))
    total = session.exec(select(func.count()).select_from(stmt.subquery())).one()
    zones = session.exec(stmt.order_by(Zone.code).offset(q.offset).limit(q.limit)).all()
    devices, printers = _zone_counts(session, [z.id for z in zones])
    # _zone_fields makes every field what the schema says (known statuses, UTC times, lists of str).
    items = [S.ZoneItem.model_construct(**_zone_fields(z, regions, devices[z.id], printers[z.id])) for z in zones]
    return S.ZonePage(total=total, limit=q.limit, offset=q.offset, items=items)


def zone_by_code(session: Session, code: str) -> Zone | None:
    return session.exec(select(Zone).where(Zone.code == code)).first() if _plain(code, 64) else None


def zone_detail(session: Session, code: str) -> S.ZoneDetail | None:
    zone = zone_by_code(session, code)
    if zone is None:
        return None
    regions = Regions(session)
    ref = S.ZoneRef(code=zone.code, name=zone.name)
    devices = session.exec(select(Device).where(Device.zone_id == zone.id).order_by(Device.id)).all()
    printers = printer_items(session, select(Printer, Device).join(Device, Printer.device_id == Device.id)
                             .where(Device.zone_id == zone.id), {zone.id: ref})
    return S.ZoneDetail(**_zone_fields(zone, regions, len(devices), len(printers)),
                        timezone=zone.timezone, opening_hours=_hours(zone.opening_hours),
                        holidays=[str(h) for h in zone.holidays] if isinstance(zone.holidays, list) else [],
                        devices=[device_item(d, {zone.id: ref}) for d in devices], printers=printers)


def _hours(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        return {}
    return {str(day): [str(span) for span in spans] for day, spans in value.items() if isinstance(spans, list)}


def zone_refs(session: Session) -> dict[int, S.ZoneRef]:
    return {zid: S.ZoneRef(code=code, name=name) for zid, code, name in session.exec(
        select(Zone.id, Zone.code, Zone.name))}


# -- devices -----------------------------------------------------------------------------------


def device_item(d: Device, zones: dict[int, S.ZoneRef]) -> S.DeviceItem:
    return S.DeviceItem(**_device_fields(d, zones))


def _device_fields(d: Device, zones: dict[int, S.ZoneRef]) -> dict[str, Any]:
    return {"id": d.id, "name": d.name, "role": S.known(d.role, S.DeviceRole.__args__),
            "zone": zones.get(d.zone_id) if d.zone_id is not None else None,
            "status": S.known(d.status, S.DeviceStatus.__args__), "since": utc(d.status_since),
            "reason": d.status_reason, "online": d.online, "last_report_at": utc(d.last_report_at),
            "last_heard": utc(d.last_heard), "revoked_at": utc(d.revoked_at)}


def list_devices(session: Session, q: DeviceQuery) -> S.DevicePage | None:
    """None when the zone filter names no zone."""
    stmt = select(Device)
    if q.zone is not None:
        zone = zone_by_code(session, q.zone)
        if zone is None:
            return None
        stmt = stmt.where(Device.zone_id == zone.id)
    if q.status is not None:
        stmt = stmt.where(Device.status == q.status)
    if q.unassigned is not None:
        stmt = stmt.where(Device.zone_id.is_(None) if q.unassigned else Device.zone_id.is_not(None))
    total = session.exec(select(func.count()).select_from(stmt.subquery())).one()
    devices = session.exec(stmt.order_by(Device.id).offset(q.offset).limit(q.limit)).all()
    zones = zone_refs(session)
    return S.DevicePage(total=total, limit=q.limit, offset=q.offset, items=[device_item(d, zones) for d in devices])


def device_by_id(session: Session, device_id: str) -> Device | None:
    return session.get(Device, device_id) if _plain(device_id, 64) else None


def device_detail(session: Session, device_id: str, codec: Codec) -> S.DeviceDetail | None:
    d = device_by_id(session, device_id)
    if d is None:
        return None
    zones = zone_refs(session)
    checks = session.exec(select(CheckState).where(CheckState.device_id == d.id).order_by(CheckState.name)).all()
    printers = printer_items(session, select(Printer, Device).join(Device, Printer.device_id == Device.id)
                             .where(Printer.device_id == d.id), zones)
    return S.DeviceDetail(
        **_device_fields(d, zones), measured=S.known(d.measured, S.CHECK_STATUSES),
        measured_since=utc(d.measured_since), online_since=utc(d.online_since), agent_version=d.agent_version,
        first_seen=utc(d.first_seen), last_seq=d.last_seq, seq_epoch=d.seq_epoch, interval_s=d.interval_s,
        reported_interval_s=d.reported_interval_s,
        check_states=[S.CheckState(name=c.name, kind=c.kind, status=S.known(c.status, S.CHECK_STATUSES),
                                   summary=c.summary, since=utc(c.since)) for c in checks],
        latest_report=latest_report(session, d, codec), printers=printers)


def latest_report(session: Session, d: Device, codec: Codec) -> S.LatestReport | None:
    if d.last_seq is None:
        return None
    row = session.get(Report, (d.id, d.seq_epoch, d.last_seq))
    if row is None:
        return None
    fields = {"seq": row.seq, "epoch": row.epoch, "measured_at": utc(row.ts), "received_at": utc(row.received_at),
              "trigger": row.trigger, "status": S.known(row.status, S.CHECK_STATUSES)}
    try:
        message = codec.decode(codec.topics.report(d.id), bytes(row.payload)).message
    except ProtocolError as exc:
        return S.LatestReport(**fields, agent_version=None, checks=[],
                              error=f"the stored report could not be read back: {exc}")
    checks = [S.ReportedCheck(**msgspec.to_builtins(c)) for c in getattr(message, "checks", [])]
    return S.LatestReport(**fields, agent_version=getattr(message, "agent_version", None), checks=checks)


# -- printers ----------------------------------------------------------------------------------


def printer_items(session: Session, stmt, zones: dict[int, S.ZoneRef],
                  condition: str | None = None) -> list[S.PrinterItem]:
    out = []
    for p, d in session.exec(stmt.order_by(Printer.device_id, Printer.name)):
        conditions = [c for c in p.conditions if isinstance(c, dict)] if isinstance(p.conditions, list) else []
        if condition is not None and not any(c.get("code") == condition for c in conditions):
            continue
        supplies = [s for s in p.supplies if isinstance(s, dict)] if isinstance(p.supplies, list) else []
        out.append(S.PrinterItem(
            id=p.id, name=p.name, device_id=d.id, device_name=d.name,
            zone=zones.get(d.zone_id) if d.zone_id is not None else None,
            status=S.known(p.status, S.CHECK_STATUSES), since=utc(p.status_since), summary=p.summary, state=p.state,
            accepting=p.accepting, jobs_queued=p.jobs_queued, oldest_job_age_s=p.oldest_job_age_s,
            make_model=p.make_model, updated_at=utc(p.updated_at),
            conditions=[S.Condition(code=str(c.get("code", "")), severity=str(c.get("severity", "")),
                                    text=str(c.get("text", "")), since=utc(_number(c.get("since"))))
                        for c in conditions],
            supplies=[S.Supply(name=str(s.get("name", "")), type=_text(s.get("type")), color=_text(s.get("color")),
                               level=_number(s.get("level")), state=_text(s.get("state"))) for s in supplies]))
    return out


def list_printers(session: Session, q: PrinterQuery) -> S.PrinterPage | None:
    """None when the zone filter names no zone."""
    stmt = select(Printer, Device).join(Device, Printer.device_id == Device.id)
    if q.zone is not None:
        zone = zone_by_code(session, q.zone)
        if zone is None:
            return None
        stmt = stmt.where(Device.zone_id == zone.id)
    if q.status is not None:
        stmt = stmt.where(Printer.status == q.status)
    items = printer_items(session, stmt, zone_refs(session), q.condition)
    return S.PrinterPage(total=len(items), limit=q.limit, offset=q.offset,
                         items=items[q.offset:q.offset + q.limit])


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _plain(text: str, limit: int) -> bool:
    """Whether ``text`` can be a key at all (printable, not too long); anything else is simply not found."""
    return 0 < len(text) <= limit and text.isprintable()
