"""Zones and devices as admins manage them: regions, zones, device placement, and CSV import.

Domain operations on a sqlmodel ``Session``; nothing here prints. ``add_zone``, ``add_device``,
``move_device`` and ``import_csv`` are whole admin actions: each validates, changes, bumps the
placement mark and commits (one transaction). ``region_path`` is a building block that only
flushes. Errors are ``ValueError`` (bad input), :class:`NotFound` and :class:`Conflict`, with
messages that say what is wrong and what to do.

The running server does not share memory with this module: every change to zones or device
placement bumps :data:`PLACEMENT_MARK` in ``ingest_mark`` (:func:`mark_placement_changed`), and the
server's sweep reloads placement when it sees the mark move.

The CSV format is described in :mod:`server.admin_csv`.
"""

from __future__ import annotations

import difflib
import re
import time
import unicodedata
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from protocol import ProtocolError, check_device_id

from .db.models import DEVICE_ROLES, REGION_LEVELS, ZONE_KINDS, Device, IngestMark, Region, Zone
from .errors import Conflict, NotFound
from .opening_hours import normalize_hours, parse_holidays

if TYPE_CHECKING:
    from .admin_csv import ImportResult

#: ``ingest_mark`` row the server polls to reload zones and device placement.
PLACEMENT_MARK = "placement_changed_at"
DEFAULT_TIMEZONE = "Asia/Shanghai"
#: Roles an admin gives; ``unknown`` is what a device that reported before being registered has.
ADMIN_ROLES = tuple(r for r in DEVICE_ROLES if r != "unknown")
CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_NAME = 200
MIN_INTERVAL, MAX_INTERVAL = 1.0, 86400.0

_KIND_ALIASES = {
    **{k: k for k in ZONE_KINDS},
    "hall": "service_hall",
    "政务服务大厅": "service_hall",
    "服务大厅": "service_hall",
    "convenience_center": "convenience_centre",
    "便民服务中心": "convenience_centre",
    "archives": "archive",
    "档案馆": "archive",
    "图书馆": "library",
}
_ROLE_ALIASES = {**{r.replace("_", ""): r for r in ADMIN_ROLES}, "counter": "counter_pc"}
_INTERVAL = re.compile(r"(-?\d+(?:\.\d*)?|\.\d+)\s*(s|sec|m|min)?")
_REGION_SEPARATORS = re.compile(r"\s*[/／]\s*")

ZONE_LIST_HINT = "List zones with: zonewatch zone list"
DEVICE_LIST_HINT = "List devices with: zonewatch device list"


# -- validation of what people type ----------------------------------------------------------


def _key(text: str) -> str:
    return re.sub(r"[\s-]+", "_", text.strip().lower())


def check_code(code: str) -> str:
    code = (code or "").strip()
    if not CODE_RE.fullmatch(code):
        raise ValueError(
            f"zone code {code!r} is not allowed. Use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit, like hall-01"
        )
    return code


def check_device(device_id: str) -> str:
    try:
        return check_device_id((device_id or "").strip())
    except ProtocolError as exc:
        raise ValueError(exc.reason) from None


def check_name(name: str, what: str) -> str:
    name = " ".join((name or "").split())
    if len(name) > MAX_NAME:
        raise ValueError(f"{what} name is {len(name)} characters long. Keep it to {MAX_NAME}")
    if bad := next((c for c in name if unicodedata.category(c) in ("Cc", "Cs")), None):
        raise ValueError(f"{what} name {name!r} contains the control character {bad!r}. Remove it")
    return name


def parse_kind(kind: str) -> str:
    found = _KIND_ALIASES.get(_key(kind or ""))
    if found is None:
        raise ValueError(f"zone kind {kind!r} is not known. Use one of: {', '.join(ZONE_KINDS)}")
    return found


def parse_role(role: str) -> str:
    key = _key(role or "").replace("_", "")
    found = _ROLE_ALIASES.get(key)
    if found is None:
        why = (
            " (printers are not registered: they are watched through the kiosk or PC they are attached to)"
            if key == "printer"
            else ""
        )
        raise ValueError(f"device role {role!r} is not known{why}. Use one of: {', '.join(ADMIN_ROLES)}")
    return found


def check_timezone(name: str) -> str:
    name = (name or "").strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"time zone {name!r} is not known. Use an IANA name like {DEFAULT_TIMEZONE}") from None
    return name


def check_interval(value: float | str | None) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    m = _INTERVAL.fullmatch(str(value).strip().lower())
    if m is None:
        raise ValueError(f"report interval {value!r} is not a number of seconds. Give e.g. 30")
    seconds = float(m.group(1)) * (60 if m.group(2) in ("m", "min") else 1)
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        raise ValueError(
            f"report interval of {seconds:g} s is out of range. Give {MIN_INTERVAL:g} to {MAX_INTERVAL:g} seconds"
        )
    return seconds


def split_region(path: str) -> list[str]:
    """``"Hangzhou / Xihu / Lingyin"`` → ``["Hangzhou", "Xihu", "Lingyin"]`` (1-3 non-empty parts)."""
    parts = [" ".join(p.split()) for p in _REGION_SEPARATORS.split((path or "").strip())]
    if not any(parts) or not all(parts):
        raise ValueError(
            f"region {path!r} has an empty part. Write it as City, City/District or City/District/Township"
        )
    if len(parts) > len(REGION_LEVELS):
        raise ValueError(f"region {path!r} has {len(parts)} levels. Give at most three: City/District/Township")
    for part in parts:
        check_name(part, "region")
    return parts


# -- the placement mark ------------------------------------------------------------------------


def mark_placement_changed(session: Session) -> float:
    """Bump ``placement_changed_at`` (in the caller's transaction) so the running server reloads."""
    now = time.time()
    with session.no_autoflush:  # pending changes are flushed at commit, where clashes are handled
        mark = session.get(IngestMark, PLACEMENT_MARK)
    if mark is None:
        session.add(IngestMark(name=PLACEMENT_MARK, value=now))
        return now
    mark.value = max(now, mark.value + 0.001)  # always moves, even twice in one clock tick
    session.add(mark)
    return mark.value


def _commit(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        reason = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        raise Conflict(
            f"the database refused the change ({reason}). Someone else probably changed the same "
            "zone or device at the same moment; run the command again"
        ) from None


# -- regions ---------------------------------------------------------------------------------


def region_path(session: Session, path: str, *, create: bool = True) -> Region | None:
    """The region at ``City[/District[/Township]]``, creating missing levels (flushed, not committed).

    With ``create=False`` returns ``None`` when any level does not exist yet.
    """
    parent: Region | None = None
    for level, name in zip(REGION_LEVELS, split_region(path), strict=False):
        parent_id = parent.id if parent else None
        query = select(Region).where(
            Region.name == name, Region.parent_id.is_(None) if parent_id is None else Region.parent_id == parent_id
        )
        region = session.exec(query).first()
        if region is None:
            if not create:
                return None
            region = Region(name=name, level=level, parent_id=parent_id)
            session.add(region)
            session.flush()
        parent = region
    return parent


def region_paths(session: Session) -> dict[int, str]:
    """Every region's id → ``City/District/Township``."""
    regions = {r.id: r for r in session.exec(select(Region))}

    def path(region: Region) -> str:
        parent = regions.get(region.parent_id) if region.parent_id is not None else None
        return f"{path(parent)}/{region.name}" if parent else region.name

    return {rid: path(r) for rid, r in regions.items()}


# -- zones -----------------------------------------------------------------------------------


@dataclass
class ZoneSummary:
    code: str
    name: str
    kind: str
    region: str | None
    timezone: str
    opening_hours: dict[str, list[str]]
    holidays: list[str]
    devices: int
    status: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_zone(session: Session, code: str) -> Zone:
    code = (code or "").strip()
    zone = session.exec(select(Zone).where(Zone.code == code)).first()
    if zone is None:
        near = closest(code, session.exec(select(Zone.code)).all())
        hint = f"Did you mean {near!r}?" if near else ZONE_LIST_HINT
        raise NotFound(f"zone {code!r} does not exist. {hint}")
    return zone


def closest(code: str, codes: Iterable[str]) -> str | None:
    """The code a typo most likely meant: the same in another letter case, or one or two letters off."""
    codes = list(codes)
    same = [c for c in codes if c.lower() == code.lower()]
    near = same or difflib.get_close_matches(code.lower(), codes, n=1, cutoff=0.8)
    return near[0] if near else None


def add_zone(
    session: Session,
    code: str,
    name: str,
    kind: str,
    region: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    opening_hours: str | Mapping[str, Iterable[str]] | None = None,
    holidays: str | Iterable[str] | None = None,
) -> Zone:
    """Create a zone (and its region path); Conflict if the code is taken (in any letter case)."""
    code = check_code(code)
    name = check_name(name, "zone")
    if not name:
        raise ValueError(f"zone {code!r} needs a name. Give it with --name")
    zone = Zone(
        code=code,
        name=name,
        kind=parse_kind(kind),
        timezone=check_timezone(timezone),
        opening_hours=normalize_hours(opening_hours),
        holidays=parse_holidays(holidays),
        created_at=time.time(),
    )
    taken = session.exec(select(Zone.code).where(func.lower(Zone.code) == code.lower())).first()
    if taken is not None:
        same = "already exists" if taken == code else f"clashes with the existing zone {taken!r}"
        raise Conflict(
            f"zone {code!r} {same}. To change a zone, put it in a CSV file and run: zonewatch import FILE.csv"
        )
    if region:
        zone.region_id = region_path(session, region).id
    session.add(zone)
    mark_placement_changed(session)
    _commit(session)
    return zone


def list_zones(session: Session) -> list[ZoneSummary]:
    paths = region_paths(session)
    counts = dict(
        session.exec(
            select(Device.zone_id, func.count()).where(Device.zone_id.is_not(None)).group_by(Device.zone_id)
        ).all()
    )
    return [
        ZoneSummary(
            z.code,
            z.name,
            z.kind,
            paths.get(z.region_id) if z.region_id else None,
            z.timezone,
            dict(z.opening_hours),
            list(z.holidays),
            counts.get(z.id, 0),
            z.status,
        )
        for z in session.exec(select(Zone).order_by(Zone.code))
    ]


# -- devices ---------------------------------------------------------------------------------


@dataclass
class DeviceSummary:
    id: str
    name: str
    role: str
    zone: str | None
    interval_s: float | None
    status: str
    online: bool | None
    first_seen: float | None
    last_heard: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_device(session: Session, device_id: str) -> Device:
    device_id = check_device(device_id)
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(
            f"device {device_id!r} is not registered. Register it with: zonewatch device add "
            f"{device_id} --zone CODE --role ROLE"
        )
    return device


def add_device(
    session: Session, device_id: str, zone_code: str | None, role: str, name: str = "", interval_s: float | None = None
) -> Device:
    """Register a device in a zone (or none). A device that reported before it was registered
    (stored as unassigned) is placed instead; one already in a zone is a Conflict (use move)."""
    device_id, role = check_device(device_id), parse_role(role)
    name, interval_s = check_name(name, "device"), check_interval(interval_s)
    for attempt in range(2):
        zone = find_zone(session, zone_code) if zone_code else None
        device = session.get(Device, device_id)
        if device is None:
            device = Device(
                id=device_id,
                name=name,
                role=role,
                zone_id=zone.id if zone else None,
                interval_s=interval_s,
                created_at=time.time(),
            )
        elif device.zone_id is not None:
            where = session.get(Zone, device.zone_id)
            raise Conflict(
                f"device {device_id!r} is already in zone {where.code if where else device.zone_id!r}. "
                f"To move it run: zonewatch device move {device_id} --zone CODE"
            )
        else:
            device.role, device.zone_id = role, zone.id if zone else None
            device.name = name or device.name
            device.interval_s = interval_s if interval_s is not None else device.interval_s
        try:
            session.add(device)
            mark_placement_changed(session)
            session.commit()
            return device
        except IntegrityError:  # the server stored it as unassigned a moment ago: place that one
            session.rollback()
            if attempt:
                raise Conflict(
                    f"device {device_id!r} was changed by someone else at the same moment. Run the command again"
                ) from None
    raise AssertionError("unreachable")


def move_device(session: Session, device_id: str, zone_code: str | None) -> tuple[Device, str | None]:
    """Put a registered device in another zone (``None``: unassign). Returns it and its old zone's code."""
    device = find_device(session, device_id)
    zone = find_zone(session, zone_code) if zone_code else None
    old = session.get(Zone, device.zone_id) if device.zone_id is not None else None
    new_id = zone.id if zone else None
    if device.zone_id != new_id:
        device.zone_id = new_id
        session.add(device)
        mark_placement_changed(session)
        _commit(session)
    return device, old.code if old else None


def list_devices(session: Session, zone_code: str | None = None, unassigned: bool = False) -> list[DeviceSummary]:
    if zone_code and unassigned:
        raise ValueError("give either a zone or unassigned, not both")
    query = select(Device, Zone.code).join(Zone, Device.zone_id == Zone.id, isouter=True).order_by(Device.id)
    if zone_code:
        query = query.where(Device.zone_id == find_zone(session, zone_code).id)
    elif unassigned:
        query = query.where(Device.zone_id.is_(None))
    return [
        DeviceSummary(d.id, d.name, d.role, code, d.interval_s, d.status, d.online, d.first_seen, d.last_heard)
        for d, code in session.exec(query)
    ]


# -- import ----------------------------------------------------------------------------------


def import_csv(
    session: Session, files: str | Path | IO[str] | Iterable[str | Path | IO[str]], *, dry_run: bool = False
) -> ImportResult:
    """Zones and devices from CSV files, all or nothing (see :mod:`server.admin_csv` for the format)."""
    from .admin_csv import import_files

    return import_files(session, files, dry_run=dry_run)
