"""The printer collector against the real private cupsd and a real IPP printer (ippeveprinter).

Every condition is produced the way a printer produces it (cupsdisable, cupsreject, the zwtest
backend's STATE:/ATTR: lines, ippeveprinter's own supply and media forms) and read back through
the collector, and every check it returns must encode in a Report.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgspec
import pytest

from agent.collectors import collector_class
from agent.collectors.base import AgentContext
from agent.collectors.printer import Options, PrinterCollector
from protocol import PrinterCheck, Report, decode, encode
from tests.peers.cups import Cupsd

pytestmark = [pytest.mark.peer, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parent.parent


def make(cupsd: Cupsd | None, **options) -> PrinterCollector:
    if cupsd is not None:
        options.setdefault("cups_server", cupsd.server)
    collector = collector_class("printer")(msgspec.convert(options, Options), AgentContext("kiosk-1", Path("/tmp")))
    assert isinstance(collector, PrinterCollector)
    return collector


def collect(collector: PrinterCollector) -> dict[str, PrinterCheck]:
    checks = collector.collect()
    payload = encode(Report(device_id="kiosk-1", ts=time.time(), seq=1, interval_s=30, checks=checks))
    assert decode("zw/v1/dev/kiosk-1/report", payload).message.checks == checks
    return {check.printer: check for check in checks}


def one(cupsd: Cupsd, name: str, **options) -> PrinterCheck:
    collector = make(cupsd, printers=[name], **options)
    try:
        return collect(collector)[name]
    finally:
        collector.close()


def conditions(check: PrinterCheck) -> dict[str, str]:
    return {c.code: c.severity for c in check.conditions}


# -- queue states ------------------------------------------------------------------------------

def test_healthy_queue_is_ok(cupsd: Cupsd, cups_queue) -> None:
    name = cups_queue()

    check = one(cupsd, name)

    assert (check.name, check.status, check.state, check.accepting) == (f"printer:{name}", "ok", "idle", True)
    assert check.summary == f"{name} is ready (idle, no jobs waiting)"
    assert (check.uri, check.source, check.jobs_queued, check.conditions) == ("file:///dev/null", "cups", 0, [])


def test_disabled_queue_is_critical(cupsd: Cupsd, cups_queue) -> None:
    name = cups_queue()
    cupsd.disable(name, reason="paper tray removed")

    check = one(cupsd, name)

    assert (check.status, check.state, check.reasons) == ("critical", "stopped", ["paused"])
    [paused] = check.conditions
    assert (paused.code, paused.severity, paused.text) == ("paused", "critical", "queue stopped: paper tray removed")
    assert check.summary == f"{name} is stopped (stopped, no jobs waiting)"


def test_rejecting_queue_is_critical(cupsd: Cupsd, cups_queue) -> None:
    name = cups_queue()
    cupsd.reject(name, reason="out of service")

    check = one(cupsd, name)

    assert (check.status, check.state, check.accepting) == ("critical", "idle", False)
    assert conditions(check) == {"not-accepting": "critical"}
    assert "is not accepting jobs" in check.summary


@pytest.mark.parametrize("how", ["stopped", "busy"])
def test_stuck_job_makes_a_stuck_queue(cupsd: Cupsd, cups_queue, how: str) -> None:
    name = cups_queue()
    cupsd.stuck_job(name, how=how)
    assert "stuck-queue" not in conditions(one(cupsd, name))  # default: 300 s
    time.sleep(2.1)  # time-at-creation has whole seconds

    check = one(cupsd, name, stuck_job_after=1)

    assert conditions(check)["stuck-queue"] == "critical"
    assert check.jobs_queued == (1 if how == "stopped" else 2)
    assert check.oldest_job_age_s >= 1
    assert re.search(r"has a job stuck in the queue for \d+ s \(", check.summary)


def test_queue_becomes_stuck_by_the_clock_without_reading_cups_again(cupsd: Cupsd, cups_queue) -> None:
    name = cups_queue()
    cupsd.stuck_job(name)
    collector = make(cupsd, printers=[name], stuck_job_after=2, full_every=3600)
    try:
        first = collect(collector)[name]
        assert "stuck-queue" not in conditions(first)
        time.sleep(2.6)
        later = collect(collector)[name]
        assert conditions(later)["stuck-queue"] == "critical"
        assert later.oldest_job_age_s > first.oldest_job_age_s + 2
        assert (collector.stats["full"], collector.stats["polls"]) == (1, 1)
    finally:
        collector.close()


def test_job_held_by_its_owner_is_not_stuck(cupsd: Cupsd, cups_queue) -> None:
    name = cups_queue()
    cupsd.stuck_job(name, how="held")
    time.sleep(2.1)

    check = one(cupsd, name, stuck_job_after=1)

    assert (check.status, check.jobs_queued, check.oldest_job_age_s) == ("ok", 1, None)
    assert check.summary == f"{name} is ready (idle, 1 job waiting)"


def test_job_held_for_retry_is_stuck(cupsd: Cupsd, cups_queue) -> None:
    # A backend that fails (exit 1) under ErrorPolicy retry-job: the job is held with
    # resources-are-not-ready until the retry — it waits, it is not held by its owner.
    name = cups_queue(Cupsd.zwtest_uri("x", exit_code=1))
    job = cupsd.submit_job(name)
    deadline = time.monotonic() + 15
    while cupsd.job_state(job) != 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.1)

    check = one(cupsd, name, stuck_job_after=1)

    assert conditions(check).get("stuck-queue") == "critical"
    assert check.jobs_queued == 1


# -- conditions the printer reports (through the zwtest backend) ----------------------------------

@pytest.mark.parametrize(("reasons", "stop", "expected", "status"), [
    (["media-empty-error"], True, {"media-empty": "critical", "paused": "critical"}, "critical"),
    (["media-low-report"], False, {"media-low": "warning"}, "warning"),
    (["toner-low-report"], False, {"toner-low": "warning"}, "warning"),
    (["toner-empty-error"], True, {"toner-empty": "critical", "paused": "critical"}, "critical"),
    (["media-jam-error"], False, {"media-jam": "critical"}, "critical"),
    (["door-open-report"], False, {"door-open": "warning"}, "warning"),
    (["door-open-error"], True, {"door-open": "critical", "paused": "critical"}, "critical"),
    (["marker-supply-low-warning", "cups-insecure-filter-warning"], False,
     {"marker-supply-low": "warning", "other": "warning"}, "warning"),
])
def test_backend_reported_conditions(cupsd: Cupsd, cups_queue, reasons, stop, expected, status) -> None:
    name = cups_queue()
    cupsd.set_condition(name, reasons=reasons, stop=stop)

    check = one(cupsd, name)

    assert conditions(check) == expected
    assert check.status == status
    assert set(reasons) <= set(check.reasons)
    assert check.state == ("stopped" if stop else "idle")


def test_offline_shows_while_a_job_is_processing(cupsd: Cupsd, cups_queue) -> None:
    name = cups_queue()
    cupsd.set_condition(name, reasons=["offline-report"], stop=False, message="Printer not responding", sleep=30)

    check = one(cupsd, name)

    assert (check.state, check.status, check.jobs_queued) == ("processing", "critical", 1)
    assert conditions(check) == {"offline": "critical"}
    assert check.summary == f"{name} is offline (processing, 1 job waiting)"


def test_connecting_to_device_warns_only_when_it_lasts(cupsd: Cupsd, cups_queue) -> None:
    name = cups_queue()
    cupsd.set_condition(name, reasons=["connecting-to-device"], stop=False, sleep=30)
    collector = make(cupsd, printers=[name])
    try:
        check = collect(collector)[name]
        assert (check.status, conditions(check)) == ("ok", {"connecting-to-device": "ok"})
        collector.connecting_grace = 0.5  # instead of 30 s
        time.sleep(0.6)
        check = collect(collector)[name]
        assert (check.status, conditions(check)) == ("warning", {"connecting-to-device": "warning"})
    finally:
        collector.close()


def test_marker_levels_special_values_and_waste(cupsd: Cupsd, cups_queue) -> None:
    name = cups_queue()
    markers = [("Black", "toner", -1, "#000000"), ("Cyan", "toner", -2, "#00FFFF"),
               ("Magenta", "toner", -3, "#FF00FF"), ("Yellow", "toner", 60, "#FFFF00"),
               ("Waste", "waste-toner", 95, "none")]
    cupsd.set_condition(name, markers=markers, stop=False)

    check = one(cupsd, name)

    assert [(s.name, s.type, s.raw_level, s.level, s.state) for s in check.supplies] == [
        ("Black", "toner", -1, None, "unknown"), ("Cyan", "toner", -2, None, "unknown"),
        ("Magenta", "toner", -3, None, "remaining"), ("Yellow", "toner", 60, 60.0, "ok"),
        ("Waste", "waste-toner", 95, 95.0, "near-full")]
    assert check.supplies[0].color == "#000000" and check.supplies[4].color is None
    assert (check.status, conditions(check)) == ("warning", {"marker-waste-full": "warning"})

    cupsd.set_condition(name, markers=[("Black", "toner", 4, "#000000"), ("Waste", "waste-toner", 100, "none")],
                        stop=False)
    check = one(cupsd, name)
    assert [s.state for s in check.supplies] == ["low", "full"]
    assert conditions(check) == {"marker-waste-full": "critical", "toner-low": "warning"}
    assert one(cupsd, name, supply_low_pct=3).supplies[0].state == "ok"


def test_clear_condition_is_noticed_at_the_next_run(cupsd: Cupsd, cups_queue) -> None:
    name = cups_queue()
    collector = make(cupsd, printers=[name], full_every=3600)
    try:
        assert collect(collector)[name].status == "ok"
        cupsd.set_condition(name, reasons=["media-empty-error", "toner-low-report"],
                            markers=[("Black", "toner", 3, "#000000")], stop=True)
        cupsd.reject(name)
        check = collect(collector)[name]
        assert conditions(check) == {"media-empty": "critical", "paused": "critical", "not-accepting": "critical",
                                     "toner-low": "warning"}
        assert check.summary == f"{name} is out of paper and is stopped (stopped, 1 job waiting; 2 more problems)"

        cupsd.clear_condition(name, markers=[("Black", "toner", 100, "#000000")])

        check = collect(collector)[name]
        assert (check.status, check.conditions, check.jobs_queued) == ("ok", [], 0)
        assert check.supplies[0].level == 100
    finally:
        collector.close()


def test_runs_without_events_only_poll_cups(cupsd: Cupsd, cups_queue) -> None:
    names = [cups_queue(), cups_queue(), cups_queue()]
    collector = make(cupsd, printers=names, full_every=3600)
    try:
        collect(collector)
        full = collector.stats["full"]
        for _ in range(3):
            time.sleep(1.1)  # seconds pass: still nothing to read (CUPS's clock is no event)
            assert [c.status for c in collect(collector).values()] == ["ok"] * 3
        assert (collector.stats["full"], collector.stats["polls"]) == (full, 3)
        cupsd.disable(names[1])  # one event → one full read, at the very next run
        assert collect(collector)[names[1]].status == "critical"
        assert collector.stats["full"] == full + 1
        cupsd.restart()  # CUPS keeps the subscription across a restart; events still arrive
        collect(collector)
        cupsd.enable(names[1])
        assert collect(collector)[names[1]].status == "ok"
        assert collector.stats["connects"] == 1
    finally:
        collector.close()


def test_every_queue_when_none_configured_and_ignore(cupsd: Cupsd, cups_queue) -> None:
    a, b = cups_queue(), cups_queue()
    collector = make(cupsd, ignore=[b])
    try:
        checks = collect(collector)
        assert a in checks and b not in checks
    finally:
        collector.close()


def test_missing_configured_queue_is_critical(cupsd: Cupsd, cups_queue) -> None:
    a = cups_queue()
    collector = make(cupsd, printers=[a, "no-such-queue"])
    try:
        checks = collect(collector)
        assert checks[a].status == "ok"
        missing = checks["no-such-queue"]
        assert (missing.status, conditions(missing)) == ("critical", {"missing": "critical"})
    finally:
        collector.close()


# -- CUPS down, and which CUPS ------------------------------------------------------------------

def test_cups_down_is_a_critical_check_not_a_crash(cupsd: Cupsd, cups_queue) -> None:
    a, b = cups_queue(), cups_queue()
    configured, listing = make(cupsd, printers=[a, b]), make(cupsd)
    fresh = make(cupsd)
    try:
        assert collect(configured)[a].status == "ok" and a in collect(listing)
        cupsd.stop()

        down = collect(configured)
        assert set(down) == {a, b}
        for check in down.values():
            assert (check.status, conditions(check)) == ("critical", {"cups-unreachable": "critical"})
            assert cupsd.server in check.conditions[0].text
        assert {a, b} <= set(collect(listing))  # the queues it listed before stay, critical
        [server] = collect(fresh).values()  # never listed any: one check for the server
        assert (server.name, server.status) == (f"printer:{cupsd.server}", "critical")

        cupsd.start()
        assert [c.status for c in collect(configured).values()] == ["ok", "ok"]
    finally:
        for collector in (configured, listing, fresh):
            collector.close()


def test_failed_run_reports_unknown_per_printer(cupsd: Cupsd) -> None:
    collector = make(cupsd, printers=["Hall-1", "Hall-2"])
    checks = collector.failed("printer collector timed out after 10 s")
    assert [(c.name, c.status, c.error) for c in checks] == [
        ("printer:Hall-1", "unknown", "printer collector timed out after 10 s"),
        ("printer:Hall-2", "unknown", "printer collector timed out after 10 s")]
    encode(Report(device_id="kiosk-1", ts=time.time(), seq=1, interval_s=30, checks=checks))


def test_server_from_cups_server_environment(cupsd: Cupsd, cups_queue) -> None:
    """No cups_server: libcups' default, which reads CUPS_SERVER — in a new agent process, as
    in production; and in-process, in a thread that has not resolved its default yet (libcups
    keeps the default per thread once resolved; cups.setServer("") makes a thread re-read it)."""
    name = cups_queue()
    code = ("import json, msgspec; from pathlib import Path;"
            "from agent.collectors.printer import Options, PrinterCollector;"
            "from agent.collectors.base import AgentContext;"
            f"c = PrinterCollector(Options(printers=[{name!r}]), AgentContext('k', Path('/tmp')));"
            "print(msgspec.json.encode(c.collect()).decode()); c.close()")
    done = subprocess.run([sys.executable, "-c", code], env=cupsd.env(), cwd=ROOT, capture_output=True,
                          timeout=60, check=True)
    [check] = json.loads(done.stdout)
    assert (check["printer"], check["status"], check["state"]) == (name, "ok", "idle")

    old = os.environ.get("CUPS_SERVER")
    os.environ["CUPS_SERVER"] = cupsd.server
    try:
        result: list = []
        collector = make(None, printers=[name])
        thread = threading.Thread(target=lambda: result.append(collector.collect()))
        thread.start()
        thread.join(30)
        assert [c.status for c in result[0]] == ["ok"]
        collector.close()
    finally:
        if old is None:
            del os.environ["CUPS_SERVER"]
        else:
            os.environ["CUPS_SERVER"] = old


def test_configured_server_wins_over_environment(cupsd: Cupsd, cups_queue, monkeypatch) -> None:
    name = cups_queue()
    monkeypatch.setenv("CUPS_SERVER", "127.0.0.1:9")  # nothing listens there
    assert one(cupsd, name).status == "ok"
    dead = make(None, cups_server="127.0.0.1:9", printers=[name])
    assert conditions(collect(dead)[name]) == {"cups-unreachable": "critical"}


# -- a real IPP printer, asked directly -----------------------------------------------------------

def test_ipp_printer_supplies_and_media_from_the_printer(cupsd: Cupsd, cups_queue, ipp_printer) -> None:
    name = cups_queue(ipp_printer.uri.replace("ipp://", "ipp://kiosk:secret@"))
    collector = make(cupsd, printers=[name], ipp_every=1e-6)  # ask every run
    try:
        check = collect(collector)[name]
        assert (check.status, check.source, check.uri) == ("ok", "cups+ipp", ipp_printer.uri)
        assert [(s.name, s.type, s.level, s.state) for s in check.supplies] == [
            ("Toner Waste Tank", "waste-toner", 25.0, "ok"), ("Black Toner", "toner", 75.0, "ok")]
        assert check.media_ready == ["na_letter_8.5x11in", "na_number-10_4.125x9.5in"]

        ipp_printer.set_supplies([25, 3])
        check = collect(collector)[name]
        assert (check.status, conditions(check)) == ("warning", {"toner-low": "warning"})
        assert check.conditions[0].reason == "toner-low-report"
        assert check.supplies[1].state == "low" and "toner-low-report" in check.reasons

        ipp_printer.set_supplies([100, 75])
        assert conditions(collect(collector)[name]) == {"marker-waste-full": "critical"}
        ipp_printer.set_supplies([25, 75])

        ipp_printer.set_media(None)
        check = collect(collector)[name]
        assert check.media_ready == []
        assert (check.status, conditions(check)) == ("critical", {"media-empty": "critical"})

        ipp_printer.stop()
        check = collect(collector)[name]
        assert conditions(check)["offline"] == "critical"
        assert "not answering" in check.summary or "is offline" in check.summary
    finally:
        collector.close()


def test_ipp_off_reads_cups_only(cupsd: Cupsd, cups_queue, ipp_printer) -> None:
    name = cups_queue(ipp_printer.uri)
    ipp_printer.set_supplies([25, 3])

    check = one(cupsd, name, ipp=False)

    assert (check.status, check.source, check.supplies, check.media_ready) == ("ok", "cups", [], None)
