"""Server hardening (server/security.py, server/secret_files.py) against the real server: security headers on
every kind of answer, no inline script allowed or present, a clear 413 for oversized bodies on every kind of
route, no secret in the log or the audit log after enrolling, rotating, signing in and failing to, and secret
files every user may read refused before the server starts."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from server.cli import main as zonewatch
from server.errors import ConfigError
from server.secret_files import check_secret_files
from server.settings import parse_settings
from tests.http_client import Browser
from tests.server_process import ROOT, ServerProcess

pytestmark = [pytest.mark.peer, pytest.mark.timeout(300)]
PASSWORD = "ochre-falcon-48"
WRONG_PASSWORD = "Wrong-Guess-9917"
RECEIVER_SECRET = "hook-signing-secret-5521"
BIG = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory, mosquitto) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("hardening")
    proc = ServerProcess(tmp / "server", mosquitto.port, f"sqlite:///{tmp / 'zw.db'}", extra=(
        f'[receivers.signed]\nkind = "webhook"\nurl = "http://127.0.0.1:9/hook"\nsecret = "{RECEIVER_SECRET}"\n'))
    proc.config.write_text(proc.config.read_text().replace('log_level = "info"', 'log_level = "debug"'))
    assert zonewatch(["zone", "add", "hall-01", "--name", "Hall 1", "--kind", "service_hall",
                      "--config", str(proc.config)]) == 0
    proc.user("irene", "oncall", PASSWORD)
    proc.start()
    yield SimpleNamespace(proc=proc, url=proc.url)
    proc.stop()


def raw_get(url: str, headers: dict | None = None):
    """Status and headers only (an event stream never ends: its body is not read)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        resp = urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as err:
        return err.code, err.headers
    with resp:
        return resp.status, resp.headers


def test_every_kind_of_answer_carries_the_security_headers(server):
    browser = Browser(server.url)
    assert browser.login("irene", PASSWORD).status == 303
    cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in browser.cookies.items())}
    static = re.search(r'src="(/static/[^"]+)"', browser.get("/").text)
    assert static, "the page links its script"
    bearer = server.proc.headers
    cases = [  # path, headers, expected status, an HTML page?
        ("/", cookie, 200, True), ("/login", {}, 200, True), ("/incidents", cookie, 200, True),
        ("/zones/nowhere", cookie, 404, True), ("/", {}, 303, False), ("/api/v1/zones", bearer, 200, False),
        ("/api/v1/zones", {}, 401, False), ("/api/v1/openapi.json", {}, 200, False), ("/healthz", {}, 200, False),
        (static[1], {}, 200, False), ("/events", cookie, 200, False), ("/api/v1/nothing-here", bearer, 404, False),
    ]
    for path, headers, status, page in cases:
        if path == "/events":
            got, h = raw_get(server.url + path, headers)
        else:
            answer = Browser(server.url).get(path, headers=headers)
            got, h = answer.status, answer.headers
        assert got == status, (path, got)
        assert h["X-Content-Type-Options"] == "nosniff" and h["X-Frame-Options"] == "DENY", path
        assert h["Referrer-Policy"] == "no-referrer", path
        csp = h["Content-Security-Policy"]
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp, path
        if page:
            assert "script-src 'self'" in csp and h["Content-Type"].startswith("text/html"), path
        else:
            assert csp.startswith("default-src 'none'"), (path, csp)
        if path.startswith("/api/"):
            assert h["Cache-Control"] == "no-store", path
        assert len(h.get_all("Content-Security-Policy")) == 1, f"{path}: CSP set in two places"


@pytest.mark.parametrize("path", ["/", "/login", "/incidents", "/zones/hall-01"])
def test_pages_have_no_inline_script_or_handlers(server, path):
    browser = Browser(server.url)
    assert browser.login("irene", PASSWORD).status == 303
    html = browser.get(path).text
    inline = re.search(r"<script(?![^>]*\b(?:src=|type=\"application/json\"))[^>]*>", html)  # JSON data runs not
    assert not inline, "an inline <script> (the CSP blocks it)"
    assert not re.search(r"\son[a-z]+\s*=", html), "an inline event handler (the CSP blocks it)"
    assert "javascript:" not in html


def test_oversized_bodies_get_a_413_that_says_the_limit(server):
    big = b"x" * BIG
    for path, content_type in (("/api/v1/enrolment-tokens", "application/json"), ("/enroll", "application/json"),
                               ("/api/v1/silences", "application/json")):
        request = urllib.request.Request(server.url + path, data=big, method="POST",
                                         headers={**server.proc.headers, "Content-Type": content_type})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=30)
        assert err.value.code == 413, path
        body = err.value.read().decode()
        assert "larger than" in body and ("bytes" in body), (path, body)
    browser = Browser(server.url)
    assert browser.login("irene", PASSWORD).status == 303
    for path in ("/login", "/incidents/1/ack", "/logout"):  # a form, signed in or not
        answer = browser.request("POST", path, form={"note": "x" * BIG})
        assert answer.status == 413, (path, answer.status, answer.text[:200])
        assert "larger than the limit of" in answer.text and answer.headers["Content-Type"].startswith(
            "text/html"), path
    assert browser.get("/api/v1/me").status == 200  # still signed in, the server still answers


def test_no_secret_reaches_the_log_or_the_audit_log(server):
    proc = server.proc
    browser = Browser(server.url)
    assert browser.login("irene", WRONG_PASSWORD).status in (200, 401, 403)
    assert browser.login("irene", PASSWORD).status == 303
    csrf = browser.get("/api/v1/me").json()["csrf_token"]
    api_token = proc.user("scripts", "admin")
    made = Browser(server.url).post("/api/v1/enrolment-tokens", json_body={"zone": "hall-01"},
                                    headers={"Authorization": f"Bearer {api_token}"})
    assert made.status == 201, made.text
    token = made.json()["token"]
    enrolled = Browser(server.url).post("/enroll", json_body={"token": token, "device_id": "hall01-kiosk-7"})
    assert enrolled.status == 201, enrolled.text
    secret = enrolled.json()["mqtt"]["password"]
    rotated = Browser(server.url).post("/api/v1/devices/hall01-kiosk-7/rotate", json_body={},
                                       headers={"Authorization": f"Bearer {api_token}"})
    assert rotated.status == 200, rotated.text
    new_secret = rotated.json()["password"]
    audit = Browser(server.url).get("/api/v1/audit?limit=200", headers={"Authorization": f"Bearer {api_token}"})
    log = proc.log_text()
    assert "hall01-kiosk-7" in log and "DEBUG" in log, "the log says nothing: the check below would prove nothing"
    for name, value in (("password", PASSWORD), ("wrong password", WRONG_PASSWORD), ("session", browser.cookies[
            "zw_session"]), ("CSRF token", csrf), ("API token", api_token), ("admin token", proc.token),
            ("enrolment token", token), ("device secret", secret), ("rotated secret", new_secret),
            ("receiver secret", RECEIVER_SECRET)):
        assert value not in log, f"the {name} is in the server log"
        assert value not in audit.text, f"the {name} is in the audit log"


# -- secret files --------------------------------------------------------------------------------


def settings_with(tmp_path, text: str):
    config = tmp_path / "server.toml"
    config.write_text(text)
    return parse_settings(text, str(config), environ={}), config


def test_a_secret_file_every_user_may_read_is_refused(tmp_path):
    secret = tmp_path / "mqtt.secret"
    secret.write_text("s3cret\n")
    settings, config = settings_with(tmp_path, f'[mqtt]\nusername = "zw"\npassword_file = "{secret}"\n')
    for mode in (0o644, 0o604, 0o666):
        secret.chmod(mode)
        with pytest.raises(ConfigError) as err:
            check_secret_files(settings, config)
        assert f"chmod 600 {secret}" in str(err.value) and "mqtt.password_file" in str(err.value)
    for mode in (0o600, 0o400):
        secret.chmod(mode)
        assert check_secret_files(settings, config) == []
    secret.chmod(0o640)
    os.chown(secret, -1, 4242)  # a group this process is not in
    warnings = check_secret_files(settings, config)
    assert len(warnings) == 1 and "group 4242" in warnings[0] and "chmod 600" in warnings[0]
    os.chown(secret, -1, os.getegid())  # the server's own group: fine
    assert check_secret_files(settings, config) == []


def test_receiver_secret_files_are_checked_too(tmp_path):
    secret = tmp_path / "smtp.password"
    secret.write_text("pw\n")
    secret.chmod(0o644)
    settings, config = settings_with(tmp_path, f'[receivers.mail]\nkind = "email"\nhost = "127.0.0.1"\n'
                                               f'sender = "zw@example.org"\nto = ["a@example.org"]\nusername = "zw"\n'
                                               f'password_file = "{secret}"\n')
    with pytest.raises(ConfigError, match=r"receivers\.mail\.password_file"):
        check_secret_files(settings, config)


def test_inline_secrets_in_a_config_others_may_read_are_warned_about(tmp_path):
    text = ('[mqtt]\npassword = "inline-pw"\n[database]\nurl = "postgresql+psycopg://zw:dbpw@127.0.0.1/zw"\n'
            '[receivers.robot]\nkind = "dingtalk"\nurl = "https://oapi.dingtalk.com/robot/send?access_token=x"\n')
    settings, config = settings_with(tmp_path, text)
    config.chmod(0o644)
    [warning] = check_secret_files(settings, config)
    assert "mqtt.password, database.url, receivers.robot.url" in warning and f"chmod 600 {config}" in warning
    assert "inline-pw" not in warning and "dbpw" not in warning  # the warning names keys, never values
    config.chmod(0o600)
    assert check_secret_files(settings, config) == []
    config.chmod(0o644)
    assert check_secret_files(settings, config, frozenset({"mqtt.password", "database.url",
                                                           "receivers.robot.url"})) == []


def test_the_server_does_not_start_on_a_world_readable_secret(tmp_path):
    secret = tmp_path / "mqtt.secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    config = tmp_path / "server.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n[mqtt]\nurl = "mqtt://127.0.0.1:9"\n'
                      f'username = "zw"\npassword_file = "{secret}"\n')
    done = subprocess.run([sys.executable, "-m", "server.run", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 78 and f"chmod 600 {secret}" in done.stderr, done.stderr
    assert "s3cret" not in done.stderr + done.stdout
    assert stat.S_IMODE(secret.stat().st_mode) == 0o644  # told, not changed behind the admin's back
