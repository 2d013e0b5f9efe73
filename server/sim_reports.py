"""Simulated agents' reports, shared by ``zonewatch demo`` and ``zonewatch simulate``.

One place builds the protocol :class:`~protocol.Report` a simulated kiosk sends: a network target,
its kiosk front-end, the system check and its printers, each printer with the fault it has now (if
any). Faults are ``(code, severity, text, until)`` tuples keyed by printer name.
"""

from __future__ import annotations

import random

from protocol import NetworkCheck, PrinterCheck, PrinterCondition, Report, SystemCheck
from protocol.checks import KioskCheck

Fault = tuple[str, str, str, float]  # (condition code, severity, text, until: epoch seconds)

FAULTS = [("media-low", "warning", "paper low"), ("media-empty", "critical", "out of paper"),
          ("toner-low", "warning", "toner low"), ("media-jam", "critical", "paper jam"),
          ("door-open", "critical", "door or cover open")]
# the load generator's printer faults: paper out and toner low (the network fault is separate)
LOAD_FAULTS = [("media-empty", "critical", "out of paper"), ("toner-low", "warning", "toner low")]


def build_report(device_id: str, seq: int, interval: float, now: float, printers: list[str],
                 faults: dict[str, Fault], *, kiosk_ok: bool = True, network_up: bool = True,
                 trigger: str = "interval", rng: random.Random | None = None) -> Report:
    """A kiosk's full report: network target ``portal``, the kiosk process, the system, its printers."""
    rng = rng or random
    checks = [
        NetworkCheck(name="portal", status="ok" if network_up else "critical", probe="http",
                     target="portal (simulated)", up=network_up,
                     latency_ms=round(rng.uniform(8, 40), 1) if network_up else None,
                     summary="portal reachable" if network_up else "portal unreachable (simulated)"),
        KioskCheck(name="kiosk", status="ok" if kiosk_ok else "critical", process="kiosk-ui",
                   running=kiosk_ok, summary="kiosk-ui running" if kiosk_ok else "kiosk-ui not running"),
        SystemCheck(name="system", status="ok", uptime_s=3600.0 + seq * interval, summary="ok"),
    ]
    for p in printers:
        fault = faults.get(p)
        conditions = [PrinterCondition(code=fault[0], severity=fault[1], text=fault[2])] if fault else []
        checks.append(PrinterCheck(name=f"printer:{p}", printer=p, status=fault[1] if fault else "ok",
                                   state="stopped" if fault and fault[1] == "critical" else "idle",
                                   summary=fault[2] if fault else "idle, ready", conditions=conditions))
    return Report(device_id=device_id, ts=now, seq=seq, interval_s=interval, checks=checks, trigger=trigger)
