"""The decoder's contract, example by example: what it accepts, drops and refuses, and how it says so."""

from __future__ import annotations

import json

import pytest

from protocol import (
    CURRENT_VERSION,
    ClockCheck,
    Codec,
    Presence,
    ProtocolError,
    Report,
    decode,
    encode,
)
from protocol.examples import DEVICE, examples

REPORT_TOPIC = f"zw/v1/dev/{DEVICE}/report"


def report_json(**changes) -> dict:
    raw = json.loads(encode(examples()["report"]))
    raw.update(changes)
    return raw


def refused(payload, topic=REPORT_TOPIC, **kw) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode(topic, payload if isinstance(payload, bytes | str) else json.dumps(payload), **kw)
    return info.value


def test_example_report_decodes_to_typed_checks():
    decoded = decode(REPORT_TOPIC, encode(examples()["report"]))
    assert isinstance(decoded.message, Report)
    assert decoded.topic.kind == "report" and decoded.topic.device_id == DEVICE
    kinds = [c.__struct_config__.tag for c in decoded.message.checks]
    assert kinds == ["network", "network", "printer", "system", "kiosk", "content", "clock"]
    printer = decoded.message.checks[2]
    assert printer.conditions[0].code == "media-empty" and printer.supplies[1].raw_level == -3


def test_error_names_topic_field_and_reason():
    err = refused(report_json(seq="many"))
    assert (err.topic, err.field) == (REPORT_TOPIC, "seq")
    assert "int" in err.reason and "str" in err.reason
    assert REPORT_TOPIC in str(err) and "seq" in str(err)


def test_nested_field_path_is_named():
    raw = report_json()
    raw["checks"][2]["supplies"][0]["level"] = 140
    err = refused(raw)
    assert err.field == "checks[2].supplies[0].level"
    assert "<= 100" in err.reason


def test_missing_field_is_named():
    raw = report_json()
    del raw["seq"]
    err = refused(raw)
    assert err.field == "seq" and err.reason == "required field is missing"


def test_oversize_payload_refused_before_parsing():
    payload = b"{" + b" " * (64 * 1024) + b"}"
    err = refused(payload)
    assert err.field is None and "64" in str(err) and "limit" in err.reason
    assert decode(REPORT_TOPIC, encode(examples()["report"]), max_size=100_000)
    assert "limit" in refused(encode(examples()["report"]), max_size=200).reason


def test_device_id_mismatch_refused():
    err = refused(report_json(device_id="hall-04-kiosk-9"))
    assert err.field == "device_id" and "hall-04-kiosk-9" in err.reason and DEVICE in err.reason


def test_unknown_check_kind_is_dropped_and_listed():
    raw = report_json()
    raw["checks"].append({"kind": "scanner", "name": "scanner:1", "status": "ok"})
    decoded = decode(REPORT_TOPIC, json.dumps(raw))
    assert len(decoded.message.checks) == 7
    assert decoded.dropped == ("checks[7] ('scanner:1'): unknown check kind 'scanner'",)


def test_future_version_keeps_what_it_understands():
    raw = report_json(v=CURRENT_VERSION + 1, battery={"level": 80})
    raw["checks"][6]["drift_ppm"] = 3.5
    raw["checks"][5]["version"] = {"major": 2}  # changed shape in the future version
    decoded = decode(REPORT_TOPIC, json.dumps(raw))
    assert decoded.message.v == CURRENT_VERSION + 1
    assert [c.name for c in decoded.message.checks][-1] == "clock"
    assert "content" not in [c.name for c in decoded.message.checks]
    assert any(d.startswith("battery:") for d in decoded.dropped)
    assert any(d.startswith("checks[6] ('clock').drift_ppm") for d in decoded.dropped)
    assert any(d.startswith("checks[5] ('content'): not understood") for d in decoded.dropped)


def test_current_version_invalid_check_is_an_error_not_a_drop():
    raw = report_json()
    raw["checks"][6]["status"] = "fine"
    assert refused(raw).field == "checks[6].status"


@pytest.mark.parametrize("v", [0, -1, "1", 1.5, None, True])
def test_bad_schema_version_refused(v):
    assert refused(report_json(v=v)).field == "v"


@pytest.mark.parametrize("payload,reason", [
    (b"", "not valid JSON"), (b"{", "not valid JSON"), (b"\xff\xfe", "not valid JSON"),
    (b"[1,2]", "JSON object"), (b'"hello"', "JSON object"), (b"null", "JSON object"),
])
def test_not_an_object_refused(payload, reason):
    assert reason in refused(payload).reason


def test_presence_and_last_will():
    will = Presence(device_id=DEVICE, ts=1.0, online=False, reason="connection lost")
    decoded = decode(f"zw/v1/dev/{DEVICE}/presence", encode(will))
    assert decoded.message == will


def test_encode_validates_what_goes_out():
    with pytest.raises(ProtocolError) as info:
        encode(Presence(device_id="bad/id", ts=1.0, online=True))
    assert info.value.field == "device_id"
    with pytest.raises(ProtocolError):
        encode(Report(device_id=DEVICE, ts=1.0, seq=-1, interval_s=30, checks=[]))
    with pytest.raises(ProtocolError) as info:
        Codec(max_size=100).encode(examples()["report"])
    assert "limit" in info.value.reason


def test_checks_omit_defaults_on_the_wire():
    payload = encode(Report(device_id=DEVICE, ts=1.0, seq=1, interval_s=30,
                            checks=[ClockCheck(name="clock", status="ok")]))
    assert json.loads(payload)["checks"] == [{"kind": "clock", "name": "clock", "status": "ok"}]


def test_commands_decode_on_command_topics():
    for kind in ("desired", "run"):
        decoded = decode(f"zw/v1/cmd/{DEVICE}/{kind}", encode(examples()[kind]))
        assert decoded.topic.direction == "cmd" and decoded.message == examples()[kind]
    err = refused(encode(examples()["run"]), topic=f"zw/v1/dev/{DEVICE}/run")
    assert "unknown dev message kind 'run'" in err.reason
