"""``zonewatch demo``: a private mosquitto, the server on embedded defaults, and a simulated fleet.

Everything stays on 127.0.0.1: the broker listens on a free loopback port, the simulated agents
publish protocol reports to it (their "network targets" are names, never probed). The fleet is a
city with two districts, townships, a service hall, convenience centres, an archive and a
library, each zone with kiosks and printers; faults come and go (paper low and out, toner, jams,
a kiosk front-end that dies, a township whose network drops for a while).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from protocol import Codec, Presence, Report

from .sim_reports import FAULTS, build_report

FLEET = [  # (zone code, name, kind, region path, kiosks, printers)
    ("hd-hall", "Haidian Government Service Hall", "service_hall", "Demo City/Haidian District/Zhongguancun", 3, 2),
    ("hd-zgc-cc", "Zhongguancun Convenience Centre", "convenience_centre", "Demo City/Haidian District/Zhongguancun",
     1, 1),
    ("hd-qh-cc", "Qinghe Convenience Centre", "convenience_centre", "Demo City/Haidian District/Qinghe", 1, 1),
    ("cy-hall", "Chaoyang Government Service Hall", "service_hall", "Demo City/Chaoyang District/Jianwai", 2, 2),
    ("cy-archive", "Chaoyang State Archive", "archive", "Demo City/Chaoyang District/Jianwai", 1, 1),
    ("cy-library", "Chaoyang Public Library", "library", "Demo City/Chaoyang District/Maizidian", 2, 1),
]
HOURS = "mon-fri 08:30-12:00,13:30-17:30; sat 09:00-12:00"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(data_dir: Path) -> tuple[subprocess.Popen, int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise SystemExit("zonewatch demo: mosquitto is not installed. Install it with: sudo apt-get install mosquitto")
    port = free_port()
    work = data_dir / "broker"
    (work / "persistence").mkdir(parents=True, exist_ok=True)
    conf = work / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence true",
             f"persistence_location {work / 'persistence'}/", f"log_dest file {work / 'mosquitto.log'}",
             "max_queued_messages 0", "max_inflight_messages 0"]
    if os.geteuid() == 0:
        lines.append("user root")  # a root-run broker would drop to user mosquitto, which cannot write here
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"zonewatch demo: mosquitto did not start; see {work / 'mosquitto.log'}")


def seed(database_url: str) -> list[tuple[str, str, list[str]]]:
    """Create the demo fleet (once); returns (zone code, device id, its printers) for the simulator."""
    from sqlmodel import Session, select

    from . import admin
    from .db import make_engine, upgrade
    from .db.models import Device, Zone

    engine = make_engine(database_url)
    upgrade(engine)
    fleet = []
    with Session(engine) as session:
        for code, name, kind, region, kiosks, printers in FLEET:
            if session.exec(select(Zone).where(Zone.code == code)).first() is None:
                admin.add_zone(session, code, name, kind, region=region, opening_hours=HOURS)
            for k in range(kiosks):
                device = f"{code}-kiosk-{k + 1}"
                role = "desktop" if kind == "archive" else "kiosk"
                if session.get(Device, device) is None:
                    admin.add_device(session, device, code, role, name=f"{name.split()[0]} kiosk {k + 1}")
                mine = [f"{code.upper()}-P{p + 1}" for p in range(printers) if p % kiosks == k]
                fleet.append((code, device, mine))
    engine.dispose()
    return fleet


class Simulator(threading.Thread):
    """Simulated agents: one MQTT connection, protocol reports every ``interval`` s, faults that come and go."""

    def __init__(self, port: int, fleet: list[tuple[str, str, list[str]]], interval: float = 10.0) -> None:
        super().__init__(daemon=True, name="demo-fleet")
        import paho.mqtt.client as mqtt

        self.fleet, self.interval, self.codec = fleet, interval, Codec()
        self.stop_event = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="zonewatch-demo-fleet",
                                  protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.seq = {d: 0 for _, d, _ in fleet}
        self.faults: dict[str, tuple[str, str, str, float]] = {}  # printer → (code, severity, text, until)
        self.kiosk_down: dict[str, float] = {}
        self.network_down: dict[str, float] = {}  # zone → until

    def run(self) -> None:
        rng = random.Random(7)
        for _, device, _ in self.fleet:
            self._publish("presence", Presence(device_id=device, ts=time.time(), online=True,
                                               interval_s=self.interval), retain=True)
        while not self.stop_event.is_set():
            now = time.time()
            self._roll_faults(rng, now)
            for zone, device, printers in self.fleet:
                if self.network_down.get(zone, 0) > now:
                    continue  # the township's network is down: nothing arrives
                self.seq[device] += 1
                self._publish("report", self._report(device, printers, now))
            self.stop_event.wait(self.interval)
        self.client.disconnect()
        self.client.loop_stop()

    def _roll_faults(self, rng: random.Random, now: float) -> None:
        for _, device, printers in self.fleet:
            for p in printers:
                if p in self.faults and self.faults[p][3] < now:
                    del self.faults[p]
                elif p not in self.faults and rng.random() < 0.03:
                    code, severity, text = rng.choice(FAULTS)
                    self.faults[p] = (code, severity, text, now + rng.uniform(30, 180))
            if device not in self.kiosk_down and rng.random() < 0.01:
                self.kiosk_down[device] = now + rng.uniform(20, 90)
            elif self.kiosk_down.get(device, now + 1) < now:
                del self.kiosk_down[device]
        if not self.network_down and rng.random() < 0.02:
            self.network_down["hd-qh-cc"] = now + rng.uniform(60, 180)
        self.network_down = {z: t for z, t in self.network_down.items() if t > now}

    def _report(self, device: str, printers: list[str], now: float) -> Report:
        return build_report(device, self.seq[device], self.interval, now, printers, self.faults,
                            kiosk_ok=device not in self.kiosk_down)

    def _publish(self, kind: str, message, retain: bool = False) -> None:
        self.client.publish(self.codec.topics.device(message.device_id, kind), self.codec.encode(message), qos=1,
                            retain=retain)


ADMIN_PASSWORD_FILE = "admin-password"


def demo_admin(database_url: str, data: Path) -> str:
    """The demo's ``admin`` user: made on first run with a random password kept in the data dir (0600)."""
    import secrets

    from .auth import store
    from .db import make_engine, session_factory

    path = data / ADMIN_PASSWORD_FILE
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as s:
            exists = any(u.username == "admin" for u, _ in store.list_users(s))
            if exists and path.exists():
                return path.read_text(encoding="utf-8").strip()
            password = secrets.token_urlsafe(15)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(password + "\n")
            os.chmod(path, 0o600)
            if exists:
                store.set_password(s, "admin", password)
            else:
                store.add_user(s, "admin", "admin", password)
            store.audit(s, "demo", "user_add", "user:admin", "role=admin")
            return password
    finally:
        engine.dispose()


def run_demo(port: int, devices: int | None, data_dir: str = "./zonewatch-demo") -> int:
    from .run import serve
    from .settings import parse_settings

    data = Path(data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    broker, broker_port = start_broker(data)
    try:
        settings = parse_settings(
            f'[server]\nport = {port}\ndata_dir = "{data}"\n[mqtt]\nurl = "mqtt://127.0.0.1:{broker_port}"\n'
            'client_id = "zonewatch-demo-server"\n[health]\nsweep_every = 2\n', "<demo>")
        fleet = seed(settings.database_url)
        password = demo_admin(settings.database_url, data)
        if devices:
            fleet = fleet[:devices]
        simulator = Simulator(broker_port, fleet)
        simulator.start()
        print(f"zonewatch demo: {len(fleet)} simulated devices in {len(FLEET)} zones; broker on 127.0.0.1:"
              f"{broker_port}; data in {data}", flush=True)
        print(f"zonewatch demo: open http://127.0.0.1:{port}/ — login: admin / {password} (kept in "
              f"{data / ADMIN_PASSWORD_FILE}); the JSON API is at http://127.0.0.1:{port}/api/v1/zones "
              "(signed in, or with an API token: see docs/run-server.md)", flush=True)
        code = serve(None, "127.0.0.1", port, settings=settings)
        simulator.stop_event.set()
        return code
    finally:
        broker.terminate()
        try:
            broker.wait(10)
        except subprocess.TimeoutExpired:
            broker.kill()


if __name__ == "__main__":
    sys.exit(run_demo(8080, None))
