"""Pure tests of what printer facts mean: reasons, supplies, jobs, summaries, options."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.collectors.ipp_query import IppError, decode_response, encode_request, http_target, printer_uri_of
from agent.collectors.printer import Options, parse_server
from agent.config import parse_config
from agent.errors import ConfigError
from agent.printer_state import (
    QueueFacts,
    evaluate,
    missing_check,
    normalise_supply,
    parse_printer_supply,
    reason_condition,
    split_reason,
    strip_credentials,
    summarise,
    supplies_from_markers,
    supplies_from_printer_supply,
    supply_severity,
    unreachable_check,
    waiting_jobs,
)
from protocol import PrinterCondition, Report, decode, encode

NOW = 1_800_000_000.0


def encodes(*checks) -> None:
    payload = encode(Report(device_id="kiosk-1", ts=NOW, seq=1, interval_s=30, checks=list(checks)))
    assert decode("zw/v1/dev/kiosk-1/report", payload).message.checks == list(checks)


# -- reasons ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("keyword", "code", "severity"), [
    ("media-empty-error", "media-empty", "critical"),
    ("media-empty", "media-empty", "critical"),  # IPP: no suffix means error
    ("media-empty-report", "media-empty", "warning"),
    ("media-needed-error", "media-empty", "critical"),
    ("media-needed-warning", "media-empty", "critical"),  # ippeveprinter: a job waits for paper
    ("media-low-report", "media-low", "warning"),
    ("media-low-error", "media-low", "warning"),
    ("media-jam-error", "media-jam", "critical"),
    ("media-jam-warning", "media-jam", "warning"),
    ("door-open-error", "door-open", "critical"),
    ("door-open-report", "door-open", "warning"),
    ("cover-open-error", "door-open", "critical"),
    ("toner-low-report", "toner-low", "warning"),
    ("toner-low-warning", "toner-low", "warning"),
    ("toner-empty-error", "toner-empty", "critical"),
    ("toner-empty-warning", "toner-empty", "warning"),
    ("marker-supply-low-report", "marker-supply-low", "warning"),
    ("marker-supply-empty-error", "marker-supply-empty", "critical"),
    ("marker-waste-almost-full-warning", "marker-waste-full", "warning"),
    ("marker-waste-full-error", "marker-waste-full", "critical"),
    ("offline-report", "offline", "critical"),
    ("offline", "offline", "critical"),
    ("paused", "paused", "critical"),
    ("connecting-to-device", "connecting-to-device", "warning"),
    ("cups-missing-filter-warning", "other", "warning"),
    ("cups-ipp-conformance-failure-report", "other", "warning"),
    ("input-tray-missing-error", "other", "critical"),
    ("spool-area-full", "other", "warning"),
    ("com.vendor-fuser-hot-report", "other", "warning"),
])
def test_reason_maps_to_condition_and_severity(keyword, code, severity) -> None:
    condition = reason_condition(keyword)
    assert (condition.code, condition.severity, condition.reason) == (code, severity, keyword)
    assert condition.text


@pytest.mark.parametrize("keyword", ["none", "cups-waiting-for-job-completed"])
def test_benign_reasons_are_ignored(keyword) -> None:
    assert reason_condition(keyword) is None


def test_split_reason() -> None:
    assert split_reason("media-empty-error") == ("media-empty", "error")
    assert split_reason("offline-report") == ("offline", "report")
    assert split_reason("paused") == ("paused", "")


def test_connecting_to_device_is_a_warning_only_when_it_lasts() -> None:
    assert reason_condition("connecting-to-device", persisted_s=2).severity == "ok"
    assert reason_condition("connecting-to-device", persisted_s=31).severity == "warning"
    assert reason_condition("connecting-to-device", persisted_s=2, connecting_grace=1).severity == "warning"


# -- supplies --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "level", "state"), [
    (-1, None, "unknown"), (-2, None, "unknown"), (-3, None, "remaining"), (-7, None, "unknown"),
    (0, 0.0, "empty"), (5, 5.0, "low"), (10, 10.0, "low"), (11, 11.0, "ok"), (100, 100.0, "ok"),
    (101, None, "unknown"), (255, None, "unknown"), (None, None, "unknown"), ("42", 42.0, "ok"),
    ("abc", None, "unknown"), (True, None, "unknown"),
])
def test_consumable_levels(raw, level, state) -> None:
    supply = normalise_supply("Black", "toner", raw)
    assert (supply.level, supply.state) == (level, state)


def test_minus_three_is_remaining_not_low() -> None:
    supply = normalise_supply("Black", "toner", -3, low_pct=50)
    assert supply.state == "remaining" and supply_severity(supply) == "ok"


@pytest.mark.parametrize(("raw", "state", "severity"), [
    (0, "ok", "ok"), (50, "ok", "ok"), (89, "ok", "ok"), (90, "near-full", "warning"),
    (99, "near-full", "warning"), (100, "full", "critical"), (-3, "remaining", "ok"), (-2, "unknown", "ok"),
])
def test_waste_receptacle_counts_fullness(raw, state, severity) -> None:
    supply = normalise_supply("Waste", "waste-toner", raw)
    assert (supply.state, supply_severity(supply)) == (state, severity)
    assert supply_severity(normalise_supply("Waste", "wasteInk", raw)) == severity  # IPP spelling


def test_capacity_scales_and_overfill_is_full() -> None:
    assert normalise_supply("Black", "toner", 300, max_capacity=12000).level == 2.5
    assert normalise_supply("Black", "toner", 15000, max_capacity=12000).level == 100.0
    assert normalise_supply("Black", "toner", 50, max_capacity=-2).level == 50.0  # unknown max: percent
    assert normalise_supply("Drum", "opc", 5000, max_capacity=-2, unit="impressions").level is None
    assert normalise_supply("Drum", "opc", 50, max_capacity=-2, unit="impressions").state == "unknown"


def test_low_threshold_from_printer_or_config() -> None:
    assert normalise_supply("Black", "toner", 15, low_pct=20).state == "low"
    assert normalise_supply("Black", "toner", 5, low_pct=0).state == "ok"
    assert normalise_supply("Black", "toner", 0, low_pct=0).state == "empty"
    markers = {"marker-names": ["Black"], "marker-types": ["toner"], "marker-levels": [15],
               "marker-low-levels": [20]}
    assert supplies_from_markers(markers)[0].state == "low"
    assert supplies_from_markers(markers, low_pct=5)[0].state == "ok"


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(st.integers(), st.none(), st.text(max_size=8)),
       capacity=st.one_of(st.integers(), st.none()),
       kind=st.one_of(st.text(max_size=80), st.sampled_from(["toner", "waste-toner", "wasteToner", "ink"])),
       low=st.one_of(st.none(), st.floats(allow_nan=True)), name=st.text(max_size=1100))
def test_any_level_normalises_into_range_and_encodes(raw, capacity, kind, low, name) -> None:
    supply = normalise_supply(name, kind, raw, max_capacity=capacity, low_pct=low)
    assert supply.level is None or 0 <= supply.level <= 100
    assert supply.state in {"ok", "low", "empty", "near-full", "full", "remaining", "unknown"}
    if supply.state == "remaining":
        assert supply.level is None and supply_severity(supply) == "ok"
    if supply.type.startswith("waste"):
        assert supply.state not in ("low", "empty")
    encodes(evaluate(QueueFacts(name="q", state=3, supplies=[supply])))


@settings(max_examples=200, deadline=None)
@given(raw=st.integers(min_value=0, max_value=10**6), capacity=st.integers(min_value=1, max_value=10**5))
def test_level_above_capacity_is_full_never_more(raw, capacity) -> None:
    supply = normalise_supply("Black", "toner", raw, max_capacity=capacity)
    assert supply.level == round(min(100.0, raw * 100 / capacity), 1)
    waste = normalise_supply("Waste", "waste-toner", raw, max_capacity=capacity)
    assert supply_severity(waste) == ("critical" if raw >= capacity else
                                      "warning" if waste.level >= 90 else "ok")


def test_markers_of_different_lengths_align_by_index() -> None:
    supplies = supplies_from_markers({"marker-names": ["Black", "Cyan", "Waste"], "marker-levels": [40, -2],
                                      "marker-types": ["toner", "toner", "waste-toner"],
                                      "marker-colors": ["#000000", "#00FFFF", "none"]})
    assert [(s.name, s.raw_level, s.state, s.color) for s in supplies] == [
        ("Black", 40, "ok", "#000000"), ("Cyan", -2, "unknown", "#00FFFF"), ("Waste", None, "unknown", None)]
    assert supplies_from_markers({"marker-levels": 70})[0].name == "Supply 1"  # a scalar from pycups


def test_printer_supply_text_is_parsed() -> None:
    assert parse_printer_supply(b"type=toner;maxcapacity=100;level=25;index=1;markercolor=#000000;") == {
        "type": "toner", "maxcapacity": "100", "level": "25", "index": "1", "markercolor": "#000000"}
    supplies = supplies_from_printer_supply([
        "index=1;class=receptacleThatIsFilled;type=wasteToner;unit=percent;maxcapacity=100;level=95;"
        "colorantname=unknown;",
        "index=2;class=supplyThatIsConsumed;type=toner;unit=percent;maxcapacity=100;level=3;colorantname=black;",
        "index=3;class=supplyThatIsConsumed;type=toner;unit=percent;maxcapacity=100;level=-3;colorantname=cyan;",
        "garbage",
    ], ["Waste Toner", "Black Toner"])
    assert [(s.name, s.type, s.level, s.state) for s in supplies] == [
        ("Waste Toner", "waste-toner", 95.0, "near-full"), ("Black Toner", "toner", 3.0, "low"),
        ("cyan toner", "toner", None, "remaining"), ("Supply 4", "other", None, "unknown")]


# -- jobs ------------------------------------------------------------------------------------------

def job(state, age, reasons="none"):
    return {"job-state": state, "time-at-creation": int(NOW - age), "job-state-reasons": reasons}


def test_waiting_jobs_count_what_waits_to_print() -> None:
    jobs = [job(3, 400), job(5, 900, "job-printing"), job(4, 1000, "job-hold-until-specified"),
            job(4, 600, ["resources-are-not-ready"]), job(9, 5000, "job-completed-successfully")]
    assert waiting_jobs(jobs, NOW) == (4, 600)
    assert waiting_jobs([job(4, 1000, "job-hold-until-specified")], NOW) == (1, None)
    assert waiting_jobs([job(5, 1000)], NOW) == (1, None)
    assert waiting_jobs([job(3, -50)], NOW) == (1, 0)  # a clock step backwards is not negative
    assert waiting_jobs([], NOW) == (0, None)


# -- checks and summaries --------------------------------------------------------------------------

def test_summary_in_plain_words() -> None:
    check = evaluate(QueueFacts(name="Hall-3-HP", state=5, accepting=True, jobs_queued=2,
                                reasons=["media-empty-error", "paused"]))
    assert check.summary == "Hall-3-HP is out of paper and is stopped (stopped, 2 jobs waiting)"
    assert check.status == "critical"
    assert summarise("Hall-3-HP", "idle", [], 0) == "Hall-3-HP is ready (idle, no jobs waiting)"
    assert summarise("Hall-3-HP", "stopped", [PrinterCondition(code="media-empty", severity="critical",
                                                               text="out of paper")], 2) == \
        "Hall-3-HP is out of paper (stopped, 2 jobs waiting)"


def test_derived_conditions() -> None:
    check = evaluate(QueueFacts(name="q", state=5, accepting=False, message="tray removed", jobs_queued=1,
                                oldest_job_age_s=301, media_ready=[]), stuck_job_after=300)
    codes = {c.code: c for c in check.conditions}
    assert set(codes) == {"stopped", "not-accepting", "stuck-queue", "media-empty"}
    assert all(c.severity == "critical" for c in check.conditions)
    assert codes["stopped"].text == "queue stopped: tray removed"
    ok = evaluate(QueueFacts(name="q", state=3, accepting=True, oldest_job_age_s=299), stuck_job_after=300)
    assert ok.status == "ok" and ok.conditions == []
    encodes(check, ok)


def test_one_condition_per_code_worst_wins() -> None:
    supplies = [normalise_supply("Black", "toner", 0)]
    check = evaluate(QueueFacts(name="q", state=3, reasons=["toner-low-report"], supplies=supplies))
    assert [(c.code, c.severity) for c in check.conditions] == [("toner-empty", "critical"), ("toner-low", "warning")]
    check = evaluate(QueueFacts(name="q", state=3, reasons=["toner-low-report"],
                                supplies=[normalise_supply("Black", "toner", 5)]))
    assert [(c.code, c.reason) for c in check.conditions] == [("toner-low", "toner-low-report")]


def test_unreachable_and_missing_checks_encode() -> None:
    down = unreachable_check("Hall-1", "127.0.0.1:631", "failed to connect to server")
    assert down.status == "critical" and down.conditions[0].code == "cups-unreachable"
    missing = missing_check("Hall-9", "127.0.0.1:631")
    assert missing.status == "critical" and missing.conditions[0].code == "missing"
    long = evaluate(QueueFacts(name="x" * 300, state=4, reasons=["y" * 200 + "-error"], message="m" * 2000))
    encodes(down, missing, long)


@pytest.mark.parametrize(("uri", "clean"), [
    ("ipp://user:secret@printer.local:631/ipp/print", "ipp://printer.local:631/ipp/print"),
    ("ipps://admin@10.0.0.5/ipp/print", "ipps://10.0.0.5/ipp/print"),
    ("smb://DOM;user:p%40ss@server/share", "smb://server/share"),
    ("socket://10.0.0.9:9100", "socket://10.0.0.9:9100"),
    ("ipp://h/ipp?password=hunter2&x=1", "ipp://h/ipp?password=***&x=1"),
    ("file:///dev/null", "file:///dev/null"),
])
def test_credentials_are_stripped_from_uris(uri, clean) -> None:
    assert strip_credentials(uri) == clean
    assert "secret" not in evaluate(QueueFacts(name="q", uri=uri)).uri


# -- options ---------------------------------------------------------------------------------------

def config(table: str):
    return parse_config(f'[agent]\ndevice_id = "kiosk-1"\n[collectors.printer]\n{table}\n')


def test_options_from_toml() -> None:
    options = config('cups_server = "10.1.2.3:6310"\nprinters = ["Hall-1"]\nstuck_job_after = 120\n'
                     'supply_low_pct = 15\nipp = false').collector_options["printer"]
    assert isinstance(options, Options)
    assert (options.cups_server, options.printers, options.stuck_job_after, options.supply_low_pct,
            options.ipp, options.every) == ("10.1.2.3:6310", ["Hall-1"], 120, 15, False, 1.0)
    defaults = config("").collector_options["printer"]
    assert (defaults.cups_server, defaults.printers, defaults.ignore, defaults.stuck_job_after,
            defaults.supply_low_pct, defaults.ipp) == (None, [], [], 300.0, None, True)


@pytest.mark.parametrize(("table", "key", "words"), [
    ('cups_server = "host:99999"', "collectors.printer", "cups_server"),
    ('printers = ["A"]\nignore = ["A"]', "collectors.printer", "both printers and ignore"),
    ("supply_low_pct = 120", "collectors.printer.supply_low_pct", "<= 100"),
    ("stuck_job_after = 0", "collectors.printer.stuck_job_after", "> 0"),
    ("printer = []", "collectors.printer.printer", "unknown key"),
])
def test_bad_options_name_the_key(table, key, words) -> None:
    with pytest.raises(ConfigError) as info:
        config(table)
    assert info.value.key == key and words in info.value.problem


def test_parse_server() -> None:
    assert parse_server("cups.example") == ("cups.example", 631)
    assert parse_server("127.0.0.1:6310") == ("127.0.0.1", 6310)
    assert parse_server("[::1]:631") == ("::1", 631)
    assert parse_server("/run/cups/cups.sock") == ("/run/cups/cups.sock", 0)


# -- the IPP encoder/decoder -----------------------------------------------------------------------

def attr(tag: int, name: str, value: bytes) -> bytes:
    return struct.pack(">BH", tag, len(name)) + name.encode() + struct.pack(">H", len(value)) + value


def test_ipp_request_and_response_codec() -> None:
    request = encode_request("ipp://127.0.0.1:8631/ipp/print", ["printer-supply", "media-ready"])
    assert request[:4] == b"\x01\x01\x00\x0b" and b"printer-uri" in request and request.endswith(b"\x03")
    response = (b"\x02\x00\x00\x00\x00\x00\x00\x01" + b"\x01" + attr(0x47, "attributes-charset", b"utf-8")
                + b"\x04" + attr(0x23, "printer-state", struct.pack(">i", 3))
                + attr(0x44, "printer-state-reasons", b"toner-low-report") + attr(0x44, "", b"media-low-report")
                + attr(0x30, "printer-supply", b"type=toner;level=5;") + attr(0x22, "printer-is-accepting-jobs", b"\1")
                + attr(0x34, "media-col-ready", b"") + attr(0x4A, "", b"media-size") + attr(0x34, "", b"")
                + attr(0x37, "", b"") + attr(0x37, "", b"")
                + attr(0x35, "printer-info", b"\x00\x02en\x00\x02hi") + attr(0x13, "media-ready", b"")
                + b"\x03")
    status, attrs = decode_response(response)
    assert status == 0
    assert attrs == {"printer-state": [3], "printer-state-reasons": ["toner-low-report", "media-low-report"],
                     "printer-supply": ["type=toner;level=5;"], "printer-is-accepting-jobs": [True],
                     "printer-info": ["hi"], "media-ready": []}
    assert http_target("ipps://printer:8443/ipp/print") == ("https", "printer", 8443, "/ipp/print")
    assert http_target("ipp://printer") == ("http", "printer", 631, "/ipp/print")
    assert printer_uri_of("ipp://u:p@[fe80::1]:631/ipp/print") == "ipp://[fe80::1]:631/ipp/print"


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_ipp_decoder_raises_only_ipp_error_on_garbage(data) -> None:
    with contextlib.suppress(IppError):
        decode_response(data)
