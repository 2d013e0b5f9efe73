"""Role enforcement for every state-changing route the app has, against the real server.

The routes are read from ``create_app(...).router`` — pages, the JSON API, sign-in — not from a hand list,
so a route added later is tested the moment it exists. For each POST/PUT/PATCH/DELETE route:

- no credentials: the API answers 401, a page redirects to /login;
- a viewer (session with its CSRF token, or bearer token) gets 403 for the role, not for CSRF;
- an oncall or admin session without the CSRF token, or with another session's, gets 403;
- the least role that may use it, with the CSRF token, gets past both checks (a dummy body may be
  400 or 404), and so does admin.

The least role of an API route is the registry's (:mod:`server.api.registry`); a page route needs
``oncall``, as API writes do by default, unless ``PAGE_ROLES`` says otherwise (list admin-only pages
there). Routes open to anyone are only those in ``OPEN_WRITES``, each with its own protection tested below.
test_auth.py covers sign-in itself, the bearer/CSRF exemption and viewer bearer tokens on the registry.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from server.api.routes import ENDPOINTS
from server.app import SERVICE, create_app
from server.auth import ROLES, role_at_least
from server.auth.web import OPEN_PATHS, OPEN_PREFIXES
from server.settings import parse_settings
from tests.http_client import Answer, Browser
from tests.incident_helpers import Api, running_api

pytestmark = pytest.mark.timeout(240)
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
PASSWORDS = {"viewer": "vivid-lantern-31", "oncall": "quiet-harbour-52", "admin": "amber-compass-73"}
#: Page (non-API) routes that change state and need another role than PAGE_DEFAULT ("" = anyone signed in).
PAGE_DEFAULT = "oncall"
PAGE_ROLES: dict[tuple[str, str], str] = {
    ("POST", "/logout"): "",
    ("POST", "/enrolment"): "admin",
}
#: Routes that need no sign-in at all, and why that is safe.
OPEN_WRITES = {
    ("POST", "/login"): "needs the sign-in form's own CSRF cookie and a password; rate limited",
    ("POST", "/ack/{token}"): "needs a signed, unexpired, single-use token from a notification",
    ("POST", "/enroll"): "needs a one-time, unexpired enrolment token (tests/test_enrol_e2e.py)",
}


def write_routes() -> list[tuple[str, str]]:
    """(method, path template) of every state-changing route of the app, as the server builds it."""
    settings = parse_settings('[database]\nurl = "sqlite://"\n', environ={})
    app = create_app(settings, with_broker=False)
    try:
        found = set()
        for route in app.router.routes():
            if route.method in SAFE:
                continue
            path = route.resource.canonical if route.resource is not None else str(route)
            found.add(("POST" if route.method == "*" else route.method, path))  # "*": any method, so POST too
        return sorted(found)
    finally:
        app[SERVICE].engine.dispose()


def open_to_anyone(path: str) -> bool:
    """Whether the sign-in middleware lets requests to ``path`` through without credentials."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


WRITES = write_routes()
GUARDED = [r for r in WRITES if not open_to_anyone(r[1])]
API_ROLES = {(e.method, e.url): e.needs for e in ENDPOINTS}


def least_role(method: str, path: str) -> str:
    if path.startswith("/api/"):
        return API_ROLES[(method, path)]
    return PAGE_ROLES.get((method, path), PAGE_DEFAULT)


def concrete(path: str) -> str:
    """The template with every {parameter} (or {parameter:regex}) filled in with an id that does not exist."""
    return re.sub(r"\{[^}]+\}", "999999", path)


@pytest.fixture(scope="module")
def api(tmp_path_factory, mosquitto) -> Iterator[Api]:
    with running_api(tmp_path_factory.mktemp("roles"), mosquitto.port) as api:
        api.tokens = {role: api.server.user(f"r-{role}", role, PASSWORDS[role]) for role in ROLES}
        yield api


def session(api: Api, role: str) -> tuple[Browser, str]:
    """A fresh browser session of the role's user, and its CSRF token."""
    browser = Browser(api.url)
    answer = browser.login(f"r-{role}", PASSWORDS[role])
    assert answer.status == 303 and "zw_session" in browser.cookies, answer.text
    return browser, browser.get("/api/v1/me").json()["csrf_token"]


def send(browser: Browser, method: str, path: str, csrf: str | None = None, headers: dict | None = None) -> Answer:
    """A dummy write as the browser's page or script would make it: JSON + header for the API, a form for pages."""
    sent = dict(headers or {})
    if path.startswith("/api/"):
        if csrf is not None:
            sent["X-CSRF-Token"] = csrf
        return browser.request(method, path, json_body={}, headers=sent)
    return browser.request(method, path, form={} if csrf is None else {"csrf_token": csrf}, headers=sent)


def refused_for_role(answer: Answer) -> bool:
    """403 for the role, not for CSRF. The API says which in its JSON error; a page's HTML carries the session's
    CSRF token anyway, so there the proof is that the same request with the same kind of token gets through
    for the right role (test_the_right_role_with_the_csrf_token_gets_past_both_checks)."""
    if answer.status != 403:
        return False
    if answer.headers.get("Content-Type", "").startswith("application/json"):
        error = answer.json().get("error", "")
        return "role" in error and "csrf" not in error.lower()
    return True


def test_the_routes_are_read_from_the_app_and_include_every_api_write():
    assert {(e.method, e.url) for e in ENDPOINTS if e.method not in SAFE} <= set(WRITES)
    assert {("POST", "/login"), ("POST", "/logout")} <= set(WRITES)
    for method, path in WRITES:  # anything open to anyone must be declared so, with its reason
        if open_to_anyone(path) and (method, path) not in OPEN_WRITES:
            pytest.fail(f"{method} {path} changes state and is open to anyone (server/auth/web.py): declare it in "
                        "OPEN_WRITES in tests/test_roles.py with why that is safe, and test that protection there")
        assert open_to_anyone(path) or (method, path) not in OPEN_WRITES, f"{method} {path} is no longer open"
    assert set(OPEN_WRITES) <= set(WRITES), "an open route listed here no longer exists: drop it"
    assert set(PAGE_ROLES) <= set(WRITES), "a page route listed here no longer exists: drop it"
    assert concrete("/api/v1/incidents/{id:\\d+}/ack") == "/api/v1/incidents/999999/ack"


@pytest.mark.parametrize(("method", "path"), GUARDED, ids=[f"{m} {p}" for m, p in GUARDED])
def test_without_credentials_the_api_says_401_and_a_page_sends_to_login(api, method, path):
    answer = send(Browser(api.url), method, concrete(path))
    if path.startswith("/api/"):
        assert answer.status == 401 and answer.headers["Content-Type"].startswith("application/json"), answer.text
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    else:
        assert answer.status in (302, 303) and answer.headers["Location"].startswith("/login"), answer.status
    for bad in ("Bearer zwt_forged-token", "Basic cjphZG1pbjp4"):  # credentials that are no credentials
        answer = send(Browser(api.url), method, concrete(path), headers={"Authorization": bad})
        assert answer.status in ((401,) if path.startswith("/api/") else (302, 303, 401)), (bad, answer.status)


@pytest.mark.parametrize(("method", "path"), GUARDED, ids=[f"{m} {p}" for m, p in GUARDED])
def test_a_viewer_is_refused_by_role_with_a_session_and_with_a_token(api, method, path):
    if least_role(method, path) in ("", "viewer"):
        pytest.skip(f"{method} {path} is open to every signed-in user")
    browser, csrf = session(api, "viewer")
    answer = send(browser, method, concrete(path), csrf)
    assert refused_for_role(answer), (answer.status, answer.text[:300])
    token = Browser(api.url)
    answer = send(token, method, concrete(path), headers={"Authorization": f"Bearer {api.tokens['viewer']}"})
    assert refused_for_role(answer), (answer.status, answer.text[:300])
    assert browser.get("/api/v1/me").status == 200  # the refusal did not end the session


@pytest.mark.parametrize(("method", "path"), GUARDED, ids=[f"{m} {p}" for m, p in GUARDED])
def test_a_session_without_the_csrf_token_is_refused_whatever_its_role(api, method, path):
    _, someone_elses = session(api, "admin")
    for role in ("oncall", "admin"):
        browser, csrf = session(api, role)
        for token in (None, "", someone_elses, csrf + "x", csrf[:-1]):
            answer = send(browser, method, concrete(path), token)
            assert answer.status == 403 and "csrf" in answer.text.lower(), (role, token, answer.status, answer.text)
        if not path.startswith("/api/"):  # a page's form field may not be replaced by a JSON body carrying it
            answer = browser.request(method, concrete(path), json_body={"csrf_token": csrf})
            assert answer.status == 403, answer.status
        assert browser.get("/api/v1/me").status == 200  # still signed in: nothing happened


@pytest.mark.parametrize(("method", "path"), GUARDED, ids=[f"{m} {p}" for m, p in GUARDED])
def test_the_right_role_with_the_csrf_token_gets_past_both_checks(api, method, path):
    needed = least_role(method, path)
    for role in ROLES:
        browser, csrf = session(api, role)
        answer = send(browser, method, concrete(path), csrf)
        if needed and not role_at_least(role, needed):
            assert refused_for_role(answer), (role, answer.status, answer.text[:300])
        else:
            assert answer.status not in (401, 403) and answer.status < 500, (role, answer.status, answer.text[:300])
            if not path.startswith("/api/") and answer.status in (302, 303):
                assert not answer.headers["Location"].startswith("/login?"), answer.headers["Location"]
        if role_at_least(role, "oncall") and path.startswith("/api/"):  # scripts: a token, no CSRF needed
            answer = send(Browser(api.url), method, concrete(path),
                          headers={"Authorization": f"Bearer {api.tokens[role]}"})
            assert (answer.status not in (401, 403)) == role_at_least(role, needed or "viewer"), answer.status


def test_the_open_writes_hold_their_own_protection(api):
    assert set(OPEN_WRITES) == {r for r in WRITES if r in OPEN_WRITES}
    browser = Browser(api.url)
    answer = browser.post("/login", form={"username": "r-admin", "password": PASSWORDS["admin"]})
    assert answer.status == 403 and "zw_session" not in browser.cookies  # no form token: refused
    for token in ("999999", "x" * 5000, "%00", "..%2F..%2Fapi%2Fv1%2Fsilences"):
        answer = browser.post(f"/ack/{token}")
        assert 400 <= answer.status < 500, (token, answer.status)
        assert "Acknowledged" not in answer.text
