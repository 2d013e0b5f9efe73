"""schemathesis on the provisioning routes of the API (enrolment tokens, revoke, rotate) with an admin token,
against the real server: valid and invalid requests alike never get a 5xx, and every answer matches the
OpenAPI document (status codes, content type, body schema). As in tests/test_server_api.py the strategies
run through hypothesis directly (schemathesis' pytest plugin breaks on pytest 9); bounded examples per route.
Now and then a case is aimed at a zone or device that exists, so the fuzzing reaches the successes too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.api.routes import ENDPOINTS
from tests.http_client import without_expect
from tests.incident_helpers import Api, running_api

pytestmark = [pytest.mark.peer, pytest.mark.timeout(600)]
ROUTES = [("GET", "/api/v1/enrolment-tokens"), ("POST", "/api/v1/enrolment-tokens"),
          ("POST", "/api/v1/devices/{device_id}/rotate"), ("POST", "/api/v1/devices/{device_id}/revoke")]  # revoke last
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ZONES = ["hall-1", "hall-2", "hall-3"]
DEVICES = ["kiosk-1", "kiosk-2", "kiosk-3"]


@pytest.fixture(scope="module")
def api(tmp_path_factory, mosquitto) -> Iterator[Api]:
    with running_api(tmp_path_factory.mktemp("provision-fuzz"), mosquitto.port) as api:
        yield api


@pytest.fixture(scope="module")
def api_schema(api):
    return schemathesis.openapi.from_url(api.url + "/api/v1/openapi.json")


def aim(case, data) -> None:
    """Sometimes at a zone or device that exists (revoke and rotate then succeed, or 409 once revoked)."""
    if isinstance(case.body, dict) and "zone" in case.body and data.draw(st.booleans()):
        case.body["zone"] = data.draw(st.sampled_from(ZONES))
    if "device_id" in (case.path_parameters or {}) and data.draw(st.booleans()):
        case.path_parameters["device_id"] = data.draw(st.sampled_from(DEVICES))


def test_the_fuzzed_routes_are_the_provisioning_routes_of_the_api():
    declared = {(e.method, e.url) for e in ENDPOINTS if e.tag == "enrolment"}
    assert declared == set(ROUTES), declared ^ set(ROUTES)
    assert all(e.needs == "admin" for e in ENDPOINTS if (e.method, e.url) in declared)


@pytest.mark.parametrize(("method", "path", "mode"), [
    pytest.param(m, p, mode, id=f"{m} {p}-{mode.value}") for m, p in ROUTES
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)])
def test_schemathesis_finds_no_server_error_and_no_schema_violation(api, api_schema, method, path, mode):
    statuses: list[int] = []

    @given(case=api_schema[path][method].as_strategy(generation_mode=mode), data=st.data())
    @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def call(case, data):
        if mode is GenerationMode.POSITIVE:
            aim(case, data)
        response = without_expect(case).call_and_validate(headers=api.server.headers, checks=CHECKS)
        statuses.append(response.status_code)

    call()
    if mode is GenerationMode.POSITIVE:  # the fuzzing reached the successes, not only the refusals
        assert {200, 201} & set(statuses), statuses


def test_what_the_fuzzing_made_is_consistent(api):
    """After the fuzzing: every token listed is for a zone that exists, no secret is in the listing, and a
    revoked device stays revoked (rotate answers 409)."""
    listing = api.get("/api/v1/enrolment-tokens", limit=500)
    assert listing["items"] and {t["zone"] for t in listing["items"]} <= set(ZONES)
    assert all("token" not in t and len(t["prefix"]) == 10 for t in listing["items"])
    for device in DEVICES:
        status, _ = api.call("POST", f"/api/v1/devices/{device}/revoke")
        assert status == 200
        status, body = api.call("POST", f"/api/v1/devices/{device}/rotate")
        assert status == 409 and "revoked" in body["error"], body
