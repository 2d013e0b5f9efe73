"""A printer runs out of paper in the real private cupsd; the real agent tells the broker at once,
and again when paper is back."""

from __future__ import annotations

import pytest

from tests.agent_process import AgentProcess, Kiosk
from tests.mqtt_recorder import Recorder


def printer_check(message, queue: str):
    return next((c for c in message.checks if c.name == f"printer:{queue}"), None)


@pytest.fixture
def running(tmp_path, mosquitto_factory, cupsd, cups_queue):
    broker = mosquitto_factory()
    queue = cups_queue()
    kiosk = Kiosk(tmp_path)
    kiosk.start()
    recorder = Recorder(broker.port).start()
    agent = AgentProcess(tmp_path, broker.port, kiosk, interval=30,
                         printer=f'cups_server = "{cupsd.server}"\nprinters = ["{queue}"]\nevery = 0.5')
    agent.start()
    yield cupsd, queue, recorder, agent
    agent.stop()
    recorder.stop()
    kiosk.kill()


def test_out_of_paper_and_back(running):
    cupsd, queue, recorder, _agent = running

    def report_with(status: str):
        def match(m) -> bool:
            if not m.topic.endswith("/report"):
                return False
            check = printer_check(m.message, queue)
            return check is not None and check.status == status
        return match

    recorder.wait_for(report_with("ok"), 20, "a report with the printer ok")
    cupsd.set_condition(queue, reasons=["media-empty-error"], markers=[("Black", "toner", 42, "#000000")])
    out = recorder.wait_for(report_with("critical"), 10, "the out-of-paper report").message
    assert out.trigger == "change", "a status change is reported at once, not at the 30 s interval"
    check = printer_check(out, queue)
    assert "media-empty" in [c.code for c in check.conditions]
    assert check.state == "stopped" and "out of paper" in check.summary
    assert [s.level for s in check.supplies] == [42]

    cupsd.clear_condition(queue)
    back = recorder.wait_for(lambda m: report_with("ok")(m) and m.message.seq > out.seq, 15, "the recovery report")
    assert back.message.trigger == "change"
