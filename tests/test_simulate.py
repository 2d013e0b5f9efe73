"""``zonewatch simulate`` against a real private mosquitto and the real server process.

The simulator runs as the installed CLI would (``python -m server.cli simulate``); the server's API
then shows every simulated device, and what the simulator says the broker acknowledged is exactly
what the server stored.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.peers._util import free_port, stop_process
from tests.peers.mosquitto import write_password_file
from tests.server_process import ROOT, ServerProcess, wait_until

SUMMARY = re.compile(r"summary: (\d+) devices, .* reports sent (\d+), acked (\d+), unacked (\d+), failures (\d+)")


def simulate(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", "simulate", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def start_simulate(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "server.cli", "simulate", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def summary(stdout: str) -> dict[str, int]:
    match = SUMMARY.search(stdout)
    assert match, stdout
    keys = ("devices", "sent", "acked", "unacked", "failures")
    return dict(zip(keys, map(int, match.groups()), strict=True))


def retained_presence(port: int, count: int) -> dict[str, dict]:
    """The retained presence of every device on the broker (waits for ``count`` of them)."""
    seen: dict[str, dict] = {}
    lock = threading.Lock()

    def on_message(client, userdata, msg) -> None:
        with lock:
            seen[msg.topic.split("/")[3]] = json.loads(msg.payload)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe("zw/v1/dev/+/presence", qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_until(lambda: len(seen) >= count, 20, f"{count} retained presences")
        with lock:
            return dict(seen)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def server_and_broker(tmp_path, mosquitto_factory):
    broker = mosquitto_factory()
    server = ServerProcess(tmp_path / "server", broker.port, f"sqlite:///{tmp_path / 'fleet.db'}")
    server.start()
    try:
        yield server, broker
    finally:
        server.stop()


def test_fifty_devices_reach_the_server_and_the_counts_match(server_and_broker):
    server, broker = server_and_broker
    done = simulate("--broker", broker.url, "--devices", "50", "--interval", "1", "--duration", "5",
                    "--faults", "200", "--seed", "1")
    assert done.returncode == 0, done.stderr
    got = summary(done.stdout)
    assert got["devices"] == 50 and got["unacked"] == 0 and got["failures"] == 0, done.stdout
    assert got["acked"] == got["sent"] >= 50, done.stdout

    def stored() -> dict:
        status, body = server.get("/api/v1/summary")
        assert status == 200, body
        return body

    body = wait_until(lambda: (b := stored())["ingest"]["stored"] >= got["acked"] and b, 30, "every report stored")
    assert body["devices"]["total"] == 50
    assert body["ingest"]["stored"] == got["acked"]
    assert body["ingest"]["refused_total"] == 0
    # a clean stop says goodbye: offline presence from every device, not the Last Will
    presence = retained_presence(broker.port, 50)
    assert {p["online"] for p in presence.values()} == {False}
    assert {p["reason"] for p in presence.values()} == {"simulation stopped"}


def test_sigterm_stops_cleanly_with_a_summary(server_and_broker):
    server, broker = server_and_broker
    proc = start_simulate("--broker", broker.url, "--devices", "20", "--interval", "1", "--prefix", "term-")
    try:
        wait_until(lambda: server.get("/api/v1/summary")[1]["ingest"]["stored"] >= 20, 30, "20 reports stored")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        stop_process(proc)
    assert proc.returncode == 0, err
    got = summary(out)
    assert got["devices"] == 20 and got["unacked"] == 0 and got["acked"] >= 20, out
    wait_until(lambda: server.get("/api/v1/summary")[1]["ingest"]["stored"] == got["acked"], 30, "all stored")
    assert server.get("/api/v1/summary")[1]["devices"]["total"] == 20
    presence = retained_presence(broker.port, 20)
    assert {p["reason"] for p in presence.values()} == {"simulation stopped"}


def test_per_device_credentials(tmp_path, mosquitto_factory):
    ids = [f"cred-{i:05d}" for i in range(1, 4)]
    passwords = {d: uuid.uuid4().hex for d in ids}
    broker = mosquitto_factory(password_file=write_password_file(tmp_path / "passwd", passwords))
    good = tmp_path / "good"
    good.write_text("".join(f"{d}:{p}\n" for d, p in passwords.items()))
    done = simulate("--broker", broker.url, "--devices", "3", "--interval", "1", "--duration", "2",
                    "--prefix", "cred-", "--password-file", str(good))
    assert done.returncode == 0, done.stderr
    assert summary(done.stdout)["acked"] >= 3
    bad = tmp_path / "bad"
    bad.write_text("wrong\n")
    done = simulate("--broker", broker.url, "--devices", "3", "--interval", "1", "--duration", "2",
                    "--prefix", "cred-", "--password-file", str(bad))
    assert done.returncode == 2
    assert "did not accept cred-00001" in done.stderr and "Not authorized" in done.stderr, done.stderr


@pytest.mark.parametrize(("args", "says"), [
    (["--devices", "0"], "--devices must be at least 1"),
    (["--interval", "-1"], "--interval must be a positive number"),
    (["--interval", "nan"], "--interval must be a positive number"),
    (["--faults", "-2"], "--faults must be zero or a positive rate"),
    (["--duration", "0"], "--duration must be a positive number"),
    (["--password-file", "/nonexistent/pw"], "--password-file /nonexistent/pw"),
])
def test_bad_arguments_exit_with_a_clear_message(mosquitto, args, says):
    done = simulate("--broker", mosquitto.url, *args)
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize(("url", "says"), [
    ("mqtt://127.0.0.1:{port}", "cannot reach the broker at mqtt://127.0.0.1:{port}: Connection refused"),
    ("http://127.0.0.1:{port}", "--broker must be mqtt://HOST[:PORT]"),
])
def test_unreachable_or_malformed_broker(url, says):
    port = free_port()
    done = simulate("--broker", url.format(port=port), "--devices", "2")
    assert done.returncode == 2
    assert says.format(port=port) in done.stderr and "Traceback" not in done.stderr, done.stderr
