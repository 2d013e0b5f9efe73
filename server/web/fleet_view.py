"""The fleet page's reads: zone counts, the zone list (breach first), the district roll-up — in SQL.

A handful of queries per page whatever the fleet's size: counts and the roll-up are ``GROUP BY``
aggregates, the zone list is one page (``LIMIT``), and device/printer counts are fetched for that page
only. Regions (a small table) are read once per request and walked in memory.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import case, func, or_
from sqlmodel import Session, select

from ..api.fleet_queries import Regions, _zone_counts
from ..db.models import ZONE_KINDS, ZONE_STATUSES, Device, Zone
from .render import PageError, digits, page_number

PAGE_SIZE = 50
MAX_SEARCH = 100
#: Breach first, then degraded, unknown, and zones meeting the rule last.
STATUS_ORDER = case({"breach": 0, "degraded": 1, "unknown": 2, "meets": 3}, value=Zone.status, else_=2)
LEVELS = ("city", "district", "township")


@dataclass
class FleetFilter:
    city: int | None = None
    district: int | None = None
    township: int | None = None
    kind: str | None = None
    status: str | None = None
    q: str = ""
    page: int = 1

    @property
    def region_id(self) -> int | None:
        return self.township or self.district or self.city

    @property
    def active(self) -> bool:
        return bool(self.region_id or self.kind or self.status or self.q)


@dataclass
class ZoneRow:
    id: int
    code: str
    name: str
    kind: str
    status: str
    since: float | None
    reasons: list[str]
    region: str
    timezone: str
    devices: int
    printers: int


@dataclass
class RollupRow:
    region_id: int | None
    name: str
    parent: str
    level: str = "district"
    counts: Counter = field(default_factory=Counter)

    @property
    def link(self) -> dict[str, int | None]:
        """Query changes that filter the fleet page to this row's region."""
        out: dict[str, int | None] = {level: None for level in LEVELS}
        if self.level in out:
            out[self.level] = self.region_id
        return {**out, "page": None}

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class FleetView:
    counts: Counter
    total: int  # zones matching the filter (status included)
    zones: list[ZoneRow]
    pages: int
    rollup: list[RollupRow]
    choices: dict[str, list[tuple[int, str]]]


def parse_filter(query, words) -> FleetFilter:
    """Query parameters → a filter; :class:`PageError` 400 naming the first bad one."""
    f = FleetFilter()
    for level in LEVELS:
        raw = query.get(level, "").strip()
        if raw:
            if not digits(raw) or len(raw) > 10:
                raise PageError(400, words.gettext("%(param)s must be the id of a region from the list; got "
                                                   "%(value)s", param=level, value=repr(raw[:40])), parameter=level)
            setattr(f, level, int(raw))
    kind = query.get("kind", "").strip()
    if kind:
        if kind not in ZONE_KINDS:
            raise PageError(400, words.gettext("kind must be one of %(allowed)s; got %(value)s",
                                               allowed=", ".join(ZONE_KINDS), value=repr(kind[:40])), parameter="kind")
        f.kind = kind
    status = query.get("status", "").strip()
    if status:
        if status not in ZONE_STATUSES:
            raise PageError(400, words.gettext("status must be one of %(allowed)s; got %(value)s",
                                               allowed=", ".join(ZONE_STATUSES), value=repr(status[:40])),
                            parameter="status")
        f.status = status
    f.q = " ".join(query.get("q", "").split())
    if len(f.q) > MAX_SEARCH or not f.q.isprintable():
        raise PageError(400, words.gettext("q (the search) must be printable text of at most %(n)s characters",
                                           n=MAX_SEARCH), parameter="q")
    f.page = page_number(query, words, 100_000)
    return f


def _check_regions(f: FleetFilter, regions: Regions, words) -> None:
    for level in LEVELS:
        rid = getattr(f, level)
        if rid is not None and (rid not in regions.by_id or regions.by_id[rid].level != level):
            raise PageError(400, words.gettext("%(param)s: there is no %(level)s with id %(value)s; pick one from "
                                               "the list", param=level, level=words.kind(level), value=rid),
                            parameter=level)


def _matching(f: FleetFilter, regions: Regions, *, with_status: bool):
    """WHERE clauses of the filter (optionally without its status)."""
    where = []
    if f.region_id is not None:
        where.append(Zone.region_id.in_(regions.subtree(f.region_id)))
    if f.kind is not None:
        where.append(Zone.kind == f.kind)
    if with_status and f.status is not None:
        where.append(Zone.status == f.status)
    if f.q:
        needle = f.q.lower()
        devices = select(Device.zone_id).where(Device.zone_id.is_not(None), or_(
            func.lower(Device.name).contains(needle, autoescape=True),
            func.lower(Device.id).contains(needle, autoescape=True)))
        where.append(or_(func.lower(Zone.name).contains(needle, autoescape=True),
                         func.lower(Zone.code).contains(needle, autoescape=True), Zone.id.in_(devices)))
    return where


def _district_of(regions: Regions, region_id: int | None) -> int | None:
    """The district a region is in (itself if it is one); above any district, the region itself."""
    seen: set[int] = set()
    rid = region_id
    while rid in regions.by_id and rid not in seen:
        seen.add(rid)
        region = regions.by_id[rid]
        if region.level == "district":
            return rid
        rid = region.parent_id
    return region_id if region_id in regions.by_id else None


def _rollup(session: Session, regions: Regions, where) -> list[RollupRow]:
    stmt = select(Zone.region_id, Zone.status, func.count()).group_by(Zone.region_id, Zone.status)
    for clause in where:
        stmt = stmt.where(clause)
    rows: dict[int | None, RollupRow] = {}
    districts: dict[int | None, int | None] = {}
    for region_id, status, n in session.exec(stmt):
        if region_id not in districts:
            districts[region_id] = _district_of(regions, region_id)
        key = districts[region_id]
        row = rows.get(key)
        if row is None:
            region = regions.by_id.get(key)
            parent = regions.by_id.get(region.parent_id) if region is not None else None
            row = rows[key] = RollupRow(key, region.name if region else "", parent.name if parent else "",
                                        region.level if region else "")
        row.counts[status if status in ZONE_STATUSES else "unknown"] += n
    return sorted(rows.values(), key=lambda r: (-r.counts["breach"], -r.counts["degraded"], r.parent, r.name))


def _choices(regions: Regions, f: FleetFilter) -> dict[str, list[tuple[int, str]]]:
    """The filter's options. Districts within the chosen city, townships only within the chosen district
    or city: a whole province's townships would be most of the page's weight (and of its render time)."""
    within = {"city": None, "district": f.city, "township": f.district or f.city}
    scope = {level: regions.subtree(rid) if rid is not None else None for level, rid in within.items()}
    out: dict[str, list[tuple[int, str]]] = {level: [] for level in LEVELS}
    for r in regions.by_id.values():
        if r.level not in out:
            continue
        allowed = scope[r.level]
        if r.level == "township" and allowed is None and r.id != f.township:
            continue
        if allowed is not None and r.id not in allowed and r.id != getattr(f, r.level):
            continue
        parent = regions.by_id.get(r.parent_id)
        out[r.level].append((r.id, f"{parent.name} / {r.name}" if parent and r.level != "city" else r.name))
    return {level: sorted(items, key=lambda i: i[1]) for level, items in out.items()}


def fleet_view(session: Session, f: FleetFilter, words, page_size: int = PAGE_SIZE) -> FleetView:
    regions = Regions(session)
    _check_regions(f, regions, words)
    base = _matching(f, regions, with_status=False)
    stmt = select(Zone.status, func.count()).group_by(Zone.status)
    for clause in base:
        stmt = stmt.where(clause)
    counts: Counter = Counter()
    for status, n in session.exec(stmt):
        counts[status if status in ZONE_STATUSES else "unknown"] += n
    total = counts[f.status] if f.status else sum(counts.values())
    listed = select(Zone)
    for clause in _matching(f, regions, with_status=True):
        listed = listed.where(clause)
    listed = listed.order_by(STATUS_ORDER, Zone.status_since.is_(None), Zone.status_since, Zone.code)
    zones = session.exec(listed.offset((f.page - 1) * page_size).limit(page_size)).all()
    devices, printers = _zone_counts(session, [z.id for z in zones])
    rows = [ZoneRow(z.id, z.code, z.name, z.kind, z.status if z.status in ZONE_STATUSES else "unknown",
                    z.status_since, [str(r) for r in z.reasons] if isinstance(z.reasons, list) else [],
                    " / ".join(r.name for r in regions.path(z.region_id)), z.timezone, devices[z.id], printers[z.id])
            for z in zones]
    return FleetView(counts, total, rows, max(1, -(-total // page_size)), _rollup(session, regions, base),
                     _choices(regions, f))
