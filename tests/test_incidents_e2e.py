"""Out of paper, end to end with every peer real: a queue in the private cupsd runs out of paper, the
real agent watching it reports to a private mosquitto, the real server opens one incident and tells a
local webhook receiver and a local SMTP server once each — and once more each when paper is back.

The zone holds the agent's device as its kiosk and two printers on it, so one printer out of paper
is a printer incident (the zone still meets the rule through the other printer): exactly one
notification per receiver, not a zone breach on top. Nothing here asserts a duration; waits are
generous and the exact counts are checked again after a pause.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
from sqlmodel import Session, select

from server.admin import add_device, add_zone
from server.db import make_engine, upgrade
from server.db.models import Incident, IncidentEvent, Zone
from tests.agent_process import AgentProcess, Kiosk
from tests.server_process import ServerProcess, wait_until

pytestmark = pytest.mark.timeout(240)

ZONE = "hall-e2e"
ZONE_NAME = "Haidian Service Hall"
SETTLE = 2.0  # seconds to let anything extra arrive before the exact counts are checked again


def alerts_config(public_url: str, webhook, smtp) -> str:
    """A route to one webhook and one mailbox; a short resolve hold so the test needs not wait 30 s."""
    return f"""
[alerts]
public_url = "{public_url}"
resolve_hold = 0.5
retry_first = 0.2

[[alerts.routes]]
receivers = ["hook", "mail"]

[receivers.hook]
kind = "webhook"
url = "{webhook.url_for("/hook")}"

[receivers.mail]
kind = "email"
host = "127.0.0.1"
port = {smtp.port}
security = "none"
sender = "zonewatch <zonewatch@127.0.0.1>"
to = ["oncall@127.0.0.1"]
"""


@pytest.fixture
def fleet(tmp_path, mosquitto_factory, cupsd, cups_queue, webhook_receiver, smtp_server):
    """cupsd with two queues, the agent watching both, the server; yields what the test drives.

    A broker of its own: no retained presence of another test's agent reaches this server."""
    mosquitto = mosquitto_factory()
    out_of_paper, spare = cups_queue(), cups_queue()
    engine = make_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    kiosk = Kiosk(tmp_path)
    agent = AgentProcess(tmp_path, mosquitto.port, kiosk, interval=30,  # printer polled every 0.5 s: a quicker test
                         printer=f'cups_server = "{cupsd.server}"\nprinters = ["{out_of_paper}", "{spare}"]\n'
                                 "every = 0.5")
    server = ServerProcess(tmp_path / "server", mosquitto.port, str(engine.url), sweep_every=0.2)
    # the ack links point at this server, so the test can follow them
    server.config.write_text(server.config.read_text() + alerts_config(server.url, webhook_receiver, smtp_server))
    upgrade(engine)
    with Session(engine) as session:
        add_zone(session, ZONE, ZONE_NAME, "service_hall", region="Beijing / Haidian District")
        add_device(session, agent.device_id, ZONE, "kiosk", name="Kiosk 1")
    try:
        kiosk.start()
        server.start()
        agent.start()
        yield {"engine": engine, "server": server, "agent": agent, "queue": out_of_paper, "spare": spare}
    finally:
        agent.stop()
        kiosk.kill()
        server.stop()
        engine.dispose()


def zone_status(engine) -> str | None:
    with Session(engine) as session:
        zone = session.exec(select(Zone).where(Zone.code == ZONE)).one()
        return zone.status


def incidents(engine) -> list[Incident]:
    with Session(engine) as session:
        return list(session.exec(select(Incident).order_by(Incident.id)))


def timeline(engine, incident_id: int) -> list[str]:
    with Session(engine) as session:
        return [e.kind for e in session.exec(select(IncidentEvent).where(IncidentEvent.incident_id == incident_id)
                                             .order_by(IncidentEvent.id))]


class Notices:
    """What the two receivers got since a mark."""

    def __init__(self, webhook, smtp) -> None:
        self.webhook, self.smtp = webhook, smtp
        self.hooks_from = self.mails_from = 0

    def mark(self) -> None:
        self.hooks_from, self.mails_from = len(self.webhook.requests), len(self.smtp.messages)

    @property
    def hooks(self) -> list:
        return self.webhook.requests[self.hooks_from:]

    @property
    def mails(self) -> list:
        return self.smtp.messages[self.mails_from:]

    def counts(self) -> tuple[int, int]:
        return len(self.hooks), len(self.mails)


def settled(engine) -> bool:
    """The zone meets the rule and no incident is open (or still resolving)."""
    return zone_status(engine) == "meets" and all(i.status == "resolved" for i in incidents(engine))


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def post(url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_out_of_paper_in_cupsd_pages_once_per_receiver_and_resolves_once(fleet, cupsd, webhook_receiver,
                                                                         smtp_server):
    engine, server, agent, queue = fleet["engine"], fleet["server"], fleet["agent"], fleet["queue"]
    notices = Notices(webhook_receiver, smtp_server)
    wait_until(lambda: settled(engine), 60, f"zone {ZONE} meeting the rule (agent log: {agent.log})")
    time.sleep(SETTLE)
    notices.mark()
    before = len(incidents(engine))

    cupsd.set_condition(queue, reasons=["media-empty-error"])
    wait_until(lambda: notices.counts() == (1, 1), 60, "one webhook and one e-mail")
    time.sleep(SETTLE)  # the queue stays out of paper: still one of each
    assert notices.counts() == (1, 1)
    assert zone_status(engine) == "degraded", "the spare printer keeps the zone within the rule"

    hook = notices.hooks[0]
    assert hook.path == "/hook" and hook.method == "POST"
    notice = hook.json
    assert notice["kind"] == "opened" and notice["rule"] == "printer_media_empty"
    assert notice["severity"] == "critical" and notice["urgency"] == "high"
    assert notice["zone_code"] == ZONE and notice["zone_name"] == ZONE_NAME
    assert notice["region"] == "Beijing / Haidian District"
    assert notice["subject"] == f"printer {queue} on Kiosk 1"
    assert "out of paper" in notice["summary"]
    ack_url = notice["ack_url"]
    assert ack_url.startswith(f"{server.url}/ack/")

    mail = notices.mails[0]
    assert mail.rcpt_tos == ["oncall@127.0.0.1"]
    assert "out of paper" in mail.message["Subject"] and ZONE_NAME in mail.message["Subject"]
    body = text_of(mail.message)
    assert f"Zone: {ZONE_NAME} ({ZONE})" in body and f"printer {queue} on Kiosk 1" in body
    assert f"Acknowledge: {ack_url}" in body, "the e-mail carries the same one-click ack link"

    [incident] = incidents(engine)[before:]
    assert incident.rule == "printer_media_empty" and incident.status == "open"
    assert incident.subject == f"printer:{agent.device_id}/{queue}"
    assert post(ack_url) == 200, "the link from the notification acknowledges"
    assert incidents(engine)[before].status == "acknowledged"

    cupsd.clear_condition(queue)
    wait_until(lambda: notices.counts() == (2, 2), 60, "one resolve notice each")
    time.sleep(SETTLE)
    assert notices.counts() == (2, 2)
    resolved = notices.hooks[1].json
    assert resolved["kind"] == "resolved" and resolved["incident_id"] == notice["incident_id"]
    assert resolved["zone_code"] == ZONE and resolved["ack_url"] is None
    assert "RESOLVED" in notices.mails[1].message["Subject"]
    assert notices.mails[1].message["X-Zonewatch-Kind"] == "resolved"

    [incident] = incidents(engine)[before:]
    assert incident.status == "resolved"
    events = timeline(engine, incident.id)
    assert events[0] == "opened" and events.count("delivered") == 4 and "resolved" in events
    wait_until(lambda: zone_status(engine) == "meets", 30, "the zone meeting the rule again")


def test_an_agent_coming_up_for_the_first_time_pages_nobody(fleet, webhook_receiver, smtp_server):
    engine, agent = fleet["engine"], fleet["agent"]
    wait_until(lambda: settled(engine), 60, f"zone {ZONE} meeting the rule (agent log: {agent.log})")
    time.sleep(SETTLE)
    pages = [(r.json["kind"], r.json["rule"], r.json["summary"]) for r in webhook_receiver.requests]
    assert pages == [] and smtp_server.messages == [], f"paged while the zone came up: {pages}"
