"""The enrolment request parser under arbitrary input: a clear 4xx or a well-formed request, never a crash."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provisioning.enrolment import EnrolmentRefused
from server.api.routes_provision import ENROL_FIELDS, EnrolRequest, parse_enrol_request

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner, max_size=4),
    max_leaves=12,
)
field_values = st.none() | st.text(max_size=400) | st.integers() | st.lists(st.text(max_size=5), max_size=3)
requests = st.fixed_dictionaries({}, optional={k: field_values for k in [*ENROL_FIELDS, "extra"]})


def outcome(body: bytes, content_type: str = "application/json") -> EnrolRequest | int:
    try:
        parsed = parse_enrol_request(body, content_type)
    except EnrolmentRefused as exc:
        assert 400 <= exc.status < 500 and str(exc)
        return exc.status
    assert isinstance(parsed, EnrolRequest) and parsed.token
    return parsed


@given(st.binary(max_size=2000))
@settings(max_examples=300)
def test_any_bytes(body):
    outcome(body)


@given(json_values)
@settings(max_examples=300)
def test_any_json(value):
    outcome(json.dumps(value).encode())


@given(requests)
@settings(max_examples=500)
def test_request_shaped_objects(fields):
    got = outcome(json.dumps(fields).encode())
    if isinstance(got, EnrolRequest):
        assert "extra" not in fields and isinstance(fields["token"], str)
        for key, limit in ENROL_FIELDS.items():
            value = getattr(got, key)
            assert value is None or (isinstance(value, str) and len(value) <= limit)


@given(st.text(min_size=1, max_size=100_000).map(lambda t: t * 2))
@settings(max_examples=30)
def test_huge_strings_are_refused_before_parsing(text):
    body = json.dumps({"token": text}).encode()
    status = outcome(body)
    if len(body) > 16 * 1024:
        assert status == 413


def test_deeply_nested_json_is_a_400():
    assert outcome(b"[" * 100_000 + b"]" * 100_000, "application/json") == 413
    assert outcome(b"[" * 5000 + b"]" * 5000) == 400


def test_not_json_content_type_is_415():
    assert outcome(b'{"token": "zwe_x"}', "text/plain") == 415


@pytest.mark.parametrize("token", ["", "  ", "\t", None])
def test_a_blank_token_is_refused_as_missing(token):
    """Found by hypothesis: a token of spaces used to pass as an empty token."""
    assert outcome(json.dumps({"token": token}).encode()) == 400
