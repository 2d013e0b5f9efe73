"""One-shot commands end to end: a real mosquitto on the server's password/ACL files, the real server, a real
agent enrolled with ``zonewatch-agent enroll`` (which hands it the signing key), the private cupsd.

An admin's print_test_page puts a job in the CUPS queue and the agent acks it with the job id; reload_kiosk runs
the reload hook; a replayed, an expired, an unsigned and a forged command are refused, nothing runs, and each
refusal is acked with the reason."""

from __future__ import annotations

import time
import urllib.request

import pytest

from agent.commands import statement
from protocol import Command, encode
from server.content.commands import signed_command
from server.content.signing import SigningKey
from tests.mqtt_recorder import Recorder
from tests.server_process import wait_until
from tests.test_content_rollout import SERVER_USER, enrol, http, site, start  # noqa: F401  (site: fixture)

pytestmark = pytest.mark.peer
DEVICE = "kiosk-cmd-1"


@pytest.fixture
def agent(site, cupsd, monkeypatch):  # noqa: F811
    monkeypatch.setenv("CUPS_SERVER", cupsd.server)
    where = enrol(site, "hall-01", DEVICE)
    recorder = Recorder(_broker_port(site),
                        f"zw/v1/dev/{DEVICE}/ack", username=SERVER_USER,
                        password=(site.tmp / "server.secret").read_text().strip()).start()
    start(site, DEVICE)
    wait_until(lambda: site.server.get(f"/api/v1/devices/{DEVICE}")[1].get("online") is True, 60,
               f"{DEVICE} online (log: {where / 'agent.log'})")
    yield where, recorder
    recorder.stop()


def _broker_port(st) -> int:
    text = st.server.config.read_text()
    return int(text.split("mqtt://127.0.0.1:")[1].split('"')[0])


def acks(recorder: Recorder, command_id: str) -> list:
    return [m.message for m in recorder.messages if m.message.ref == command_id]


def final(recorder: Recorder, command_id: str, log) -> object:
    def done():
        got = [a for a in acks(recorder, command_id) if a.state in ("done", "failed", "refused")]
        return got[-1] if got else None
    return wait_until(done, 60, f"final ack of {command_id} (agent log: {log})")


def send(st, action: str, **args) -> dict:
    status, body = http(st.server, "POST", f"/api/v1/devices/{DEVICE}/commands", {"action": action, "args": args})
    assert status == 201 and body["publish_error"] is None, body
    return body


def publish(st, command: Command) -> None:
    from server.content.publisher import publish_desired
    from server.content.rollouts import Outgoing
    from server.settings import load_settings

    publish_desired(load_settings(st.server.config), [Outgoing(DEVICE, encode(command))], kind="run")


def test_test_page_printed_through_cupsd_and_replay_refused(site, agent, cupsd, cups_queue):  # noqa: F811
    where, recorder = agent
    queue = cups_queue()
    cupsd.disable(queue, "zonewatch test: keep the job in the queue")
    sent = send(site, "print_test_page", printer=queue)
    ack = final(recorder, sent["id"], where / "agent.log")
    assert ack.state == "done", ack
    job = ack.result["job_id"]
    assert ack.result["printer"] == queue and f"job {job}" in ack.detail
    jobs = cupsd.jobs(queue)
    assert job in jobs, jobs
    assert sent["id"] in jobs[job]["job-name"]
    assert [a.state for a in acks(recorder, sent["id"])] == ["running", "done"]

    # The same signed command again (a replay off the wire): refused by id, no second job.
    key = SigningKey.load_or_create(site.server.tmp / "data")
    replay = signed_command(key, DEVICE, "print_test_page", {"printer": queue}, sent["expires"], sent["id"])
    publish(site, replay)
    wait_until(lambda: any(a.state == "refused" for a in acks(recorder, sent["id"])), 60, "replay refused")
    refused = next(a for a in acks(recorder, sent["id"]) if a.state == "refused")
    assert "replayed" in refused.detail, refused
    assert list(cupsd.jobs(queue)) == [job]

    # The server recorded the command and folded in the device's acks; the replay's refusal does not undo "done".
    def listed():
        status, body = http(site.server, "GET", f"/api/v1/devices/{DEVICE}/commands")
        assert status == 200, body
        item = next(i for i in body["items"] if i["id"] == sent["id"])
        return item if item["state"] == "done" else None
    item = wait_until(listed, 60, "command done in the API")
    assert item["result"]["job_id"] == job and item["action"] == "print_test_page" and item["created_by"]
    assert item["args"] == {"printer": queue}
    assert sent["state"] == "sent"
    # ... and the device page lists it
    page = urllib.request.Request(site.server.url + f"/devices/{DEVICE}", headers=site.server.headers)
    with urllib.request.urlopen(page, timeout=30) as answer:
        html = answer.read().decode()
    assert f'data-command-id="{sent["id"]}" data-state="done"' in html and "<code>print_test_page</code>" in html


def test_reload_kiosk_runs_the_reload_hook(site, agent):  # noqa: F811
    where, recorder = agent
    (where / "data/content").mkdir(parents=True, exist_ok=True)  # where the hook of enrol() writes
    sent = send(site, "reload_kiosk")
    ack = final(recorder, sent["id"], where / "agent.log")
    assert ack.state == "done", ack
    assert (where / "data/content/reloads").read_text() == "reloaded\n"


def test_diagnostics_sends_a_report_at_once(site, agent):  # noqa: F811
    where, recorder = agent
    sent = send(site, "diagnostics")
    ack = final(recorder, sent["id"], where / "agent.log")
    assert ack.state == "done", ack
    assert ack.result["report_seq"] >= 1 and ack.result["checks"] >= 1 and f"report {ack.result['report_seq']}" \
        in ack.detail
    assert ack.result["status"] in ("ok", "warning", "critical", "unknown")


def test_expired_unsigned_forged_and_unknown_commands_refused(site, agent, cupsd, cups_queue):  # noqa: F811
    where, recorder = agent
    queue = cups_queue()
    cupsd.disable(queue, "zonewatch test: keep jobs in the queue")
    key = SigningKey.load_or_create(site.server.tmp / "data")
    now = time.time()
    args = {"printer": queue}
    expired = signed_command(key, DEVICE, "print_test_page", args, now - 60, "cmd-expired")
    unsigned = Command(device_id=DEVICE, ts=now, id="cmd-unsigned", action="print_test_page", expires=now + 600,
                       args=args)
    forged = signed_command(SigningKey.load_or_create(site.tmp / "attacker"), DEVICE, "print_test_page", args,
                            now + 600, "cmd-forged")
    # Signed by the right key, then altered in transit: another printer.
    altered = signed_command(key, DEVICE, "print_test_page", {"printer": "elsewhere"}, now + 600, "cmd-altered")
    altered.args = args
    other = signed_command(key, "kiosk-other", "print_test_page", args, now + 600, "cmd-other-device")
    other.device_id = DEVICE  # a command signed for another device, re-addressed
    for command in (expired, unsigned, forged, altered, other):
        publish(site, command)
    for command, why in ((expired, "expired"), (unsigned, "unsigned"), (forged, "signature does not verify"),
                         (altered, "signature does not verify"), (other, "signature does not verify")):
        ack = final(recorder, command.id, where / "agent.log")
        assert ack.state == "refused" and why in ack.detail, (command.id, ack)
    assert cupsd.jobs(queue) == {}
    # A refused command leaves no trace that would block a valid one; the valid one still prints.
    sent = send(site, "print_test_page", printer=queue)
    assert final(recorder, sent["id"], where / "agent.log").state == "done"
    assert len(cupsd.jobs(queue)) == 1


def test_command_statement_binds_every_field():
    base = statement("d", "cmd-1", "reload_kiosk", 10.5, {"a": 1})
    for other in (statement("e", "cmd-1", "reload_kiosk", 10.5, {"a": 1}),
                  statement("d", "cmd-2", "reload_kiosk", 10.5, {"a": 1}),
                  statement("d", "cmd-1", "print_test_page", 10.5, {"a": 1}),
                  statement("d", "cmd-1", "reload_kiosk", 10.6, {"a": 1}),
                  statement("d", "cmd-1", "reload_kiosk", 10.5, {"a": 2})):
        assert other != base


def test_unknown_action_and_device_refused_by_the_api(site):  # noqa: F811
    status, body = http(site.server, "POST", "/api/v1/devices/nope/commands", {"action": "reload_kiosk"})
    assert status == 404, body
    enrol(site, "hall-01", DEVICE)
    status, body = http(site.server, "POST", f"/api/v1/devices/{DEVICE}/commands", {"action": "format_disk"})
    assert status == 400 and "unknown action" in str(body), body
    status, body = http(site.server, "GET", "/api/v1/devices/nope/commands")
    assert status == 404, body
    status, body = http(site.server, "GET", f"/api/v1/devices/{DEVICE}/commands")
    assert status == 200 and body["items"] == [], body
