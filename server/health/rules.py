"""The health model as pure functions: device status, printer item status, the zone rule.

A zone **meets the rule** when its network is reachable and it has at least one working query
device (kiosk or desktop) and at least one working printer; otherwise it is **in breach**.
*Degraded* = meets the rule, but something in it is broken or low. *Unknown* = nothing in it
has ever reported. Reasons are plain sentences an IT person can act on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from protocol import STATUS_RANK

#: Check kinds that decide whether a device can serve the public as a query device.
DEVICE_KINDS = ("kiosk", "system", "content", "clock")
WORKING = ("ok", "warning")


@dataclass(slots=True)
class CheckView:
    kind: str
    status: str
    summary: str
    since: float


@dataclass(slots=True)
class PrinterView:
    name: str
    status: str = "unknown"
    since: float | None = None
    summary: str = ""
    #: condition code → (severity, text, since)
    conditions: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    #: What was last written to the database, and when (ingest skips unchanged rewrites).
    signature: tuple = ()
    written_at: float = 0.0


@dataclass(slots=True)
class DeviceView:
    id: str
    name: str = ""
    role: str = "unknown"
    zone_id: int | None = None
    interval_s: float | None = None
    reported_interval_s: float | None = None
    status: str = "unknown"
    status_since: float | None = None
    status_reason: str = ""
    measured: str = "unknown"
    measured_since: float | None = None
    online: bool | None = None
    online_since: float | None = None
    last_heard: float | None = None
    last_report_at: float | None = None
    last_seq: int | None = None
    seq_epoch: int = 0
    agent_version: str | None = None
    first_seen: float | None = None
    checks: dict[str, CheckView] = field(default_factory=dict)
    printers: dict[str, PrinterView] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.id

    def expected_interval(self, default: float) -> float:
        return self.interval_s or self.reported_interval_s or default


@dataclass(slots=True)
class ZoneView:
    id: int
    code: str
    name: str
    timezone: str = "Asia/Shanghai"
    status: str = "unknown"
    status_since: float | None = None
    reasons: list[str] = field(default_factory=list)
    devices: set[str] = field(default_factory=set)


def worst(statuses) -> str:
    return max(statuses, key=STATUS_RANK.__getitem__, default="unknown")


def device_status(device: DeviceView) -> tuple[str, str]:
    """Shown status and its reason: offline when not heard, else the worst measured check."""
    if device.online is False:
        return "offline", "not heard from (Last Will, shutdown or silence)"
    if device.online is None and device.last_seq is None:
        return "unknown", "never reported"
    bad = [(name, c) for name, c in device.checks.items() if c.status not in ("ok",)]
    if not bad:
        return ("ok", "all checks ok") if device.checks else ("unknown", "no checks reported")
    name, check = max(bad, key=lambda nc: STATUS_RANK[nc[1].status])
    return worst(c.status for c in device.checks.values()), f"{name}: {check.summary or check.status}"


def device_works(device: DeviceView) -> bool:
    """Online, and nothing that serves the public (kiosk process, system, content, clock) is critical."""
    return device.online is not False and device.last_seq is not None and all(
        c.status != "critical" for c in device.checks.values() if c.kind in DEVICE_KINDS)


def _clock(ts: float | None, tz: str) -> str:
    if ts is None:
        return "?"
    try:
        zone = ZoneInfo(tz)
    except (KeyError, ValueError):
        zone = None
    moment = datetime.fromtimestamp(ts, zone)
    today = datetime.fromtimestamp(time.time(), zone).date()
    return moment.strftime("%H:%M") if moment.date() == today else moment.strftime("%Y-%m-%d %H:%M")


def evaluate_zone(zone: ZoneView, devices: list[DeviceView]) -> tuple[str, list[str]]:
    """The zone's status (meets / degraded / breach / unknown) and the reasons for it."""
    # A device heard only by its birth message has not measured anything yet: it is *pending*, and
    # judging the zone on it would page a breach every time an agent starts (the staleness sweep turns
    # a device that stays pending into offline after 3 × its interval).
    pending = [d for d in devices if d.online is True and d.last_seq is None]
    heard = [d for d in devices if d.last_seq is not None or d.online is False]
    if not heard:
        if pending:
            return "unknown", [_waiting(pending)]
        return "unknown", ["no device in this zone has reported yet"] if devices else ["no devices in this zone"]
    breach: list[str] = []
    degraded: list[str] = []
    online = [d for d in heard if d.online is not False]
    tz = zone.timezone

    # The network: down when nothing can be heard, or every heard device finds a target unreachable.
    if not online:
        last = max((d.status_since or 0) for d in heard)
        breach.append(f"network down: no device in the zone heard since {_clock(last, tz)}")
    else:
        failing = []
        for d in online:
            down = [(n, c) for n, c in d.checks.items() if c.kind == "network" and c.status == "critical"]
            if down:
                n, c = down[0]
                failing.append(f"{n} unreachable from {d.label} since {_clock(c.since, tz)}")
        measuring = [d for d in online if any(c.kind == "network" for c in d.checks.values())]
        if measuring and len(failing) == len(measuring):
            breach.append("network down: " + "; ".join(failing))
        elif failing:
            degraded.append("network: " + "; ".join(failing))
    for d in heard:
        if d.online is False and online:
            degraded.append(f"{d.label} offline since {_clock(d.online_since, tz)}")

    query = [d for d in heard if d.role in ("kiosk", "desktop")]
    if not any(device_works(d) for d in query):
        why = "; ".join(f"{d.label} {_device_problem(d, tz)}" for d in query) or "none assigned to this zone"
        breach.append(f"no working query device: {why}")
    else:
        degraded += [f"{d.label} {_device_problem(d, tz)}" for d in query if not device_works(d)
                     and d.online is not False]

    printers = [(d, p) for d in heard for p in d.printers.values()]
    if not any(p.status in WORKING and d.online is not False for d, p in printers):
        why = "; ".join(f"{p.name} {_printer_problem(d, p, tz)}" for d, p in printers) or "none reported"
        breach.append(f"no working printer: {why}")
    else:
        for d, p in printers:
            if p.status != "ok" and d.online is not False:
                degraded.append(f"{p.name} {_printer_problem(d, p, tz)}")

    for d in online:
        for n, c in d.checks.items():
            if c.kind in DEVICE_KINDS and c.status in ("warning", "critical") and device_works(d):
                degraded.append(f"{d.label} {n}: {c.summary or c.status}")
    if breach:
        if pending and zone.status == "unknown":
            # The zone is still coming up: wait for its devices' first reports before calling a breach.
            return "unknown", [_waiting(pending), *breach]
        return "breach", breach + degraded
    return ("degraded", degraded) if degraded else ("meets", [])


def _waiting(pending: list[DeviceView]) -> str:
    return "waiting for the first report from " + ", ".join(d.label for d in pending)


def _device_problem(d: DeviceView, tz: str) -> str:
    if d.online is False:
        return f"offline since {_clock(d.online_since, tz)}"
    bad = [(n, c) for n, c in d.checks.items() if c.kind in DEVICE_KINDS and c.status == "critical"]
    if bad:
        n, c = bad[0]
        return f"{n}: {c.summary or 'critical'} since {_clock(c.since, tz)}"
    return "has not reported"


def _printer_problem(d: DeviceView, p: PrinterView, tz: str) -> str:
    if d.online is False:
        return f"unreachable: its host {d.label} is offline since {_clock(d.online_since, tz)}"
    if p.conditions:
        _, (_, text, since) = max(p.conditions.items(), key=lambda kv: STATUS_RANK.get(kv[1][0], 0))
        return f"{text} since {_clock(since, tz)}"
    return f"{p.summary or p.status} since {_clock(p.since, tz)}"
