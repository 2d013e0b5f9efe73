"""Enrolment end to end: a real server serving HTTPS with a certificate from the fleet's own CA, a real mosquitto on
the files the server maintains (TLS for devices), and the real ``zonewatch-agent enroll`` and ``run``. Token →
config → the agent connects over TLS → its report reaches the server; reused, expired, forged and wrong-zone tokens
refused; a revoked device is disconnected, kept out, and marked revoked in the API and on its pages; enrolment
refuses a server its CA file (or the system's CAs) does not vouch for, without spending the token."""

from __future__ import annotations

import json
import os
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from provisioning.broker import BrokerFiles, hash_password, new_secret
from provisioning.broker_conf import Listener
from provisioning.ca import create_ca, issue_server
from tests.agent_process import ROOT
from tests.mqtt_probe import Probe
from tests.peers._util import free_port, stop_process
from tests.server_process import ServerProcess, wait_until

pytestmark = pytest.mark.peer
SERVER_USER = "zonewatch-server"


def post(server: ServerProcess, path: str, body: object | None = None, headers: dict | None = None,
         raw: bytes | None = None, content_type: str = "application/json") -> tuple[int, dict]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    request = urllib.request.Request(server.url + path, data=data, method="POST",
                                     headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10, context=server.tls) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@pytest.fixture
def site(tmp_path, mosquitto_factory, monkeypatch):
    """Broker (plain port for the server, TLS port for devices) on files the server rewrites and reloads; the server
    serves HTTPS with its own certificate from the same CA."""
    ca, broker_cert = create_ca(tmp_path / "ca", "enrolment test CA", ["127.0.0.1"], key_owner=None)
    https = issue_server(tmp_path / "ca", "server", ["127.0.0.1"])
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    server_secret = new_secret()
    (tmp_path / "server.secret").write_text(server_secret + "\n")
    (tmp_path / "server.secret").chmod(0o600)  # the server refuses a secret every user may read
    files = BrokerFiles(broker_dir)
    files.write({}, {SERVER_USER: hash_password(server_secret)}, "zw/v1")
    tls_port = free_port()
    listener = Listener(tls_port, "127.0.0.1", ca.cert, broker_cert.cert, broker_cert.key)
    broker = mosquitto_factory(password_file=files.password_file, acl_file=files.acl_file,
                               extra_conf="\n".join(listener.lines()))
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text(f"{broker.proc.pid}\n")
    monkeypatch.setenv("ZONEWATCH_MQTT_USERNAME", SERVER_USER)
    monkeypatch.setenv("ZONEWATCH_MQTT_PASSWORD_FILE", str(tmp_path / "server.secret"))
    server = ServerProcess(tmp_path / "server", broker.port, f"sqlite:///{tmp_path / 'zw.db'}", extra=(
        f'[provisioning]\nbroker_dir = "{broker_dir}"\nbroker_pid_file = "{pid_file}"\n'
        f'device_broker_url = "mqtts://127.0.0.1:{tls_port}"\ndevice_ca_file = "{ca.cert}"\n'),
        tls=(https.cert, https.key, ca.cert))
    from server.cli import main as zonewatch

    assert zonewatch(["zone", "add", "hall-01", "--name", "Hall 1", "--kind", "service_hall",
                      "--config", str(server.config)]) == 0
    assert zonewatch(["zone", "add", "hall-02", "--name", "Hall 2", "--kind", "library",
                      "--config", str(server.config)]) == 0
    server.start()
    agents: list[subprocess.Popen] = []
    yield SimpleNamespace(broker=broker, server=server, files=files, tls_port=tls_port, ca=ca, agents=agents,
                          tmp=tmp_path)
    for proc in agents:
        stop_process(proc)
    server.stop()


def new_token(site, zone: str = "hall-01") -> str:
    status, body = post(site.server, "/api/v1/enrolment-tokens", {"zone": zone, "expires_hours": 1},
                        site.server.headers)
    assert status == 201, body
    return body["token"]


def enroll_cli(site, token: str, where: Path, *extra: str, ca: Path | str | None = "site") \
        -> subprocess.CompletedProcess:
    """``zonewatch-agent enroll`` over HTTPS with ``--ca-file``: the site's CA, another file, or none (None)."""
    where.mkdir(parents=True, exist_ok=True)
    trust = [] if ca is None else ["--ca-file", str(site.ca.cert if ca == "site" else ca)]
    return subprocess.run([sys.executable, "-m", "agent.cli", "enroll", "--server", site.server.url, "--token", token,
                           "--config", str(where / "agent.toml"), "--data-dir", str(where / "data"), *trust, *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def start_agent(site, config: Path) -> subprocess.Popen:
    """The enrolled config as written, made quick for a test (fast reports, no network/printer checks)."""
    text = config.read_text()
    text = text.replace("[agent]\n", "[agent]\ninterval = 0.5\nlog_level = \"debug\"\n")
    text = text.replace("[mqtt]\n", "[mqtt]\nkeepalive = 2\nreconnect_min = 0.2\nreconnect_max = 0.5\n")
    config.write_text(text + "\n[collectors.network]\nenabled = false\n[collectors.printer]\nenabled = false\n"
                             "[collectors.kiosk]\nenabled = false\n")
    log = (config.parent / "agent.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(config)], cwd=ROOT,
                            stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    site.agents.append(proc)
    return proc


def test_token_to_enrolled_agent_reporting_over_tls_then_revoked(site):
    token = new_token(site)
    where = site.tmp / "kiosk"
    done = enroll_cli(site, token, where, "--device-id", "hall01-kiosk-1", "--name", "Kiosk by the door")
    assert done.returncode == 0, done.stderr
    assert "enrolled as device hall01-kiosk-1 in zone hall-01" in done.stdout
    config, secret = where / "agent.toml", where / "mqtt-password"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600 and stat.S_IMODE(secret.stat().st_mode) == 0o600
    password = secret.read_text().strip()
    assert password not in config.read_text() and token not in config.read_text()
    assert f"mqtts://127.0.0.1:{site.tls_port}" in config.read_text()
    assert site.ca.cert.read_text() == (where / "broker-ca.pem").read_text()

    start_agent(site, config)
    device = wait_until(lambda: (d := site.server.get("/api/v1/devices/hall01-kiosk-1")[1]).get("last_report_at")
                        and d, 30, "the enrolled agent's first report at the server")
    assert device["zone"]["code"] == "hall-01" and device["name"] == "Kiosk by the door" and device["role"] == "kiosk"
    assert device["revoked_at"] is None
    assert 'class="badge s-revoked"' not in page(site, "/devices/hall01-kiosk-1") + page(site, "/zones/hall-01")
    assert (where / "server-ca.pem").read_text() == site.ca.cert.read_text()  # content downloads verify the server
    assert f'ca_file = "{where / "server-ca.pem"}"' in config.read_text()
    assert password not in site.server.log_text() and token not in site.server.log_text()

    again = enroll_cli(site, token, site.tmp / "second")  # a token works once
    assert again.returncode == 1 and "used already" in again.stderr, again.stderr

    tls = ssl.create_default_context(cafile=str(site.ca.cert))
    probe = Probe(site.tls_port, "hall01-kiosk-1", password, tls=tls)
    assert probe.connect() == 0
    status, body = post(site.server, "/api/v1/devices/hall01-kiosk-1/revoke", headers=site.server.headers)
    assert status == 200 and "reloaded" in body["broker"], body
    assert probe.disconnected.wait(10), "the revoked device stayed connected"
    probe.close()
    assert Probe(site.tls_port, "hall01-kiosk-1", password, tls=tls).connect() != 0
    assert_marked_revoked(site, "hall01-kiosk-1", body["revoked_at"])
    status, _ = post(site.server, "/api/v1/devices/hall01-kiosk-1/rotate", headers=site.server.headers)
    assert status == 409  # a revoked device gets no new secret
    status, body = post(site.server, "/enroll", {"token": new_token(site), "device_id": "hall01-kiosk-1"})
    assert status == 409 and "revoked" in body["error"]


def page(site, path: str, language: str = "en") -> str:
    request = urllib.request.Request(site.server.url + path, headers={**site.server.headers,
                                                                      "Accept-Language": language})
    with urllib.request.urlopen(request, timeout=10, context=site.server.tls) as resp:
        return resp.read().decode()


def assert_marked_revoked(site, device_id: str, revoked_at: str) -> None:
    """The API answers say when the device was revoked; its page and its zone's page say so in words."""
    _, device = site.server.get(f"/api/v1/devices/{device_id}")
    assert device["revoked_at"] == revoked_at
    _, listed = site.server.get("/api/v1/devices?zone=hall-01")
    assert [d["revoked_at"] for d in listed["items"] if d["id"] == device_id] == [revoked_at]
    _, zone = site.server.get("/api/v1/zones/hall-01")
    assert [d["revoked_at"] for d in zone["devices"] if d["id"] == device_id] == [revoked_at]
    stamp = revoked_at.replace("+00:00", "Z")
    marker = f'<span class="badge s-revoked" data-revoked-at="{stamp[:19]}Z">'
    for path in (f"/devices/{device_id}", "/zones/hall-01"):
        html = page(site, path)
        assert marker + "revoked on <time" in html, (path, marker, html[:3000])
        assert marker + "已于 <time" in page(site, path, "zh-CN")
    assert "cannot enrol again under this id" in page(site, f"/devices/{device_id}")


def test_refused_tokens_say_what_to_do(site):
    status, body = post(site.server, "/enroll", {"token": "zwe_" + "A" * 43})
    assert status == 401 and "not valid" in body["error"] and "token create" in body["error"]
    status, body = post(site.server, "/enroll", {"token": new_token(site), "zone": "hall-02"})
    assert status == 403 and "hall-01" in body["error"]
    expired = new_token(site)
    from sqlmodel import Session, create_engine, select

    from provisioning.enrolment import digest
    from provisioning.models import EnrolmentToken

    engine = create_engine(site.server.database_url)
    with Session(engine) as s:
        row = s.exec(select(EnrolmentToken).where(EnrolmentToken.token_hash == digest(expired))).one()
        row.expires_at = time.time() - 1
        s.add(row)
        s.commit()
    engine.dispose()
    status, body = post(site.server, "/enroll", {"token": expired})
    assert status == 410 and "expired" in body["error"]
    status, body = post(site.server, "/api/v1/enrolment-tokens", {"zone": "nowhere"}, site.server.headers)
    assert status == 400 and "nowhere" in body["error"] and body["parameter"] == "zone"
    status, _ = post(site.server, "/api/v1/enrolment-tokens", {"zone": "hall-01"})  # no credentials
    assert status == 401
    viewer = site.server.user("viewer-1", "viewer")
    status, _ = post(site.server, "/api/v1/enrolment-tokens", {"zone": "hall-01"},
                     {"Authorization": f"Bearer {viewer}"})
    assert status == 403


@pytest.mark.parametrize(("raw", "content_type", "status"), [
    (b"{", "application/json", 400),
    (b"[]", "application/json", 400),
    (b'{"token": 5}', "application/json", 400),
    (b'{"token": "zwe_x", "extra": 1}', "application/json", 400),
    (b'{"token": "' + b"a" * 100_000 + b'"}', "application/json", 413),
    (b"token=zwe_x", "application/x-www-form-urlencoded", 415),
    (b'{"token": "zwe_' + b"A" * 43 + b'", "device_id": "../etc"}', "application/json", 401),
    (b"\xff\xfe", "application/json", 400),
])
def test_bad_enrolment_requests_are_4xx(site, raw, content_type, status):
    got, body = post(site.server, "/enroll", raw=raw, content_type=content_type)
    assert got == status and body["error"], body


def test_enroll_refuses_to_overwrite_before_spending_the_token(site, tmp_path):
    where = tmp_path / "kiosk"
    where.mkdir()
    (where / "agent.toml").write_text("# an enrolled device\n")
    token = new_token(site)
    done = enroll_cli(site, token, where)
    assert done.returncode == 73 and "--force" in done.stderr
    assert enroll_cli(site, token, where, "--force").returncode == 0  # the token was not spent


def test_enroll_verifies_the_server_and_keeps_the_token_when_it_cannot(site):
    token = new_token(site)
    other, _ = create_ca(site.tmp / "other-ca", "someone else's CA", ["127.0.0.1"], key_owner=None)
    refused = site.tmp / "refused"
    for ca, words in ((None, "no system CA signed it"), (other.cert, f"{other.cert} did not sign it")):
        done = enroll_cli(site, token, refused, ca=ca)
        assert done.returncode == 69, done.stderr
        assert "TLS certificate is not trusted" in done.stderr and words in done.stderr, done.stderr
        assert "--ca-file" in done.stderr and "still works" in done.stderr and "Traceback" not in done.stderr
        assert not (refused / "agent.toml").exists()
    garbage = site.tmp / "not-a-ca.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    for ca in (garbage, site.tmp / "missing.pem"):
        done = enroll_cli(site, token, refused, ca=ca)
        assert done.returncode == 1 and f"cannot use --ca-file {ca}" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    plain = subprocess.run([sys.executable, "-m", "agent.cli", "enroll", "--server",
                            site.server.url.replace("https:", "http:"), "--token", token, "--config",
                            str(refused / "agent.toml")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert plain.returncode == 69 and "give --server https://" in plain.stderr, plain.stderr
    done = enroll_cli(site, token, site.tmp / "kiosk")  # none of that spent the token
    assert done.returncode == 0, done.stderr


def test_enroll_cannot_reach_a_server(tmp_path):
    done = subprocess.run([sys.executable, "-m", "agent.cli", "enroll", "--server", f"http://127.0.0.1:{free_port()}",
                           "--token", "zwe_x", "--config", str(tmp_path / "agent.toml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 69 and "cannot reach the server" in done.stderr
