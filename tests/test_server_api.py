"""The read-side JSON API (``/api/v1``) of the real server process, against a real mosquitto.

A small fleet is set up in the database (regions, two zones, their kiosks), then driven by
protocol reports published over MQTT: zone hall-1 goes meets → degraded → breach. What the API
answers is checked against that story; bad input must get 400/404 with a JSON error naming the
parameter; the OpenAPI document must list exactly the app's routes and be valid; schemathesis
fuzzes every route against it (no 5xx, responses match their schemas).
"""

from __future__ import annotations

import time
import urllib.parse
from datetime import UTC, datetime

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR
from sqlmodel import Session

from server.api.params import parse_time
from server.api.routes import ENDPOINTS
from server.db import make_engine, upgrade
from server.db.models import Device, Zone
from tests.http_client import without_expect
from tests.server_process import Fleetpub, ServerProcess, report, springfield, wait_until

pytestmark = pytest.mark.timeout(240)
T0 = round(time.time()) - 3600.0  # the story is measured an hour ago, one report every 10 s


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def parse(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def seed_fleet(database_url: str) -> None:
    """City → district North → township Elm; hall-1 (in Elm) with kiosk-1 (+printer) and kiosk-2; lib-1 in North."""
    engine = make_engine(database_url)
    upgrade(engine)
    with Session(engine) as s:
        regions = springfield(s)
        north, elm = regions["north"], regions["elm"]
        hall = Zone(code="hall-1", name="Service hall 1", kind="service_hall", region_id=elm.id,
                    opening_hours={"mon": ["08:30-12:00", "13:30-17:30"]}, holidays=["2026-10-01"])
        lib = Zone(code="lib-1", name="North library", kind="library", region_id=north.id)
        s.add_all([hall, lib])
        s.commit()
        s.add_all([Device(id="kiosk-1", name="Kiosk 1", role="kiosk", zone_id=hall.id),
                   Device(id="kiosk-2", name="Kiosk 2", role="kiosk", zone_id=hall.id),
                   Device(id="lib-kiosk", name="Library kiosk", role="kiosk", zone_id=lib.id)])
        s.commit()
    engine.dispose()


def drive_to_breach(server: ServerProcess, pub: Fleetpub) -> None:
    """hall-1: meets (T0) → degraded, toner low (T0+10) → breach, out of paper (T0+20)."""
    pub.send(report("kiosk-1", 1, T0))
    pub.send(report("kiosk-2", 1, T0, printer_name=None))
    pub.send(report("lib-kiosk", 1, T0, printer_name="Lib-Printer"))
    pub.send(report("stray-1", 1, T0))
    wait_until(lambda: zone_status(server) == "meets", what="hall-1 meets the rule")
    pub.send(report("kiosk-1", 2, T0 + 10, condition="toner-low", printer="warning"))
    wait_until(lambda: zone_status(server) == "degraded", what="hall-1 degraded")
    pub.send(report("kiosk-1", 3, T0 + 20, condition="media-empty", printer="critical"))
    wait_until(lambda: zone_status(server) == "breach", what="hall-1 in breach")
    wait_until(lambda: server.get("/api/v1/zones/lib-1")[1].get("status") == "meets", what="lib-1 meets")


def zone_status(server: ServerProcess, code: str = "hall-1") -> str | None:
    status, body = server.get(f"/api/v1/zones/{code}")
    return body.get("status") if status == 200 else None


def get(server: ServerProcess, path: str, **params) -> dict:
    url = path + ("?" + urllib.parse.urlencode(params) if params else "")
    status, body = server.get(url)
    assert status == 200, (url, status, body)
    return body


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, mosquitto):
    """The server on SQLite, with hall-1 driven into breach; shared by the read-only tests below."""
    tmp = tmp_path_factory.mktemp("api")
    url = f"sqlite:///{tmp / 'fleet.db'}"
    seed_fleet(url)
    server = ServerProcess(tmp / "server", mosquitto.port, url)
    server.start()
    pub = Fleetpub(mosquitto.port)
    try:
        drive_to_breach(server, pub)
        yield server
    finally:
        pub.close()
        server.stop()


# -- content -----------------------------------------------------------------------------------


def test_zone_in_breach_shows_its_reasons_devices_and_printers(fleet):
    zone = get(fleet, "/api/v1/zones/hall-1")
    assert zone["status"] == "breach" and zone["since"] == iso(T0 + 20)
    assert any(r.startswith("no working printer: HP-Hall-1 out of paper since") for r in zone["reasons"]), zone
    assert [r["name"] for r in zone["region"]] == ["Springfield", "North", "Elm"]
    assert zone["opening_hours"] == {"mon": ["08:30-12:00", "13:30-17:30"]} and zone["holidays"] == ["2026-10-01"]
    assert [d["id"] for d in zone["devices"]] == ["kiosk-1", "kiosk-2"]
    kiosk1 = zone["devices"][0]
    assert kiosk1["status"] == "critical" and kiosk1["online"] is True and kiosk1["zone"]["code"] == "hall-1"
    assert kiosk1["last_report_at"] == iso(T0 + 20)
    [printer] = zone["printers"]
    assert printer["name"] == "HP-Hall-1" and printer["status"] == "critical" and printer["device_id"] == "kiosk-1"
    assert [(c["code"], c["text"], c["since"]) for c in printer["conditions"]] == [
        ("media-empty", "out of paper", iso(T0 + 20))]

    listed = get(fleet, "/api/v1/zones")
    assert [(z["code"], z["status"], z["device_count"], z["printer_count"]) for z in listed["items"]] == [
        ("hall-1", "breach", 2, 1), ("lib-1", "meets", 1, 1)]
    assert get(fleet, "/api/v1/zones", status="breach")["items"][0]["code"] == "hall-1"
    assert get(fleet, "/api/v1/zones", status="degraded") == {"total": 0, "limit": 100, "offset": 0, "items": []}
    regions = {r["name"]: r["id"] for r in _walk(get(fleet, "/api/v1/regions")["regions"])}
    assert [z["code"] for z in get(fleet, "/api/v1/zones", region_id=regions["North"])["items"]] == ["hall-1",
                                                                                                     "lib-1"]
    assert [z["code"] for z in get(fleet, "/api/v1/zones", region_id=regions["Elm"])["items"]] == ["hall-1"]
    assert get(fleet, "/api/v1/zones", region_id=regions["South"])["total"] == 0
    page = get(fleet, "/api/v1/zones", limit=1, offset=1)
    assert page["total"] == 2 and [z["code"] for z in page["items"]] == ["lib-1"]


def _walk(nodes):
    for node in nodes:
        yield node
        yield from _walk(node["children"])


def test_summary_and_region_roll_up(fleet):
    summary = get(fleet, "/api/v1/summary")
    assert summary["zones"] == {"total": 2, "by_status": {"meets": 1, "degraded": 0, "breach": 1, "unknown": 0}}
    assert summary["devices"]["total"] == 4 and summary["devices"]["unassigned"] == 1
    assert summary["devices"]["by_status"] == {"ok": 3, "warning": 0, "critical": 1, "offline": 0, "unknown": 0}
    assert summary["printers"] == {"total": 3, "by_status": {"ok": 2, "warning": 0, "critical": 1, "unknown": 0}}
    ingest = summary["ingest"]
    assert ingest["stored"] == 6 and ingest["received"] >= 6 and ingest["duplicates"] == 0
    assert ingest["refused_total"] == 0 and ingest["broker_connected"] is True
    assert parse(ingest["last_commit_at"]) <= parse(summary["generated_at"])

    tree = get(fleet, "/api/v1/regions")
    [city] = tree["regions"]
    assert (city["name"], city["level"], city["worst_status"]) == ("Springfield", "city", "breach")
    assert city["zones"]["by_status"]["breach"] == 1 and city["zones"]["by_status"]["meets"] == 1
    north, south = city["children"]
    assert (north["name"], north["zones"]["total"], north["worst_status"]) == ("North", 2, "breach")
    assert (south["name"], south["zones"]["total"], south["worst_status"], south["children"]) == (
        "South", 0, None, [])
    [elm] = north["children"]
    assert (elm["name"], elm["level"], elm["zones"]["total"], elm["worst_status"]) == ("Elm", "township", 1, "breach")
    assert tree["unplaced_zones"]["total"] == 0


def test_devices_with_latest_checks_and_printers(fleet):
    devices = get(fleet, "/api/v1/devices")
    assert [d["id"] for d in devices["items"]] == ["kiosk-1", "kiosk-2", "lib-kiosk", "stray-1"]
    assert [d["id"] for d in get(fleet, "/api/v1/devices", unassigned="true")["items"]] == ["stray-1"]
    assert get(fleet, "/api/v1/devices", unassigned="false")["total"] == 3
    assert [d["id"] for d in get(fleet, "/api/v1/devices", zone="hall-1")["items"]] == ["kiosk-1", "kiosk-2"]
    assert [d["id"] for d in get(fleet, "/api/v1/devices", status="critical")["items"]] == ["kiosk-1"]
    assert get(fleet, "/api/v1/devices", limit=2, offset=2)["items"][0]["id"] == "lib-kiosk"

    d = get(fleet, "/api/v1/devices/kiosk-1")
    assert (d["status"], d["measured"], d["last_seq"], d["zone"]) == ("critical", "critical", 3,
                                                                      {"code": "hall-1", "name": "Service hall 1"})
    assert "printer:HP-Hall-1" in d["reason"]
    latest = d["latest_report"]
    assert (latest["seq"], latest["measured_at"], latest["status"]) == (3, iso(T0 + 20), "critical")
    checks = {c["name"]: c for c in latest["checks"]}
    assert set(checks) == {"portal", "kiosk", "system", "printer:HP-Hall-1"}
    printer_check = checks["printer:HP-Hall-1"]
    assert printer_check["kind"] == "printer" and printer_check["state"] == "stopped"
    assert printer_check["conditions"][0]["code"] == "media-empty"
    assert checks["portal"]["latency_ms"] == 12.0 and checks["system"]["uptime_s"] == 1003.0
    states = {c["name"]: (c["status"], c["since"]) for c in d["check_states"]}
    assert states["printer:HP-Hall-1"] == ("critical", iso(T0 + 20)) and states["portal"] == ("ok", iso(T0))
    assert [p["name"] for p in d["printers"]] == ["HP-Hall-1"]
    stray = get(fleet, "/api/v1/devices/stray-1")
    assert stray["zone"] is None and stray["role"] == "unknown" and stray["status"] == "ok"


def test_printers_with_conditions_and_filters(fleet):
    printers = get(fleet, "/api/v1/printers")
    assert [(p["name"], p["device_id"], p["status"]) for p in printers["items"]] == [
        ("HP-Hall-1", "kiosk-1", "critical"), ("Lib-Printer", "lib-kiosk", "ok"), ("HP-Hall-1", "stray-1", "ok")]
    out = get(fleet, "/api/v1/printers", condition="media-empty")["items"]
    assert [(p["device_id"], p["zone"]["code"], p["conditions"][0]["text"]) for p in out] == [
        ("kiosk-1", "hall-1", "out of paper")]
    assert get(fleet, "/api/v1/printers", condition="toner-low")["total"] == 0  # it cleared at T0+20
    assert [p["device_id"] for p in get(fleet, "/api/v1/printers", zone="lib-1")["items"]] == ["lib-kiosk"]
    assert [p["device_id"] for p in get(fleet, "/api/v1/printers", status="ok")["items"]] == ["lib-kiosk", "stray-1"]
    assert get(fleet, "/api/v1/printers", limit=1, offset=2)["items"][0]["device_id"] == "stray-1"


# -- history -----------------------------------------------------------------------------------


def test_zone_history_holds_each_transition_with_its_time(fleet):
    zone_rows = get(fleet, "/api/v1/zones/hall-1/history", subject="zone")["items"]
    assert [(r["from"], r["to"]) for r in zone_rows] == [("unknown", "meets"), ("meets", "degraded"),
                                                         ("degraded", "breach")]
    assert [r["at"] for r in zone_rows][1:] == [iso(T0 + 10), iso(T0 + 20)]
    assert all(r["zone"] == "hall-1" and r["subject_id"] == "hall-1" for r in zone_rows)
    assert "out of paper" in zone_rows[-1]["why"]
    everything = get(fleet, "/api/v1/zones/hall-1/history", limit=1000)["items"]
    assert {r["subject"] for r in everything} == {"zone", "device", "presence", "check", "printer"}
    assert {r["device_id"] for r in everything} == {None, "kiosk-1", "kiosk-2"}  # not lib-kiosk, not stray-1
    assert [(r["at"], r["id"]) for r in everything] == sorted((r["at"], r["id"]) for r in everything)
    printer = [(r["from"], r["to"], r["at"]) for r in everything if r["subject"] == "printer"]
    assert printer == [("unknown", "ok", iso(T0)), ("ok", "warning", iso(T0 + 10)),
                       ("warning", "critical", iso(T0 + 20))]

    device_rows = get(fleet, "/api/v1/devices/kiosk-1/history", subject="device")["items"]
    assert [(r["from"], r["to"], r["at"]) for r in device_rows] == [
        ("unknown", "ok", iso(T0)), ("ok", "warning", iso(T0 + 10)), ("warning", "critical", iso(T0 + 20))]
    assert {r["device_id"] for r in get(fleet, "/api/v1/devices/kiosk-1/history")["items"]} == {"kiosk-1"}


def test_history_pages_by_cursor_and_offset_and_time_range(fleet):
    path = "/api/v1/devices/kiosk-1/history"
    everything = get(fleet, path, limit=1000)
    rows = everything["items"]
    assert len(rows) >= 10 and everything["next_cursor"] is None and everything["next_offset"] is None

    by_cursor, params = [], {"limit": 3}
    while True:
        page = get(fleet, path, **params)
        assert len(page["items"]) <= 3
        if "cursor" in params:
            assert page["next_offset"] is None
        by_cursor += page["items"]
        if page["next_cursor"] is None:
            break
        params = {"limit": 3, "cursor": page["next_cursor"]}
    assert by_cursor == rows

    by_offset, offset = [], 0
    while offset is not None:
        page = get(fleet, path, limit=4, offset=offset)
        by_offset += page["items"]
        offset = page["next_offset"]
    assert by_offset == rows

    later = [r for r in rows if parse(r["at"]) >= T0 + 10]
    assert get(fleet, path, since=iso(T0 + 10), limit=1000)["items"] == later
    assert get(fleet, path, since=str(T0 + 10), limit=1000)["items"] == later  # epoch seconds work too
    naive = datetime.fromtimestamp(T0 + 10, UTC).replace(tzinfo=None).isoformat()
    assert get(fleet, path, since=naive, limit=1000)["items"] == later  # no offset means UTC
    middle = get(fleet, path, since=f"{T0 + 10:.0f}", until=iso(T0 + 20), limit=1000)["items"]
    assert middle and all(r["at"] == iso(T0 + 10) for r in middle)  # until is exclusive
    assert get(fleet, path, until=str(T0 - 1))["items"] == []
    presence = get(fleet, path, subject="presence", since=iso(T0 - 1))["items"]
    assert [(r["from"], r["to"]) for r in presence] == [("unknown", "online")]
    # a cursor page with a time filter continues inside the filter
    first = get(fleet, path, since=iso(T0 + 10), limit=2)
    rest = get(fleet, path, since=iso(T0 + 10), limit=1000, cursor=first["next_cursor"])["items"]
    assert first["items"] + rest == later


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "parameter", "says"), [
    ("/api/v1/zones?limit=0", "limit", "an integer from 1 to 1000"),
    ("/api/v1/zones?limit=1001", "limit", "an integer from 1 to 1000"),
    ("/api/v1/zones?limit=ten", "limit", "an integer from 1 to 1000"),
    ("/api/v1/zones?limit=", "limit", "an integer from 1 to 1000"),
    ("/api/v1/zones?limit=1&limit=2", "limit", "given 2 times"),
    ("/api/v1/zones?offset=-1", "offset", "an integer from 0"),
    ("/api/v1/zones?offset=99999999999999999999999", "offset", "an integer from 0"),
    ("/api/v1/zones?status=broken", "status", "one of meets, degraded, breach, unknown"),
    ("/api/v1/zones?region_id=x", "region_id", "an integer"),
    ("/api/v1/zones?limt=5", "limt", "unknown query parameter 'limt'"),
    ("/api/v1/summary?verbose=1", "verbose", "takes no parameters"),
    ("/api/v1/devices?status=meets", "status", "one of ok, warning, critical, offline, unknown"),
    ("/api/v1/devices?unassigned=maybe", "unassigned", "true or false"),
    ("/api/v1/devices?unassigned=true&zone=hall-1", "unassigned", "cannot be combined with zone"),
    ("/api/v1/devices?zone=" + "z" * 65, "zone", "text of 1 to 64 characters"),
    ("/api/v1/devices?zone=%00", "zone", "without control characters"),
    ("/api/v1/printers?condition=", "condition", "text of 1 to 64 characters"),
    ("/api/v1/devices/kiosk-1/history?since=yesterday", "since", "ISO 8601"),
    ("/api/v1/devices/kiosk-1/history?since=nan", "since", "ISO 8601"),
    ("/api/v1/devices/kiosk-1/history?until=-Infinity", "until", "ISO 8601"),
    ("/api/v1/devices/kiosk-1/history?since=2026-02-30T00:00:00Z", "since", "ISO 8601"),
    ("/api/v1/devices/kiosk-1/history?since=2026-01-02&until=2026-01-01", "until", "is before since"),
    ("/api/v1/devices/kiosk-1/history?subject=kiosk", "subject", "one of check, printer, device, presence, zone"),
    ("/api/v1/devices/kiosk-1/history?cursor=bm9wZQ", "cursor", "not one this server gave out"),
    ("/api/v1/devices/kiosk-1/history?cursor=WzEsMl0&offset=3", "offset", "either cursor or offset"),
    ("/api/v1/zones/hall-1/history?limit=5000", "limit", "an integer from 1 to 1000"),
])
def test_bad_parameters_get_400_naming_the_parameter(fleet, path, parameter, says):
    status, body = fleet.get(path)
    assert status == 400, body
    assert body["parameter"] == parameter and says in body["error"] + " " + body.get("allowed", ""), body


@pytest.mark.parametrize(("path", "says"), [
    ("/api/v1/zones/hall-9", "no zone with code 'hall-9'"),
    ("/api/v1/zones/hall-9/history", "no zone with code 'hall-9'"),
    ("/api/v1/zones/%E2%98%83", "no zone with code"),
    ("/api/v1/devices/kiosk-9", "no device 'kiosk-9'"),
    ("/api/v1/devices/kiosk-9/history?limit=5", "no device 'kiosk-9'"),
    ("/api/v1/devices/" + "k" * 300, "no device"),
    ("/api/v1/devices/%00", "no device"),
    ("/api/v1/devices?zone=hall-9", "no zone with code 'hall-9'"),
    ("/api/v1/printers?zone=hall-9", "no zone with code 'hall-9'"),
    ("/api/v1/zones?region_id=2147483647", "no region with id 2147483647"),
])
def test_unknown_things_get_404_saying_where_to_look(fleet, path, says):
    status, body = fleet.get(path)
    assert status == 404 and says in body["error"] and "/api/v1/" in body["error"], body


# -- the OpenAPI document ----------------------------------------------------------------------


def test_openapi_lists_exactly_the_apps_routes_and_is_valid(fleet, tmp_path):
    from server.app import create_app
    from server.settings import load_settings

    settings = load_settings(None, {"ZONEWATCH_SERVER_DATA_DIR": str(tmp_path)})
    app = create_app(settings, with_broker=False)  # not started: only its router is looked at
    routes = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/api/v1/")}
    doc = get(fleet, "/api/v1/openapi.json")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == routes
    assert {p for _, p in routes} >= {"/api/v1/summary", "/api/v1/regions", "/api/v1/zones", "/api/v1/zones/{code}",
                                      "/api/v1/zones/{code}/history", "/api/v1/devices", "/api/v1/devices/{device_id}",
                                      "/api/v1/devices/{device_id}/history", "/api/v1/printers",
                                      "/api/v1/openapi.json"}

    OPENAPI_31_VALIDATOR.validate(doc)  # the OpenAPI 3.1 meta-schema (as published by the OAI)
    try:
        from openapi_spec_validator import validate
    except ImportError:
        pass
    else:
        validate(doc)
    schemas = doc["components"]["schemas"]
    refs = set(_refs(doc))
    assert refs and all(ref.removeprefix("#/components/schemas/") in schemas for ref in refs), refs - set(schemas)
    for path, ops in doc["paths"].items():
        for op in ops.values():
            template = {n.strip("{}") for n in path.split("/") if n.startswith("{")}
            assert {p["name"] for p in op.get("parameters", []) if p["in"] == "path"} == template, path
            assert {"200", "201"} & set(op["responses"]) and "400" in op["responses"], path
            names_a_thing = bool(template or {"zone", "region_id"} & _query_names(op))
            # a 404 only where the path, a zone/region filter or the request body names something
            has_404 = "404" in op["responses"]
            assert has_404 == names_a_thing or (has_404 and "requestBody" in op), path
    zone_params = {p["name"] for p in doc["paths"]["/api/v1/zones"]["get"]["parameters"]}
    assert zone_params == {"status", "region_id", "limit", "offset"}
    history = {p["name"]: p for p in doc["paths"]["/api/v1/devices/{device_id}/history"]["get"]["parameters"]}
    assert set(history) == {"device_id", "since", "until", "subject", "limit", "cursor", "offset"}
    assert history["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    assert "from" in schemas["HistoryEntry"]["properties"] and "from_" not in schemas["HistoryEntry"]["properties"]


def _query_names(op) -> set[str]:
    return {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


@pytest.fixture(scope="module")
def api_schema(fleet):
    return schemathesis.openapi.from_url(fleet.url + "/api/v1/openapi.json")


# schemathesis' own pytest integration (from_fixture) fails under pytest 9 (it sets Node._nodeid, which is
# gone), so each operation's strategy is run through hypothesis here, once with valid and once with invalid data.
# Invalid data (NEGATIVE) only where a route has parameters to make invalid.
@pytest.mark.parametrize(("path", "mode"), [
    pytest.param(e.url, mode, id=f"{e.url}-{mode.value}") for e in ENDPOINTS if e.method == "GET"
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or e.query or e.path_params])
def test_schemathesis_finds_no_server_error_and_no_schema_violation(fleet, api_schema, path, mode):
    operation = api_schema[path]["GET"]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def call(case):
        excluded = [positive_data_acceptance] if _crosses_rule(case) else []
        response = without_expect(case).call_and_validate(headers=fleet.headers, excluded_checks=excluded)
        if _crosses_rule(case) and mode is GenerationMode.POSITIVE:
            assert response.status_code == 400, response.text

    call()


def _crosses_rule(case) -> bool:
    """Valid parameters, one by one, in a combination the API refuses (400) by a rule JSON Schema cannot say."""
    q = case.query or {}
    if str(q.get("unassigned")).lower() == "true" and "zone" in q:
        return True
    if "cursor" in q:
        return True  # only cursors the server gave out are valid; and never together with offset
    if "since" in q and "until" in q:
        try:
            return parse_time(q["until"]) < parse_time(q["since"])
        except ValueError:
            return False
    return False


# -- PostgreSQL --------------------------------------------------------------------------------


def test_breach_through_the_api_on_postgresql(tmp_path, mosquitto, postgres_url):
    seed_fleet(postgres_url)
    server = ServerProcess(tmp_path / "server", mosquitto.port, postgres_url)
    server.start()
    pub = Fleetpub(mosquitto.port)
    try:
        drive_to_breach(server, pub)
        zone = get(server, "/api/v1/zones/hall-1")
        assert any(r.startswith("no working printer: HP-Hall-1 out of paper") for r in zone["reasons"])
        rows = get(server, "/api/v1/zones/hall-1/history", subject="zone", since=str(T0 + 5))["items"]
        assert [(r["from"], r["to"], r["at"]) for r in rows] == [("meets", "degraded", iso(T0 + 10)),
                                                                 ("degraded", "breach", iso(T0 + 20))]
        assert [p["device_id"] for p in get(server, "/api/v1/printers", condition="media-empty")["items"]] == [
            "kiosk-1"]
        assert get(server, "/api/v1/summary")["zones"]["by_status"]["breach"] == 1
        assert get(server, "/api/v1/regions")["regions"][0]["worst_status"] == "breach"
        first = get(server, "/api/v1/devices/kiosk-1/history", limit=2)
        rest = get(server, "/api/v1/devices/kiosk-1/history", limit=1000, cursor=first["next_cursor"])
        assert first["items"] + rest["items"] == get(server, "/api/v1/devices/kiosk-1/history", limit=1000)["items"]
        assert get(server, "/api/v1/devices/kiosk-1")["latest_report"]["seq"] == 3
        assert server.get("/api/v1/devices?zone=%00")[0] == 400
        assert server.get("/api/v1/zones/%00")[0] == 404
    finally:
        pub.close()
        server.stop()
