"""system — uptime and boot time, CPU, memory, and disk use of the spool and content volumes.

Options (``[collectors.system]``) are documented on :class:`SystemOptions`.
"""

from __future__ import annotations

import time
from typing import Annotated

import msgspec
import psutil
from msgspec import Meta

from protocol import Disk, SystemCheck, worst

from .base import Collector, CollectorOptions, Seconds

Pct = Annotated[float, Meta(ge=0, le=100)]


class SystemOptions(CollectorOptions, kw_only=True, forbid_unknown_fields=True):
    #: Seconds between runs.
    every: Seconds = 30.0
    #: Volumes to watch; the agent's data dir (spool, content) is always added.
    disks: list[str] = msgspec.field(default_factory=list)
    #: Disk use (percent) at which the check turns warning.
    disk_warning_pct: Pct = 85.0
    #: Disk use (percent) at which the check turns critical (the spool and content need room).
    disk_critical_pct: Pct = 95.0
    #: Memory use (percent) at which the check turns warning.
    memory_warning_pct: Pct = 90.0
    #: Memory use (percent) at which the check turns critical.
    memory_critical_pct: Pct = 97.0


class SystemCollector(Collector):
    name = "system"
    Options = SystemOptions

    def __init__(self, options: SystemOptions, context) -> None:
        super().__init__(options, context)
        psutil.cpu_percent(None)  # prime: later calls measure since the previous one

    def collect(self) -> list[SystemCheck]:
        o: SystemOptions = self.options
        boot = psutil.boot_time()
        uptime = max(0.0, time.time() - boot)
        cpu = psutil.cpu_percent(None)
        memory = psutil.virtual_memory().percent
        statuses, problems = ["ok"], []
        if memory >= o.memory_critical_pct or memory >= o.memory_warning_pct:
            statuses.append("critical" if memory >= o.memory_critical_pct else "warning")
            problems.append(f"memory {memory:.0f}% used")
        disks = []
        for path in dict.fromkeys([str(self.context.data_dir), *o.disks]):
            try:
                usage = psutil.disk_usage(path)
            except OSError as exc:
                statuses.append("unknown")
                problems.append(f"{path}: {exc.strerror or exc}")
                continue
            disks.append(Disk(path=path, used_pct=usage.percent, free_bytes=usage.free))
            if usage.percent >= o.disk_warning_pct:
                statuses.append("critical" if usage.percent >= o.disk_critical_pct else "warning")
                problems.append(f"{path} {usage.percent:.0f}% full ({_bytes(usage.free)} free)")
        summary = "; ".join(problems) or f"up {_duration(uptime)}, cpu {cpu:.0f}%, memory {memory:.0f}%"
        return [SystemCheck(name="system", status=worst(statuses), summary=summary, uptime_s=uptime,
                            boot_time=boot, cpu_pct=cpu, memory_pct=memory, disks=disks)]

    def failed(self, error: str) -> list[SystemCheck]:
        return [SystemCheck(name="system", status="unknown", summary=error, error=error)]


def _duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days} d {hours} h" if days else f"{hours} h {rest // 60} min"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
