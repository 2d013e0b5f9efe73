"""Smoke tests of the private cupsd fixture: each state the agent's printer collector reads,
produced with the real CUPS tools and the zwtest backend, and read back through pycups."""

from __future__ import annotations

import time

import pytest

from tests.peers.cups import IDLE, JOB_HELD, JOB_PENDING, PROCESSING, STOPPED, Cupsd

pytestmark = [pytest.mark.peer, pytest.mark.timeout(120)]


def test_added_queue_is_idle_and_accepting(cupsd: Cupsd, cups_queue) -> None:
    name = cups_queue()

    printers = cupsd.connection().getPrinters()
    assert name in printers
    assert printers[name]["printer-state"] == IDLE
    assert printers[name]["printer-state-reasons"] == ["none"]
    assert "printer-is-accepting-jobs" not in printers[name]  # getPrinters omits it
    attrs = cupsd.connection().getPrinterAttributes(name)
    assert attrs["printer-is-accepting-jobs"] is True
    assert attrs["device-uri"] == "file:///dev/null"


def test_disable_pauses_and_reject_stops_accepting(cupsd: Cupsd, cups_queue) -> None:
    name = cups_queue()

    cupsd.disable(name, reason="paper tray removed")
    attrs = cupsd.connection().getPrinterAttributes(name)
    assert attrs["printer-state"] == STOPPED
    assert "paused" in attrs["printer-state-reasons"]
    assert attrs["printer-state-message"] == "paper tray removed"

    cupsd.reject(name, reason="out of service")
    attrs = cupsd.connection().getPrinterAttributes(name)
    assert attrs["printer-is-accepting-jobs"] is False

    cupsd.enable(name)
    cupsd.accept(name)
    attrs = cupsd.connection().getPrinterAttributes(name)
    assert attrs["printer-state"] == IDLE
    assert attrs["printer-state-reasons"] == ["none"]
    assert attrs["printer-is-accepting-jobs"] is True


def test_backend_out_of_paper_stops_the_queue(cupsd: Cupsd, cups_queue) -> None:
    name = cups_queue()

    cupsd.set_condition(name, reasons=["media-empty-error"],
                        markers=[("Black", "toner", 42, "#000000")], stop=True)

    attrs = cupsd.connection().getPrinterAttributes(name)
    assert attrs["printer-state"] == STOPPED
    assert set(attrs["printer-state-reasons"]) == {"media-empty-error", "paused"}
    assert attrs["marker-levels"] == [42]
    assert attrs["marker-names"] == ["Black"]
    assert attrs["marker-types"] == ["toner"]
    assert attrs["marker-colors"] == ["#000000"]
    # The job that hit the empty tray waits on the stopped queue.
    [job] = cupsd.jobs(name).values()
    assert job["job-state"] == JOB_PENDING
    assert job["job-state-reasons"] == "printer-stopped"


def test_warnings_errors_and_special_marker_levels_come_through(cupsd: Cupsd, cups_queue) -> None:
    name = cups_queue()
    reasons = ["toner-low-report", "media-jam-error", "door-open-report"]
    markers = [("Black Toner", "toner", -1, "#000000"), ("Cyan", "toner", -2, "#00FFFF"),
               ("Waste", "waste-toner", -3, "none")]

    cupsd.set_condition(name, reasons=reasons, markers=markers, stop=False)

    attrs = cupsd.connection().getPrinterAttributes(name)
    assert attrs["printer-state"] == IDLE  # the job completed; the reasons stay
    assert attrs["printer-state-reasons"] == reasons
    assert attrs["marker-names"] == ["Black Toner", "Cyan", "Waste"]
    assert attrs["marker-types"] == ["toner", "toner", "waste-toner"]
    assert attrs["marker-levels"] == [-1, -2, -3]
    assert attrs["marker-colors"] == ["#000000", "#00FFFF", "none"]


def test_offline_report_shows_only_while_a_job_is_processing(cupsd: Cupsd, cups_queue) -> None:
    name = cups_queue()

    cupsd.set_condition(name, reasons=["offline-report"], stop=False,
                        message="Printer not responding", sleep=30)

    attrs = cupsd.connection().getPrinterAttributes(name)
    assert attrs["printer-state"] == PROCESSING
    assert attrs["printer-state-reasons"] == ["offline-report"]
    assert attrs["printer-state-message"] == "Printer not responding"


def test_stuck_jobs_wait_with_their_creation_time(cupsd: Cupsd, cups_queue) -> None:
    before = int(time.time())
    stopped, held, busy = cups_queue(), cups_queue(), cups_queue()

    on_stopped = cupsd.stuck_job(stopped)
    on_held = cupsd.stuck_job(held, how="held")
    on_busy = cupsd.stuck_job(busy, how="busy")

    jobs = cupsd.connection().getJobs(which_jobs="not-completed",
                                      requested_attributes=["all"])
    assert jobs[on_stopped]["job-state"] == JOB_PENDING
    assert jobs[on_stopped]["job-state-reasons"] == "none"  # pycups: a str when single-valued
    assert jobs[on_held]["job-state"] == JOB_HELD
    assert jobs[on_held]["job-state-reasons"] == "job-hold-until-specified"
    assert jobs[on_busy]["job-state"] == JOB_PENDING
    assert jobs[on_busy - 1]["job-state-reasons"] == "job-printing"  # the job blocking it
    for job in (on_stopped, on_held, on_busy):
        assert before <= jobs[job]["time-at-creation"] <= time.time()
        assert jobs[job]["job-name"] == "zonewatch stuck job"
    printers = cupsd.connection().getPrinters()
    assert printers[stopped]["printer-state"] == STOPPED
    assert printers[held]["printer-state"] == IDLE
    assert printers[busy]["printer-state"] == PROCESSING


def test_clear_condition_brings_the_printer_back(cupsd: Cupsd, cups_queue) -> None:
    name = cups_queue()
    cupsd.set_condition(name, reasons=["media-empty-error", "toner-low-report"],
                        markers=[("Black", "toner", 3, "#000000")], stop=True)
    cupsd.reject(name)
    [waiting] = cupsd.jobs(name)

    cupsd.clear_condition(name, markers=[("Black", "toner", 100, "#000000")])

    attrs = cupsd.connection().getPrinterAttributes(name)
    assert attrs["printer-state"] == IDLE
    assert attrs["printer-state-reasons"] == ["none"]
    assert attrs["printer-is-accepting-jobs"] is True
    assert attrs["marker-levels"] == [100]
    assert cupsd.jobs(name) == {}
    assert list(cupsd.jobs(name, which="completed")) == [waiting]  # it printed after the repair


def test_queues_of_a_test_are_deleted_after_it(cupsd: Cupsd, cups_queue) -> None:
    leftovers = [n for n in cupsd.connection().getPrinters() if n.startswith("zwq")]
    assert leftovers == []


def test_restart_keeps_queues_and_reasons(cupsd: Cupsd, cups_queue) -> None:
    name = cups_queue()
    cupsd.set_condition(name, reasons=["toner-low-report"], stop=False)

    cupsd.stop()
    with pytest.raises(RuntimeError):  # pycups: "failed to connect to server"
        cupsd.connection()
    cupsd.start()

    attrs = cupsd.connection().getPrinterAttributes(name)
    assert attrs["printer-state"] == IDLE
    assert attrs["printer-state-reasons"] == ["toner-low-report"]
