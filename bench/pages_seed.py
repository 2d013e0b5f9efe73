"""A realistic fleet for the page benchmark, made with the server's own code: 10,000 devices in 1,500 zones.

Zones and devices go in through the CSV import (:mod:`server.admin_csv`, as an admin would load a
spreadsheet); their state comes from protocol reports fed to the server's real ingest writer
(:class:`server.service.FleetService` without a broker), so health, zone reasons, printers, check
states, history and metrics are what the server itself computes. Each device sends three reports
(2 h, 1 h and 2 min ago); some faults start an hour ago, some only recently, some came and went.

Regions are city → district → township; zones are service halls, convenience centres, archives and
libraries with their opening hours. Of the zones about 2 % never reported (unknown), 5 % are in
breach (every printer down, the portal unreachable, or every query device offline), 12 % degraded
(toner or paper low, one of two kiosks down); printers hang off some of the query devices.
Devices are registered with ``interval_s = 3600`` so none goes silent while the benchmark runs.
One zone is named ``<script>alert(1)</script> & Co`` (the pages must show it as text).
"""

from __future__ import annotations

import csv
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from protocol import Codec, Presence
from server.admin_csv import import_files
from server.db import session_factory
from server.ingest.writer import Incoming
from server.service import FleetService
from server.settings import parse_settings
from tests.server_process import report

CITIES = ["杭州市", "宁波市", "温州市", "嘉兴市", "湖州市", "绍兴市", "金华市", "台州市"]
DISTRICTS = ["上城区", "西湖区", "滨江区", "萧山区", "余杭区", "临平区", "富阳区", "临安区", "桐庐县", "淳安县"]
TOWNSHIPS = ["湖滨街道", "清波街道", "小营街道", "望江街道", "南星街道", "紫阳街道", "闸弄口街道", "彭埠街道"]
KINDS = [("service_hall", 0.12), ("convenience_centre", 0.58), ("library", 0.18), ("archive", 0.12)]
#: devices, counter PCs, printers per zone kind (before scaling to the exact device total)
SHAPE = {"service_hall": (13, 3, 3), "convenience_centre": (6, 1, 2), "library": (6, 0, 2), "archive": (4, 0, 1)}
HOURS = {"service_hall": "mon-fri 08:30-12:00,13:30-17:30; sat 09:00-12:00",
         "convenience_centre": "mon-fri 08:30-17:00", "library": "tue-sun 09:00-20:00",
         "archive": "mon-fri 09:00-17:00"}
PRINTER_FAULTS = ["media-empty", "media-jam", "toner-empty", "door-open", "stuck-queue"]
DEGRADING = ["toner-low", "media-low"]


@dataclass
class ZonePlan:
    code: str
    name: str
    kind: str
    region: str
    devices: list[tuple[str, str, bool]] = field(default_factory=list)  # (id, role, has a printer)
    scenario: str = "healthy"  # healthy | silent | breach-printers | breach-network | breach-offline | degraded-…


@dataclass
class Seeded:
    zones: int
    devices: int
    printers: int
    reports: int
    seconds: float
    scenarios: dict[str, int]


def plan_fleet(zones: int = 1500, devices: int = 10_000, seed: int = 6) -> list[ZonePlan]:
    rng = random.Random(seed)
    plans = []
    for n in range(zones):
        kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        city, district, township = rng.choice(CITIES), rng.choice(DISTRICTS), rng.choice(TOWNSHIPS)
        name = {"service_hall": f"{district}政务服务中心", "convenience_centre": f"{township}便民服务中心",
                "library": f"{district}图书馆", "archive": f"{city[:-1]}档案馆"}[kind]
        plans.append(ZonePlan(f"z{n + 1:04d}", f"{name} {n + 1}", kind, f"{city}/{district}/{township}"))
    plans[7].name = "<script>alert(1)</script> & Co"
    sizes = [max(2, SHAPE[p.kind][0] + rng.randint(-2, 2)) for p in plans]
    while sum(sizes) != devices:  # the exact total, keeping every zone at two devices or more
        i = rng.randrange(zones)
        if sum(sizes) < devices:
            sizes[i] += 1
        elif sizes[i] > 2:
            sizes[i] -= 1
    for plan, size in zip(plans, sizes, strict=True):
        _, counters, printers = SHAPE[plan.kind]
        counters = min(counters, size - 1)
        query = size - counters
        kiosks = max(1, round(query * 0.7))
        roles = ["kiosk"] * kiosks + ["desktop"] * (query - kiosks) + ["counter_pc"] * counters
        with_printer = set(rng.sample(range(query), min(printers, query)))
        plan.devices = [(f"{plan.code}-{role[0]}{i + 1}", role, i in with_printer) for i, role in enumerate(roles)]
        roll = rng.random()
        plan.scenario = ("silent" if roll < 0.02 else
                         rng.choice(["breach-printers", "breach-network", "breach-offline"]) if roll < 0.07 else
                         rng.choice(["degraded-supplies", "degraded-kiosk"]) if roll < 0.19 else "healthy")
    return plans


def write_csv(plans: list[ZonePlan], directory: Path) -> tuple[Path, Path]:
    zones, devices = directory / "zones.csv", directory / "devices.csv"
    with zones.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["code", "name", "kind", "region", "opening_hours"])
        out.writerows([p.code, p.name, p.kind, p.region, HOURS[p.kind]] for p in plans)
    with devices.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["device_id", "name", "role", "zone", "interval_s"])
        out.writerows([device_id, f"{role} {device_id[len(p.code) + 1:]}", role, p.code, 3600]
                      for p in plans for device_id, role, _ in p.devices)
    return zones, devices


def _reports(plan: ZonePlan, rng: random.Random, now: float) -> list[tuple[str, object]]:
    """(device id, message) in order: three reports per device, then Last Wills for offline ones."""
    out: list[tuple[str, object]] = []
    if plan.scenario == "silent":
        return out
    query = [d for d in plan.devices if d[1] != "counter_pc"]
    sick_kiosk = query[0][0] if plan.scenario == "degraded-kiosk" and len(query) >= 2 else None
    early = rng.random() < 0.5  # the fault began an hour ago, or two minutes ago
    fault = rng.choice(PRINTER_FAULTS)
    for k, (device_id, _role, printer) in enumerate(plan.devices):
        blip = rng.random() < 0.15  # a fault that came and went: history only
        for seq, ts in ((1, now - 7200), (2, now - 3600), (3, now - 120)):
            active = seq == 3 or (seq == 2 and early)
            kw: dict = {"latency_ms": round(rng.uniform(4, 80), 1), "interval_s": 30.0,
                        "printer_name": f"HP-{device_id}" if printer else None}
            if plan.scenario == "breach-printers" and printer and active:
                kw.update(printer="critical", condition=fault)
            elif plan.scenario == "breach-network" and active:
                kw.update(network="critical")
            elif plan.scenario == "degraded-supplies" and printer and k % 2 == 0 and active:
                kw.update(printer="warning", condition=rng.choice(DEGRADING))
            elif device_id == sick_kiosk and active:
                kw.update(kiosk="critical")
            elif blip and seq == 2:
                kw.update(printer="critical", condition="media-jam") if printer else kw.update(network="critical")
            out.append((device_id, report(device_id, seq, ts + rng.uniform(0, 30), **kw)))
    if plan.scenario == "breach-offline":
        out += [(d, Presence(device_id=d, ts=now - 60, online=False, reason="Last Will"))
                for d, role, _ in plan.devices if role != "counter_pc"]
    return out


def seed(database_url: str, plans: list[ZonePlan], seed: int = 6) -> Seeded:
    """Import the zones and devices, then ingest every report through the server's own writer."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="zw-pages-seed-") as tmp:
        settings = parse_settings(f'[server]\ndata_dir = "{tmp}/data"\n[database]\nurl = "{database_url}"\n'
                                  "batch_max = 2000\n", environ={})
        service = FleetService(settings, with_broker=False)
        from server.db import upgrade

        upgrade(service.engine)
        with session_factory(service.engine)() as session:
            result = import_files(session, list(write_csv(plans, Path(tmp))))
            if not result.ok:
                raise RuntimeError(f"the CSV import refused the seed: {result.errors[:3]}")
        service.open()
        try:
            codec, rng, now = Codec(), random.Random(seed), time.time()
            messages = [m for plan in plans for m in _reports(plan, rng, now)]
            items = []
            for i, (device_id, message) in enumerate(messages):
                kind = "report" if not isinstance(message, Presence) else "presence"
                items.append(Incoming(mid=i + 1, qos=1, topic=codec.topics.device(device_id, kind),
                                      payload=codec.encode(message), received_at=message.ts + 0.5))
            for i in range(0, len(items), 2000):
                service.writer.submit_many(items[i:i + 2000])
            deadline = time.monotonic() + 600
            while service.writer.stats.received < len(items):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"ingest took in only {service.writer.stats.received} of {len(items)}")
                time.sleep(0.05)
        finally:
            service.close()
    scenarios: dict[str, int] = {}
    for plan in plans:
        scenarios[plan.scenario] = scenarios.get(plan.scenario, 0) + 1
    return Seeded(len(plans), sum(len(p.devices) for p in plans), sum(d[2] for p in plans for d in p.devices),
                  len(items), time.monotonic() - started, scenarios)
