"""Smoke tests of the ippeveprinter fixture: a real IPP Everywhere printer on 127.0.0.1, asked over
IPP, its supplies and media changed through its own web forms, a job printed on it."""

from __future__ import annotations

import asyncio

import pytest

from tests.peers._util import is_root
from tests.peers.ippeveprinter import (
    IDLE,
    JOB_COMPLETED,
    JOB_PROCESSING,
    PROCESSING,
    TEST_PDF,
    DnssdInfra,
    IppError,
    IppPrinter,
    as_list,
)

pytestmark = [pytest.mark.peer, pytest.mark.timeout(90)]


def test_fresh_printer_is_idle_and_accepting(ipp_printer: IppPrinter) -> None:
    attrs = ipp_printer.attributes()

    assert attrs["printer-state"] == IDLE
    assert attrs["printer-is-accepting-jobs"] is True
    assert as_list(attrs["printer-state-reasons"]) == ["none"]
    assert attrs["printer-name"] == ipp_printer.name
    assert attrs["printer-make-and-model"] == "Zonewatch Test Laser"
    assert f"ipp://localhost:{ipp_printer.port}/ipp/print" in attrs["printer-uri-supported"]
    assert "ipp-everywhere" in as_list(attrs["ipp-features-supported"])
    assert "application/pdf" in attrs["document-format-supported"]
    # Supplies exist only as printer-supply octetStrings; there is no marker-* attribute at all.
    assert not [name for name in attrs if name.startswith("marker-")]
    assert [(s["description"], s["type"], s["level"]) for s in ipp_printer.supplies()] == [
        ("Toner Waste Tank", "wasteToner", 25), ("Black Toner", "toner", 75)]
    assert attrs["media-ready"] == ["na_letter_8.5x11in", "na_number-10_4.125x9.5in"]
    assert set(ipp_printer.attributes(["printer-state", "no-such-attribute"])) == {"printer-state"}


def test_low_toner_is_reported(ipp_printer: IppPrinter) -> None:
    ipp_printer.set_supplies([25, 3])

    attrs = ipp_printer.attributes()
    black = ipp_printer.supplies()[1]
    assert (black["colorantname"], black["level"]) == ("black", 3)
    assert b"level=3;colorantname=black;" in as_list(attrs["printer-supply"])[1]
    assert as_list(attrs["printer-state-reasons"]) == ["toner-low-report"]
    assert attrs["printer-state"] == IDLE  # a warning only: still idle and accepting
    assert attrs["printer-is-accepting-jobs"] is True


@pytest.mark.parametrize(("levels", "reasons"), [
    ([25, 10], ["none"]),
    ([25, 9], ["toner-low-report"]),
    ([25, 1], ["toner-low-report"]),
    ([25, 0], ["toner-empty-report"]),
    ([90, 75], ["none"]),
    ([91, 75], ["marker-waste-almost-full-report"]),
    ([99, 75], ["marker-waste-almost-full-report"]),
    ([100, 0], ["marker-waste-full-report", "toner-empty-report"]),
    ([25, -2], ["toner-low-report"]),  # quirk: 'unknown' (-2) is below 10, so it counts as low
])
def test_supply_thresholds(ipp_printer: IppPrinter, levels: list[int], reasons: list[str]) -> None:
    ipp_printer.set_supplies(levels)

    assert [s["level"] for s in ipp_printer.supplies()] == levels
    assert ipp_printer.state_reasons() == reasons


def test_set_supplies_needs_every_supply(ipp_printer: IppPrinter) -> None:
    with pytest.raises(ValueError, match="has 2 supplies"):
        ipp_printer.set_supplies([3])
    assert [s["level"] for s in ipp_printer.supplies()] == [25, 75]


def test_color_printer_reports_one_reason_for_all_colorants(ipp_printer_factory) -> None:
    printer = ipp_printer_factory(color=True)
    assert [(s["description"], s["level"]) for s in printer.supplies()] == [
        ("Ink Waste Tank", 25), ("Black Ink", 75), ("Cyan Ink", 50), ("Magenta Ink", 33),
        ("Yellow Ink", 67)]
    assert printer.attributes(["color-supported"]) == {"color-supported": True}

    printer.set_supplies([25, 75, 0, 5, 67])

    assert printer.state_reasons() == ["toner-empty-report", "toner-low-report"]
    # Once the form was used, the ink printer's supplies read as toner ones (ippeveprinter quirk).
    assert {s["type"] for s in printer.supplies()[1:]} == {"toner"}


def test_no_loaded_media_empties_media_ready(ipp_printer: IppPrinter) -> None:
    ipp_printer.set_media(None)

    attrs = ipp_printer.attributes()
    assert attrs["media-ready"] is None  # out-of-band no-value
    assert attrs["media-col-ready"] is None
    assert as_list(attrs["printer-state-reasons"]) == ["media-empty-report"]
    assert attrs["printer-state"] == IDLE
    trays = ipp_printer.input_trays()
    assert (trays["main"]["level"], trays["by-pass-tray"]["level"]) == (0, 0)
    with pytest.raises(IppError, match="cannot load media"):
        ipp_printer.set_media({"main": ("iso_a4_210x297mm", "stationery", 250)})


def test_low_paper_and_tray_contents(ipp_printer: IppPrinter) -> None:
    ipp_printer.set_media({"main": ("iso_a4_210x297mm", "stationery", 5), "by-pass-tray": None})

    attrs = ipp_printer.attributes()
    assert attrs["media-ready"] == "iso_a4_210x297mm"  # one value: a scalar, see as_list
    assert attrs["media-col-ready"]["media-source"] == "main"
    assert attrs["media-col-ready"]["media-size"] == {"x-dimension": 21000, "y-dimension": 29700}
    # Two trays: by-pass-tray empty (0 sheets) and main low (5 sheets), both reported.
    assert as_list(attrs["printer-state-reasons"]) == ["media-empty-report", "media-low-report"]

    ipp_printer.set_media({"main": ("iso_a4_210x297mm", "stationery", 250),
                           "by-pass-tray": ("iso_dl_110x220mm", "envelope", -2)})
    assert ipp_printer.state_reasons() == ["none"]
    assert ipp_printer.attributes(["media-ready"])["media-ready"] == ["iso_a4_210x297mm",
                                                                      "iso_dl_110x220mm"]


def test_print_job_completes(ipp_printer: IppPrinter) -> None:
    job_id = ipp_printer.print_job(TEST_PDF, "application/pdf", job_name="smoke")

    job = ipp_printer.wait_job(job_id)
    assert job["job-state"] == JOB_COMPLETED
    assert job["job-state-reasons"] == "job-completed-successfully"
    assert job["job-name"] == "smoke"
    # The job's document really went through the printer's print command (cat) into its spool.
    assert (ipp_printer.spool / f"{job_id}-smoke.prn").read_bytes() == TEST_PDF
    attrs = ipp_printer.attributes(["printer-state", "printer-state-reasons", "queued-job-count"])
    assert attrs == {"printer-state": IDLE, "printer-state-reasons": "none", "queued-job-count": 0}


def test_job_waits_for_paper_with_warning_reasons(ipp_printer: IppPrinter) -> None:
    # main is loaded with A4 but has 0 sheets left; by-pass-tray keeps its envelopes (level unknown).
    ipp_printer.set_media({"main": ("iso_a4_210x297mm", "stationery", 0)})
    assert ipp_printer.state_reasons() == ["media-empty-report"]
    assert "iso_a4_210x297mm" in ipp_printer.attributes(["media-ready"])["media-ready"]

    job_id = ipp_printer.print_job()
    ipp_printer.wait_job(job_id, {JOB_PROCESSING}, timeout=10)
    # While processing, the same conditions carry '-warning' instead of '-report'.
    attrs = ipp_printer.attributes(["printer-state", "printer-state-reasons"])
    assert attrs["printer-state"] == PROCESSING
    assert as_list(attrs["printer-state-reasons"]) == ["media-empty-warning", "media-needed-warning"]
    assert ipp_printer.job_attributes(job_id)["job-state"] == JOB_PROCESSING

    ipp_printer.set_media({"main": ("iso_a4_210x297mm", "stationery", 250)})
    assert ipp_printer.wait_job(job_id, timeout=15)["job-state"] == JOB_COMPLETED
    assert ipp_printer.state_reasons() == ["none"]


def test_pyipp_reads_the_same_printer(ipp_printer: IppPrinter) -> None:
    """What the agent's client library sees: state and reasons, but no markers for this printer
    (pyipp builds Printer.markers from CUPS marker-* attributes only); printer-supply is there
    raw, as str, through execute()."""
    pyipp = pytest.importorskip("pyipp")
    from pyipp.enums import IppOperation

    ipp_printer.set_supplies([25, 3])

    async def read():
        async with pyipp.IPP(ipp_printer.uri) as ipp:
            printer = await ipp.printer()
            raw = await ipp.execute(IppOperation.GET_PRINTER_ATTRIBUTES, {
                "operation-attributes-tag": {"requested-attributes": [
                    "printer-supply", "printer-supply-description", "media-ready"]}})
            return printer, raw["printers"][0]

    printer, raw = asyncio.run(read())
    assert printer.state.printer_state == "idle"
    assert printer.state.reasons == "toner-low-report"
    assert printer.markers == []
    assert raw["printer-supply"][1].endswith("level=3;colorantname=black;")
    assert raw["printer-supply-description"] == ["Toner Waste Tank", "Black Toner"]


def test_dnssd_is_private_when_root(ipp_dnssd: DnssdInfra) -> None:
    if not is_root():
        assert ipp_dnssd.mode == "system"
        return
    assert ipp_dnssd.mode == "private"
    assert ipp_dnssd.bus_address.startswith("unix:path=/")
    assert "/run/dbus" not in ipp_dnssd.bus_address
    assert ipp_dnssd.env() == {"DBUS_SYSTEM_BUS_ADDRESS": ipp_dnssd.bus_address}
    log = ipp_dnssd.avahi_log.read_text()
    assert "Server startup complete" in log
    assert "established" not in log  # publishing disabled: no service was ever announced
