"""The real agent (a subprocess) against a real mosquitto: changes are reported at once, an
outage of the broker or of the agent itself loses nothing, and presence tells the truth."""

from __future__ import annotations

import signal
import time

import pytest

from protocol import Presence, Report
from tests.agent_process import AgentProcess, Kiosk
from tests.mqtt_recorder import Recorder


@pytest.fixture
def setup(tmp_path, mosquitto_factory):
    broker = mosquitto_factory()
    kiosk = Kiosk(tmp_path)
    kiosk.start()
    agent = AgentProcess(tmp_path, broker.port, kiosk)
    recorder = Recorder(broker.port).start()
    yield broker, kiosk, agent, recorder
    recorder.stop()
    agent.stop()
    kiosk.kill()


def kiosk_status(report: Report) -> str:
    return next(c.status for c in report.checks if c.name == "kiosk")


def first_seen_seqs(recorder: Recorder, device_id: str) -> list[int]:
    seen: dict[int, None] = {}
    for report in recorder.reports(device_id):
        seen.setdefault(report.seq, None)
    return list(seen)


def test_status_change_reaches_subscriber_within_a_second(setup):
    _broker, kiosk, agent, recorder = setup
    agent.start()
    recorder.wait_for(lambda m: m.topic.endswith("/report") and kiosk_status(m.message) == "ok", 15, "ok report")
    broke_at = time.time()
    kiosk.kill()
    got = recorder.wait_for(lambda m: m.topic.endswith("/report") and kiosk_status(m.message) == "critical",
                            10, "critical report")
    assert got.message.trigger == "change"
    assert got.at - broke_at < 1.0, f"status change took {got.at - broke_at:.2f} s to reach the subscriber"
    check = next(c for c in got.message.checks if c.name == "kiosk")
    assert check.running is False and kiosk.name in check.summary


def wait_contiguous(recorder: Recorder, device_id: str, beyond: int, timeout: float = 30) -> list[int]:
    def done(_msgs) -> bool:
        seqs = first_seen_seqs(recorder, device_id)
        return bool(seqs) and seqs[-1] > beyond and sorted(seqs) == list(range(seqs[0], seqs[0] + len(seqs)))

    recorder.wait_until(done, timeout, f"reports 1..>{beyond} without gaps")
    return first_seen_seqs(recorder, device_id)


def test_broker_outage_loses_nothing_and_keeps_order(setup):
    broker, _kiosk, agent, recorder = setup
    agent.start()
    recorder.wait_until(lambda _: len(recorder.reports(agent.device_id)) >= 3, 15, "3 reports")
    broker.stop()
    time.sleep(3)  # the agent keeps measuring and spooling while the broker is away
    broker.start()
    seqs = wait_contiguous(recorder, agent.device_id, beyond=8)
    assert seqs == sorted(seqs), "reports must arrive in order"
    assert seqs[0] == 1
    backlog = [r for r in recorder.reports(agent.device_id) if r.spool_backlog > 0]
    assert backlog, "reports written during the outage carry the backlog they were queued behind"
    assert all(r.spool_dropped == 0 for r in recorder.reports(agent.device_id))


def test_agent_killed_mid_outage_loses_nothing(setup):
    broker, _kiosk, agent, recorder = setup
    agent.start()
    recorder.wait_until(lambda _: len(recorder.reports(agent.device_id)) >= 2, 15, "2 reports")
    broker.stop()
    time.sleep(1.5)
    agent.signal(signal.SIGKILL)  # a crash, in the middle of the outage
    agent.start()
    time.sleep(1.5)
    broker.start()
    seqs = wait_contiguous(recorder, agent.device_id, beyond=6)
    assert seqs[0] == 1 and seqs == sorted(seqs)
    triggers = [r.trigger for r in recorder.reports(agent.device_id)]
    assert triggers.count("startup") >= 2, "both agent runs reported, numbered as one sequence"


def test_last_will_fires_when_agent_is_killed(setup):
    _broker, _kiosk, agent, recorder = setup
    agent.start()
    birth = recorder.wait_for(lambda m: m.topic.endswith("/presence") and m.message.online, 15, "birth")
    assert isinstance(birth.message, Presence) and birth.message.interval_s == 0.5
    agent.signal(signal.SIGKILL)
    will = recorder.wait_for(lambda m: m.topic.endswith("/presence") and not m.message.online, 10, "last will")
    assert will.message.reason == "connection lost"


def test_sigterm_says_goodbye(setup):
    _broker, _kiosk, agent, recorder = setup
    agent.start()
    recorder.wait_for(lambda m: m.topic.endswith("/presence") and m.message.online, 15, "birth")
    assert agent.signal(signal.SIGTERM) == 0
    bye = recorder.wait_for(lambda m: m.topic.endswith("/presence") and not m.message.online, 10, "goodbye")
    assert bye.message.reason == "agent stopped"
