"""Content rollouts end to end: a real mosquitto on the password/ACL files the server maintains, the real server,
real agents enrolled with ``zonewatch-agent enroll`` (which hands them the content signing key), real HTTP.

A rollout to three zones with one agent off converges on the two, then on the third once it starts; bad
bundles (hash mismatch, bad signature, path traversal, symlink escape, zip bomb) are refused with the reason
reported and the kiosk's content unchanged; a failing reload hook rolls back by itself and says so."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlmodel import Session

from provisioning.broker import BrokerFiles, hash_password, new_secret
from server.content.models import ContentBundle
from server.content.signing import SigningKey
from server.db import make_engine
from tests.agent_process import ROOT
from tests.content_bundles import bundle, manifest, tar_gz, zip_bomb
from tests.peers._util import stop_process
from tests.server_process import ServerProcess, wait_until

pytestmark = pytest.mark.peer
SERVER_USER = "zonewatch-server"
ZONES = ("hall-01", "hall-02", "hall-03")
# The reload hook fails when the new content carries broken.flag, as a kiosk browser that cannot start would.
RELOAD = ('["sh", "-c", "echo reloaded >> \\"$0/reloads\\"; test ! -e \\"$0/current/broken.flag\\" || '
          '{ echo kiosk browser did not come back >&2; exit 3; }", "{dir}"]')


def http(server: ServerProcess, method: str, path: str, body: object | None = None, raw: bytes | None = None,
         headers: dict | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    request = urllib.request.Request(server.url + path, data=data if method != "GET" else None, method=method,
                                     headers={"Content-Type": "application/octet-stream" if raw is not None
                                              else "application/json", **server.headers, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@pytest.fixture
def site(tmp_path, mosquitto_factory, monkeypatch):
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    secret = new_secret()
    (tmp_path / "server.secret").write_text(secret + "\n")
    (tmp_path / "server.secret").chmod(0o600)  # the server refuses a secret others may read
    files = BrokerFiles(broker_dir)
    files.write({}, {SERVER_USER: hash_password(secret)}, "zw/v1")
    broker = mosquitto_factory(password_file=files.password_file, acl_file=files.acl_file)
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text(f"{broker.proc.pid}\n")
    monkeypatch.setenv("ZONEWATCH_MQTT_USERNAME", SERVER_USER)
    monkeypatch.setenv("ZONEWATCH_MQTT_PASSWORD_FILE", str(tmp_path / "server.secret"))
    server = ServerProcess(tmp_path / "server", broker.port, f"sqlite:///{tmp_path / 'zw.db'}", extra=(
        f'[provisioning]\nbroker_dir = "{broker_dir}"\nbroker_pid_file = "{pid_file}"\n'
        f'device_broker_url = "mqtt://127.0.0.1:{broker.port}"\n'))
    from server.cli import main as zonewatch

    for code in ZONES:
        assert zonewatch(["zone", "add", code, "--name", code, "--kind", "service_hall",
                          "--config", str(server.config)]) == 0
    server.start()
    procs: dict[str, subprocess.Popen] = {}
    yield SimpleNamespace(server=server, tmp=tmp_path, procs=procs)
    for proc in procs.values():
        stop_process(proc)
    server.stop()


def enrol(site, zone: str, device_id: str, max_unpacked_mb: int = 64) -> Path:
    status, body = http(site.server, "POST", "/api/v1/enrolment-tokens", {"zone": zone, "expires_hours": 1})
    assert status == 201, body
    where = site.tmp / device_id
    where.mkdir()
    done = subprocess.run([sys.executable, "-m", "agent.cli", "enroll", "--server", site.server.url, "--token",
                           body["token"], "--device-id", device_id, "--config", str(where / "agent.toml"),
                           "--data-dir", str(where / "data")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    config = where / "agent.toml"
    text = config.read_text()
    assert "[content]" in text and "signing_key" in text, text
    content_dir = where / "data" / "content"
    text = text.replace("[agent]\n", "[agent]\ninterval = 0.5\nlog_level = \"debug\"\n")
    text = text.replace("[mqtt]\n", "[mqtt]\nkeepalive = 2\nreconnect_min = 0.2\nreconnect_max = 0.5\n")
    text = text.replace("[content]\n", f"[content]\nsettle = 0\nmax_unpacked_mb = {max_unpacked_mb}\n"
                                       f"reload_command = {RELOAD.replace('{dir}', str(content_dir))}\n")
    config.write_text(text + "\n[collectors.network]\nenabled = false\n[collectors.printer]\nenabled = false\n"
                             "[collectors.kiosk]\nenabled = false\n[collectors.content]\nevery = 0.5\n")
    return where


def start(site, device_id: str) -> None:
    where = site.tmp / device_id
    log = (where / "agent.log").open("ab")
    site.procs[device_id] = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(where / "agent.toml")], cwd=ROOT, stdout=log,
        stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def upload_cli(site, data: bytes, name: str = "bundle.tar.gz") -> subprocess.CompletedProcess:
    path = site.tmp / name
    path.write_bytes(data)
    return subprocess.run([sys.executable, "-m", "server.cli", "content", "upload", str(path), "--server",
                           site.server.url, "--token", site.server.token], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def rollout(site, version: str, **target) -> int:
    status, body = http(site.server, "POST", "/api/v1/content/rollouts", {"bundle": version, **target})
    assert status == 201 and body["publish_error"] is None, body
    return body["id"]


def states(site, rollout_id: int) -> dict[str, tuple[str, str]]:
    status, body = http(site.server, "GET", f"/api/v1/content/rollouts/{rollout_id}")
    assert status == 200, body
    return {d["device_id"]: (d["state"], d["detail"]) for d in body["devices"]}


def wait_state(site, rollout_id: int, device_id: str, want: str, timeout: float = 60) -> str:
    def done():
        state, detail = states(site, rollout_id)[device_id]
        return detail or state if state == want else None
    return wait_until(done, timeout, f"{device_id} {want} in rollout {rollout_id} (log: {site.tmp / device_id})")


def live(site, device_id: str) -> str:
    return (site.tmp / device_id / "data/content/current/index.html").read_text()


def test_rollout_to_three_zones_with_one_agent_offline(site):
    for i, zone in enumerate(ZONES, 1):
        enrol(site, zone, f"kiosk-{i}")
    start(site, "kiosk-1")
    start(site, "kiosk-2")
    done = upload_cli(site, bundle("2026.11.1", {"index.html": b"notices of November", "guides/a.txt": b"a"}))
    assert done.returncode == 0 and "bundle 2026.11.1 stored" in done.stdout, done.stderr
    again = upload_cli(site, bundle("2026.11.1", {"index.html": b"other bytes", "guides/a.txt": b"a"}))
    assert again.returncode == 1 and "give the new bundle a new version" in again.stderr, again.stderr

    rid = rollout(site, "2026.11.1", zones=list(ZONES))
    for device in ("kiosk-1", "kiosk-2"):
        wait_state(site, rid, device, "applied")
        assert live(site, device) == "notices of November"
    assert states(site, rid)["kiosk-3"][0] == "offline-waiting"
    # every report carries the applied version and hash
    report = wait_until(lambda: (b := http(site.server, "GET", "/api/v1/devices/kiosk-1")[1]) and
                        "2026.11.1" in json.dumps(b.get("latest_report")) and b["latest_report"], 30,
                        "the content version in kiosk-1's report")
    assert "2026.11.1" in json.dumps([c for c in report["checks"] if c.get("kind") == "content"]), report["checks"]

    start(site, "kiosk-3")  # was off when the rollout was published: converges from the retained desired state
    wait_state(site, rid, "kiosk-3", "applied")
    assert live(site, "kiosk-3") == "notices of November"
    _, body = http(site.server, "GET", f"/api/v1/content/rollouts/{rid}")
    assert body["counts"] == {"applied": 3}, body


def _plant(site, data: bytes, version: str, signature: str | None = None) -> None:
    """Store a bundle the way a compromised upload path would: past the server's own checks, properly signed
    unless a signature is given. The agent must refuse it by itself."""
    sha = hashlib.sha256(data).hexdigest()
    data_dir = site.server.tmp / "data"
    (data_dir / "content/bundles").mkdir(parents=True, exist_ok=True)
    (data_dir / "content/bundles" / sha).write_bytes(data)
    engine = make_engine(site.server.database_url)
    with Session(engine) as s:
        s.add(ContentBundle(sha256=sha, version=version, size=len(data), files=1, unpacked_bytes=0,
                            signature=signature or SigningKey.load_or_create(data_dir).sign(version, sha, len(data)),
                            uploaded_at=time.time()))
        s.commit()
    engine.dispose()


def test_bad_bundles_are_refused_and_a_failed_reload_rolls_back(site):
    enrol(site, "hall-01", "kiosk-a", max_unpacked_mb=8)
    start(site, "kiosk-a")
    assert upload_cli(site, bundle("v1", {"index.html": b"good v1"})).returncode == 0
    wait_state(site, rollout(site, "v1", devices=["kiosk-a"]), "kiosk-a", "applied")
    link = os.readlink(site.tmp / "kiosk-a/data/content/current")

    # the server refuses unsafe uploads itself, naming the rule
    status, body = http(site.server, "POST", "/api/v1/content/bundles", raw=tar_gz(
        [("file", "manifest.json", manifest("evil", [])), ("file", "../../etc/cron.d/evil", b"x")]))
    assert status == 400 and "'..'" in body["error"], body

    # hash mismatch: the stored file altered after it was signed
    assert upload_cli(site, bundle("v2", {"index.html": b"v2"})).returncode == 0
    status, listed = http(site.server, "GET", "/api/v1/content/bundles")
    v2 = next(b for b in listed["items"] if b["version"] == "v2")
    stored = site.server.tmp / "data/content/bundles" / v2["sha256"]
    stored.write_bytes(bytes(len(stored.read_bytes())))
    bad = {"hash mismatch": ("v2", "sha256 mismatch")}

    # bad signature: the bundle signed by another key
    other = SigningKey.load_or_create(site.tmp / "attacker")
    forged = bundle("v3", {"index.html": b"forged"})
    _plant(site, forged, "v3", other.sign("v3", hashlib.sha256(forged).hexdigest(), len(forged)))
    bad["bad signature"] = ("v3", "signature does not verify")
    # malicious archives that reach the device signed (compromised upload path)
    _plant(site, tar_gz([("file", "manifest.json", manifest("v4", ["index.html"])), ("file", "index.html", b"x"),
                         ("file", "../../../evil.sh", b"x")]), "v4")
    bad["path traversal"] = ("v4", "'..'")
    _plant(site, tar_gz([("file", "manifest.json", manifest("v5", ["index.html"])), ("file", "index.html", b"x"),
                         ("symlink", "etc", "../../../../etc")]), "v5")
    bad["symlink escape"] = ("v5", "escapes the bundle root")
    _plant(site, zip_bomb("v6", 64 << 20), "v6")
    bad["zip bomb"] = ("v6", "over the per-file limit")
    assert upload_cli(site, bundle("v7", {"index.html": b"v7", "broken.flag": b""})).returncode == 0
    bad["reload hook fails"] = ("v7", "kiosk browser did not come back")

    for case, (version, reason) in bad.items():
        rid = rollout(site, version, devices=["kiosk-a"])
        detail = wait_state(site, rid, "kiosk-a", "failed")
        assert reason in detail, (case, detail)
        assert live(site, "kiosk-a") == "good v1", case
        assert os.readlink(site.tmp / "kiosk-a/data/content/current") == link, case
    assert "rolled back to v1-" in detail
    assert not (site.tmp.parent / "evil.sh").exists() and not (site.tmp / "evil.sh").exists()


def test_device_downloads_need_the_device_and_resume_with_range(site):
    enrol(site, "hall-01", "kiosk-r")
    enrol(site, "hall-02", "kiosk-s")
    data = bundle("r1", {"index.html": os.urandom(100_000)})
    assert upload_cli(site, data).returncode == 0
    rid = rollout(site, "r1", devices=["kiosk-r"])
    status, body = http(site.server, "GET", f"/api/v1/content/rollouts/{rid}")
    sha = body["bundle_sha256"]
    url = f"{site.server.url}/device/content/{sha}"
    secret = (site.tmp / "kiosk-r/mqtt-password").read_text().strip()

    def get(user: str, password: str, extra: dict | None = None):
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {auth}", **(extra or {})})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    assert get("kiosk-r", "wrong")[0] == 401
    with pytest.raises(urllib.error.HTTPError) as no_auth:
        urllib.request.urlopen(url, timeout=10)
    assert no_auth.value.code == 401 and "Basic" in no_auth.value.headers["WWW-Authenticate"]
    other = (site.tmp / "kiosk-s/mqtt-password").read_text().strip()
    assert get("kiosk-s", other)[0] == 403  # a real device, but the bundle was not rolled out to it
    status, whole = get("kiosk-r", secret)
    assert status == 200 and whole == data
    status, tail = get("kiosk-r", secret, {"Range": "bytes=1000-"})
    assert status == 206 and tail == data[1000:]
    key = urllib.request.urlopen(site.server.url + "/device/content-key", timeout=10).read().decode().strip()
    assert len(base64.b64decode(key)) == 32
