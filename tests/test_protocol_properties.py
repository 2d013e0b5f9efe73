"""Property tests: every model round-trips, and hostile input only ever raises ProtocolError."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import MESSAGE_TYPES, ProtocolError, Topics, decode, encode
from protocol.examples import examples
from tests.strategies import from_model, json_values

TOPICS = Topics()
KINDS = sorted(MESSAGE_TYPES)
relaxed = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)


def topic_for(kind: str, device_id: str) -> str:
    return TOPICS.device(device_id, kind) if kind in ("presence", "report", "ack") else TOPICS.command(device_id, kind)


def decode_or_protocol_error(topic: str, payload: bytes | str):
    """Decode; anything but success or ProtocolError fails the test."""
    try:
        return decode(topic, payload)
    except ProtocolError as exc:
        assert str(exc), "a ProtocolError must say what is wrong"
        return None


@pytest.mark.parametrize("kind", KINDS)
@relaxed
@given(data=st.data())
def test_every_model_round_trips(kind, data):
    message = data.draw(from_model(MESSAGE_TYPES[kind]))
    payload = encode(message)
    decoded = decode(topic_for(kind, message.device_id), payload)
    assert decoded.message == message
    assert decoded.dropped == ()


@relaxed
@given(payload=st.binary(max_size=300), kind=st.sampled_from(KINDS))
def test_random_bytes_raise_only_protocol_error(payload, kind):
    decode_or_protocol_error(topic_for(kind, "k1"), payload)


@pytest.mark.parametrize("kind", KINDS)
@relaxed
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_truncated_json_is_refused(kind, cut):
    full = encode(examples()[kind])
    cut = cut % len(full)
    assert decode_or_protocol_error(topic_for(kind, "hall-03-kiosk-1"), full[:cut]) is None


@pytest.mark.parametrize("opener,closer", [("[", "]"), ('{"a":', "}"), ('{"v":1,"checks":[', "]}")])
@pytest.mark.parametrize("depth", [10, 1_000, 100_000])
def test_deep_nesting_is_refused(opener, closer, depth):
    payload = opener * depth + "1" + closer * depth
    for kind in KINDS:
        assert decode_or_protocol_error(topic_for(kind, "k1"), payload.encode()) is None


@pytest.mark.parametrize("kind", KINDS)
@relaxed
@given(data=st.data(), exponent=st.integers(min_value=19, max_value=5000))
def test_huge_numbers_are_refused_or_kept_in_bounds(kind, data, exponent):
    raw = json.loads(encode(examples()[kind]))
    numeric = [k for k, v in raw.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    key = data.draw(st.sampled_from(numeric))
    text = json.dumps(raw).replace(json.dumps({key: raw[key]})[1:-1], f'"{key}": 1{"0" * exponent}', 1)
    result = decode_or_protocol_error(topic_for(kind, "hall-03-kiosk-1"), text)
    if result is not None:  # accepted only if the value still fits the field's bounds
        assert getattr(result.message, key) < 10**exponent


@pytest.mark.parametrize("kind", KINDS)
@relaxed
@given(data=st.data(), value=json_values)
def test_wrong_types_raise_only_protocol_error(kind, data, value):
    raw = json.loads(encode(examples()[kind]))
    key = data.draw(st.sampled_from(sorted(raw)))
    raw[key] = value
    decode_or_protocol_error(topic_for(kind, "hall-03-kiosk-1"), json.dumps(raw))


@relaxed
@given(data=st.data(), value=json_values)
def test_wrong_types_inside_checks_raise_only_protocol_error(data, value):
    raw = json.loads(encode(examples()["report"]))
    check = data.draw(st.sampled_from(raw["checks"]))
    check[data.draw(st.sampled_from(sorted(check)))] = value
    decode_or_protocol_error(topic_for("report", "hall-03-kiosk-1"), json.dumps(raw))


@relaxed
@given(topic=st.text(max_size=80) | st.lists(
    st.sampled_from(["zw", "v1", "dev", "cmd", "k1", "report", "run", "+", "#", ""]), max_size=6,
).map("/".join))
def test_random_topics_raise_only_protocol_error(topic):
    with contextlib.suppress(ProtocolError):
        TOPICS.parse(topic)
