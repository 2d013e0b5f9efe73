"""CPU per run of each of the agent's collectors (and of each network probe), against live peers.

    python bench/collector_costs.py AGENT_CONFIG [RUNS]    # prints JSON

Builds the collectors from the agent's config the way the service does, runs each a few times to
warm up, then RUNS times (20 ms apart), and reports the process CPU time (user + system, every
thread) per run, the runs per hour at the collector's ``every`` and the CPU seconds per hour that
makes. The printer collector is measured as it runs between CUPS events (one Get-Notifications)
and, separately, reading CUPS in full (what it does every ``full_every`` seconds). What the agent
spends around a run (asyncio timer, executor hand-off, change detection) is not included: the
footprint benchmark measures that as the whole agent's CPU.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec

from agent.collectors import AgentContext
from agent.config import load_config
from agent.service import build_collectors


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def per_run_ms(run, runs: int) -> float:
    for _ in range(3):
        run()
    start = cpu_seconds()
    for _ in range(runs):
        run()
        time.sleep(0.02)
    return (cpu_seconds() - start) / runs * 1000


def row(name: str, ms: float, every: float | None) -> dict:
    per_hour = 3600 / every if every else None
    return {
        "name": name,
        "cpu_ms_per_run": round(ms, 3),
        "every_s": every,
        "runs_per_h": None if per_hour is None else round(per_hour),
        "cpu_s_per_h": None if per_hour is None else round(ms * per_hour / 1000, 3),
    }


def measure(config_path: str, runs: int) -> list[dict]:
    config = load_config(config_path)
    context = AgentContext(device_id=config.agent.device_id, data_dir=Path(config.agent.data_dir))
    rows = []
    for collector in build_collectors(config, context):
        options = collector.options
        every = options.every
        if collector.name == "printer":
            rows.append(row("printer (between CUPS events)", per_run_ms(collector.collect, runs), every))
            full = type(collector)(msgspec.structs.replace(options, full_every=0.001), context)
            rows.append(row("printer (full read of CUPS)", per_run_ms(full.collect, runs), options.full_every))
            full.close()
        else:
            rows.append(row(collector.name, per_run_ms(collector.collect, runs), every))
        if collector.name == "network":
            for target in options.targets:
                ms = per_run_ms(lambda t=target, c=collector: c._probe(t), runs)
                rows.append(row(f"  network probe {target.probe} ({target.name})", ms, every))
        collector.close()
    return rows


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40)))
