"""The real zonewatch server as a child process, and a publisher that speaks the protocol like agents do.

``ServerProcess(tmp, mqtt_port, database_url)`` writes a settings file and runs
``python -m server.run``; with ``tls=(cert, key, ca)`` it serves HTTPS with that certificate and ``url``/``get()``
trust ``ca``. ``start()`` returns once ``/healthz`` says the database and the broker
are fine; ``kill()`` is ``kill -9``. Before the first start it creates an admin user ``test-admin``
with an API token in the database; ``get()`` and ``headers`` send it (``Authorization: Bearer``).
``Fleetpub`` publishes protocol messages over a real MQTT connection (QoS 1, waits for every PUBACK).
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol import Codec, NetworkCheck, Presence, PrinterCheck, PrinterCondition, Report, SystemCheck
from protocol.checks import KioskCheck
from tests.peers._util import free_port, stop_process, wait_for

ROOT = Path(__file__).resolve().parent.parent


class ServerProcess:
    def __init__(self, tmp: Path, mqtt_port: int, database_url: str, *, sweep_every: float = 0.5,
                 client_id: str | None = None, extra: str = "", tls: tuple[Path, Path, Path] | None = None) -> None:
        self.tmp, self.port = Path(tmp), free_port()
        self.tls = ssl.create_default_context(cafile=str(tls[2])) if tls else None
        served = f'tls_cert_file = "{tls[0]}"\ntls_key_file = "{tls[1]}"\n' if tls else ""
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.config = self.tmp / "server.toml"
        self.log_path = self.tmp / "server.log"
        self.config.write_text(
            f'[server]\nport = {self.port}\ndata_dir = "{self.tmp / "data"}"\nlog_level = "info"\n{served}'
            f'[database]\nurl = "{database_url}"\nbatch_wait_ms = 5\n'
            f'[mqtt]\nurl = "mqtt://127.0.0.1:{mqtt_port}"\nclient_id = "{client_id or "zw-" + uuid.uuid4().hex[:8]}"\n'
            f"[health]\nsweep_every = {sweep_every}\n{extra}\n")
        self.proc: subprocess.Popen | None = None
        self.database_url = database_url
        self.token: str | None = None

    def user(self, name: str, role: str, password: str | None = None) -> str:
        """A user in the server's database with an API token (returned); created before or after start."""
        from server.auth import store
        from server.db import make_engine, session_factory, upgrade

        engine = make_engine(self.database_url)
        try:
            upgrade(engine)
            with session_factory(engine)() as s:
                if not any(u.username == name for u, _ in store.list_users(s)):
                    store.add_user(s, name, role, password)
                return store.new_token(s, name)
        finally:
            engine.dispose()

    @property
    def headers(self) -> dict[str, str]:
        """The test admin's credentials, for any HTTP request to the server."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        if self.token is None:
            self.token = self.user("test-admin", "admin")
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "server.run", "--config", str(self.config)],
                                     cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_for(lambda: self._healthy(), timeout, f"server on port {self.port} (log: {self.log_path})")
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
        try:
            status, body = self.get("/healthz")
        except OSError:
            return False
        return status == 200 and body["broker"]["ok"]

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
        """(status, JSON) of a GET, as the test admin unless ``headers`` say otherwise."""
        request = urllib.request.Request(self.url + path, headers=self.headers if headers is None else headers)
        try:
            with urllib.request.urlopen(request, timeout=5, context=self.tls) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def stop(self) -> None:
        stop_process(self.proc, timeout=20)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Fleetpub:
    """Publishes protocol messages as agents would, QoS 1, and waits for the broker's PUBACKs."""

    def __init__(self, mqtt_port: int) -> None:
        self.codec = Codec()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self._acked: set[int] = set()
        self._cond = threading.Condition()
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", mqtt_port)
        self.client.loop_start()

    def _on_publish(self, client, userdata, mid, reason, properties) -> None:
        with self._cond:
            self._acked.add(mid)
            self._cond.notify_all()

    def raw(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos:
            with self._cond:
                if not self._cond.wait_for(lambda: info.mid in self._acked, 10):
                    raise TimeoutError(f"no PUBACK for {topic}")

    def send(self, message) -> None:
        kind = {Report: "report", Presence: "presence"}[type(message)]
        self.raw(self.codec.topics.device(message.device_id, kind), self.codec.encode(message),
                 retain=kind == "presence")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def report(device_id: str, seq: int, ts: float | None = None, *, network: str = "ok", kiosk: str = "ok",
           printer: str = "ok", condition: str | None = None, printer_name: str | None = "HP-Hall-1",
           interval_s: float = 30.0, latency_ms: float = 12.0) -> Report:
    """A kiosk's report: one network target, its kiosk process, one printer (none: ``printer_name=None``)
    and the system check."""
    words = {"media-empty": ("critical", "out of paper"), "toner-low": ("warning", "toner low"),
             "media-jam": ("critical", "paper jam"), "door-open": ("critical", "door or cover open"),
             "media-low": ("warning", "paper low"), "toner-empty": ("critical", "out of toner"),
             "stuck-queue": ("critical", "jobs stuck in the queue")}
    conditions, summary = [], "idle, ready"
    if condition is not None:
        severity, summary = words[condition]
        conditions = [PrinterCondition(code=condition, severity=severity, text=summary)]
    checks = [
        NetworkCheck(name="portal", status=network, probe="http", target="http://127.0.0.1/",
                     up=network != "critical", latency_ms=latency_ms,
                     summary="portal reachable" if network == "ok" else "portal unreachable"),
        KioskCheck(name="kiosk", status=kiosk, process="kiosk-ui", running=kiosk == "ok",
                   summary="kiosk-ui running" if kiosk == "ok" else "kiosk-ui not running"),
        SystemCheck(name="system", status="ok", uptime_s=1000.0 + seq, summary="ok"),
    ]
    if printer_name is not None:
        checks.append(PrinterCheck(name=f"printer:{printer_name}", printer=printer_name, status=printer,
                                   state="idle" if printer == "ok" else "stopped", summary=summary,
                                   conditions=conditions))
    return Report(device_id=device_id, ts=time.time() if ts is None else ts, seq=seq, interval_s=interval_s,
                  checks=checks)


def springfield(s) -> dict:
    """The tests' region tree, committed in session ``s``: city Springfield → districts North (→ township Elm)
    and South. Returns the regions by key: city, north, south, elm."""
    from server.db.models import Region

    city = Region(name="Springfield", level="city")
    s.add(city)
    s.commit()
    north = Region(name="North", level="district", parent_id=city.id)
    south = Region(name="South", level="district", parent_id=city.id)
    s.add_all([north, south])
    s.commit()
    elm = Region(name="Elm", level="township", parent_id=north.id)
    s.add(elm)
    s.commit()
    return {"city": city, "north": north, "south": south, "elm": elm}


def wait_until(predicate, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value {value!r}")
        time.sleep(0.05)
