"""Who may reach what, route by route, against the real server: every operation in the live OpenAPI document
(GET /api/v1/openapi.json) and every other route of the app's router (pages, sign-in, ack links, enrolment,
device downloads, static files), each asked with

- no credentials;
- an enrolled device's credentials — its MQTT user name and secret as HTTP Basic, and the secret as a bearer
  token — which must never reach the user API or a page (only the device routes under ``/device/``);
- a viewer, an oncall and an admin API token (bearer);

and the answer checked against the table below: open routes as declared in ``OPEN`` (a route newly open to
anyone fails until it is declared there), the API by the role the registry gives it, pages by ``viewer`` for
reads and tests/test_roles.py's roles for writes. "Allowed" means past sign-in and role: not 401/403, not
a redirect to /login, never a 5xx (a dummy id may well be 404 and a dummy body 400). Session cookies and CSRF
are tests/test_roles.py's; this module reuses its server fixture and helpers rather than repeating them.
"""

from __future__ import annotations

import base64
import http.client
import json
import re

import pytest

from server.api.routes import ENDPOINTS
from server.app import SERVICE, create_app
from server.auth import role_at_least
from server.settings import parse_settings
from tests.http_client import Browser
from tests.test_roles import PAGE_ROLES, api, open_to_anyone  # noqa: F401 (api: the server with role tokens)

pytestmark = pytest.mark.timeout(300)
KINDS = ("none", "device-basic", "device-bearer", "viewer", "oncall", "admin")
DEVICE_KINDS = ("device-basic", "device-bearer")
ROLES = ("viewer", "oncall", "admin")
ALLOWED, REFUSED, LOGIN = "allowed", "refused", "login"
#: Routes open to anyone, and what each kind of caller gets there (status codes; ALLOWED: past any sign-in).
OPEN: dict[tuple[str, str], dict[str, object]] = {
    ("GET", "/healthz"): dict.fromkeys(KINDS, frozenset({200})),
    ("GET", "/login"): dict.fromkeys(KINDS, frozenset({200})),
    ("POST", "/login"): dict.fromkeys(KINDS, frozenset({403})),  # no sign-in form token: refused whoever asks
    ("GET", "/api/v1/openapi.json"): dict.fromkeys(KINDS, frozenset({200})),
    ("POST", "/enroll"): dict.fromkeys(KINDS, frozenset({400})),  # credentials mean nothing here: it needs a token
    ("GET", "/ack/{token}"): dict.fromkeys(KINDS, frozenset({400, 404, 410})),
    ("POST", "/ack/{token}"): dict.fromkeys(KINDS, frozenset({400, 403, 404, 410})),
    ("GET", "/static"): dict.fromkeys(KINDS, frozenset({404})),
    # device routes: a device's own credentials only; a user's token is no credential there
    ("GET", "/device/content/{sha256}"): {**dict.fromkeys(KINDS, frozenset({401})), "device-basic": frozenset({403})},
    ("GET", "/device/content-key"): dict.fromkeys(KINDS, frozenset({200})),  # a public key
}
#: Signing out ends at /login whether it happened or there was nothing to end: every caller is sent there.
ENDS_AT_LOGIN = {("POST", "/logout")}
SAMPLE = {"sha256": "0" * 64, "token": "not-a-token"}


def router_routes() -> list[tuple[str, str]]:
    settings = parse_settings('[database]\nurl = "sqlite://"\n', environ={})
    app = create_app(settings, with_broker=False)
    try:
        found = {(("POST" if r.method == "*" else r.method), r.resource.canonical) for r in app.router.routes()
                 if r.resource is not None and r.method != "HEAD"}
        return sorted(found)
    finally:
        app[SERVICE].engine.dispose()


def openapi_operations(document: dict) -> list[tuple[str, str]]:
    return sorted((method.upper(), path) for path, ops in document["paths"].items() for method in ops)


ROUTER = router_routes()
API_ROLES = {(e.method, e.url): e.needs for e in ENDPOINTS}


def concrete(path: str) -> str:
    """A path template with every parameter filled in: something that does not exist, in the right shape."""
    path = "/static/no-such-file.css" if path == "/static" else path
    return re.sub(r"\{([^}:]+)(:[^}]+)?\}", lambda m: SAMPLE.get(m[1], "999999"), path)


#: Pages that only some roles may read (every other page: any signed-in user).
PAGE_READ_ROLES = {"/audit": "admin", "/enrolment": "admin"}


def least_role(method: str, path: str) -> str:
    if path.startswith("/api/"):
        return API_ROLES[(method, path)]
    if method == "GET":
        return PAGE_READ_ROLES.get(path, "viewer")
    return PAGE_ROLES.get((method, path), "oncall")


def expected(kind: str, method: str, path: str) -> object:
    if (method, path) in OPEN:
        return OPEN[(method, path)][kind]
    if (method, path) in ENDS_AT_LOGIN:
        return LOGIN
    if kind == "none" or kind in DEVICE_KINDS:
        return REFUSED if path.startswith("/api/") else LOGIN
    needed = least_role(method, path)
    return ALLOWED if not needed or role_at_least(kind, needed) else REFUSED


@pytest.fixture(scope="module")
def device(api):  # noqa: F811
    """An enrolled device: its id and MQTT secret (the credentials a stolen kiosk gives away)."""
    status, body = api.call("POST", "/api/v1/enrolment-tokens", {"zone": "hall-1"})
    assert status == 201, body
    status, body = api.call("POST", "/enroll", {"token": body["token"], "device_id": "walk-kiosk-1"}, headers={})
    assert status == 201, body
    return body["device_id"], body["mqtt"]["password"]


def credentials(kind: str, api, device) -> dict[str, str]:  # noqa: F811
    if kind == "none":
        return {}
    if kind == "device-basic":
        return {"Authorization": "Basic " + base64.b64encode(f"{device[0]}:{device[1]}".encode()).decode()}
    if kind == "device-bearer":
        return {"Authorization": f"Bearer {device[1]}"}
    return {"Authorization": f"Bearer {api.tokens[kind]}"}


def ask(url: str, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Status and headers of one request with a dummy body; an event stream's body is not waited for."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    sent, body = dict(headers), None
    if method != "GET":
        if path.startswith(("/api/", "/enroll")):
            body, sent["Content-Type"] = b"{}", "application/json"
        else:
            body, sent["Content-Type"] = b"", "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=sent)
        resp = conn.getresponse()
        if not (resp.getheader("Content-Type") or "").startswith("text/event-stream"):
            resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def check(want: object, status: int, headers: dict[str, str]) -> bool:
    to_login = status in (302, 303) and headers.get("location", "").startswith("/login")
    if want == LOGIN:
        return to_login
    if want == REFUSED:
        return status in (401, 403)
    if want == ALLOWED:
        return status not in (401, 403) and status < 500 and not to_login
    return status in want  # type: ignore[operator]


@pytest.fixture(scope="module")
def routes(api) -> list[tuple[str, str]]:  # noqa: F811
    status, document = api.call("GET", "/api/v1/openapi.json", headers={})
    assert status == 200
    described = openapi_operations(document)
    in_router = {r for r in ROUTER if r[1].startswith("/api/")}
    assert in_router == set(described), ("an API route is missing from the OpenAPI document, or the other way",
                                         in_router ^ set(described))
    return described + [r for r in ROUTER if not r[1].startswith("/api/")]


def test_every_open_route_is_declared_and_exists(routes):
    for method, path in routes:
        if open_to_anyone(path) and (method, path) not in OPEN:
            pytest.fail(f"{method} {path} is open to anyone (server/auth/web.py): declare what each caller gets in "
                        "OPEN in tests/test_security_routes.py, and test the route's own protection")
    gone = {r for r in set(OPEN) - set(routes) if not r[1].startswith("/device/")}  # /device/: issue 8's routes
    assert not gone, f"declared open but gone: {gone}"
    assert len([r for r in routes if r[1].startswith("/api/")]) >= 20 and ("GET", "/") in routes


# Parametrized from the router so each route is its own test; the ``routes`` fixture first proves that the
# router's API routes are exactly the live OpenAPI document's operations.
@pytest.mark.parametrize(("method", "path"), ROUTER, ids=[f"{m} {p}" for m, p in ROUTER])
def test_who_gets_through(api, device, routes, method, path):  # noqa: F811
    assert (method, path) in routes
    wrong = []
    for kind in KINDS:
        want = expected(kind, method, path)
        status, headers = ask(api.url, method, concrete(path), credentials(kind, api, device))
        if not check(want, status, headers):
            wrong.append(f"{kind}: got {status} {headers.get('location', '')}, expected {want}")
        assert status < 500, f"{kind}: {method} {path} answered {status}"
    assert not wrong, f"{method} {path}: " + "; ".join(wrong)


def test_device_credentials_open_no_session(api, device):  # noqa: F811
    """The device's secret is no user password, on the sign-in form or as any API credential."""
    browser = Browser(api.url)
    answer = browser.login(device[0], device[1])
    assert answer.status != 303 and "zw_session" not in browser.cookies, answer.status
    for header in (credentials("device-basic", api, device), credentials("device-bearer", api, device),
                   {"Authorization": f"Bearer {device[0]}:{device[1]}"}, {"X-Api-Key": device[1]}):
        status, body = api.call("GET", "/api/v1/me", headers=header)
        assert status == 401 and "error" in body, (header, status)
    status, body = api.call("GET", "/api/v1/devices/walk-kiosk-1")  # the device exists and is enrolled
    assert status == 200 and json.dumps(body).find(device[1]) == -1  # and the API never shows its secret
