"""The pages in Debian's Chromium against real peers: a zone goes into breach live, without a reload, when its
only printer runs out of paper in the private cupsd; oncall follows it to the zone, the device and the incident
and acknowledges it with the button; a viewer sees no button. Screenshots of every step are saved as artifacts
(tests/peers/browser.py: ``$ZW_TEST_ARTIFACTS`` or ``test-artifacts/``), at 1366×768, on a phone, and in Chinese.

Everything is real: the server (tests/server_process.py) with a private mosquitto, the agent
(tests/agent_process.py) watching one queue of the private cupsd, users made with ``zonewatch user add``.
The zone holds the agent's device as its one kiosk and the queue as its one printer, so out of paper breaks
the rule. No durations are asserted: every wait is for something to appear, with a generous timeout.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect
from sqlmodel import Session

from server.admin import add_device, add_zone
from server.cli import main
from server.db import make_engine, upgrade
from tests.agent_process import AgentProcess, Kiosk
from tests.peers.browser import LOOPBACK_HOSTS, VIEWPORT, WAIT_MS, sign_in
from tests.server_process import ServerProcess, wait_until

pytestmark = pytest.mark.timeout(300)

ZONE = "hd-disclosure-1"
ZONE_NAME = "海淀区政务服务中心 信息公开查阅区"  # Chinese, as the zones are named: the zh_CN shot shows the font
PASSWORDS = {"otto": "orange-lighthouse-42", "vera": "violet-meadow-1984"}
ROLES = {"otto": "oncall", "vera": "viewer"}
LIVE_MS = 60_000  # cupsd → agent → mosquitto → server → /events → page: generous, nothing is timed
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def fleet(tmp_path, mosquitto_factory, cupsd, cups_queue) -> Iterator[dict]:
    """A zone with one kiosk (the real agent) and one printer (a queue of the private cupsd), meeting the rule;
    the server on a private broker; an oncall and a viewer user made with the CLI."""
    mosquitto = mosquitto_factory()
    queue = cups_queue()
    engine = make_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    kiosk = Kiosk(tmp_path)
    agent = AgentProcess(tmp_path, mosquitto.port, kiosk, interval=30,
                         printer=f'cups_server = "{cupsd.server}"\nprinters = ["{queue}"]\nevery = 0.5')
    server = ServerProcess(tmp_path / "server", mosquitto.port, str(engine.url), sweep_every=0.2)
    upgrade(engine)
    with Session(engine) as session:
        add_zone(session, ZONE, ZONE_NAME, "service_hall", region="北京市 / 海淀区")
        add_device(session, agent.device_id, ZONE, "kiosk", name="Kiosk 1")
    try:
        kiosk.start()
        server.start()
        for name, role in ROLES.items():
            secret = tmp_path / f"{name}.password"
            secret.write_text(PASSWORDS[name] + "\n")
            assert main(["user", "add", name, "--role", role, "--password-file", str(secret),
                         "--config", str(server.config)]) == 0
        agent.start()
        wait_until(lambda: zone(server)["status"] == "meets", 60,
                   f"zone {ZONE} meeting the rule (agent log: {agent.log}, server log: {server.log_path})")
        yield {"server": server, "agent": agent, "queue": queue, "cupsd": cupsd}
    finally:
        agent.stop()
        kiosk.kill()
        server.stop()
        engine.dispose()


def zone(server: ServerProcess) -> dict:
    status, body = server.get(f"/api/v1/zones/{ZONE}")
    assert status == 200, body
    return body


def out_of_paper(fleet: dict) -> None:
    """The queue's printer reports it is out of paper, through a real backend run in the private cupsd."""
    fleet["cupsd"].set_condition(fleet["queue"], reasons=["media-empty-error"])


def open_incidents(server: ServerProcess) -> dict[str, dict]:
    """The zone's open incidents by rule: out of paper opens the printer's and, its only printer, the zone's."""
    status, body = server.get(f"/api/v1/incidents?zone={ZONE}&status=open")
    assert status == 200, body
    return {i["rule"]: i for i in body["items"]}


def both_open(server: ServerProcess) -> dict[str, dict]:
    def both() -> dict[str, dict] | None:
        found = open_incidents(server)
        return found if set(found) == {"zone_breach", "printer_media_empty"} else None
    return wait_until(both, 60, "the zone's and the printer's incidents")


@contextlib.contextmanager
def offline_context(chromium, **options) -> Iterator:
    """Another context (a phone, another language), held to the same rule as the ``browser_context`` fixture:
    nothing beyond this machine is asked for."""
    context = chromium.new_context(**{"viewport": VIEWPORT, "locale": "en-US", "timezone_id": "Asia/Shanghai",
                                      **options})
    context.set_default_timeout(WAIT_MS)
    foreign: list[str] = []
    context.on("request", lambda r: foreign.append(r.url) if urlsplit(r.url).scheme in ("http", "https")
               and urlsplit(r.url).hostname not in LOOPBACK_HOSTS else None)
    try:
        yield context
    finally:
        context.close()
    assert not foreign, f"the pages asked for resources beyond this machine: {foreign[:3]}"


def require_cjk_font() -> None:
    """Without a CJK font Chromium draws Chinese as boxes and the zh_CN screenshot shows nothing: fail, naming
    the Debian package (scripts/setup.sh installs it with the other peer packages)."""
    found = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=False).stdout
    if not found.strip():
        pytest.fail("no Chinese font for Chromium: install the Debian package 'fonts-noto-cjk' "
                    "(apt-get install --no-install-recommends fonts-noto-cjk, or run scripts/test.sh as root)",
                    pytrace=False)


def connected(page) -> None:
    """The page's event stream is up (the header says so)."""
    page.wait_for_selector("#live-status[data-state=connected]")


def count(page, status: str) -> int:
    return int(page.locator(f"#count-{status}").inner_text())


def test_oncall_sees_the_breach_live_follows_it_and_acknowledges_it(fleet, web_page, chromium, artifacts):
    server, agent, queue = fleet["server"], fleet["agent"], fleet["queue"]
    page = web_page
    sign_in(page, server.url, "otto", PASSWORDS["otto"])
    assert urlsplit(page.url).path == "/", page.url
    connected(page)
    row = page.locator(f"tr[data-zone-id='{ZONE}']")
    expect(row).to_have_attribute("data-status", "meets")
    assert ZONE_NAME in row.inner_text()
    breaches = count(page, "breach")
    assert breaches == 0 and count(page, "meets") == 1
    artifacts.screenshot(page, "01-fleet-meets")

    # from here on the page must not be loaded again: a marker on window survives only without a reload
    page.evaluate("window.zwNotReloaded = 'still-this-page'")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)

    out_of_paper(fleet)

    expect(row).to_have_attribute("data-status", "breach", timeout=LIVE_MS)
    expect(page.locator("#count-breach")).to_have_text(str(breaches + 1), timeout=LIVE_MS)
    expect(page.locator("#count-meets")).to_have_text("0", timeout=LIVE_MS)
    expect(row.locator(".why")).to_contain_text(queue, timeout=LIVE_MS)  # the re-read row says why
    assert page.evaluate("window.zwNotReloaded") == "still-this-page", "the page was reloaded"
    assert navigations == [], f"the page navigated: {navigations}"
    assert page.locator("tr[data-zone-id]").first.get_attribute("data-zone-id") == ZONE  # in breach first
    artifacts.screenshot(page, "02-fleet-breach-live")

    # the zone: its printer out of paper in plain words, the open incident
    row.locator("a.zone-name").click()
    page.wait_for_url(f"**/zones/{ZONE}")
    expect(page.locator("#zone-head")).to_have_attribute("data-status", "breach")
    printer = page.locator(f"[data-printer='{agent.device_id}/{queue}']")
    expect(printer).to_contain_text("out of paper")
    expect(page.locator(f"[data-device-id='{agent.device_id}']").first).to_be_visible()
    incidents = both_open(server)
    for opened in incidents.values():
        expect(page.locator(f"#zone-incidents [data-incident-id='{opened['id']}']")).to_have_attribute(
            "data-status", "open")
    artifacts.screenshot(page, "03-zone")

    # the device, from the zone's printer row
    printer.locator(f"a[href='/devices/{agent.device_id}']").click()
    page.wait_for_url(f"**/devices/{agent.device_id}")
    expect(page.locator("#device-head")).to_have_attribute("data-device-id", agent.device_id)
    on_device = page.locator(f"#device-checks [data-printer='{queue}']")
    expect(on_device).to_contain_text("out of paper")
    assert on_device.get_attribute("data-status") == "critical"
    artifacts.screenshot(page, "04-device")

    # the incidents page, the incident, the button
    page.click("header nav a[href='/incidents']")
    page.wait_for_url("**/incidents")
    for opened in incidents.values():
        expect(page.locator(f"tr[data-incident-id='{opened['id']}']")).to_have_attribute("data-status", "open")
    incident = incidents["zone_breach"]  # the zone breaks the rule: that is the one oncall takes on
    listed = page.locator(f"tr[data-incident-id='{incident['id']}']")
    expect(listed).to_contain_text(ZONE_NAME)
    artifacts.screenshot(page, "05-incidents-open")
    listed.locator(f"a[href='/incidents/{incident['id']}']").first.click()
    page.wait_for_url(f"**/incidents/{incident['id']}")
    connected(page)
    head = page.locator("#incident-head")
    expect(head).to_have_attribute("data-status", "open")
    artifacts.screenshot(page, "06-incident-open")
    with page.expect_navigation():
        page.click("[data-action=ack]")
    expect(head).to_have_attribute("data-status", "acknowledged")
    expect(head).to_contain_text("otto")
    expect(page.locator("[data-action=ack]")).to_have_count(0)  # nothing left to acknowledge
    expect(page.locator("#incident-timeline [data-kind=acknowledged]")).to_have_count(1)
    artifacts.screenshot(page, "07-incident-acknowledged")
    status, stored = server.get(f"/api/v1/incidents/{incident['id']}")
    assert status == 200 and stored["status"] == "acknowledged" and stored["acked_by"] == "otto", stored

    page.click("header nav a[href='/incidents']")
    page.wait_for_url("**/incidents")
    listed = page.locator(f"tr[data-incident-id='{incident['id']}']")
    expect(listed).to_have_attribute("data-status", "acknowledged")
    expect(listed).to_contain_text("otto")
    artifacts.screenshot(page, "08-incidents-acknowledged")

    # the same fleet page on a phone, and in Chinese (the browser asks for it; no switch pressed)
    with offline_context(chromium, viewport=PHONE, is_mobile=True, has_touch=True) as phone:
        small = phone.new_page()
        sign_in(small, server.url, "otto", PASSWORDS["otto"])
        connected(small)
        expect(small.locator(f"tr[data-zone-id='{ZONE}']")).to_have_attribute("data-status", "breach")
        width = small.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the fleet page is {width} px wide on a {PHONE['width']} px phone"
        artifacts.screenshot(small, "09-fleet-phone")
    require_cjk_font()
    with offline_context(chromium, locale="zh-CN", extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9"}) as zh:
        chinese = zh.new_page()
        sign_in(chinese, server.url, "otto", PASSWORDS["otto"])
        connected(chinese)
        assert chinese.locator("html").get_attribute("lang") == "zh-CN"
        expect(chinese.locator("h1")).to_have_text("专区运行总览")
        expect(chinese.locator("#live-status")).to_have_text("已连接")
        expect(chinese.locator(f"tr[data-zone-id='{ZONE}'] [data-role=status]")).to_have_text("不达标")
        artifacts.screenshot(chinese, "10-fleet-zh_CN")


def test_a_viewer_sees_the_incident_but_no_buttons_and_cannot_post_one(fleet, web_page, artifacts):
    server = fleet["server"]
    out_of_paper(fleet)
    incident = both_open(server)["zone_breach"]
    page = web_page
    sign_in(page, server.url, "vera", PASSWORDS["vera"], next_=f"/incidents/{incident['id']}")
    assert urlsplit(page.url).path == f"/incidents/{incident['id']}", page.url
    connected(page)
    expect(page.locator("#incident-head")).to_have_attribute("data-status", "open")
    expect(page.locator("[data-action=ack]")).to_have_count(0)
    expect(page.locator("[data-action=silence]")).to_have_count(0)
    expect(page.locator("form[action$='/ack'], form[action$='/silence']")).to_have_count(0)
    artifacts.screenshot(page, "incident-as-viewer")
    # the server refuses it anyway: the form a viewer could make by hand, with her own CSRF token
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
    answer = page.request.post(f"{server.url}/incidents/{incident['id']}/ack", form={"csrf_token": csrf},
                               max_redirects=0)
    assert answer.status == 403, answer.status
    assert open_incidents(server)["zone_breach"]["id"] == incident["id"]  # still open
