"""``zonewatch simulate``: a load generator of N simulated agents against an MQTT broker.

Every simulated device has its own MQTT connection (client id = device id, MQTT 5, clean start),
its own Last Will (retained ``online: false``, reason "connection lost"), publishes a retained birth
presence and then a full protocol report (:mod:`server.sim_reports`) every ``interval`` seconds,
±5 % jitter, the first one at a random point of the first interval. Faults (printer out of paper,
toner low, the network target down) start at ``faults`` per device-hour and clear after 3–20
intervals; a report whose status changed is marked ``trigger: change``.

**One thread, one asyncio loop, one paho client per device on paho's external-loop socket
callbacks.** ``loop_start()`` would give every device a thread and a socket pair (three file
descriptors); with the callbacks the loop watches each client's one socket (``add_reader`` /
``add_writer``) and one task runs ``loop_misc`` (keepalive) for all of them each second, so a
few thousand connections cost a few thousand descriptors and no threads.

A clean stop (``--duration`` reached, Ctrl-C, SIGTERM) does what the real agent does: every
device publishes a retained ``online: false`` presence (reason "simulation stopped"), waits for
the PUBACKs, then disconnects — so **Last Wills are not sent**. Killed with SIGKILL, the broker
sends them. The summary counts a report as *acked* once the broker returned its PUBACK: that is
what a server subscribed to the fleet stores.
"""

from __future__ import annotations

import asyncio
import math
import random
import resource
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from protocol import Codec, Presence

from .sim_reports import LOAD_FAULTS, Fault, build_report

STATS_EVERY = 10.0
CONNECT_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


class SimulateError(Exception):
    """A bad argument or an unusable broker: printed as ``zonewatch simulate: …``, exit 2."""


@dataclass
class Options:
    broker: str
    devices: int
    interval: float
    faults: float = 0.5
    duration: float | None = None
    prefix: str = "sim-"
    password_file: str | None = None
    seed: int | None = None


@dataclass
class Counters:
    connected: int = 0
    connects: int = 0
    disconnects: int = 0
    reports_sent: int = 0
    reports_acked: int = 0
    presence_acked: int = 0
    failures: int = 0  # reports not published: device not connected or paho refused
    faults_started: int = 0
    faults_cleared: int = 0
    errors: dict[str, int] = field(default_factory=dict)


def check_options(o: Options) -> tuple[str, int]:
    """Validate; returns (host, port) of the broker or raises :class:`SimulateError`."""
    if o.devices < 1:
        raise SimulateError(f"--devices must be at least 1 (got {o.devices})")
    if not (o.interval > 0 and math.isfinite(o.interval)):
        raise SimulateError(f"--interval must be a positive number of seconds (got {o.interval})")
    if not (o.faults >= 0 and math.isfinite(o.faults)):
        raise SimulateError(f"--faults must be zero or a positive rate per device-hour (got {o.faults})")
    if o.duration is not None and not (o.duration > 0 and math.isfinite(o.duration)):
        raise SimulateError(f"--duration must be a positive number of seconds (got {o.duration})")
    url = urlsplit(o.broker)
    if url.scheme != "mqtt" or not url.hostname:
        raise SimulateError(f"--broker must be mqtt://HOST[:PORT] (got {o.broker!r}; mqtts is not supported yet)")
    try:
        port = url.port or 1883
    except ValueError as err:
        raise SimulateError(f"--broker {o.broker!r}: {err}") from None
    return url.hostname, port


def load_passwords(path: str | None, ids: list[str]) -> dict[str, str | None]:
    """``DEVICE:PASSWORD`` lines, or one line with a password shared by all; none: no credentials."""
    if path is None:
        return dict.fromkeys(ids)
    try:
        lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError as err:
        raise SimulateError(f"--password-file {path}: {err.strerror or err}") from None
    if len(lines) == 1 and ":" not in lines[0]:
        return dict.fromkeys(ids, lines[0])
    table = dict(ln.split(":", 1) for ln in lines if ":" in ln)
    missing = [d for d in ids if d not in table]
    if missing:
        raise SimulateError(f"--password-file {path} has no password for {missing[0]} "
                            f"({len(missing)} devices missing)")
    return {d: table[d] for d in ids}


def raise_fd_limit(devices: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = devices + 64
    if soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(max(need, soft), hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < need:
            raise SimulateError(f"{devices} devices need {need} open files but the limit is {hard} "
                                "(raise it: ulimit -n)")


class Device:
    """One simulated agent: its paho client (driven by the shared loop), sequence, faults and timer."""

    def __init__(self, sim: Simulation, device_id: str, printers: list[str], password: str | None) -> None:
        import paho.mqtt.client as mqtt

        self.sim, self.id, self.printers = sim, device_id, printers
        self.seq, self.connected, self.connecting, self.stopping = 0, False, False, False
        self.faults: dict[str, Fault] = {}
        self.network_down_until = 0.0
        self.last_status: tuple = ()
        self.pending: dict[int, str] = {}  # mid → "report" | "presence"
        self.next_report = 0.0
        self.retry_at = 0.0
        self.connack: str | None = None
        c = self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv5)
        c.max_inflight_messages_set(100)
        c.max_queued_messages_set(0)
        c.connect_timeout = CONNECT_TIMEOUT
        if password is not None:
            c.username_pw_set(device_id, password)
        will = Presence(device_id=device_id, ts=time.time(), online=False, interval_s=sim.o.interval,
                        reason="connection lost")
        c.will_set(sim.topic(device_id, "presence"), sim.codec.encode(will), qos=1, retain=True)
        c.on_connect, c.on_disconnect, c.on_publish = self._on_connect, self._on_disconnect, self._on_publish
        loop = sim.loop
        c.on_socket_open = lambda cl, ud, sock: loop.add_reader(sock, cl.loop_read)
        c.on_socket_close = lambda cl, ud, sock: loop.remove_reader(sock)
        c.on_socket_register_write = lambda cl, ud, sock: loop.add_writer(sock, cl.loop_write)
        c.on_socket_unregister_write = lambda cl, ud, sock: loop.remove_writer(sock)

    def connect(self) -> None:
        self.connecting = True
        try:
            self.client.connect(self.sim.host, self.sim.port, keepalive=60)
        except (OSError, ValueError) as err:
            self.connecting = False
            self.retry_at = time.monotonic() + random.uniform(2, 5)
            self.sim.error(f"connect: {getattr(err, 'strerror', None) or err}")

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        self.connecting = False
        self.connack = str(reason)
        if reason.is_failure:
            self.sim.error(f"broker refused the connection: {reason}")
            return
        self.connected = True
        self.sim.n.connected += 1
        self.sim.n.connects += 1
        if self.sim.n.connected == self.sim.o.devices and not self.sim.all_connected_after:
            self.sim.all_connected_after = time.monotonic() - self.sim.started
        birth = Presence(device_id=self.id, ts=time.time(), online=True, interval_s=self.sim.o.interval)
        self.publish("presence", birth, retain=True)

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        self.connecting = False
        if self.connected:
            self.connected = False
            self.sim.n.connected -= 1
            if not self.stopping:
                self.sim.n.disconnects += 1
        self.retry_at = time.monotonic() + random.uniform(1, 5)
        self.pending.clear()  # clean start: unacked messages of this session are lost

    def _on_publish(self, client, userdata, mid, reason, properties) -> None:
        kind = self.pending.pop(mid, None)
        if kind == "report":
            self.sim.n.reports_acked += 1
        elif kind == "presence":
            self.sim.n.presence_acked += 1

    def publish(self, kind: str, message, retain: bool = False) -> bool:
        info = self.client.publish(self.sim.topic(self.id, kind), self.sim.codec.encode(message), qos=1,
                                   retain=retain)
        if info.rc != 0:
            return False
        self.pending[info.mid] = kind
        return True

    def tick(self, now: float, wall: float) -> None:
        """Report if due; reconnect if the connection was lost."""
        if not self.connected:
            if not self.connecting and not self.stopping and now >= self.retry_at:
                self.client.reconnect_delay_set()
                self.connect()
            if now >= self.next_report and not self.connecting:  # while connecting: sent once connected
                self.next_report = now + self.sim.o.interval * self.sim.rng.uniform(0.95, 1.05)
                self.sim.n.failures += 1
            return
        if now < self.next_report:
            return
        self.next_report = now + self.sim.o.interval * self.sim.rng.uniform(0.95, 1.05)
        self._roll_faults(wall)
        status = (wall < self.network_down_until, tuple(sorted(self.faults)))
        trigger = "change" if self.seq and status != self.last_status else "interval"
        self.last_status = status
        self.seq += 1
        report = build_report(self.id, self.seq, self.sim.o.interval, wall, self.printers, self.faults,
                              network_up=wall >= self.network_down_until, trigger=trigger, rng=self.sim.rng)
        if self.publish("report", report):
            self.sim.n.reports_sent += 1
        else:
            self.seq -= 1
            self.sim.n.failures += 1

    def _roll_faults(self, wall: float) -> None:
        rng, o, n = self.sim.rng, self.sim.o, self.sim.n
        for p, fault in list(self.faults.items()):
            if fault[3] <= wall:
                del self.faults[p]
                n.faults_cleared += 1
        if self.network_down_until and self.network_down_until <= wall:
            self.network_down_until = 0.0
            n.faults_cleared += 1
        if rng.random() >= 1 - math.exp(-o.faults * o.interval / 3600):
            return
        until = wall + o.interval * rng.uniform(3, 20)
        kinds = [p for p in self.printers if p not in self.faults] + ([] if self.network_down_until else ["net"])
        if kinds:
            which = rng.choice(kinds)
            if which == "net":
                self.network_down_until = until
            else:
                self.faults[which] = (*rng.choice(LOAD_FAULTS), until)
            n.faults_started += 1


class Simulation:
    def __init__(self, o: Options, out=sys.stdout) -> None:
        self.o, self.out = o, out
        self.host, self.port = check_options(o)
        self.codec = Codec()
        self.n = Counters()
        self.rng = random.Random(o.seed)
        self.ids = [f"{o.prefix}{i + 1:05d}" for i in range(o.devices)]
        self.passwords = load_passwords(o.password_file, self.ids)
        self.stop = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop
        self.devices: list[Device] = []
        self.started, self.all_connected_after = time.monotonic(), 0.0

    def topic(self, device_id: str, kind: str) -> str:
        return self.codec.topics.device(device_id, kind)

    def error(self, text: str) -> None:
        self.n.errors[text] = self.n.errors.get(text, 0) + 1

    def say(self, text: str) -> None:
        print(f"zonewatch simulate: {text}", file=self.out, flush=True)

    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.loop.add_signal_handler(sig, self.stop.set)
        self._probe_broker()
        raise_fd_limit(self.o.devices)
        start = self.started = time.monotonic()
        self.say(f"{self.o.devices} devices ({self.ids[0]} … {self.ids[-1]}) → {self.o.broker}, a report every "
                 f"{self.o.interval:g} s, faults {self.o.faults:g}/device-hour"
                 + (f", for {self.o.duration:g} s" if self.o.duration else ", until Ctrl-C"))
        misc = self.loop.create_task(self._misc())
        try:
            await self._connect_all()
            await self._run_until_stopped(start)
        finally:
            await self._stop_all()
            misc.cancel()
        self._summary(time.monotonic() - start)
        return 0 if self.n.connects else 1

    def _probe_broker(self) -> None:
        """One TCP connect first, so an unreachable broker is one clear message, not N errors."""
        try:
            with socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT):
                pass
        except OSError as err:
            raise SimulateError(f"cannot reach the broker at {self.o.broker}: "
                                f"{err.strerror or err.__class__.__name__}") from None

    async def _connect_all(self) -> None:
        for i, device_id in enumerate(self.ids):
            if self.stop.is_set():
                return
            printers = [f"{device_id}-P1"] + ([f"{device_id}-P2"] if i % 3 == 0 else [])
            device = Device(self, device_id, printers, self.passwords[device_id])
            device.next_report = time.monotonic() + self.rng.uniform(0, self.o.interval)
            self.devices.append(device)
            device.connect()
            if i % 50 == 49:
                await asyncio.sleep(0)  # let CONNACKs and births through while connecting
            if i == 0:  # the first device tells whether the broker takes us at all
                deadline = time.monotonic() + CONNECT_TIMEOUT
                while device.connecting and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                if not device.connected:
                    why = device.connack or next(iter(self.n.errors), "no CONNACK")
                    raise SimulateError(f"the broker at {self.o.broker} did not accept {device_id}: {why}")

    async def _misc(self) -> None:
        while True:
            await asyncio.sleep(1)
            for d in self.devices:
                if d.connected or d.connecting:
                    d.client.loop_misc()

    async def _run_until_stopped(self, start: float) -> None:
        end = start + self.o.duration if self.o.duration else math.inf
        next_stats, last_sent = start + STATS_EVERY, 0
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= end:
                return
            wall = time.time()
            for d in self.devices:
                d.tick(now, wall)
            if now >= next_stats:
                n = self.n
                self.say(f"{now - start:6.0f} s  connected {n.connected}/{self.o.devices}  reports sent "
                         f"{n.reports_sent} (+{n.reports_sent - last_sent})  acked {n.reports_acked}  "
                         f"failures {n.failures}  disconnects {n.disconnects}  faults {n.faults_started}")
                next_stats, last_sent = next_stats + STATS_EVERY, n.reports_sent
            await asyncio.sleep(0.05)

    async def _stop_all(self) -> None:
        """Offline presence from every connected device, wait for the PUBACKs, then disconnect."""
        for d in self.devices:
            d.stopping = True
            if d.connected:
                d.publish("presence", Presence(device_id=d.id, ts=time.time(), online=False,
                                               interval_s=self.o.interval, reason="simulation stopped"),
                          retain=True)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(d.pending and d.connected for d in self.devices) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for d in self.devices:
            if d.connected or d.connecting:
                d.client.disconnect()
        deadline = time.monotonic() + STOP_TIMEOUT  # paho closes each socket once its DISCONNECT is written
        while any(d.client.socket() is not None for d in self.devices) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def _summary(self, elapsed: float) -> None:
        n = self.n
        unacked = n.reports_sent - n.reports_acked
        self.say(f"summary: {self.o.devices} devices, {elapsed:.1f} s, connected at least once "
                 f"{sum(1 for d in self.devices if d.seq or d.connack == 'Success')}, reports sent {n.reports_sent}, "
                 f"acked {n.reports_acked}, unacked {unacked}, failures {n.failures}, disconnects {n.disconnects}, "
                 f"faults started {n.faults_started}, cleared {n.faults_cleared}, "
                 f"presence acked {n.presence_acked}"
                 + (f"; all connected after {self.all_connected_after:.1f} s" if self.all_connected_after else ""))
        for text, count in sorted(self.n.errors.items(), key=lambda kv: -kv[1])[:5]:
            self.say(f"  {count} × {text}")


def run(args) -> int:
    options = Options(broker=args.broker, devices=args.devices, interval=args.interval, faults=args.faults,
                      duration=args.duration, prefix=args.prefix, password_file=args.password_file,
                      seed=args.seed)
    try:
        return asyncio.run(Simulation(options).run())
    except SimulateError as err:
        print(f"zonewatch simulate: {err}", file=sys.stderr)
        return 2


def register(sub) -> None:
    sim = sub.add_parser("simulate", help="load generator: N simulated agents against a broker",
                         description="N simulated agents, each with its own MQTT connection and Last Will, "
                                     "publishing protocol reports with faults; see docs/scale-out.md.")
    sim.add_argument("--broker", required=True, help="broker URL, e.g. mqtt://127.0.0.1:1883")
    sim.add_argument("--devices", type=int, default=100, help="number of agents (default 100)")
    sim.add_argument("--interval", type=float, default=30.0, help="report interval in seconds (default 30)")
    sim.add_argument("--faults", type=float, default=0.5,
                     help="faults per device-hour: paper out, toner low, network target down (default 0.5)")
    sim.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C or SIGTERM)")
    sim.add_argument("--prefix", "--username-prefix", dest="prefix", default="sim-",
                     help="device ids are PREFIX00001, PREFIX00002, …; with --password-file also the MQTT "
                          "user names (default sim-)")
    sim.add_argument("--password-file", help="per-device MQTT passwords: DEVICE:PASSWORD lines, or one line "
                                             "with a password for all")
    sim.add_argument("--seed", type=int, help="random seed (jitter, faults) for a repeatable run")
