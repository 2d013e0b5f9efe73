"""Zones and devices as admins manage them: server.admin, the CSV import and the ``zonewatch`` CLI.

Runs on SQLite and on a real PostgreSQL (tests/peers/postgres.py: a fresh database per test).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlmodel import Session, select

from server import admin
from server.admin_csv import ImportResult
from server.cli import main
from server.db import make_engine, session_factory, upgrade
from server.db.models import Device, IngestMark, Region, Zone
from server.errors import Conflict, NotFound
from server.opening_hours import format_holidays, format_hours, parse_holidays, parse_hours

WEEK = ["mon", "tue", "wed", "thu", "fri"]


@pytest.fixture(autouse=True)
def _no_zonewatch_env(monkeypatch):
    """Settings read ZONEWATCH_* variables; the tests must not pick up the caller's."""
    import os

    for name in [n for n in os.environ if n.startswith("ZONEWATCH_")]:
        monkeypatch.delenv(name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.peer)])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'fleet.db'}"


def _open(url: str):
    engine = make_engine(url)
    upgrade(engine)
    return engine


@pytest.fixture
def engine(database_url):
    engine = _open(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine):
    with session_factory(engine)() as s:
        yield s


@pytest.fixture
def sqlite_session(sqlite_url):
    engine = _open(sqlite_url)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()


def mark(session: Session) -> float | None:
    session.expire_all()
    row = session.get(IngestMark, admin.PLACEMENT_MARK)
    return row.value if row else None


def reported_unassigned(session: Session, device_id: str, first_seen: float = 1_700_000_000.0) -> None:
    """What ingest stores for a device that reports before an admin registered it."""
    session.add(Device(id=device_id, role="unknown", zone_id=None, first_seen=first_seen, last_heard=first_seen))
    session.commit()


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# -- regions -------------------------------------------------------------------------------


def test_region_path_creates_each_level_once_and_reuses_it(session):
    township = admin.region_path(session, "Hangzhou/Xihu/Lingyin")
    session.commit()
    regions = {r.name: r for r in session.exec(select(Region))}
    assert [(r.name, r.level) for r in sorted(regions.values(), key=lambda r: r.id)] == [
        ("Hangzhou", "city"),
        ("Xihu", "district"),
        ("Lingyin", "township"),
    ]
    assert regions["Lingyin"].parent_id == regions["Xihu"].id
    assert regions["Xihu"].parent_id == regions["Hangzhou"].id
    assert regions["Hangzhou"].parent_id is None

    assert admin.region_path(session, " Hangzhou / Xihu /  Lingyin ").id == township.id
    assert admin.region_path(session, "Hangzhou").id == regions["Hangzhou"].id
    binjiang = admin.region_path(session, "Hangzhou/Binjiang")
    assert (binjiang.level, binjiang.parent_id) == ("district", regions["Hangzhou"].id)
    # The same name under another parent is another region.
    other = admin.region_path(session, "Ningbo/Xihu")
    assert other.id != regions["Xihu"].id
    session.commit()
    assert len(session.exec(select(Region)).all()) == 6
    assert admin.region_path(session, "Shaoxing", create=False) is None
    assert admin.region_paths(session)[township.id] == "Hangzhou/Xihu/Lingyin"


@pytest.mark.parametrize(
    ("path", "match"),
    [("", "empty part"), ("Hangzhou//Lingyin", "empty part"), ("a/b/c/d", "4 levels. Give at most three")],
)
def test_region_path_refuses_bad_paths(sqlite_session, path, match):
    with pytest.raises(ValueError, match=match):
        admin.region_path(sqlite_session, path)


# -- zones ---------------------------------------------------------------------------------


def test_zone_add_and_list(session):
    zone = admin.add_zone(
        session,
        "hall-01",
        "Xihu  service hall",
        "Service Hall",
        region="Hangzhou/Xihu/Lingyin",
        opening_hours="mon-fri 08:30-12:00,13:30-17:30; sat 09:00-12:00",
        holidays="2026-10-01..2026-10-03,2027-01-01",
    )
    assert (zone.code, zone.name, zone.kind, zone.timezone) == (
        "hall-01",
        "Xihu service hall",
        "service_hall",
        "Asia/Shanghai",
    )
    admin.add_zone(
        session, "lib-01", "Hangzhou library", "library", timezone="Asia/Urumqi", opening_hours={"sun": ["09:00-17:00"]}
    )
    admin.add_device(session, "kiosk-1", "hall-01", "kiosk")

    zones = admin.list_zones(session)
    assert [z.code for z in zones] == ["hall-01", "lib-01"]
    hall, lib = zones
    assert hall.region == "Hangzhou/Xihu/Lingyin" and lib.region is None
    assert hall.opening_hours == {**{d: ["08:30-12:00", "13:30-17:30"] for d in WEEK}, "sat": ["09:00-12:00"]}
    assert hall.holidays == ["2026-10-01", "2026-10-02", "2026-10-03", "2027-01-01"]
    assert (hall.devices, lib.devices) == (1, 0)
    assert (lib.timezone, lib.opening_hours) == ("Asia/Urumqi", {"sun": ["09:00-17:00"]})
    assert json.loads(json.dumps(hall.as_dict()))["code"] == "hall-01"


def test_zone_add_refuses_clashes_and_bad_input(session):
    admin.add_zone(session, "hall-01", "Hall", "service_hall")
    with pytest.raises(Conflict, match=r"zone 'hall-01' already exists\. .*zonewatch import"):
        admin.add_zone(session, "hall-01", "Hall", "service_hall")
    with pytest.raises(Conflict, match="clashes with the existing zone 'hall-01'"):
        admin.add_zone(session, "HALL-01", "Hall", "service_hall")
    bad = [
        (("hall 2", "Hall", "library"), {}, "zone code 'hall 2' is not allowed"),
        (("hall-2", "  ", "library"), {}, "needs a name"),
        (("hall-2", "Hall", "museum"), {}, "zone kind 'museum' is not known. Use one of: service_hall"),
        (("hall-2", "Hall", "library"), {"timezone": "Mars/Base"}, "time zone 'Mars/Base' is not known"),
        (("hall-2", "Hall", "library"), {"opening_hours": "mon 9-5"}, "'9-5' is not a time range"),
        (("hall-2", "Hall", "library"), {"holidays": "2026-02-30"}, "'2026-02-30' is not a date"),
        (("hall-2", "Hall", "library"), {"region": "a/b/c/d"}, "4 levels"),
        (("hall-2", "x" * 201, "library"), {}, "201 characters long"),
        (("hall-2", "Hall\x00", "library"), {}, r"contains the control character '\\x00'"),
    ]
    for args, kwargs, match in bad:
        with pytest.raises(ValueError, match=match):
            admin.add_zone(session, *args, **kwargs)
    session.rollback()
    assert [z.code for z in admin.list_zones(session)] == ["hall-01"]
    assert session.exec(select(Region)).all() == []


def test_every_placement_change_moves_the_mark(session):
    assert mark(session) is None
    admin.add_zone(session, "hall-01", "Hall", "service_hall")
    admin.add_zone(session, "hall-02", "Hall 2", "service_hall")
    seen = [mark(session)]
    admin.add_device(session, "kiosk-1", "hall-01", "kiosk")
    seen.append(mark(session))
    admin.move_device(session, "kiosk-1", "hall-02")
    seen.append(mark(session))
    admin.move_device(session, "kiosk-1", "hall-02")  # no change: no reload needed
    seen.append(mark(session))
    admin.move_device(session, "kiosk-1", None)
    seen.append(mark(session))
    assert seen[0] is not None and abs(seen[0] - time.time()) < 60
    assert seen[0] < seen[1] < seen[2] == seen[3] < seen[4]


# -- devices -------------------------------------------------------------------------------


def test_device_add_move_and_unassign(session):
    admin.add_zone(session, "hall-01", "Hall", "service_hall")
    admin.add_zone(session, "hall-02", "Hall 2", "convenience centre")
    device = admin.add_device(session, "kiosk-1", "hall-01", "kiosk", name="By the door", interval_s=60)
    assert (device.role, device.name, device.interval_s) == ("kiosk", "By the door", 60.0)
    admin.add_device(session, "pc-1", "hall-01", "Counter PC")

    assert admin.move_device(session, "kiosk-1", "hall-02")[1] == "hall-01"
    assert [(d.id, d.zone) for d in admin.list_devices(session)] == [("kiosk-1", "hall-02"), ("pc-1", "hall-01")]
    assert [d.id for d in admin.list_devices(session, zone_code="hall-01")] == ["pc-1"]
    assert admin.move_device(session, "kiosk-1", None)[1] == "hall-02"
    assert [d.id for d in admin.list_devices(session, unassigned=True)] == ["kiosk-1"]
    session.expire_all()
    assert session.get(Device, "kiosk-1").zone_id is None
    assert session.get(Device, "pc-1").role == "counter_pc"

    with pytest.raises(Conflict, match=r"already in zone 'hall-01'\. To move it run: zonewatch device move pc-1"):
        admin.add_device(session, "pc-1", "hall-02", "kiosk")
    with pytest.raises(NotFound, match=r"zone 'hall-9' does not exist\. List zones with: zonewatch zone list"):
        admin.add_device(session, "kiosk-2", "hall-9", "kiosk")
    with pytest.raises(NotFound, match="Did you mean 'hall-01'"):
        admin.move_device(session, "pc-1", "HALL-01")
    with pytest.raises(NotFound, match=r"device 'nope' is not registered\. Register it with: zonewatch device add"):
        admin.move_device(session, "nope", "hall-01")
    with pytest.raises(ValueError, match="device role 'toaster' is not known"):
        admin.add_device(session, "kiosk-2", "hall-01", "toaster")
    with pytest.raises(NotFound, match=r"zone 'hal-01' does not exist\. Did you mean 'hall-01'"):
        admin.add_device(session, "kiosk-2", "hal-01", "kiosk")
    with pytest.raises(ValueError, match="printers are not registered: they are watched through the kiosk or PC"):
        admin.add_device(session, "hp-1", "hall-01", "printer")
    with pytest.raises(ValueError, match="device role 'unknown' is not known"):
        admin.add_device(session, "kiosk-2", "hall-01", "unknown")
    with pytest.raises(ValueError, match="device id 'bad id' is not allowed"):
        admin.add_device(session, "bad id", "hall-01", "kiosk")
    with pytest.raises(ValueError, match="report interval of 0 s is out of range"):
        admin.add_device(session, "kiosk-2", "hall-01", "kiosk", interval_s="0")
    with pytest.raises(ValueError, match="either a zone or unassigned"):
        admin.list_devices(session, zone_code="hall-01", unassigned=True)
    session.expire_all()
    assert session.get(Device, "kiosk-2") is None


def test_a_device_that_reported_first_is_placed_not_refused(session):
    admin.add_zone(session, "hall-01", "Hall", "service_hall")
    reported_unassigned(session, "kiosk-7", first_seen=1_700_000_000.0)
    assert [d.id for d in admin.list_devices(session, unassigned=True)] == ["kiosk-7"]

    device = admin.add_device(session, "kiosk-7", "hall-01", "kiosk", name="Kiosk 7")
    session.expire_all()
    stored = session.get(Device, "kiosk-7")
    assert (stored.zone_id, stored.role, stored.name) == (device.zone_id, "kiosk", "Kiosk 7")
    assert stored.first_seen == 1_700_000_000.0  # what ingest knew is kept
    assert admin.list_devices(session, unassigned=True) == []
    with pytest.raises(Conflict, match="device move"):
        admin.add_device(session, "kiosk-7", "hall-01", "kiosk")


def test_add_device_while_the_server_stores_it_as_unassigned(session, engine, monkeypatch):
    """The device reports between the admin's look-up and commit: the insert clashes, so it is placed instead."""
    admin.add_zone(session, "hall-01", "Hall", "service_hall")
    real_mark, calls = admin.mark_placement_changed, []

    def ingest_stores_it_meanwhile(s: Session) -> float:
        if not calls:
            with Session(engine) as other:
                other.add(Device(id="kiosk-1", role="unknown", first_seen=1_700_000_000.0))
                other.commit()
        calls.append(s)
        return real_mark(s)

    monkeypatch.setattr(admin, "mark_placement_changed", ingest_stores_it_meanwhile)
    admin.add_device(session, "kiosk-1", "hall-01", "kiosk")
    assert len(calls) == 2
    session.expire_all()
    stored = session.get(Device, "kiosk-1")
    assert (stored.role, stored.first_seen) == ("kiosk", 1_700_000_000.0)
    assert stored.zone_id == session.exec(select(Zone.id).where(Zone.code == "hall-01")).one()


@pytest.mark.parametrize(
    ("given", "seconds"), [("30", 30.0), ("30s", 30.0), ("2 min", 120.0), ("1.5m", 90.0), (45, 45.0), ("", None)]
)
def test_report_interval_as_people_write_it(given, seconds):
    assert admin.check_interval(given) == seconds


@pytest.mark.parametrize(
    ("given", "match"),
    [("5x", "'5x' is not a number of seconds"), ("-5", "of -5 s is out of range"), ("2d", "not a number")],
)
def test_report_interval_refused(given, match):
    with pytest.raises(ValueError, match=match):
        admin.check_interval(given)


# -- opening hours and holidays ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "mon-fri 08:30-12:00,13:30-17:30; sat 09:00-12:00",
            {**{d: ["08:30-12:00", "13:30-17:30"] for d in WEEK}, "sat": ["09:00-12:00"]},
        ),
        (
            "Mon–Fri 8:30 - 12:00 13:30-17:30；sat,sun 09:00-12:00",
            {**{d: ["08:30-12:00", "13:30-17:30"] for d in WEEK}, "sat": ["09:00-12:00"], "sun": ["09:00-12:00"]},
        ),
        ("daily 09:00-21:00; sun closed", {d: ["09:00-21:00"] for d in [*WEEK, "sat"]}),
        ("mon closed; mon-fri 08:00-12:00", {d: ["08:00-12:00"] for d in WEEK[1:]}),
        ("weekdays 13:30-17:30; mon-fri 08:30-12:00", {d: ["08:30-12:00", "13:30-17:30"] for d in WEEK}),
        ("sat-mon 00:00-24:00", {"mon": ["00:00-24:00"], "sat": ["00:00-24:00"], "sun": ["00:00-24:00"]}),
        ("monday, wednesday 10:00-11:00", {"mon": ["10:00-11:00"], "wed": ["10:00-11:00"]}),
    ],
)
def test_opening_hours_from_text(text, expected):
    hours = parse_hours(text)
    assert hours == expected
    assert parse_hours(format_hours(hours)) == hours
    assert format_hours(parse_hours("mon-sun 09:00-21:00")) == "daily 09:00-21:00"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "opening hours are empty"),
        (" ; ", "opening hours are empty"),
        ("08:30-17:30", r"part '08:30-17:30': give the days, then the times"),
        ("mon-fri", r"part 'mon-fri': give the days, then the times"),
        ("mon-fry 08:30-17:30", r"'mon-fry' is not a day or a range of days"),
        ("mon 8-12", r"part 'mon 8-12': '8-12' is not a time range. Write it as HH:MM-HH:MM"),
        ("mon 25:00-26:00", r"25:00 in '25:00-26:00' is not a time of day"),
        ("mon 08:60-09:00", r"is not a time of day"),
        ("mon 24:30-24:45", r"is not a time of day"),
        ("mon 17:30-08:30", r"'17:30-08:30' ends before it starts"),
        ("mon 08:00-08:00", r"ends before it starts"),
        ("mon 08:00-12:00,11:00-13:00", r"on mon 08:00-12:00 and 11:00-13:00 overlap"),
        ("mon-fri 08:00-12:00; fri 11:00-13:00", r"on fri 08:00-12:00 and 11:00-13:00 overlap"),
    ],
)
def test_opening_hours_bad_text_names_the_part(text, match):
    with pytest.raises(ValueError, match=match):
        parse_hours(text)


def test_opening_hours_as_a_dict_are_checked_too(sqlite_session):
    assert admin.add_zone(sqlite_session, "z1", "Z", "library", opening_hours={"mon": ["9:00-12:00"], "tue": []})
    assert admin.list_zones(sqlite_session)[0].opening_hours == {"mon": ["09:00-12:00"]}
    for hours, match in [({"monday!": ["09:00-10:00"]}, "not a weekday key"), ({"mon": "09:00-10:00"}, "a list")]:
        with pytest.raises(ValueError, match=match):
            admin.add_zone(sqlite_session, "z2", "Z", "library", opening_hours=hours)


def test_holidays():
    assert parse_holidays("2026-10-01..2026-10-03, 2027/1/1；2026-10-02") == [
        "2026-10-01",
        "2026-10-02",
        "2026-10-03",
        "2027-01-01",
    ]
    assert format_holidays(parse_holidays("2026-10-01..2026-10-03 2027-01-01")) == "2026-10-01..2026-10-03,2027-01-01"
    for text, match in [
        ("2026-13-01", "'2026-13-01' is not a date"),
        ("tomorrow", "'tomorrow' is not a date"),
        ("2026-10-07..2026-10-01", "must run forwards"),
        ("2026-01-01..2027-12-31", "at most 366 days"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_holidays(text)


# -- CSV import ----------------------------------------------------------------------------

ZONES_CSV = """\
code,name,kind,region,opening_hours,holidays,timezone
hall-01,Xihu service hall,service_hall,Hangzhou/Xihu/Lingyin,"mon-fri 08:30-12:00,13:30-17:30; sat 09:00-12:00",\
2026-10-01..2026-10-03,
lib-01,Hangzhou library,library,Hangzhou,daily 09:00-21:00,,Asia/Shanghai
"""
DEVICES_CSV = """\
Device ID,Name,Role,Zone,Interval S,Notes
kiosk-001,Kiosk by the door,kiosk,hall-01,30,checked 2026-05-01
pc-001,Counter PC,counter_pc,hall-01,,
desk-001,,desktop,lib-01,60,
kiosk-009,,kiosk,lib-01,,was reporting before it was registered
"""


def _counts(result: ImportResult) -> tuple:
    z, d = result.zones, result.devices
    return (z.created, z.updated, z.unchanged), (d.created, d.updated, d.unchanged), result.placed


def test_import_good_files_then_again_changes_nothing(session, tmp_path):
    zones, devices = write(tmp_path / "zones.csv", ZONES_CSV), write(tmp_path / "devices.csv", DEVICES_CSV)
    reported_unassigned(session, "kiosk-009")

    result = admin.import_csv(session, [devices, zones])  # order of files does not matter
    assert result.errors == []
    assert result.written
    assert _counts(result) == ((2, 0, 0), (3, 1, 0), 1)
    listed = {z.code: z for z in admin.list_zones(session)}
    assert listed["hall-01"].region == "Hangzhou/Xihu/Lingyin"
    assert listed["hall-01"].holidays == ["2026-10-01", "2026-10-02", "2026-10-03"]
    assert listed["lib-01"].opening_hours == {d: ["09:00-21:00"] for d in [*WEEK, "sat", "sun"]}
    assert (listed["hall-01"].devices, listed["lib-01"].devices) == (2, 2)
    by_id = {d.id: d for d in admin.list_devices(session)}
    assert (by_id["kiosk-001"].name, by_id["kiosk-001"].interval_s) == ("Kiosk by the door", 30.0)
    assert (by_id["kiosk-009"].zone, by_id["kiosk-009"].role) == ("lib-01", "kiosk")
    first_mark = mark(session)
    assert first_mark is not None

    again = admin.import_csv(session, [zones, devices])
    assert again.errors == [] and not again.written
    assert _counts(again) == ((0, 0, 2), (0, 0, 4), 0)
    assert mark(session) == first_mark  # nothing written, the server is not asked to reload
    assert len(session.exec(select(Region)).all()) == 3


def test_import_updates_moves_and_clears(session, tmp_path):
    admin.import_csv(session, [write(tmp_path / "z.csv", ZONES_CSV), write(tmp_path / "d.csv", DEVICES_CSV)])
    changed = write(
        tmp_path / "changes.csv",
        "type,code,name,kind,region,opening_hours,holidays,timezone,device_id,role,zone,interval_s\n"
        "zone,hall-01,Xihu hall,,-,mon-fri 09:00-17:00,-,,,,,\n"
        "zone,lib-01,,,,,,,,,,\n"
        "device,,,,,,,,kiosk-001,,lib-01,-\n"
        "device,,,,,,,,pc-001,,-,\n"
        "device,,Desk,,,,,,desk-001,,,\n",
    )
    result = admin.import_csv(session, changed)
    assert result.errors == []
    assert _counts(result) == ((0, 1, 1), (0, 3, 0), 0)
    hall = {z.code: z for z in admin.list_zones(session)}["hall-01"]
    assert (hall.name, hall.kind, hall.region, hall.holidays) == ("Xihu hall", "service_hall", None, [])
    assert hall.opening_hours == {d: ["09:00-17:00"] for d in WEEK}
    by_id = {d.id: d for d in admin.list_devices(session)}
    assert (by_id["kiosk-001"].zone, by_id["kiosk-001"].interval_s) == ("lib-01", None)
    assert by_id["pc-001"].zone is None
    assert (by_id["desk-001"].name, by_id["desk-001"].zone) == ("Desk", "lib-01")


BAD_CSV = """\
type,code,name,kind,region,opening_hours,holidays,timezone,device_id,role,zone,interval_s
zone,hall-01,"Hall
north",service_hall,,mon-fri 08:30-17:30,,,,,,
zone,hall-02,Hall 2,museum,,,,,,,,
zone,hall-03,Hall 3,library,,mon-fri 9-5,,,,,,
device,,Kiosk,,,,,,kiosk-1,kiosk,hall-9,
device,,,,,,,,bad id!,kiosk,hall-01,

device,,,,,,,,kiosk-2,,hall-01,
device,,,,,,,,kiosk-3,kiosk,hall-01,abc
device,,,,,,,,kiosk-3,kiosk,hall-01,
zone,HALL-01,Again,library,,,,,,,,
device,,,,,,,,kiosk-4,kiosk,hall-02,
zone,hall-05,,,,,,,,,,
device,hall-06,,,,,,,kiosk-5,kiosk,hall-01,
cabinet,,,,,,,,,,,
zone,hall-07,Hall 7,library,,,2026-02-30,Mars/Base,,,,
"""


def test_import_with_errors_writes_nothing_and_reports_every_line(session, tmp_path):
    reported_unassigned(session, "kiosk-2")
    result = admin.import_csv(session, write(tmp_path / "fleet.csv", BAD_CSV))
    assert not result.written
    lines = sorted((e.line, e.message) for e in result.errors)
    by_line: dict[int, list[str]] = {}
    for line, message in lines:
        by_line.setdefault(line, []).append(message)
    assert sorted(by_line) == [4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17]  # not 2 (good), 8 (blank), 13
    assert "zone kind 'museum' is not known" in by_line[4][0]
    assert "'9-5' is not a time range" in by_line[5][0]
    assert "zone 'hall-9' does not exist" in by_line[6][0]
    assert "device id 'bad id!' is not allowed" in by_line[7][0]
    assert "device 'kiosk-2' (unassigned, no role yet) needs a role" in by_line[9][0]
    assert "report interval 'abc' is not a number" in by_line[10][0]
    assert "device 'kiosk-3' is also on line 10" in by_line[11][0]
    assert "zone 'HALL-01' is also on line 2" in by_line[12][0]
    assert "new zone 'hall-05' needs a name and a kind" in by_line[14][0]
    assert "a device row has a value in 'code'" in by_line[15][0]
    assert "type 'cabinet' is not known" in by_line[16][0]
    assert len(by_line[17]) == 2 and "'2026-02-30' is not a date" in by_line[17][0]
    assert "time zone 'Mars/Base'" in by_line[17][1]
    assert all(str(e).startswith(f"{tmp_path / 'fleet.csv'} line ") for e in result.errors)

    session.expire_all()
    assert session.exec(select(Zone)).all() == []
    assert [d.id for d in session.exec(select(Device))] == ["kiosk-2"]
    assert session.exec(select(Region)).all() == []
    assert mark(session) is None


def test_import_dry_run_counts_and_writes_nothing(session, tmp_path):
    zones, devices = write(tmp_path / "zones.csv", ZONES_CSV), write(tmp_path / "devices.csv", DEVICES_CSV)
    reported_unassigned(session, "kiosk-009")
    result = admin.import_csv(session, [zones, devices], dry_run=True)
    assert result.errors == [] and result.dry_run and not result.written
    assert _counts(result) == ((2, 0, 0), (3, 1, 0), 1)
    session.expire_all()
    assert session.exec(select(Zone)).all() == [] and session.exec(select(Region)).all() == []
    assert session.get(Device, "kiosk-009").zone_id is None
    assert mark(session) is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("code,name,kind,opening hrs\n", "unknown column 'opening_hrs'. A zone file's columns are: code,name"),
        ("name,kind\nHall,library\n", "has no 'code' column"),
        ("device_id,role,code\n", "unknown column 'code'. A device file's columns are: device_id,name"),
        ("code,name,code\n", "column 'code' given twice"),
        ("", "is empty"),
        ("code,name,kind\nhall-1,Hall,library,extra\n", "line 2: has 4 cells but the header has 3 columns"),
    ],
)
def test_import_refuses_files_it_cannot_read(sqlite_session, tmp_path, text, match):
    result = admin.import_csv(sqlite_session, write(tmp_path / "x.csv", text))
    assert len(result.errors) == 1
    assert match in str(result.errors[0])


def test_import_reads_what_spreadsheets_write(sqlite_session, tmp_path):
    gbk = write(
        tmp_path / "zones-gbk.csv",
        "code,name,kind,region\r\nhall-01,政务服务大厅,政务服务大厅,杭州市/西湖区\r\n",
        "gbk",
    )
    bom = write(
        tmp_path / "devices-bom.csv",
        "device_id,role,zone\r\n# comment row,,\r\n,,\r\nk-1,kiosk,hall-01\r\n",
        "utf-8-sig",
    )
    result = admin.import_csv(sqlite_session, [gbk, bom])
    assert result.errors == []
    assert [(z.name, z.kind, z.region) for z in admin.list_zones(sqlite_session)] == [
        ("政务服务大厅", "service_hall", "杭州市/西湖区")
    ]
    assert [(d.id, d.zone) for d in admin.list_devices(sqlite_session)] == [("k-1", "hall-01")]
    missing = admin.import_csv(sqlite_session, tmp_path / "nope.csv")
    assert "nope.csv: cannot read it" in str(missing.errors[0])


def test_the_example_files_in_the_docs_import_cleanly(sqlite_session, tmp_path):
    doc = (Path(__file__).resolve().parent.parent / "docs" / "run-server.md").read_text()
    blocks = [b.split("```", 1)[0] for b in doc.split("```csv\n")[1:]]
    assert len(blocks) == 2
    files = [write(tmp_path / f"{i}.csv", text) for i, text in enumerate(blocks)]
    result = admin.import_csv(sqlite_session, files)
    assert result.errors == []
    assert _counts(result) == ((3, 0, 0), (4, 0, 0), 0)


# -- the CLI -------------------------------------------------------------------------------


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def make_config(capsys, path: Path, url: str) -> str:
    """A server config for ``url``, its database already created (so the first-use notice is out of the way)."""
    path.write_text(f'[database]\nurl = "{url}"\n')
    assert main(["zone", "list", "--config", str(path)]) == 0
    capsys.readouterr()
    return str(path)


@pytest.fixture
def config(capsys, tmp_path, database_url) -> str:
    return make_config(capsys, tmp_path / "server.toml", database_url)


def test_cli_zones_and_devices(capsys, config, tmp_path):
    c = ("--config", config)
    code, out, err = run_cli(
        capsys,
        "zone",
        "add",
        "hall-01",
        "--name",
        "政务服务大厅",
        "--kind",
        "service_hall",
        "--region",
        "杭州市/西湖区/灵隐街道",
        "--hours",
        "mon-fri 08:30-17:30",
        "--holidays",
        "2026-10-01,2026-10-02",
        *c,
    )
    assert (code, err) == (0, "")
    assert "zone hall-01 added: 政务服务大厅 (service_hall) in 杭州市/西湖区/灵隐街道" in out
    assert "opening hours: mon-fri 08:30-17:30 (Asia/Shanghai)" in out
    assert run_cli(capsys, "zone", "add", "lib-01", "--name", "Library", "--kind", "library", *c)[0] == 0

    code, out, _ = run_cli(capsys, "zone", "list", *c)
    assert out.splitlines()[0].split() == ["CODE", "NAME", "KIND", "REGION", "DEVICES", "OPENING", "HOURS", "HOLIDAYS"]
    assert out.splitlines()[1].split()[:5] == ["hall-01", "政务服务大厅", "service_hall", "杭州市/西湖区/灵隐街道", "0"]
    code, out, _ = run_cli(capsys, "zone", "list", "--json", *c)
    assert [z["code"] for z in json.loads(out)] == ["hall-01", "lib-01"]
    assert json.loads(out)[0]["holidays"] == ["2026-10-01", "2026-10-02"]

    code, out, _ = run_cli(
        capsys,
        "device",
        "add",
        "kiosk-1",
        "--zone",
        "hall-01",
        "--role",
        "kiosk",
        "--name",
        "Door",
        "--interval",
        "30",
        *c,
    )
    assert (code, out.strip()) == (0, "device kiosk-1 (Door) registered in zone hall-01 as kiosk")
    code, out, _ = run_cli(capsys, "device", "move", "kiosk-1", "--zone", "lib-01", *c)
    assert (code, out.strip()) == (0, "device kiosk-1 moved from zone hall-01 to zone lib-01")
    code, out, _ = run_cli(capsys, "device", "move", "kiosk-1", "--zone", "lib-01", *c)
    assert out.strip() == "device kiosk-1 is already in zone lib-01; nothing changed"
    code, out, _ = run_cli(capsys, "device", "move", "kiosk-1", "--unassign", *c)
    assert out.strip() == "device kiosk-1 moved from zone lib-01 to unassigned"
    code, out, _ = run_cli(capsys, "device", "list", *c)
    assert out.splitlines()[1].split()[:5] == ["kiosk-1", "Door", "kiosk", "(unassigned)", "30"]
    assert "1 unassigned: place each with: zonewatch device add" in out
    code, out, _ = run_cli(capsys, "device", "list", "--unassigned", "--json", *c)
    assert [(d["id"], d["zone"]) for d in json.loads(out)] == [("kiosk-1", None)]
    code, out, _ = run_cli(capsys, "device", "list", "--zone", "hall-01", *c)
    assert out.strip() == "No devices in zone hall-01."


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["zone", "add", "hall-01", "--name", "Hall", "--kind", "museum"],
            "zonewatch: zone kind 'museum' is not known. Use one of: service_hall, convenience_centre, archive, "
            "library",
        ),
        (
            ["zone", "add", "hall-01", "--name", "Hall", "--kind", "library", "--hours", "mon-fri 9-5"],
            "zonewatch: opening hours part 'mon-fri 9-5': '9-5' is not a time range. Write it as HH:MM-HH:MM, like "
            "08:30-12:00",
        ),
        (
            ["device", "add", "k-1", "--zone", "hall-9", "--role", "kiosk"],
            "zonewatch: zone 'hall-9' does not exist. List zones with: zonewatch zone list",
        ),
        (
            ["device", "move", "k-9", "--unassign"],
            "zonewatch: device 'k-9' is not registered. Register it with: zonewatch device add k-9 --zone CODE "
            "--role ROLE",
        ),
        (
            ["device", "list", "--zone", "nope"],
            "zonewatch: zone 'nope' does not exist. List zones with: zonewatch zone list",
        ),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_1(capsys, tmp_path, argv, expected):
    config = make_config(capsys, tmp_path / "server.toml", f"sqlite:///{tmp_path / 'fleet.db'}")
    code, _, err = run_cli(capsys, *argv, "--config", config)
    assert code == 1
    assert err.splitlines() == [expected]


def test_cli_config_errors_exit_78(capsys, tmp_path):
    code, _, err = run_cli(capsys, "zone", "list", "--config", str(tmp_path / "missing.toml"))
    assert code == 78
    assert err.startswith("zonewatch: ") and "missing.toml: file not found" in err and len(err.splitlines()) == 1
    bad = tmp_path / "bad.toml"
    bad.write_text('[database]\nurl = "mysql://db/x"\n')
    code, _, err = run_cli(capsys, "device", "list", "--config", str(bad))
    assert code == 78
    assert "bad.toml: database.url: use sqlite:///" in err and "Fix the file" in err
    bad.write_text("[database\n")
    code, _, err = run_cli(capsys, "zone", "list", "--config", str(bad))
    assert code == 78 and "not valid TOML" in err


def test_cli_unreachable_database_exit_69(capsys, tmp_path):
    from tests.peers._util import free_port

    config = tmp_path / "pg.toml"
    config.write_text(f'[database]\nurl = "postgresql+psycopg://zw@127.0.0.1:{free_port()}/fleet"\n')
    code, _, err = run_cli(capsys, "zone", "list", "--config", str(config))
    assert code == 69
    assert err.startswith("zonewatch: cannot use the database (") and "Check database.url" in err


def test_cli_default_config_says_where_the_database_is(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "zone", "list")
    db = (tmp_path / "zonewatch-data" / "zonewatch.db").resolve()
    assert code == 0 and db.exists()
    assert err.strip() == (
        f"zonewatch: new database at {db} (embedded defaults; give --config FILE to use your server's database)"
    )
    assert out.strip().startswith("No zones yet. Add one with: zonewatch zone add")
    code, out, err = run_cli(capsys, "zone", "list")
    assert (code, err) == (0, "")  # said once, on first use


def test_cli_import(capsys, config, tmp_path):
    zones, devices = write(tmp_path / "zones.csv", ZONES_CSV), write(tmp_path / "devices.csv", DEVICES_CSV)
    code, out, err = run_cli(capsys, "import", str(zones), str(devices), "--dry-run", "--config", config)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "dry run: nothing was written. The import would change:",
        "  zones:   2 created, 0 updated, 0 unchanged",
        "  devices: 4 created, 0 updated, 0 unchanged",
    ]
    assert json.loads(run_cli(capsys, "zone", "list", "--json", "--config", config)[1]) == []

    code, out, _ = run_cli(capsys, "import", str(zones), str(devices), "--config", config)
    assert code == 0 and "devices: 4 created" in out
    code, out, _ = run_cli(capsys, "import", str(zones), str(devices), "--config", config)
    assert out.splitlines() == [
        "  zones:   0 created, 0 updated, 2 unchanged",
        "  devices: 0 created, 0 updated, 4 unchanged",
    ]

    bad = write(tmp_path / "bad.csv", BAD_CSV)
    code, out, err = run_cli(capsys, "import", str(bad), "--config", config)
    assert code == 1 and out == ""
    first, *rows = err.splitlines()
    assert first == f"zonewatch: 13 errors in {bad}; nothing was written. Fix the rows below and import again:"
    assert (
        rows[0] == f"  {bad} line 4: zone kind 'museum' is not known. Use one of: service_hall, "
        "convenience_centre, archive, library"
    )
    assert all(row.startswith(f"  {bad} line ") for row in rows) and len(rows) == 13
    assert len(json.loads(run_cli(capsys, "device", "list", "--json", "--config", config)[1])) == 4


@pytest.mark.parametrize("command", [["zone"], ["provision", "token"]])
def test_cli_keeps_the_other_commands(capsys, command):
    """A command group without its action says which actions there are (user, provision: their own tests)."""
    with pytest.raises(SystemExit) as exc:
        main(command)
    assert exc.value.code == 2
    assert "ACTION" in capsys.readouterr().err


# -- with the running server ---------------------------------------------------------------


@pytest.mark.peer
@pytest.mark.timeout(120)
def test_the_running_server_picks_up_what_the_cli_changes(capsys, tmp_path, mosquitto, database_url, engine):
    """A kiosk reports before it is registered (unassigned); the admin places it with the CLI; the
    running server sees the placement mark move and the zone meets the rule — no restart."""
    from tests.server_process import Fleetpub, ServerProcess, report, wait_until

    config = make_config(capsys, tmp_path / "admin.toml", database_url)
    assert main(["zone", "add", "hall-1", "--name", "Hall 1", "--kind", "service_hall", "--config", config]) == 0
    server = ServerProcess(tmp_path / "server", mosquitto.port, database_url).start()
    pub = Fleetpub(mosquitto.port)
    try:
        pub.send(report("stray-kiosk", 1))

        def stored(device_id: str):
            with Session(engine) as s:
                return s.get(Device, device_id)

        assert wait_until(lambda: stored("stray-kiosk"), what="the unassigned kiosk stored").zone_id is None
        code, out, _ = run_cli(capsys, "device", "add", "stray-kiosk", "--zone", "hall-1", "--role", "kiosk",
                               "--config", config)  # fmt: skip
        assert code == 0 and "(was unassigned, reporting since" in out
        pub.send(report("stray-kiosk", 2))

        def zone_status():
            with Session(engine) as s:
                return s.exec(select(Zone).where(Zone.code == "hall-1")).one().status

        wait_until(lambda: zone_status() == "meets", timeout=20, what="hall-1 meets the rule")
        assert run_cli(capsys, "device", "move", "stray-kiosk", "--unassign", "--config", config)[0] == 0
        wait_until(lambda: zone_status() != "meets", timeout=20, what="hall-1 no longer meets the rule")
    finally:
        pub.close()
        server.stop()


@pytest.mark.parametrize(
    "argv", [["zone", "add"], ["zone", "list"], ["device", "add"], ["device", "move"], ["device", "list"], ["import"]]
)
def test_cli_help(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: zonewatch {' '.join(argv)}") and "--config FILE" in out
