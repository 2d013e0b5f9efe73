"""Sign-in and roles against the real server: login, sessions and their cookies, CSRF, rate limiting,
logout, bearer tokens, role enforcement on every state-changing route, the audit log, the CLI.

The server is the one the incidents API tests use (tests/incident_helpers.py: three zones, a webhook).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlmodel import Session, select

from server.api.routes import ENDPOINTS
from server.auth import role_at_least, store
from server.auth.models import AuditEntry, User
from server.auth.passwords import weakness
from server.auth.ratelimit import LoginLimiter
from server.auth.web import safe_next
from server.cli import main
from server.db import session_factory
from tests.http_client import Browser
from tests.incident_helpers import Api, running_api
from tests.server_process import ServerProcess, wait_until

pytestmark = pytest.mark.timeout(180)
PASSWORDS = {"vera": "viewer-pass-0001", "otto": "oncall-pass-0002", "ada": "admin-pass-00003"}
ROLES = {"vera": "viewer", "otto": "oncall", "ada": "admin"}
WRITES = [e for e in ENDPOINTS if e.method != "GET"]


@pytest.fixture(scope="module")
def api(tmp_path_factory, mosquitto) -> Iterator[Api]:
    with running_api(tmp_path_factory.mktemp("auth"), mosquitto.port) as api:
        api.tokens = {name: api.server.user(name, ROLES[name], PASSWORDS[name]) for name in PASSWORDS}
        yield api


def bearer(api: Api, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.tokens[name]}"}


def signed_in(api: Api, name: str) -> Browser:
    browser = Browser(api.url)
    answer = browser.login(name, PASSWORDS[name])
    assert answer.status == 303 and "zw_session" in browser.cookies, answer.text
    return browser


def audit_rows(api: Api, **where) -> list[AuditEntry]:
    with Session(api.engine) as s:
        rows = s.exec(select(AuditEntry).order_by(AuditEntry.id)).all()
    return [r for r in rows if all(getattr(r, k) == v for k, v in where.items())]


def open_incident(api: Api, device: str = "kiosk-2") -> int:
    api.send(device)
    api.send(device, "critical", "media-empty")
    items = wait_until(lambda: api.get("/api/v1/incidents", device=device, status="open")["items"], what="incident")
    return items[0]["id"]


# -- no credentials ----------------------------------------------------------------------------


def test_without_credentials_the_api_answers_401_json_and_pages_redirect_to_login(api):
    anonymous = Browser(api.url)
    for path in ("/api/v1/summary", "/api/v1/zones", "/api/v1/incidents", "/api/v1/me", "/api/v1/audit"):
        answer = anonymous.get(path)
        assert answer.status == 401, (path, answer.text)
        assert answer.headers["Content-Type"].startswith("application/json")
        assert "sign in" in answer.json()["error"] and answer.headers["WWW-Authenticate"].startswith("Bearer")
    for e in WRITES:
        answer = anonymous.request(e.method, e.url.replace("{id}", "1"), json_body={})
        assert answer.status == 401, (e.url, answer.text)
    index = anonymous.get("/")
    assert index.status == 303 and index.headers["Location"] in ("/login?next=%2F", "/login?next=/")
    deep = anonymous.get("/zones?city=%E5%8C%97%E4%BA%AC&x=1")
    assert parse_qs(urlsplit(deep.headers["Location"]).query)["next"] == ["/zones?city=%E5%8C%97%E4%BA%AC&x=1"]
    assert anonymous.post("/logout").headers["Location"].startswith("/login")
    assert anonymous.get("/healthz").status == 200
    assert anonymous.get("/api/v1/openapi.json").status == 200
    assert anonymous.get("/ack/not-a-token").status in (400, 403, 404)  # the signed link page, no redirect
    for sneaky in ("/ack/../api/v1/summary", "/ack/x%2F..%2F..%2Fapi%2Fv1%2Fsummary", "/healthz/../api/v1/zones",
                   "/api/v1/openapi.json/../summary", "/API/v1/summary", "/api/v1//summary"):
        answer = anonymous.get(sneaky)
        assert answer.status in (303, 400, 401, 403, 404), (sneaky, answer.status)
        assert b'"zones"' not in answer.body and b'"items"' not in answer.body, sneaky


@pytest.mark.parametrize("header", ["Bearer zwt_not-a-real-token", "Bearer ", "Basic YWRhOmFkbWlu", "zwt_x",
                                    "Bearer " + "x" * 5000])
def test_bad_credentials_are_401(api, header):
    answer = Browser(api.url).get("/api/v1/summary", headers={"Authorization": header})
    assert answer.status == 401 and "error" in answer.json()


# -- signing in --------------------------------------------------------------------------------


def test_login_sets_a_session_cookie_httponly_samesite_and_logout_ends_it(api):
    browser = Browser(api.url)
    answer = browser.login("vera", PASSWORDS["vera"], next_="/?tab=zones")
    assert answer.status == 303 and answer.headers["Location"] == "/?tab=zones"
    [cookie] = [c for c in answer.set_cookies if c.startswith("zw_session=")]
    flags = {f.strip().split("=")[0].lower() for f in cookie.split(";")[1:]}
    assert {"httponly", "path"} <= flags and "secure" not in flags and "samesite=lax" in cookie.lower()
    index = browser.get("/")
    assert index.status == 200 and "Signed in as <b>vera</b> (viewer)" in index.text
    me = browser.get("/api/v1/me").json()
    assert me["username"] == "vera" and me["role"] == "viewer" and me["via"] == "session"
    assert me["csrf_token"] and f"content='{me['csrf_token']}'" in index.text
    old = dict(browser.cookies)

    assert browser.post("/logout", form={}).status == 403  # no CSRF token: not signed out
    assert browser.get("/api/v1/me").status == 200
    out = browser.post("/logout", form={"csrf_token": me["csrf_token"]})
    assert out.status == 303 and out.headers["Location"] == "/login" and "zw_session" not in browser.cookies
    browser.cookies = old  # the old cookie, replayed: the session is gone on the server
    assert browser.get("/api/v1/me").status == 401 and browser.get("/").status == 303
    assert [r.action for r in audit_rows(api, actor="vera")][-2:] == ["login", "logout"]


def test_the_cookie_is_secure_behind_tls(api):
    answer = Browser(api.url).login("vera", PASSWORDS["vera"], headers={"X-Forwarded-Proto": "https"})
    [cookie] = [c for c in answer.set_cookies if c.startswith("zw_session=")]
    assert "secure" in cookie.lower()


def test_a_wrong_password_or_user_fails_and_next_stays_on_this_server(api):
    browser = Browser(api.url)
    for name, password in (("vera", "wrong-password-1"), ("nobody", "whatever-it-is"), ("vera", ""),
                           ("<script>", "x"), ("vera", "viewer-pass-0001 "), ("evil\x00\nname", "x" * 10_000),
                           ("ü" * 500, "pässwörd-ü-1")):
        answer = browser.login(name, password)
        assert answer.status == 401 and "Wrong user name or password" in answer.text, name
        assert "<script>" not in answer.text and "zw_session" not in browser.cookies
    assert audit_rows(api, action="login_failed", actor="nobody")[-1].address == "127.0.0.1"
    assert audit_rows(api, action="login_failed", actor="evil\ufffd\ufffdname")  # control characters defused
    for target, where in (("//evil.example/", "/"), ("https://evil.example/", "/"), ("/\\evil", "/"),
                          ("/zones?x=1", "/zones?x=1"), ("javascript:alert(1)", "/"), ("", "/")):
        assert safe_next(target) == where
    assert signed_in(api, "vera").get("/login?next=//evil.example").headers["Location"] == "/"


def test_login_without_the_forms_own_token_is_refused(api):
    browser = Browser(api.url)
    answer = browser.post("/login", form={"username": "ada", "password": PASSWORDS["ada"]})
    assert answer.status == 403 and "zw_session" not in browser.cookies
    browser.get("/login")
    answer = browser.post("/login", form={"username": "ada", "password": PASSWORDS["ada"], "csrf_token": "x" * 43})
    assert answer.status == 403 and "zw_session" not in browser.cookies


def test_five_failures_for_a_name_lock_it_for_a_while_429_with_retry_after(api):
    api.server.user("lockme", "viewer", "lock-me-pass-01")
    browser = Browser(api.url)
    for _ in range(5):
        assert browser.login("lockme", "not-the-password").status == 401
    answer = browser.login("lockme", "lock-me-pass-01")  # even the right password waits now
    assert answer.status == 429 and 1 <= int(answer.headers["Retry-After"]) <= 300
    assert "zw_session" not in browser.cookies and "Too many failed sign-ins" in answer.text
    assert browser.login("vera", PASSWORDS["vera"]).status == 303  # other names are not locked


def test_failures_from_one_address_are_limited_too(tmp_path, mosquitto):
    server = ServerProcess(tmp_path / "server", mosquitto.port, f"sqlite:///{tmp_path / 'rl.db'}").start()
    try:
        server.user("rl", "viewer", "rate-limit-pass")
        browser = Browser(server.url)
        for n in range(20):  # a different name each time: only the address counts them together
            assert browser.login(f"guess{n}", "some-password").status == 401
        answer = browser.login("rl", "rate-limit-pass")
        assert answer.status == 429 and int(answer.headers["Retry-After"]) > 0
    finally:
        server.stop()


def test_the_limiter_forgets_old_failures_and_a_success_clears_its_name():
    limiter = LoginLimiter(per_user=5, per_address=20, window=300)
    for t in range(5):
        limiter.failed("Ann", "10.0.0.1", 1000 + t)
    assert limiter.retry_after("ann", "10.0.0.2", 1005) == 295  # names compare case-insensitively
    assert limiter.retry_after("ann", "10.0.0.2", 1300) is None  # the first failure left the window
    limiter.attempt("ANN", "10.0.0.1", 1006.5)
    limiter.succeeded("ANN", "10.0.0.1", 1006.5)
    assert limiter.retry_after("ann", "10.0.0.1", 1007) is None
    assert len(limiter._failures["a:10.0.0.1"]) == 5  # the right attempt does not count against the address


# -- CSRF and roles ----------------------------------------------------------------------------


def test_a_session_write_needs_the_csrf_token_bearer_writes_do_not(api):
    browser = signed_in(api, "otto")
    csrf = browser.get("/api/v1/me").json()["csrf_token"]
    body = {"rule": "network_slow", "duration_minutes": 5, "created_by": "otto", "comment": "csrf test"}
    for headers in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
        answer = browser.post("/api/v1/silences", json_body=body, headers=headers)
        assert answer.status == 403 and "CSRF" in answer.json()["error"], answer.text
    other = signed_in(api, "ada").get("/api/v1/me").json()["csrf_token"]  # another session's token
    assert browser.post("/api/v1/silences", json_body=body, headers={"X-CSRF-Token": other}).status == 403
    answer = browser.post("/api/v1/silences", json_body=body, headers={"X-CSRF-Token": csrf})
    assert answer.status == 201, answer.text
    status, _ = api.call("POST", "/api/v1/silences", body, headers=bearer(api, "otto"))
    assert status == 201


@pytest.mark.parametrize("endpoint", WRITES, ids=lambda e: f"{e.method} {e.path}")
def test_every_state_changing_route_refuses_the_roles_below_its_own_and_lets_the_rest_in(api, endpoint):
    """The least role is the one the route declares in the API registry (server/api/registry.py), as
    tests/test_roles.py reads it: no write is open to a viewer or to anyone, and every role below the declared
    one is refused for the role, by token and by a session with its CSRF token; the others get past the check."""
    needed = endpoint.needs
    assert needed in ("oncall", "admin"), f"{endpoint.method} {endpoint.url} changes state but needs {needed!r}"
    url = re.sub(r"\{[^}]+\}", "999999", endpoint.url)
    for name, role in ROLES.items():
        status, body = api.call(endpoint.method, url, {}, headers=bearer(api, name))
        if role_at_least(role, needed):
            assert status in (400, 404), (name, status, body)  # past the role check: the handler answers
            continue
        assert status == 403 and f"needs the {needed} role" in body["error"], (name, body)
        browser = signed_in(api, name)
        csrf = browser.get("/api/v1/me").json()["csrf_token"]
        answer = browser.request(endpoint.method, url, json_body={}, headers={"X-CSRF-Token": csrf})
        assert answer.status == 403 and f"needs the {needed} role" in answer.json()["error"], (name, answer.text)


def test_oncall_acks_and_silences_and_each_is_in_the_audit_log(api):
    incident = open_incident(api)
    before = len(audit_rows(api))
    status, acked = api.call("POST", f"/api/v1/incidents/{incident}/ack", {"by": "otto"}, headers=bearer(api, "otto"))
    assert status == 200 and acked["status"] == "acknowledged"
    status, silence = api.call("POST", "/api/v1/silences", {"zone": "hall-3", "duration_minutes": 10,
                                                            "created_by": "otto", "comment": "works"},
                               headers=bearer(api, "otto"))
    assert status == 201
    status, _ = api.call("DELETE", f"/api/v1/silences/{silence['id']}", headers=bearer(api, "otto"))
    assert status == 200
    rows = audit_rows(api)[before:]
    assert [(r.actor, r.action, r.target) for r in rows] == [
        ("otto", "ack_incident", f"/api/v1/incidents/{incident}/ack"),
        ("otto", "create_silence", "/api/v1/silences"),
        ("otto", "end_silence", f"/api/v1/silences/{silence['id']}")]
    assert all(r.address == "127.0.0.1" and r.at > time.time() - 60 for r in rows)
    assert '"zone":"hall-3"' in rows[1].detail
    status, _ = api.call("POST", f"/api/v1/incidents/{incident}/ack", {"by": "x"}, headers=bearer(api, "vera"))
    assert status == 403 and len(audit_rows(api)) == before + 3  # refused: nothing happened, nothing recorded


def test_the_audit_log_is_for_admins(api):
    assert api.call("GET", "/api/v1/audit", headers=bearer(api, "otto"))[0] == 403
    assert api.call("GET", "/api/v1/audit", headers=bearer(api, "vera"))[0] == 403
    status, page = api.call("GET", "/api/v1/audit?limit=5", headers=bearer(api, "ada"))
    assert status == 200 and page["total"] >= len(page["items"]) and len(page["items"]) <= 5
    assert {"id", "at", "actor", "action", "target", "detail", "address"} == set(page["items"][0])


# -- tokens and users --------------------------------------------------------------------------


def test_a_revoked_token_or_a_removed_users_token_stops_working(api):
    token = api.server.user("temp", "oncall")
    ok = {"Authorization": f"Bearer {token}"}
    assert api.call("GET", "/api/v1/me", headers=ok)[1]["via"] == "token"
    second = api.server.user("temp", "oncall")
    with session_factory(api.engine)() as s:
        assert store.revoke_tokens(s, "temp") == 2
    assert api.call("GET", "/api/v1/me", headers=ok)[0] == 401
    assert api.call("GET", "/api/v1/me", headers={"Authorization": f"Bearer {second}"})[0] == 401
    third = api.server.user("temp", "oncall")
    browser = Browser(api.url)
    with session_factory(api.engine)() as s:
        store.set_password(s, "temp", "another-secret-1")
    assert browser.login("temp", "another-secret-1").status == 303
    with session_factory(api.engine)() as s:
        store.remove_user(s, "temp")
    status, body = api.call("GET", "/api/v1/me", headers={"Authorization": f"Bearer {third}"})
    assert status == 401 and "no valid API token" in body["error"]
    assert browser.get("/api/v1/me").status == 401  # its session ended too


def test_passwords_are_argon2_hashes_and_never_logged(api):
    with Session(api.engine) as s:
        users = {u.username: u for u in s.exec(select(User)).all()}
    assert all(users[n].password_hash.startswith("$argon2id$") for n in PASSWORDS)
    assert users["test-admin"].password_hash == ""  # token-only
    log = api.server.log_text()
    stored = Path(api.engine.url.database)
    data = b"".join(p.read_bytes() for p in stored.parent.glob(stored.name + "*"))  # the file and its WAL
    for password in PASSWORDS.values():
        assert password not in log and password.encode() not in data
    for token in api.tokens.values():
        assert token not in log and token.encode() not in data
    assert not any(p in r.detail or p in r.target for r in audit_rows(api) for p in PASSWORDS.values())


def test_password_rules():
    for bad in ("", "   ", "short", "aaaaaaaaaaaaaa", "password123", "1234567890", "with\nnewline-12",
                "ZoneWatch123"):
        assert weakness(bad) is not None, bad
    assert "user name" in weakness("my-alice-password", "alice")
    assert weakness("correct horse battery") is None


def test_openapi_declares_the_security_and_the_401_403_answers(api):
    doc = api.get("/api/v1/openapi.json")
    assert set(doc["components"]["securitySchemes"]) == {"bearerAuth", "sessionCookie"}
    assert doc["security"] == [{"bearerAuth": []}, {"sessionCookie": []}]
    for e in ENDPOINTS:
        op = doc["paths"][e.url][e.method.lower()]
        if e.path == "/openapi.json":
            assert op["security"] == [] and "401" not in op["responses"]
            continue
        assert "401" in op["responses"], e.url
        assert ("403" in op["responses"]) == (e.needs != "viewer"), e.url


# -- the command line --------------------------------------------------------------------------


def test_cli_user_add_list_token_remove(api, tmp_path, capsys, monkeypatch):
    config = tmp_path / "server.toml"
    config.write_text(f'[database]\nurl = "{api.engine.url}"\n')
    pw = tmp_path / "pw"
    pw.write_text("cli-made-password\n")

    def run(*argv):
        capsys.readouterr()
        code = main([*argv, "--config", str(config)])
        out, err = capsys.readouterr()
        return code, out, err

    assert run("user", "add", "carl", "--role", "oncall", "--password-file", str(pw))[0] == 0
    code, _, err = run("user", "add", "carl", "--role", "viewer", "--password-file", str(pw))
    assert code == 1 and "exists already" in err and err.count("\n") == 1
    (tmp_path / "weak").write_text("abc\n")
    code, _, err = run("user", "add", "weakling", "--role", "viewer", "--password-file", str(tmp_path / "weak"))
    assert code == 1 and "too short" in err
    code, _, err = run("user", "add", "bad name", "--role", "viewer", "--password-file", str(pw))
    assert code == 1 and "not allowed" in err
    answers = iter(["first-password-1", "second-password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    code, _, err = run("user", "add", "dora", "--role", "viewer")
    assert code == 1 and "differ" in err
    answers = iter(["pink-elephant-7", "pink-elephant-7"])
    assert run("user", "add", "dora", "--role", "viewer")[0] == 0
    code, out, _ = run("user", "list")
    assert code == 0 and re.search(r"^carl\s+oncall\s+0\s", out, re.M) and re.search(r"^dora\s+viewer", out, re.M)
    assert "$argon2" not in out
    code, out, err = run("user", "token", "carl")
    token = out.strip()
    assert code == 0 and token.startswith("zwt_") and "shown this once" in err
    assert api.call("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"})[1]["username"] == "carl"
    assert Browser(api.url).login("carl", "cli-made-password").status == 303
    assert run("user", "remove", "carl")[0] == 0
    assert api.call("GET", "/api/v1/me", headers={"Authorization": f"Bearer {token}"})[0] == 401
    code, _, err = run("user", "remove", "carl")
    assert code == 1 and "no user 'carl'" in err
    assert [r.action for r in audit_rows(api) if r.target == "user:carl"] == [
        "user_add", "token_new", "login", "user_remove"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[database\n")
    assert main(["user", "list", "--config", str(bad)]) == 78
