#!/usr/bin/env python3
"""Server ingest throughput and latency, against the broker's own delivery rate in the same run.

Throughput (drain): N QoS 1 reports from D devices are queued at a private mosquitto for a
persistent session, then the consumer connects and the clock runs until the last one is in —
for ``mosquitto_sub`` (the reference: the broker delivering as fast as it can) until it has
printed N lines, for the zonewatch server until N rows are committed in its database (SQLite,
then PostgreSQL). Ratio = server rate / mosquitto_sub rate; target ≥ 0.35 on SQLite. Zero loss
is checked: every (device, seq) stored exactly once.

Latency: reports published live at a fixed rate by a paho publisher; a poller reads new rows
every 10 ms; latency = first seen committed − the report's timestamp (set when published).

    unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/server_ingest.py'
    unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/server_ingest.py --quick'
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bench.benchlib import figure, machine_info, machine_summary, today, write_json  # noqa: E402
from protocol import Codec, NetworkCheck, Report, SystemCheck  # noqa: E402
from server.db import make_engine  # noqa: E402
from server.db.models import Report as ReportRow  # noqa: E402
from tests.peers.mosquitto import Mosquitto  # noqa: E402
from tests.peers.postgres import PostgresCluster  # noqa: E402
from tests.server_process import Fleetpub, ServerProcess  # noqa: E402

TARGET = 0.35
TOPIC = "zw/v1/dev/+/report"


def payload(codec: Codec, device: str, seq: int, ts: float) -> bytes:
    """A ~300-byte report: one portal probe and the system check."""
    return codec.encode(
        Report(
            device_id=device,
            ts=ts,
            seq=seq,
            interval_s=30.0,
            checks=[
                NetworkCheck(
                    name="portal", status="ok", probe="http", target="https://portal.gov.cn/", up=True, latency_ms=23.5
                ),
                SystemCheck(name="system", status="ok", uptime_s=86400.0 + seq),
            ],
        )
    )


def queue_reports(
    broker: Mosquitto, devices: int, per_device: int, first_seq: int, work: Path, prefix: str = "bench"
) -> int:
    """Publish devices × per_device reports with mosquitto_pub (one process per device, 8 at a time)."""
    codec = Codec()
    now = time.time()

    def one(i: int) -> None:
        device = f"{prefix}-{i:05d}"
        lines = b"\n".join(payload(codec, device, first_seq + s, now + s * 0.001) for s in range(per_device))
        subprocess.run(
            [
                "mosquitto_pub",
                "-p",
                str(broker.port),
                "-h",
                "127.0.0.1",
                "-q",
                "1",
                "-l",
                "-t",
                f"zw/v1/dev/{device}/report",
                "-i",
                f"pub-{i}",
            ],
            input=lines + b"\n",
            check=True,
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(devices)))
    return devices * per_device


def reference_rate(broker: Mosquitto, devices: int, per_device: int, work: Path) -> float:
    sub = ["mosquitto_sub", "-p", str(broker.port), "-h", "127.0.0.1", "-q", "1", "-c", "-i", "bench-ref", "-t", TOPIC]
    subprocess.run([*sub, "-E"], check=True)  # make the persistent session and its subscription
    n = queue_reports(broker, devices, per_device, 1, work)
    started = time.perf_counter()
    out = subprocess.run([*sub, "-C", str(n)], check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    got = out.stdout.count(b"\n")
    assert got == n, f"mosquitto_sub got {got} of {n}"
    return n / elapsed


def live_reference_rate(broker: Mosquitto, devices: int, per_device: int, work: Path, first_seq: int) -> float:
    """Live: mosquitto_sub connected while the publishers run; publish start → last message received."""
    n = devices * per_device
    sub = subprocess.Popen(
        [
            "mosquitto_sub",
            "-p",
            str(broker.port),
            "-h",
            "127.0.0.1",
            "-q",
            "1",
            "-i",
            "bench-live-ref",
            "-t",
            TOPIC,
            "-C",
            str(n),
        ],
        stdout=subprocess.PIPE,
    )
    time.sleep(0.5)
    started = time.perf_counter()
    queue_reports(broker, devices, per_device, first_seq, work, "live")
    out, _ = sub.communicate(timeout=600)
    elapsed = time.perf_counter() - started
    assert out.count(b"\n") == n
    return n / elapsed


def live_server_rate(
    broker: Mosquitto, database_url: str, devices: int, per_device: int, work: Path, label: str, first_seq: int
) -> float:
    """Live: the server running while the same publishers run; publish start → last row committed."""
    server = ServerProcess(work / f"server-live-{label}", broker.port, database_url, client_id=f"live-{label}")
    server.start()
    engine = make_engine(database_url)
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(ReportRow)).scalar()
    n = devices * per_device
    started = time.perf_counter()
    queue_reports(broker, devices, per_device, first_seq, work, "live")
    while True:
        with engine.connect() as conn:
            if conn.execute(select(func.count()).select_from(ReportRow)).scalar() - before >= n:
                break
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    server.stop()
    engine.dispose()
    return n / elapsed


def paho_rate(broker: Mosquitto, devices: int, per_device: int, work: Path) -> float:
    """A bare paho subscriber that only counts (persistent session, QoS 1): Python's ceiling."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    done, count = threading.Event(), [0]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-paho", protocol=mqtt.MQTTv5)

    def on_message(c, u, m) -> None:
        count[0] += 1
        if count[0] >= target[0]:
            done.set()

    target = [1 << 60]
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.on_connect = lambda c, u, f, r, p: c.subscribe(TOPIC, qos=1)
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    client.loop_start()
    time.sleep(1)
    client.disconnect()
    client.loop_stop()
    n = queue_reports(broker, devices, per_device, 1, work)
    target[0], count[0] = n, 0
    started = time.perf_counter()
    client.reconnect()
    client.loop_start()
    done.wait(600)
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return n / elapsed


def server_rate(
    broker: Mosquitto, database_url: str, devices: int, per_device: int, work: Path, label: str
) -> tuple[float, int]:
    server = ServerProcess(work / f"server-{label}", broker.port, database_url, client_id=f"bench-{label}", extra="")
    server.start()  # makes the session and subscription
    server.stop()
    engine = make_engine(database_url)
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(ReportRow)).scalar()
    n = queue_reports(broker, devices, per_device, 1, work)
    server.start(timeout=120)
    first: tuple[float, int] | None = None  # the clock starts at the first commit, not at process start
    while True:
        with engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(ReportRow)).scalar() - before
        if count and first is None:
            first = (time.perf_counter(), count)
        if count >= n:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - first[0]
    n_timed = n - first[1]
    time.sleep(0.5)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(ReportRow)).scalar() - before
        distinct = conn.execute(
            select(func.count()).select_from(select(ReportRow.device_id, ReportRow.seq).distinct().subquery())
        ).scalar()
    server.stop()
    engine.dispose()
    assert stored == n and distinct == stored + before, f"{label}: stored {stored} of {n}"
    return n_timed / elapsed, stored


def latency(broker: Mosquitto, database_url: str, rate: float, seconds: float, work: Path, label: str) -> list[float]:
    server = ServerProcess(work / f"server-lat-{label}", broker.port, database_url, client_id=f"lat-{label}")
    server.start()
    engine = make_engine(database_url)
    seen: dict[tuple[str, int], float] = {}
    sent: dict[tuple[str, int], float] = {}
    stop = threading.Event()

    def poll() -> None:
        mark = 0.0
        while not stop.is_set() or len(seen) < len(sent):
            with engine.connect() as conn:
                rows = conn.execute(
                    select(ReportRow.device_id, ReportRow.seq, ReportRow.received_at).where(
                        ReportRow.received_at >= mark, ReportRow.device_id.like("lat-%")
                    )
                ).all()
            now = time.time()
            for d, s, r in rows:
                seen.setdefault((d, s), now)
                mark = max(mark, r - 1.0)
            time.sleep(0.01)
            if stop.is_set() and now - stop_at[0] > 30:
                break

    stop_at = [0.0]
    poller = threading.Thread(target=poll)
    poller.start()
    pub = Fleetpub(broker.port)
    codec = Codec()
    total = int(rate * seconds)
    start = time.time()
    for i in range(total):
        due = start + i / rate
        if (wait := due - time.time()) > 0:
            time.sleep(wait)
        device, seq = f"lat-{i % 100:03d}", 100_000 + i // 100
        ts = time.time()
        sent[(device, seq)] = ts
        pub.client.publish(f"zw/v1/dev/{device}/report", payload(codec, device, seq, ts), qos=1)
    stop_at[0] = time.time()
    stop.set()
    poller.join()
    pub.close()
    server.stop()
    engine.dispose()
    missing = len(sent) - len(seen)
    assert missing == 0, f"{missing} of {len(sent)} reports not seen committed"
    return [seen[k] - sent[k] for k in sent]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 reports, 5 s of latency (about a minute)")
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--per-device", type=int, help="reports per device (default 100; --quick 40)")
    parser.add_argument("--latency-rate", type=float, default=1000.0, help="reports/s for the latency run")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    per_device = args.per_device or (40 if args.quick else 100)
    seconds = 5.0 if args.quick else 20.0
    for tool in ("mosquitto", "mosquitto_sub", "mosquitto_pub"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            print(f"needs {tool}: apt-get install mosquitto mosquitto-clients", file=sys.stderr)
            return 2
    machine = machine_info(
        ["mosquitto", "postgresql", "sqlite3"], ["zonewatch", "paho-mqtt", "SQLAlchemy", "psycopg", "msgspec"]
    )
    date = today()
    figures = []
    work = Path(tempfile.mkdtemp(prefix="zw-bench-ingest-"))
    n = args.devices * per_device
    print(
        f"{n} reports from {args.devices} devices, ~{len(payload(Codec(), 'bench-00000', 1, time.time()))} bytes "
        f"each, QoS 1"
    )
    with Mosquitto(work / "broker", max_inflight_messages=0) as broker:
        ref = reference_rate(broker, args.devices, per_device, work)
        print(f"mosquitto -> mosquitto_sub (reference): {ref:,.0f} reports/s")
        bare = paho_rate(broker, args.devices, per_device, work)
        print(
            f"mosquitto -> bare paho subscriber that only counts: {bare:,.0f} reports/s "
            f"(ratio {bare / ref:.2f}: Python's ceiling for one MQTT connection)"
        )
        figures.append(
            figure("bare paho subscriber", bare, "reports/s", "mosquitto_sub rate", ref, None, date, machine)
        )
        backends = [("sqlite", f"sqlite:///{work / 'fleet.db'}")]
        cluster = None
        if not args.no_postgres:
            cluster = PostgresCluster().start()
            backends.append(("postgresql", cluster.create_database("bench")))
        try:
            for label, url in backends:
                rate, stored = server_rate(broker, url, args.devices, per_device, work, label)
                print(
                    f"mosquitto -> zonewatch server -> {label}: {rate:,.0f} reports/s committed "
                    f"({stored} stored, 0 lost, 0 duplicated); ratio {rate / ref:.2f} "
                    f"(target >= {TARGET} on SQLite)"
                )
                throughput = figure(
                    f"ingest throughput, {label}", rate, "reports/s", "mosquitto_sub rate", ref, None, date, machine
                )
                if label == "sqlite":
                    throughput |= {"target": f"ratio >= {TARGET}", "met": rate / ref >= TARGET}
                figures.append(throughput)
                # live: 8 mosquitto_pub -l at once (each ≤ 50,000 lines: it stops silently at 65,535)
                live_ref = live_reference_rate(broker, 8, n // 8, work, 100_000)
                live = live_server_rate(broker, url, 8, n // 8, work, label, 200_000)
                print(
                    f"  live (8 mosquitto_pub -l publishing at once): mosquitto_sub {live_ref:,.0f}/s, "
                    f"zonewatch server -> {label} {live:,.0f}/s committed; ratio {live / live_ref:.2f}"
                )
                live_fig = figure(
                    f"ingest throughput live, {label}",
                    live,
                    "reports/s",
                    "mosquitto_sub live rate",
                    live_ref,
                    None,
                    date,
                    machine,
                )
                if label == "sqlite":
                    live_fig |= {"target": f"ratio >= {TARGET}", "met": live / live_ref >= TARGET}
                figures.append(live_fig)
                lat = latency(broker, url, args.latency_rate, seconds, work, label)
                p50, p99 = pct(lat, 50) * 1000, pct(lat, 99) * 1000
                print(
                    f"  latency at {args.latency_rate:,.0f} reports/s, published -> seen committed "
                    f"(polled every 10 ms): p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(lat) * 1000:.0f} ms "
                    f"({len(lat)} reports, mean {statistics.mean(lat) * 1000:.0f} ms)"
                )
                figures.append(figure(f"ingest latency p50, {label}", p50, "ms", None, None, None, date, machine))
                figures.append(figure(f"ingest latency p99, {label}", p99, "ms", None, None, None, date, machine))
        finally:
            if cluster is not None:
                cluster.remove()
    print(machine_summary(machine))
    if args.json:
        write_json(
            args.json,
            "server_ingest",
            machine,
            date,
            {"devices": args.devices, "per_device": per_device, "latency_rate": args.latency_rate},
            figures,
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
