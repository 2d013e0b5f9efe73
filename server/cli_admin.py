"""``zonewatch zone|device|import``: zones and devices from the command line (the work is in server.admin).

Exit codes: 0 done; 1 bad input, something not found or a clash (one line on stderr saying what and
what to do; an import lists every bad row); 2 wrong usage (argparse); 69 the database cannot be
reached; 78 the config file is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EX_INPUT, EX_UNAVAILABLE, EX_CONFIG = 1, 69, 78
CONFIG_HELP = "server config file (TOML); embedded defaults (SQLite under ./zonewatch-data) when omitted"
HOURS_EXAMPLE = "mon-fri 08:30-12:00,13:30-17:30; sat 09:00-12:00"


def register(sub: Any) -> None:
    """Add the ``zone``, ``device`` and ``import`` commands to the ``zonewatch`` sub-parsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    from .auth.cli import register as register_user

    register_user(sub, common)

    zone = sub.add_parser("zone", help="add and list zones").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    add = zone.add_parser("add", parents=[common], help="add a zone", description="Add a zone.")
    add.add_argument("code", metavar="CODE", help="short unique code, e.g. hall-01")
    add.add_argument("--name", required=True, help="the zone's name as people know it")
    add.add_argument("--kind", required=True, help="service_hall, convenience_centre, archive or library")
    add.add_argument("--region", metavar="PATH", help='"City/District/Township" (1-3 levels, created as needed)')
    add.add_argument("--hours", metavar="TEXT", help=f'opening hours, e.g. "{HOURS_EXAMPLE}"')
    add.add_argument("--holidays", metavar="DATES", help="closed dates, e.g. 2026-10-01..2026-10-07,2027-01-01")
    add.add_argument("--timezone", default="Asia/Shanghai", help="IANA time zone (default Asia/Shanghai)")
    add.set_defaults(admin=_zone_add)
    listing = zone.add_parser("list", parents=[common], help="list zones", description="List zones.")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(admin=_zone_list)

    device = sub.add_parser("device", help="register, move and list devices").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    add = device.add_parser(
        "add",
        parents=[common],
        help="register a device in a zone",
        description="Register a device in a zone; a device that already reported (unassigned) is placed.",
    )
    add.add_argument("device_id", metavar="ID", help="the device id (its MQTT user name)")
    add.add_argument("--zone", required=True, metavar="CODE", help="zone code")
    add.add_argument("--role", required=True, help="kiosk, desktop or counter_pc")
    add.add_argument("--name", default="", help="a name people recognise, e.g. 'Kiosk by the door'")
    add.add_argument("--interval", type=float, metavar="S", help="expected seconds between reports")
    add.set_defaults(admin=_device_add)
    move = device.add_parser("move", parents=[common], help="move a device to another zone, or unassign it")
    move.add_argument("device_id", metavar="ID", help="the device id")
    where = move.add_mutually_exclusive_group(required=True)
    where.add_argument("--zone", metavar="CODE", help="the zone to move it to")
    where.add_argument("--unassign", action="store_true", help="take it out of its zone")
    move.set_defaults(admin=_device_move)
    listing = device.add_parser("list", parents=[common], help="list devices", description="List devices.")
    which = listing.add_mutually_exclusive_group()
    which.add_argument("--zone", metavar="CODE", help="only the devices of this zone")
    which.add_argument("--unassigned", action="store_true", help="only devices not placed in a zone")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(admin=_device_list)

    imp = sub.add_parser(
        "import",
        parents=[common],
        help="import zones and devices from CSV files (all or nothing)",
        description="Import zones and devices from CSV (zones.csv, devices.csv, or one sheet with a type "
        "column); see docs/run-server.md. Nothing is written if any row is wrong.",
    )
    imp.add_argument("files", nargs="+", metavar="FILE.csv")
    imp.add_argument("--dry-run", action="store_true", help="check and count only; write nothing")
    imp.set_defaults(admin=_import)


def run(args: argparse.Namespace) -> int:
    """Open the database, run the command, and turn every error into one line and an exit code."""
    from sqlalchemy.exc import DBAPIError

    from .errors import ConfigError, Conflict, NotFound

    try:
        with _session(args.config) as session:
            return args.admin(session, args)
    except ConfigError as exc:
        hint = "" if "--config" in str(exc) else ". Fix the file, or leave --config out to use the embedded defaults"
        return _fail(f"{exc}{hint}", EX_CONFIG)
    except (NotFound, Conflict, ValueError) as exc:
        return _fail(str(exc), EX_INPUT)
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        return _fail(
            f"cannot use the database ({reason}). Check database.url in the config and that the database "
            "server is running",
            EX_UNAVAILABLE,
        )
    except BrokenPipeError:  # `zonewatch device list | head`: the reader is gone; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EX_INPUT
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}. Check the path and its permissions", EX_INPUT)
    except KeyboardInterrupt:
        return 130


def _fail(message: str, code: int) -> int:
    print(f"zonewatch: {message}", file=sys.stderr)
    return code


@contextmanager
def _session(config: str | None) -> Iterator[Any]:
    from sqlalchemy.engine import make_url

    from .db import make_engine, session_factory, upgrade
    from .settings import load_settings

    url = load_settings(config).database_url
    parsed = make_url(url)
    new_file = None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database)
        new_file = None if path.exists() else path.resolve()
    engine = make_engine(url)
    try:
        upgrade(engine)
        if new_file is not None:
            why = "" if config else " (embedded defaults; give --config FILE to use your server's database)"
            print(f"zonewatch: new database at {new_file}{why}", file=sys.stderr)
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


# -- commands --------------------------------------------------------------------------------


def _zone_add(session: Any, args: argparse.Namespace) -> int:
    from .admin import add_zone, region_paths
    from .opening_hours import format_hours

    zone = add_zone(session, args.code, args.name, args.kind, args.region, args.timezone, args.hours, args.holidays)
    region = region_paths(session).get(zone.region_id) if zone.region_id else None
    where = f" in {region}" if region else ""
    print(f"zone {zone.code} added: {zone.name} ({zone.kind}){where}")
    hours = format_hours(zone.opening_hours)
    print(f"  opening hours: {hours} ({zone.timezone})" if hours else "  opening hours: none set")
    if zone.holidays:
        print(f"  holidays: {len(zone.holidays)} days")
    return 0


def _zone_list(session: Any, args: argparse.Namespace) -> int:
    from .admin import list_zones
    from .opening_hours import format_hours

    zones = list_zones(session)
    if args.json:
        print(json.dumps([z.as_dict() for z in zones], ensure_ascii=False, indent=2))
    elif not zones:
        print("No zones yet. Add one with: zonewatch zone add CODE --name NAME --kind KIND")
    else:
        rows = [
            [
                z.code,
                z.name,
                z.kind,
                z.region or "-",
                str(z.devices),
                format_hours(z.opening_hours) or "-",
                str(len(z.holidays)),
            ]
            for z in zones
        ]
        print(_table(["CODE", "NAME", "KIND", "REGION", "DEVICES", "OPENING HOURS", "HOLIDAYS"], rows))
    return 0


def _device_add(session: Any, args: argparse.Namespace) -> int:
    from .admin import add_device
    from .db.models import Device

    before = session.get(Device, args.device_id.strip())
    heard = before.first_seen if before is not None else None
    device = add_device(session, args.device_id, args.zone, args.role, args.name, args.interval)
    what = f"device {device.id} ({device.name})" if device.name else f"device {device.id}"
    if before is None:
        print(f"{what} registered in zone {args.zone.strip()} as {device.role}")
    else:
        since = f", reporting since {_when(heard)}" if heard else ""
        print(f"{what} (was unassigned{since}) placed in zone {args.zone.strip()} as {device.role}")
    return 0


def _device_move(session: Any, args: argparse.Namespace) -> int:
    from .admin import move_device

    target = None if args.unassign else args.zone.strip()
    device, old = move_device(session, args.device_id, target)
    if old == target:
        where = f"in zone {target}" if target else "unassigned"
        print(f"device {device.id} is already {where}; nothing changed")
    else:
        print(f"device {device.id} moved from {_place(old)} to {_place(target)}")
    return 0


def _device_list(session: Any, args: argparse.Namespace) -> int:
    from .admin import list_devices

    devices = list_devices(session, args.zone, args.unassigned)
    if args.json:
        print(json.dumps([d.as_dict() for d in devices], ensure_ascii=False, indent=2))
        return 0
    if not devices:
        print(
            "No devices" + (f" in zone {args.zone}." if args.zone else " unassigned." if args.unassigned else " yet.")
        )
        return 0
    rows = [
        [
            d.id,
            d.name or "-",
            d.role,
            d.zone or "(unassigned)",
            f"{d.interval_s:g} s" if d.interval_s else "-",
            d.status,
            _when(d.last_heard) if d.last_heard else "never",
        ]
        for d in devices
    ]
    print(_table(["DEVICE", "NAME", "ROLE", "ZONE", "INTERVAL", "STATUS", "LAST HEARD"], rows))
    waiting = sum(1 for d in devices if d.zone is None)
    if waiting and not args.unassigned:
        print(f"\n{waiting} unassigned: place each with: zonewatch device add ID --zone CODE --role ROLE")
    return 0


def _import(session: Any, args: argparse.Namespace) -> int:
    from .admin import import_csv

    result = import_csv(session, args.files, dry_run=args.dry_run)
    if result.errors:
        n = len(result.errors)
        print(
            f"zonewatch: {n} error{'s' if n > 1 else ''} in {', '.join(args.files)}; nothing was written. "
            "Fix the rows below and import again:",
            file=sys.stderr,
        )
        for error in result.errors:
            print(f"  {error}", file=sys.stderr)
        return EX_INPUT
    placed = f" ({result.placed} of them placed from unassigned)" if result.placed else ""
    if args.dry_run:
        print("dry run: nothing was written. The import would change:")
    for what, c, extra in (("zones", result.zones, ""), ("devices", result.devices, placed)):
        updated = f"{c.updated} updated{extra}"
        print(f"  {what + ':':9}{c.created} created, {updated}, {c.unchanged} unchanged")
    return 0


# -- output ----------------------------------------------------------------------------------


def _place(code: str | None) -> str:
    return f"zone {code}" if code else "unassigned"


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _width(text: str) -> int:
    """Columns a string takes in a terminal: CJK characters take two."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(_width(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    return "\n".join(
        "  ".join(cell + " " * (w - _width(cell)) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    )
