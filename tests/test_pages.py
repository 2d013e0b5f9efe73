"""The web pages of the real server process, against a real mosquitto, signed in like a browser.

A small fleet is seeded (two districts, four zones — one named ``<script>alert(1)</script>``) and driven
by protocol reports over MQTT: hall-1 goes into breach (its only printer runs out of paper), the others
meet the rule. Each page is read as a viewer and as oncall: statuses, reasons, filters, search, 404s,
400s naming the parameter, languages, escaping, role enforcement, and the live event stream.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from sqlmodel import Session, select

from server.db import make_engine, upgrade
from server.db.models import Device, MetricPoint, Silence, Zone
from tests.http_client import Browser
from tests.server_process import Fleetpub, ServerProcess, report, springfield, wait_until

pytestmark = pytest.mark.timeout(240)
PASSWORDS = {"vera": "viewer-pass-0001", "otto": "oncall-pass-0002", "ada": "admin-pass-0003"}
XSS = "<script>alert(1)</script>"
XSS_DEVICE = "<img src=x onerror=alert(1)>"


def seed(url: str) -> dict[str, int]:
    """Springfield → North (→ Elm), South; hall-1 (Elm), lib-1 (North), xss-1 and live-1 (South)."""
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine) as s:
        regions = springfield(s)
        city, north, south, elm = (regions[k] for k in ("city", "north", "south", "elm"))
        zones = [Zone(code="hall-1", name="Service hall 1", kind="service_hall", region_id=elm.id,
                      opening_hours={d: ["08:30-12:00", "13:30-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")},
                      holidays=["2026-10-01"]),
                 Zone(code="lib-1", name="North library", kind="library", region_id=north.id),
                 Zone(code="xss-1", name=XSS, kind="archive", region_id=south.id),
                 Zone(code="live-1", name="Live centre", kind="convenience_centre", region_id=south.id,
                      timezone="Asia/Urumqi")]
        s.add_all(zones)
        s.commit()
        ids = {z.code: z.id for z in zones} | {"city": city.id, "north": north.id, "south": south.id, "elm": elm.id}
        s.add_all([Device(id="kiosk-1", name="Kiosk 1", role="kiosk", zone_id=ids["hall-1"]),
                   Device(id="kiosk-2", name="Kiosk 2", role="kiosk", zone_id=ids["hall-1"]),
                   Device(id="lib-kiosk", name="Library kiosk", role="kiosk", zone_id=ids["lib-1"]),
                   Device(id="xss-kiosk", name=XSS_DEVICE, role="kiosk", zone_id=ids["xss-1"]),
                   Device(id="live-kiosk", name="Live kiosk", role="kiosk", zone_id=ids["live-1"])])
        now = time.time()
        bucket = int(now // 300 * 300)
        s.add_all([MetricPoint(device_id="kiosk-1", series="network.portal.latency_ms", resolution=300,
                               bucket=bucket - 300 * k, min=10, max=20, sum=15.0 * 2, count=2, last=15)
                   for k in range(1, 6)]
                  + [MetricPoint(device_id="kiosk-1", series="printer.HP-Hall-1.supply.Black", resolution=300,
                                 bucket=bucket - 300 * k, min=40, max=40, sum=40, count=1, last=40 + k)
                     for k in range(1, 6)])
        s.commit()
    engine.dispose()
    return ids


class Fleet:
    def __init__(self, server: ServerProcess, pub: Fleetpub, ids: dict[str, int], url: str) -> None:
        self.server, self.pub, self.ids, self.db_url = server, pub, ids, url
        self.seq: dict[str, int] = {}

    def send(self, device: str, **kw) -> None:
        self.seq[device] = self.seq.get(device, 0) + 1
        self.pub.send(report(device, self.seq[device], **kw))

    def zone_status(self, code: str) -> str | None:
        status, body = self.server.get(f"/api/v1/zones/{code}")
        return body.get("status") if status == 200 else None

    def browser(self, name: str, **headers) -> Browser:
        b = Browser(self.server.url)
        answer = b.login(name, PASSWORDS[name], headers=headers or None)
        assert answer.status == 303, answer.text
        return b


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, mosquitto) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("pages")
    url = f"sqlite:///{tmp / 'fleet.db'}"
    ids = seed(url)
    server = ServerProcess(tmp / "server", mosquitto.port, url, sweep_every=0.3)
    server.user("vera", "viewer", PASSWORDS["vera"])
    server.user("otto", "oncall", PASSWORDS["otto"])
    server.user("ada", "admin", PASSWORDS["ada"])
    server.start()
    pub = Fleetpub(mosquitto.port)
    f = Fleet(server, pub, ids, url)
    try:
        f.send("kiosk-1")
        f.send("kiosk-2", printer_name=None)
        f.send("lib-kiosk", printer_name="Lib-Printer")
        f.send("xss-kiosk", printer_name="XSS-Printer")
        f.send("live-kiosk", printer_name="Live-Printer")
        for code in ("hall-1", "lib-1", "xss-1", "live-1"):
            wait_until(lambda c=code: f.zone_status(c) == "meets", what=f"{code} meets the rule")
        f.send("kiosk-1", printer="critical", condition="media-empty")
        wait_until(lambda: f.zone_status("hall-1") == "breach", what="hall-1 in breach")
        yield f
    finally:
        pub.close()
        server.stop()


def rows(html: str) -> list[tuple[str, str]]:
    """(zone code, status) of the fleet page's zone rows, in order."""
    return re.findall(r'<tr data-zone-id="([^"]+)" data-status="([^"]+)">', html)


def count(html: str, status: str) -> int:
    return int(re.search(rf'id="count-{status}">(\d+)<', html).group(1))


# -- the fleet page ----------------------------------------------------------------------------


def test_fleet_page_shows_counts_and_the_zone_in_breach_first_with_its_reason(fleet):
    page = fleet.browser("vera").get("/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    html = page.text
    assert [count(html, s) for s in ("breach", "meets", "degraded", "unknown")] == [1, 3, 0, 0]
    assert rows(html)[0] == ("hall-1", "breach") and len(rows(html)) == 4
    at = html.index('data-zone-id="hall-1"')
    first = html[at:html.index('data-zone-id="', at + 5)]
    assert "no working printer: HP-Hall-1 out of paper since" in first and "Service hall 1" in first
    assert re.search(r"\(for \d+ s\)|\(for \d+ min\)", first), first
    assert 'id="rollup"' in html and ">North</a>" in html and ">South</a>" in html
    north = html[html.index(f'data-region-id="{fleet.ids["north"]}"'):]
    assert re.search(r'data-label="in breach">1<', north[:800]), north[:800]
    assert 'id="live-status"' in html and "Signed in as <b>vera</b> (viewer)" in html
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")


@pytest.mark.parametrize(("query", "expected"), [
    ("status=meets", ["lib-1", "xss-1", "live-1"]),
    ("status=breach", ["hall-1"]),
    ("status=degraded", []),
    ("kind=library", ["lib-1"]),
    ("q=kiosk+2", ["hall-1"]),  # a device's name finds its zone
    ("q=LIBRARY", ["lib-1"]),
    ("q=hall-", ["hall-1"]),
    ("q=100%25", []),  # LIKE wildcards are text
    ("q=_", []),
    ("township={elm}", ["hall-1"]),
    ("district={north}", ["hall-1", "lib-1"]),
    ("district={south}&status=meets", ["xss-1", "live-1"]),
    ("city={city}&kind=convenience_centre", ["live-1"]),
    ("page=2", []),
])
def test_fleet_filters_and_search(fleet, query, expected):
    html = fleet.browser("vera").get("/?" + query.format(**{k: v for k, v in fleet.ids.items()
                                                            if isinstance(k, str) and "-" not in k})).text
    assert sorted(code for code, _ in rows(html)) == sorted(expected), html[:200]


@pytest.mark.parametrize(("query", "parameter"), [
    ("status=bogus", "status"), ("kind=spaceport", "kind"), ("city=abc", "city"), ("district=-1", "district"),
    ("township=99999", "township"), ("district={city}", "district"), ("page=0", "page"), ("page=x", "page"),
    ("q=" + "x" * 101, "q"), ("q=%00", "q"), ("city=" + "9" * 30, "city"), ("page=%C2%B2", "page"),
    ("city=%C2%B2", "city"), ("page=1000001", "page"), ("kind=%E2%80%8B", "kind"),
])
def test_bad_filters_are_400_naming_the_parameter(fleet, query, parameter):
    answer = fleet.browser("vera").get("/?" + query.format(city=fleet.ids["city"]))
    assert answer.status == 400, answer.text
    assert f'data-parameter="{parameter}"' in answer.text and "Traceback" not in answer.text


# -- zone and device pages ---------------------------------------------------------------------


def test_zone_page_shows_devices_printers_hours_incidents_and_history(fleet):
    b = fleet.browser("vera")
    wait_until(lambda: fleet.server.get("/api/v1/incidents?zone=hall-1&status=active")[1].get("total"),
               what="an incident for hall-1")
    html = b.get("/zones/hall-1").text
    assert 'data-zone-id="hall-1" data-status="breach"' in html
    assert 'data-device-id="kiosk-1" data-status="critical"' in html and 'data-device-id="kiosk-2"' in html
    assert 'data-printer="kiosk-1/HP-Hall-1" data-status="critical"' in html and "out of paper" in html
    assert "Opening hours" in html and ("Open now" in html or "Closed now" in html)
    assert "08:30-12:00, 13:30-17:30" in html and "Closed on 2026-10-01" in html
    assert re.search(r'data-incident-id="\d+" data-status="open"', html)
    assert '<svg class="timeline"' in html and 'class="s-breach"' in html
    assert re.search(r"Met the rule [\d.]+&nbsp;% of its opening hours|No availability yet", html)
    assert "meets the rule → in breach" in html  # the zone's change in the history table
    assert b.get("/zones/hall-1?days=30").status == 200


def test_zone_and_device_404_and_bad_window_400(fleet):
    b = fleet.browser("vera")
    for path in ("/zones/nope", "/devices/nope", "/zones/" + quote("a" * 300), "/devices/%E2%9C%93",
                 "/incidents/999999", "/incidents/abc", "/incidents/%C2%B2", "/no/such/page"):
        answer = b.get(path)
        assert answer.status == 404 and "Not found" in answer.text, (path, answer.status)
        assert "Traceback" not in answer.text
    for path, parameter in (("/zones/hall-1?days=5", "days"), ("/devices/kiosk-1?days=30", "days"),
                            ("/incidents?status=closed", "status"), ("/incidents?severity=huge", "severity"),
                            ("/incidents?rule=nope", "rule"), ("/incidents?zone=nope", "zone"),
                            ("/incidents?page=-1", "page"), ("/incidents?page=%C2%B2", "page")):
        answer = b.get(path)
        assert answer.status == 400 and f'data-parameter="{parameter}"' in answer.text, (path, answer.text[-500:])


def test_device_page_shows_checks_latency_supplies_history_and_commands(fleet):
    html = fleet.browser("vera").get("/devices/kiosk-1").text
    assert 'data-device-id="kiosk-1" data-status="critical"' in html
    assert 'data-check="portal" data-status="ok"' in html and "12.0 ms" in html
    assert 'data-printer="HP-Hall-1" data-status="critical"' in html and "out of paper" in html
    assert "Up for" in html and "16 min" in html  # uptime 1000 + seq seconds
    assert "kiosk-ui" in html and "running" in html
    assert '<svg class="chart"' in html and html.count("<polyline") == 2  # latency and the supply level
    assert "Recent commands" in html and "No commands have been sent to this device yet." in html
    assert "History" in html and "ok → critical" in html
    history = html[html.index('id="device-history"'):]
    assert "<td>kiosk-1/HP-Hall-1</td>" in history and "<td>kiosk-1/printer:HP-Hall-1</td>" not in history  # once
    assert fleet.browser("vera").get("/devices/kiosk-1?days=7").status == 200


# -- escaping ----------------------------------------------------------------------------------


def test_a_zone_named_script_renders_as_text(fleet):
    b = fleet.browser("vera")
    for path in ("/", "/zones/xss-1", "/devices/xss-kiosk", "/?q=" + quote(XSS), "/?q=" + quote("'\"><b>x")):
        html = b.get(path).text
        assert "<script>alert(1)" not in html and "<img src=x" not in html, path
        assert "onerror=alert(1)>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in b.get("/zones/xss-1").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in b.get("/devices/xss-kiosk").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in b.get("/").text


# -- languages ---------------------------------------------------------------------------------


def test_chinese_from_accept_language_and_from_the_switch(fleet):
    b = fleet.browser("vera")
    zh = b.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert '<html lang="zh-CN">' in zh.text and "专区运行总览" in zh.text and "不达标" in zh.text
    assert re.search(r"已持续\d+(秒|分钟)", zh.text) and "已登录" in zh.text
    assert zh.headers["Content-Language"] == "zh-CN"
    en = b.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert "Fleet health" in en.text and "专区" not in en.text.split("</header>")[1]
    assert "Fleet health" in b.get("/", headers={"Accept-Language": "fr, de;q=0.5"}).text  # none we have

    switched = b.get("/zones/hall-1?lang=zh_CN")
    assert "自助查询区" in switched.text and "缺纸" in switched.text and "开放时间" in switched.text
    assert b.cookies.get("zw_lang") == "zh_CN"
    assert "专区运行总览" in b.get("/", headers={"Accept-Language": "en"}).text  # the cookie wins
    assert "Fleet health" in b.get("/?lang=en").text and b.cookies.get("zw_lang") == "en"
    assert "Fleet health" in b.get("/?lang=klingon").text  # an unknown language is ignored

    login = Browser(fleet.server.url).get("/login", headers={"Accept-Language": "zh-CN"})
    assert "用户名" in login.text and "密码" in login.text
    wrong = Browser(fleet.server.url)
    wrong.get("/login")
    answer = wrong.post("/login", form={"username": "vera", "password": "nope-nope-nope", "next": "/",
                                        "csrf_token": wrong.cookies["zw_login"]}, headers={"Accept-Language": "zh"})
    assert answer.status == 401 and "用户名或密码错误" in answer.text
    bad = b.get("/?status=bogus&lang=zh_CN")
    assert bad.status == 400 and "status（状态）必须是" in bad.text


# -- incidents and roles -----------------------------------------------------------------------


def breach_incident(fleet: Fleet) -> int:
    items = wait_until(lambda: fleet.server.get("/api/v1/incidents?zone=hall-1&rule=zone_breach")[1].get("items"),
                       what="the breach incident")
    return items[0]["id"]


def test_incidents_pages_viewer_sees_no_buttons_and_gets_403_posting(fleet):
    number = breach_incident(fleet)
    vera = fleet.browser("vera")
    listing = vera.get("/incidents").text
    assert f'data-incident-id="{number}" data-status="open"' in listing and "Service hall 1 breaks the rule" in listing
    detail = vera.get(f"/incidents/{number}").text
    assert "Timeline" in detail and "opened" in detail
    assert "/ack" not in detail and 'data-action="silence"' not in detail
    csrf = vera.get("/api/v1/me").json()["csrf_token"]
    for path in (f"/incidents/{number}/ack", f"/incidents/{number}/silence", "/incidents/999999/ack"):
        answer = vera.post(path, form={"csrf_token": csrf, "minutes": "30", "scope": "zone"})
        assert answer.status == 403 and "oncall" in answer.text, (path, answer.status)
    assert fleet.server.get(f"/api/v1/incidents/{number}")[1]["status"] == "open"
    assert vera.get("/incidents?status=resolved").status == 200 and vera.get("/incidents?status=all").status == 200


def test_oncall_acknowledges_and_silences_from_the_page(fleet):
    number = breach_incident(fleet)
    otto = fleet.browser("otto")
    page = otto.get(f"/incidents/{number}").text
    assert f'action="/incidents/{number}/ack"' in page and 'data-action="silence"' in page
    csrf = otto.get("/api/v1/me").json()["csrf_token"]
    assert otto.post(f"/incidents/{number}/ack", form={"comment": "on my way"}).status == 403  # no CSRF token
    answer = otto.post(f"/incidents/{number}/ack", form={"csrf_token": csrf, "comment": "on my way"})
    assert answer.status == 303 and answer.headers["Location"] == f"/incidents/{number}?done=acked"
    acked = fleet.server.get(f"/api/v1/incidents/{number}")[1]
    assert acked["status"] == "acknowledged" and acked["acked_by"] == "otto"
    assert any(e["kind"] == "comment" and e["detail"] == "on my way" for e in acked["timeline"])
    after = otto.get(f"/incidents/{number}?done=acked").text
    assert "Acknowledged. Escalation and reminders stop." in after and f'action="/incidents/{number}/ack"' not in after

    for form, parameter in (({"minutes": "0", "scope": "zone"}, "minutes"), ({"minutes": "x", "scope": "zone"},
                            "minutes"), ({"minutes": "²", "scope": "zone"}, "minutes"),
                            ({"minutes": "30", "scope": "planet"}, "scope")):
        bad = otto.post(f"/incidents/{number}/silence", form={"csrf_token": csrf, **form})
        assert bad.status == 400 and f'data-parameter="{parameter}"' in bad.text
    answer = otto.post(f"/incidents/{number}/silence", form={"csrf_token": csrf, "minutes": "60", "scope": "zone",
                                                             "comment": "printer repair"})
    assert answer.status == 303, answer.text
    engine = make_engine(fleet.db_url)
    try:
        with Session(engine) as s:
            silence = s.exec(select(Silence).order_by(Silence.id.desc())).first()
    finally:
        engine.dispose()
    assert (silence.zone_code, silence.created_by, silence.comment) == ("hall-1", "otto", "printer repair")
    assert 3590 <= silence.ends_at - silence.starts_at <= 3610
    assert otto.post("/incidents/999999/ack", form={"csrf_token": csrf}).status == 404


def test_the_audit_log_page_is_for_admins(fleet):
    vera, otto, ada = fleet.browser("vera"), fleet.browser("otto"), fleet.browser("ada")
    assert 'href="/audit"' not in vera.get("/").text and 'href="/audit"' not in otto.get("/").text
    assert vera.get("/audit").status == 403 and otto.get("/audit").status == 403
    page = ada.get("/audit")
    assert page.status == 200 and 'href="/audit" aria-current="page"' in page.text
    rows = re.findall(r'<tr data-audit-id="\d+">(.*?)</tr>', page.text, re.S)
    assert any("vera" in r and "<code>login</code>" in r for r in rows), "each sign-in is in the log"
    assert ada.get("/audit?page=0").status == 400 and ada.get("/audit?page=x").status == 400
    assert "审计日志" in ada.get("/audit?lang=zh_CN").text


def test_an_admin_makes_an_enrolment_token_from_the_page(fleet):
    vera, otto, ada = fleet.browser("vera"), fleet.browser("otto"), fleet.browser("ada")
    assert vera.get("/enrolment").status == 403 and otto.get("/enrolment").status == 403
    assert 'href="/enrolment"' not in otto.get("/").text
    page = ada.get("/enrolment")
    assert page.status == 200 and 'href="/enrolment" aria-current="page"' in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
    made = ada.post("/enrolment", form={"csrf_token": csrf, "zone": "hall-1", "role": "kiosk", "expires": "24h"})
    assert made.status == 200, made.text
    command = re.search(r'<code id="enrol-command">([^<]+)</code>', made.text)[1]
    token = re.search(r"--token (zwe_\S+)", command)[1]
    assert command.startswith(f"zonewatch-agent enroll --server {fleet.server.url} --token ")
    assert f'data-token-prefix="{token[:10]}"' in made.text
    # shown once: the list afterwards names the token by its prefix only
    again = ada.get("/enrolment").text
    assert token not in again and f'data-token-prefix="{token[:10]}"' in again
    audit = ada.get("/audit").text
    assert "create_enrolment_token" in audit and token not in audit
    refused = ada.post("/enrolment", form={"csrf_token": csrf, "zone": "no-such", "role": "kiosk", "expires": "24h"})
    assert refused.status == 400 and "There is no zone with the code no-such." in refused.text
    assert ada.post("/enrolment", form={"csrf_token": csrf, "zone": "hall-1", "role": "kiosk",
                                        "expires": "99y"}).status == 400
    assert ada.post("/enrolment", form={"zone": "hall-1", "role": "kiosk", "expires": "24h"}).status == 403  # CSRF
    assert otto.post("/enrolment", form={"csrf_token": csrf, "zone": "hall-1", "role": "kiosk",
                                         "expires": "24h"}).status == 403


def test_without_a_session_pages_redirect_to_login(fleet):
    anonymous = Browser(fleet.server.url)
    for path in ("/", "/zones/hall-1", "/devices/kiosk-1", "/incidents", "/events"):
        answer = anonymous.get(path)
        assert answer.status == 303 and answer.headers["Location"].startswith("/login"), path
    assert anonymous.get("/static/app.css").status == 200  # the sign-in page needs its stylesheet
    assert anonymous.post("/incidents/1/ack", form={}).status == 303


# -- live updates ------------------------------------------------------------------------------


class EventStream:
    """``/events`` read over a raw HTTP/1.0 socket (no chunking): the frames as they arrive."""

    def __init__(self, url: str, cookies: dict[str, str]) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=1)
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        self.sock.sendall(f"GET /events HTTP/1.0\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n".encode())
        self.buffer = b""

    def wait_for(self, predicate, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.buffer.decode(errors="replace")
            if predicate(text):
                return text
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            self.buffer += chunk
        raise AssertionError(f"the event stream did not deliver in {timeout} s; got:\n{self.buffer[-2000:]!r}")

    def close(self) -> None:
        self.sock.close()


def test_the_event_stream_delivers_a_zone_going_into_breach(fleet):
    vera = fleet.browser("vera")
    stream = EventStream(fleet.server.url, vera.cookies)
    try:
        head = stream.wait_for(lambda t: "event: hello" in t)
        assert head.startswith("HTTP/1.") and "text/event-stream" in head
        assert count(vera.get("/").text, "breach") == 1  # the page cache now holds the view before the change
        fleet.send("live-kiosk", printer="critical", condition="media-jam", printer_name="Live-Printer")
        zone = r'event: zone\ndata: \{[^\n]*"code":"live-1","name":"Live centre","status":"breach"'
        counts = r'event: counts\ndata: \{"meets":\d+,"degraded":\d+,"breach":2,"unknown":\d+\}'
        stream.wait_for(lambda t: re.search(zone, t) and re.search(counts, t))
        stream.wait_for(lambda t: re.search(r'event: incident\ndata: \{[^\n]*"rule":"zone_breach"', t))
        page = vera.get("/").text
        assert count(page, "breach") == 2 and [c for c, s in rows(page)[:2]] == ["hall-1", "live-1"]
        live = vera.get("/zones/live-1").text
        assert "paper jam" in live and 'data-status="breach"' in live
    finally:
        stream.close()
        fleet.send("live-kiosk", printer_name="Live-Printer")
