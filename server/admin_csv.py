"""Zones and devices from a spreadsheet: CSV import, all or nothing.

Keep two sheets in one workbook — *zones* and *devices* — and save each as CSV; import both in one
go (``zonewatch import zones.csv devices.csv``). What a file holds is told by its header row:

zones (a ``code`` column)
    ``code,name,kind,region,opening_hours,holidays,timezone``
devices (a ``device_id`` column)
    ``device_id,name,role,zone,interval_s``
both in one sheet (a ``type`` column, ``zone`` or ``device`` in each row)
    ``type,code,name,kind,region,opening_hours,holidays,timezone,device_id,role,zone,interval_s``
    — a zone row leaves the device columns empty and a device row the zone columns.

Only ``code`` / ``device_id`` must be in the header; columns may come in any order, header names are
case-insensitive (``Opening hours`` works; ``hours`` and ``interval`` are accepted too), and
columns named ``notes``/``comment``/``remarks`` are ignored. Any other column is an error, so a
misspelt header never silently drops data.

Cells: ``kind`` one of service_hall, convenience_centre, archive, library; ``region``
``City/District/Township`` (1-3 levels, created as needed); ``opening_hours`` like
``mon-fri 08:30-12:00,13:30-17:30; sat 09:00-12:00`` and ``holidays`` like
``2026-10-01..2026-10-07,2027-01-01`` (see :mod:`server.opening_hours`); ``timezone`` an IANA name
(Asia/Shanghai when a new zone leaves it empty); ``role`` kiosk, desktop or counter_pc; ``zone`` a
zone code (from the database, or from a zone row of this import); ``interval_s`` the expected
seconds between reports (empty: the device's own).

Rules:

- A new zone needs ``name`` and ``kind``; a new device needs ``role`` (so does one that reported
  before it was registered). A row for an existing zone or device updates it; an **empty cell
  keeps** the stored value; ``-`` clears ``region``, ``opening_hours``, ``holidays`` and
  ``interval_s`` and, in ``zone``, unassigns the device. A device row may move a device to another
  zone, and places a device that reported before it was registered.
- **All or nothing**: every row is checked first; if any row is wrong nothing is written and every
  error is reported with its file and line number. ``dry_run`` checks and counts, and writes nothing.
- Importing the same files again changes nothing (every row counts as unchanged).
- Blank rows and rows whose first cell starts with ``#`` are skipped. Files may be UTF-8 (with or
  without the BOM Excel writes) or GBK/GB18030 (Excel's "CSV" on Chinese Windows).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from .admin import (
    ADMIN_ROLES,
    DEFAULT_TIMEZONE,
    ZONE_LIST_HINT,
    check_code,
    check_device,
    check_interval,
    check_name,
    check_timezone,
    closest,
    mark_placement_changed,
    parse_kind,
    parse_role,
    region_path,
    region_paths,
    split_region,
)
from .db.models import Device, Zone
from .errors import Conflict
from .opening_hours import parse_holidays, parse_hours

ZONE_COLUMNS = ("code", "name", "kind", "region", "opening_hours", "holidays", "timezone")
DEVICE_COLUMNS = ("device_id", "name", "role", "zone", "interval_s")
ALIASES = {"hours": "opening_hours", "interval": "interval_s", "device": "device_id", "tz": "timezone"}
IGNORED = {"notes", "note", "comment", "comments", "remark", "remarks"}
COLUMN_ORDER = ("type", *ZONE_COLUMNS, "device_id", "role", "zone", "interval_s")
CLEAR = "-"
CLEARABLE = {"region": None, "opening_hours": {}, "holidays": [], "interval_s": None, "zone": None}


@dataclass
class RowError:
    source: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.source} line {self.line}: {self.message}" if self.line else f"{self.source}: {self.message}"


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class ImportResult:
    zones: Counts = field(default_factory=Counts)
    devices: Counts = field(default_factory=Counts)
    #: Devices that were unassigned (reported before being registered) and now have a zone.
    placed: int = 0
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False
    #: True when the changes were committed (not a dry run, no errors, something to write).
    written: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class _Row:
    source: str
    line: int
    type: str  # zone | device
    cells: dict[str, str]


@dataclass
class _Plan:
    line: int
    key: str
    existing: Any  # Zone | Device | None
    changes: dict[str, Any]


Source = str | Path | IO[str] | IO[bytes]


def import_files(session: Session, files: Source | Iterable[Source], *, dry_run: bool = False) -> ImportResult:
    sources = [files] if isinstance(files, str | Path) or hasattr(files, "read") else list(files)
    errors: list[RowError] = []
    rows = [row for source in sources for row in _read_rows(source, errors)]
    for attempt in range(2):
        result = ImportResult(dry_run=dry_run, errors=list(errors))
        zones, devices = _plan(session, rows, result)
        order = {_name(s): i for i, s in reversed(list(enumerate(sources)))}
        result.errors.sort(key=lambda e: (order.get(e.source, len(order)), e.line))
        if result.errors or dry_run or not (zones or devices):
            session.rollback()
            return result
        try:
            _apply(session, zones, devices)
            session.commit()
        except IntegrityError:  # a concurrent change (the server storing a new device): plan again
            session.rollback()
            if attempt:
                raise Conflict(
                    "zones or devices in the file were changed by someone else at the same moment; nothing "
                    "was written. Run the import again"
                ) from None
            continue
        result.written = True
        return result
    raise AssertionError("unreachable")


# -- reading ---------------------------------------------------------------------------------


def _name(source: Source) -> str:
    return str(source) if isinstance(source, str | Path) else str(getattr(source, "name", "<input>"))


def _read_rows(source: Source, errors: list[RowError]) -> list[_Row]:
    name = _name(source)
    try:
        data = Path(source).read_bytes() if isinstance(source, str | Path) else source.read()
    except OSError as exc:
        errors.append(RowError(name, 0, f"cannot read it ({exc.strerror}). Check the file name"))
        return []
    if isinstance(data, bytes) and data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        errors.append(
            RowError(
                name,
                0,
                "is a spreadsheet workbook, not CSV. Save each sheet (zones, devices) "
                "as 'CSV UTF-8' and import those files",
            )
        )
        return []
    if isinstance(data, bytes):
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                data = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            errors.append(RowError(name, 0, "is neither UTF-8 nor GBK text. Save it as 'CSV UTF-8'"))
            return []
    text = data.lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = "," if "," in first else ";" if ";" in first else "\t" if "\t" in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        return _parse(name, reader, errors)
    except csv.Error as exc:
        errors.append(
            RowError(name, reader.line_num, f"is not readable as CSV ({exc}). Re-save it from the spreadsheet as CSV")
        )
        return []


def _parse(name: str, reader: Any, errors: list[RowError]) -> list[_Row]:
    header = next((cells for cells in reader if any(c.strip() for c in cells)), None)
    if header is None:
        errors.append(RowError(name, 0, "is empty. It needs a header row, like: " + ",".join(ZONE_COLUMNS)))
        return []
    header_line = reader.line_num
    columns: list[str | None] = []
    for cell in header:
        col = "_".join(cell.strip().lower().replace("-", " ").split())
        col = ALIASES.get(col, col)
        columns.append(None if not col or col in IGNORED or col.startswith("#") else col)
    known = set(ZONE_COLUMNS) | set(DEVICE_COLUMNS) | {"type"}
    bad = [c for c in columns if c and c not in known]
    twice = sorted({c for c in columns if c and columns.count(c) > 1})
    if "type" in columns:
        kind, allowed = None, COLUMN_ORDER
    elif "device_id" in columns:
        kind, allowed = "device", DEVICE_COLUMNS
    elif "code" in columns:
        kind, allowed = "zone", ZONE_COLUMNS
    else:
        errors.append(
            RowError(
                name,
                header_line,
                "has no 'code' column (a zones file) and no 'device_id' "
                "column (a devices file). The header must name the columns, like: "
                f"{','.join(ZONE_COLUMNS)} or {','.join(DEVICE_COLUMNS)}",
            )
        )
        return []
    bad += [c for c in columns if c and c in known and c not in allowed]
    if bad or twice:
        what = f"unknown column {bad[0]!r}" if bad else f"column {twice[0]!r} given twice"
        errors.append(
            RowError(
                name,
                header_line,
                f"{what}. A {kind or 'zones-and-devices'} file's columns are: " + ",".join(allowed),
            )
        )
        return []
    rows, previous = [], reader.line_num
    for cells in reader:
        line, previous = previous + 1, reader.line_num
        if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        if any(c.strip() for c in cells[len(columns) :]):
            errors.append(
                RowError(
                    name,
                    line,
                    f"has {len(cells)} cells but the header has {len(columns)} "
                    "columns. Quote cells that contain a comma, or add the column to the header",
                )
            )
            continue
        values = {col: cells[i].strip() for i, col in enumerate(columns) if col and i < len(cells)}
        row_type = kind or _row_type(values.pop("type", ""), name, line, errors)
        if row_type is None:
            continue
        other = set(DEVICE_COLUMNS if row_type == "zone" else ZONE_COLUMNS) - {"name"}
        stray = [c for c in columns if c in other and values.get(c)]
        if stray:
            errors.append(
                RowError(
                    name,
                    line,
                    f"a {row_type} row has a value in {stray[0]!r}, a "
                    f"{'device' if row_type == 'zone' else 'zone'} column. Leave it empty "
                    "or fix the row's type",
                )
            )
            continue
        rows.append(_Row(name, line, row_type, {c: v for c, v in values.items() if c not in other}))
    return rows


def _row_type(value: str, name: str, line: int, errors: list[RowError]) -> str | None:
    found = {"zone": "zone", "zones": "zone", "device": "device", "devices": "device"}.get(value.lower())
    if found is None:
        what = f"type {value!r} is not known" if value else "the type cell is empty"
        errors.append(RowError(name, line, f"{what}. Write zone or device"))
    return found


# -- planning: check every row against the database and each other ---------------------------


class _Context:
    def __init__(self, session: Session, rows: list[_Row]) -> None:
        self.session = session
        self.zones = {z.code: z for z in session.exec(select(Zone))}
        self.zones_lower = {c.lower(): c for c in self.zones}
        self.zone_by_id = {z.id: z for z in self.zones.values()}
        self.paths = region_paths(session)
        ids = sorted({r.cells.get("device_id", "") for r in rows if r.type == "device"})
        self.devices: dict[str, Device] = {}
        for i in range(0, len(ids), 500):
            self.devices.update((d.id, d) for d in session.exec(select(Device).where(Device.id.in_(ids[i : i + 500]))))
        self.seen: dict[tuple[str, str], _Row] = {}
        self.planned_zones: set[str] = set()
        self.failed_zones: set[str] = set()


def _plan(session: Session, rows: list[_Row], result: ImportResult) -> tuple[list[_Plan], list[_Plan]]:
    ctx = _Context(session, rows)
    zones = [p for r in rows if r.type == "zone" and (p := _checked(_zone_plan, ctx, r, result))]
    devices = [p for r in rows if r.type == "device" and (p := _checked(_device_plan, ctx, r, result))]
    for plans, counts in ((zones, result.zones), (devices, result.devices)):
        for p in plans:
            if p.existing is None:
                counts.created += 1
            elif p.changes:
                counts.updated += 1
            else:
                counts.unchanged += 1
    result.placed = sum(
        1 for p in devices if p.existing is not None and p.existing.zone_id is None and p.changes.get("zone")
    )
    return [p for p in zones if p.changes or p.existing is None], [p for p in devices if p.changes or not p.existing]


def _checked(planner, ctx: _Context, row: _Row, result: ImportResult) -> _Plan | None:
    problems: list[str] = []
    plan = planner(ctx, row, problems)
    result.errors.extend(RowError(row.source, row.line, p) for p in problems)
    return None if problems else plan


def _cell(row: _Row, column: str, parse, problems: list[str], out: dict[str, Any]) -> None:
    value = row.cells.get(column, "")
    if not value:
        return
    try:
        out[column] = CLEARABLE[column] if value == CLEAR and column in CLEARABLE else parse(value)
    except ValueError as exc:
        problems.append(str(exc))


def _first_time(ctx: _Context, row: _Row, what: str, key: str, problems: list[str]) -> bool:
    earlier = ctx.seen.setdefault((what, key.lower() if what == "zone" else key), row)
    if earlier is not row:
        where = f"line {earlier.line}" if earlier.source == row.source else f"{earlier.source} line {earlier.line}"
        problems.append(f"{what} {key!r} is also on {where}. Give each {what} once")
        return False
    return True


def _zone_plan(ctx: _Context, row: _Row, problems: list[str]) -> _Plan | None:
    try:
        code = check_code(row.cells.get("code", ""))
    except ValueError as exc:
        problems.append(str(exc))
        return None
    if not _first_time(ctx, row, "zone", code, problems):
        return None
    ctx.failed_zones.add(code)  # until the row checks out: devices naming it get no second error
    want: dict[str, Any] = {}
    _cell(row, "name", lambda v: check_name(v, "zone"), problems, want)
    _cell(row, "kind", parse_kind, problems, want)
    _cell(row, "region", lambda v: "/".join(split_region(v)), problems, want)
    _cell(row, "opening_hours", parse_hours, problems, want)
    _cell(row, "holidays", parse_holidays, problems, want)
    _cell(row, "timezone", check_timezone, problems, want)
    existing = ctx.zones.get(code)
    if existing is None and (other := ctx.zones_lower.get(code.lower())):
        problems.append(f"zone {code!r} clashes with the existing zone {other!r}. Spell the code the same way")
    if existing is None:
        missing = [c for c in ("name", "kind") if not row.cells.get(c)]
        if missing:
            problems.append(
                f"new zone {code!r} needs a {' and a '.join(missing)}. Fill in the "
                f"{' and '.join(missing)} column{'s' if len(missing) > 1 else ''}"
            )
    if problems:
        return None
    ctx.failed_zones.discard(code)
    ctx.planned_zones.add(code)
    if existing is None:
        return _Plan(row.line, code, None, {"timezone": DEFAULT_TIMEZONE, **want})
    current = {
        "name": existing.name,
        "kind": existing.kind,
        "region": ctx.paths.get(existing.region_id),
        "opening_hours": existing.opening_hours,
        "holidays": existing.holidays,
        "timezone": existing.timezone,
    }
    return _Plan(row.line, code, existing, {k: v for k, v in want.items() if current[k] != v})


def _device_plan(ctx: _Context, row: _Row, problems: list[str]) -> _Plan | None:
    try:
        device_id = check_device(row.cells.get("device_id", ""))
    except ValueError as exc:
        problems.append(str(exc))
        return None
    if not _first_time(ctx, row, "device", device_id, problems):
        return None
    want: dict[str, Any] = {}
    _cell(row, "name", lambda v: check_name(v, "device"), problems, want)
    _cell(row, "role", parse_role, problems, want)
    _cell(row, "interval_s", check_interval, problems, want)
    _cell(row, "zone", lambda v: _zone_code(ctx, v), problems, want)
    existing = ctx.devices.get(device_id)
    if not row.cells.get("role") and (existing is None or existing.role == "unknown"):
        what = f"new device {device_id!r}" if existing is None else f"device {device_id!r} (unassigned, no role yet)"
        problems.append(f"{what} needs a role. Fill in the role column with one of: {', '.join(ADMIN_ROLES)}")
    if problems or ("zone" in want and want["zone"] in ctx.failed_zones):
        return None
    if existing is None:
        return _Plan(row.line, device_id, None, want)
    zone = ctx.zone_by_id.get(existing.zone_id)
    current = {
        "name": existing.name,
        "role": existing.role,
        "interval_s": existing.interval_s,
        "zone": zone.code if zone else None,
    }
    return _Plan(row.line, device_id, existing, {k: v for k, v in want.items() if current[k] != v})


def _zone_code(ctx: _Context, value: str) -> str:
    code = value.strip()
    if code in ctx.zones or code in ctx.planned_zones or code in ctx.failed_zones:
        return code
    near = closest(code, [*ctx.zones, *ctx.planned_zones])
    hint = f"Did you mean {near!r}?" if near else f"Add a zone row for it, or pick an existing one. {ZONE_LIST_HINT}"
    raise ValueError(f"zone {code!r} does not exist. {hint}")


# -- applying --------------------------------------------------------------------------------


def _apply(session: Session, zones: list[_Plan], devices: list[_Plan]) -> None:
    now = time.time()
    by_code = {z.code: z for z in session.exec(select(Zone))}
    for plan in zones:
        zone = plan.existing or Zone(code=plan.key, name="", created_at=now)
        for column, value in plan.changes.items():
            if column == "region":
                zone.region_id = region_path(session, value).id if value else None
            else:
                setattr(zone, column, value)
        session.add(zone)
        by_code[zone.code] = zone
    session.flush()
    for plan in devices:
        device = plan.existing or Device(id=plan.key, created_at=now)
        for column, value in plan.changes.items():
            if column == "zone":
                device.zone_id = by_code[value].id if value else None
            else:
                setattr(device, column, value)
        session.add(device)
    mark_placement_changed(session)
