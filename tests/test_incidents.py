"""Incidents end to end: real server, real mosquitto, a local webhook receiver and a local SMTP server.

Agents are stood in for by protocol reports over MQTT (tests/server_process.py); timers are
shortened in the server's config. What is asserted is what the receivers got and what is stored.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
from sqlmodel import Session, select

from server.db import make_engine, upgrade
from server.db.models import Device, Incident, IncidentEvent, Silence, Zone
from server.ingest.store import set_mark
from server.service import PLACEMENT_MARK
from tests.server_process import Fleetpub, ServerProcess, report, wait_until

pytestmark = pytest.mark.timeout(180)


def alerts_config(webhook, smtp=None, **alerts) -> str:
    options = {"resolve_hold": 0.5, "escalate_after": 3600, "renotify_every": 0, "retry_first": 0.2,
               "flap_window": 60, "flap_threshold": 3, **alerts}
    escalation = options.pop("escalation", [])
    after_hours = options.pop("after_hours_receivers", [])
    receivers = ["hook", "mail"] if smtp else ["hook"]
    lines = ["[alerts]", 'public_url = "http://127.0.0.1:1"']
    lines += [f"{k} = {v!r}".replace("'", '"') if isinstance(v, str) else f"{k} = {v}" for k, v in options.items()]
    lines += ["[[alerts.routes]]", f"receivers = {receivers!r}".replace("'", '"'),
              f"escalation = {escalation!r}".replace("'", '"'), f"after_hours = {after_hours!r}".replace("'", '"')]
    lines += ["[receivers.hook]", 'kind = "webhook"', f'url = "{webhook.url_for("/hook")}"']
    lines += ["[receivers.boss]", 'kind = "webhook"', f'url = "{webhook.url_for("/boss")}"']
    if smtp:
        lines += ["[receivers.mail]", 'kind = "email"', 'host = "127.0.0.1"', f"port = {smtp.port}",
                  'security = "none"', 'sender = "zonewatch@127.0.0.1"', 'to = ["oncall@127.0.0.1"]']
    return "\n".join(lines) + "\n"


@pytest.fixture
def db(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def make_zone(engine, code="hall-1", hours=None, kiosks=("kiosk-1",)):
    with Session(engine) as s:
        zone = Zone(code=code, name=f"Hall {code}", kind="service_hall", opening_hours=hours or {})
        s.add(zone)
        s.commit()
        for k in kiosks:
            s.add(Device(id=k, name=k, role="kiosk", zone_id=zone.id))
        s.commit()
    with engine.begin() as conn:
        set_mark(conn, PLACEMENT_MARK, time.time())


def start(tmp_path, mosquitto, engine, config: str) -> ServerProcess:
    server = ServerProcess(tmp_path / "server", mosquitto.port, str(engine.url), sweep_every=0.2, extra=config)
    return server.start()


def incidents(engine) -> list[Incident]:
    with Session(engine) as s:
        return list(s.exec(select(Incident).order_by(Incident.id)))


def events(engine, incident_id) -> list[str]:
    with Session(engine) as s:
        return [e.kind for e in s.exec(select(IncidentEvent).where(IncidentEvent.incident_id == incident_id)
                                       .order_by(IncidentEvent.id))]


@pytest.fixture
def pub(mosquitto):
    p = Fleetpub(mosquitto.port)
    yield p
    p.close()


def two_printers(device, seq, first="ok", condition=None):
    """kiosk-1 with two printers: P1 as given, P2 fine — so P1 out of paper degrades, not breaches."""
    r = report(device, seq, printer=first, condition=condition, printer_name="P1")
    extra = report(device, seq, printer_name="P2").checks[-1]
    r.checks.append(extra)
    return r


def test_out_of_paper_opens_one_incident_one_webhook_one_mail_and_resolves_once(
        tmp_path, mosquitto, db, pub, webhook_receiver, smtp_server):
    make_zone(db)
    server = start(tmp_path, mosquitto, db, alerts_config(webhook_receiver, smtp_server))
    try:
        pub.send(two_printers("kiosk-1", 1))
        pub.send(two_printers("kiosk-1", 2, "critical", "media-empty"))
        pub.send(two_printers("kiosk-1", 3, "critical", "media-empty"))  # still out: same incident
        wait_until(lambda: len(webhook_receiver.requests_to("/hook")) == 1 and len(smtp_server.messages) == 1,
                   what="one webhook and one mail")
        body = webhook_receiver.requests_to("/hook")[0].json
        assert body["kind"] == "opened" and body["rule"] == "printer_media_empty"
        assert body["zone_code"] == "hall-1" and "out of paper" in body["summary"]
        assert body["ack_url"].startswith("http://127.0.0.1:1/ack/")
        mail = smtp_server.messages[0].message
        assert "out of paper" in mail["Subject"] and mail.get_content_type() == "multipart/alternative"
        pub.send(two_printers("kiosk-1", 4))
        wait_until(lambda: len(webhook_receiver.requests_to("/hook")) == 2 and len(smtp_server.messages) == 2,
                   what="one resolve notice each")
        assert webhook_receiver.requests_to("/hook")[1].json["kind"] == "resolved"
        time.sleep(1)
        assert len(webhook_receiver.requests_to("/hook")) == 2 and len(smtp_server.messages) == 2
        [incident] = incidents(db)
        assert incident.status == "resolved" and incident.rule == "printer_media_empty"
        timeline = events(db, incident.id)
        assert timeline[0] == "opened" and "resolved" in timeline and timeline.count("delivered") == 4
    finally:
        server.stop()


def test_a_zone_breach_pages_once_for_the_zone_not_for_each_part(tmp_path, mosquitto, db, pub, webhook_receiver):
    make_zone(db)
    server = start(tmp_path, mosquitto, db, alerts_config(webhook_receiver))
    try:
        pub.send(report("kiosk-1", 1))
        pub.send(report("kiosk-1", 2, printer="critical", condition="media-empty"))  # its only printer
        wait_until(lambda: len(incidents(db)) == 2, what="breach and printer incidents")
        time.sleep(1)
        [notice] = [r.json for r in webhook_receiver.requests_to("/hook")]
        assert notice["rule"] == "zone_breach" and "no working printer" in notice["summary"]
        printer = next(i for i in incidents(db) if i.rule == "printer_media_empty")
        assert printer.deferred == "inhibited" and printer.notified_at is None
    finally:
        server.stop()


def test_a_condition_toggled_20_times_is_one_flapping_incident(tmp_path, mosquitto, db, pub, webhook_receiver):
    make_zone(db)
    server = start(tmp_path, mosquitto, db, alerts_config(webhook_receiver, resolve_hold=2.0))
    try:
        for i in range(20):
            pub.send(two_printers("kiosk-1", i + 1, "critical" if i % 2 == 0 else "ok",
                                  "media-empty" if i % 2 == 0 else None))
            time.sleep(0.15)
        wait_until(lambda: any(i.flapping for i in incidents(db)), what="flapping")
        time.sleep(0.5)
        assert len(incidents(db)) == 1
        kinds = [r.json["kind"] for r in webhook_receiver.requests_to("/hook")]
        assert kinds == ["opened", "flapping"], kinds
    finally:
        server.stop()


def test_escalation_reminders_ack_and_the_signed_link(tmp_path, mosquitto, db, pub, webhook_receiver):
    make_zone(db)
    config = alerts_config(webhook_receiver, escalation=["boss"], escalate_after=1.0, renotify_every=2.5)
    server = start(tmp_path, mosquitto, db, config)
    try:
        pub.send(two_printers("kiosk-1", 1, "critical", "media-jam"))
        wait_until(lambda: webhook_receiver.requests_to("/boss"), what="escalated to boss")
        assert webhook_receiver.requests_to("/boss")[0].json["kind"] == "escalated"
        wait_until(lambda: any(r.json["kind"] == "reminder" for r in webhook_receiver.requests_to("/hook")),
                   what="a reminder")
        ack_url = webhook_receiver.requests_to("/hook")[0].json["ack_url"].replace("http://127.0.0.1:1",
                                                                                   server.url)
        forged = ack_url[:-4] + ("0000" if not ack_url.endswith("0000") else "1111")
        assert _post(forged)[0] == 403
        token = ack_url.rsplit("/", 1)[1]
        incident_id, _, nonce, _ = token.split(".")
        assert _post(f"{server.url}/ack/{incident_id}.1000.{nonce}.abc")[0] == 403  # re-signed by nobody
        assert _get(ack_url)[0] == 200  # the page: showing does not acknowledge
        assert incidents(db)[0].status == "open"
        assert _post(ack_url) == (200, True)
        assert incidents(db)[0].status == "acknowledged"
        assert _post(ack_url)[0] == 409  # works once
        count = len(webhook_receiver.requests)
        time.sleep(3.5)
        assert len(webhook_receiver.requests) == count, "ack stops escalation and reminders"
    finally:
        server.stop()


def test_expired_link_is_refused(tmp_path, mosquitto, db, pub, webhook_receiver):
    make_zone(db)
    server = start(tmp_path, mosquitto, db, alerts_config(webhook_receiver, ack_link_ttl=0.5))
    try:
        pub.send(two_printers("kiosk-1", 1, "critical", "media-jam"))
        wait_until(lambda: webhook_receiver.requests_to("/hook"), what="notified")
        time.sleep(1.6)
        url = webhook_receiver.requests_to("/hook")[0].json["ack_url"].replace("http://127.0.0.1:1", server.url)
        assert _post(url)[0] == 410
    finally:
        server.stop()


def test_outside_opening_hours_recorded_not_paged_and_a_silence_suppresses(
        tmp_path, mosquitto, db, pub, webhook_receiver):
    make_zone(db, "closed-hall", hours={"mon": ["00:00-00:01"]}, kiosks=("kiosk-c",))
    make_zone(db, "open-hall", kiosks=("kiosk-o",))
    with Session(db) as s:
        s.add(Silence(zone_code="open-hall", starts_at=time.time() - 1, ends_at=time.time() + 3600,
                      created_by="tester", comment="printer being replaced", created_at=time.time()))
        s.commit()
    server = start(tmp_path, mosquitto, db, alerts_config(webhook_receiver))
    try:
        pub.send(two_printers("kiosk-c", 1, "critical", "media-jam"))
        pub.send(two_printers("kiosk-o", 1, "critical", "media-jam"))
        wait_until(lambda: len(incidents(db)) == 2 and all(i.deferred for i in incidents(db)), what="recorded")
        time.sleep(1)
        assert webhook_receiver.requests_to("/hook") == []
        by_device = {i.device_id: i for i in incidents(db)}
        assert by_device["kiosk-c"].deferred == "closed" and by_device["kiosk-c"].urgency == "low"
        assert by_device["kiosk-o"].deferred == "silenced"
    finally:
        server.stop()


def test_a_failing_receiver_is_retried_and_does_not_delay_the_other(
        tmp_path, mosquitto, db, pub, webhook_receiver, smtp_server):
    make_zone(db)
    webhook_receiver.respond(500, times=2, path="/hook")
    server = start(tmp_path, mosquitto, db, alerts_config(webhook_receiver, smtp_server))
    try:
        pub.send(two_printers("kiosk-1", 1, "critical", "door-open"))
        wait_until(lambda: smtp_server.messages, what="mail")
        wait_until(lambda: [r for r in webhook_receiver.requests_to("/hook")], what="webhook attempts")
        wait_until(lambda: "delivered" in events(db, incidents(db)[0].id) and
                   events(db, incidents(db)[0].id).count("delivery_failed") == 2, what="retried, then delivered")
        wait_until(lambda: len(webhook_receiver.requests_to("/hook")) == 3, what="three attempts recorded")
    finally:
        server.stop()


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _post(url):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=5) as r:
            return r.status, "acknowledged" in r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, False


def test_after_hours_can_go_to_a_different_route_with_low_urgency(tmp_path, mosquitto, db, pub, webhook_receiver):
    make_zone(db, "closed-hall", hours={"mon": ["00:00-00:01"]}, kiosks=("kiosk-c",))
    config = alerts_config(webhook_receiver, after_hours="route", after_hours_receivers=["boss"])
    server = start(tmp_path, mosquitto, db, config)
    try:
        pub.send(two_printers("kiosk-c", 1, "critical", "media-jam"))
        wait_until(lambda: webhook_receiver.requests_to("/boss"), what="after-hours receiver told")
        notice = webhook_receiver.requests_to("/boss")[0].json
        assert notice["urgency"] == "low" and notice["rule"] == "printer_media_jam"
        assert webhook_receiver.requests_to("/hook") == []
    finally:
        server.stop()
