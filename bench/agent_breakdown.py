"""Where the agent's memory and CPU go, for bench/agent_footprint.py.

- ``import_breakdown``: what each of the agent's imports costs in resident memory, each figure from a
  fresh interpreter of the agent's Python (bench/python_imports.py): cumulative steps in the order the
  agent pulls them in, and the saving if one package were gone from everything the agent imports.
- ``collector_costs``: CPU per run of each collector and network probe (bench/collector_costs.py, run
  with the agent's Python against the same peers as the footprint run).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench import python_imports

ROOT = Path(__file__).resolve().parent.parent

#: Cumulative steps, in the order the agent's own imports pull them in (see bench/python_imports.py).
AGENT_MODULES = (
    "agent.cli",
    "agent.config",
    "agent.logs",
    "agent.service",
    *(f"agent.collectors.{c}" for c in ("network", "printer", "system", "kiosk", "content", "clock")),
)
IMPORT_STEPS = [
    ("bare python", "pass"),
    ("+ ssl (paho, asyncio, TLS to the broker, https probes)", "import ssl"),
    ("+ asyncio", "import asyncio"),
    (
        "+ logging, sqlite3, tomllib, json, concurrent.futures",
        "import logging, sqlite3, tomllib, json, concurrent.futures",
    ),
    ("+ msgspec + protocol", "import msgspec, protocol"),
    ("+ paho-mqtt (imports dnspython when installed, urllib.request)", "import paho.mqtt.client"),
    ("+ psutil (system, kiosk)", "import psutil"),
    ("+ pycups (printer)", "import cups"),
    ("+ icmplib, http.client (probes)", "import icmplib, http.client"),
    ("+ agent.* (own modules, every collector)", "import " + ", ".join(AGENT_MODULES)),
]
#: What the running agent has imported (every collector enabled, every probe kind used).
ALL_IMPORTS = "import " + ", ".join((*AGENT_MODULES, "cups", "icmplib", "dns.resolver", "http.client"))
LEAVE_OUT = [
    ("pycups", "cups"),
    ("dnspython", "dns"),
    ("pycups + dnspython", "cups,dns"),
    ("asyncio", "asyncio"),
    ("ssl (libcrypto stays: hashlib uses it)", "ssl,_ssl"),
    ("paho-mqtt", "paho"),
    ("psutil", "psutil"),
    ("sqlite3", "sqlite3"),
    ("icmplib", "icmplib"),
]
BRIEF_IMPORT = "import agent.service, agent.collectors.printer, agent.collectors.network"


def import_breakdown(python: str, config: Path) -> dict | None:
    """The import figures (None, with a warning, when a probe fails: the footprint figures still count)."""
    check = (
        f"import io; import agent.service; from agent.cli import main; out = sys.stdout; "
        f"sys.stdout = io.StringIO(); main(['check', '--config', {str(config)!r}]); sys.stdout = out"
    )
    try:
        return _import_breakdown(python, check)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
        print(f"warning: the import breakdown failed: {exc}", file=sys.stderr)
        return None


def _import_breakdown(python: str, check: str) -> dict:
    return {
        "python": python,
        "cumulative": python_imports.cumulative(python, IMPORT_STEPS, ROOT),
        "leave_one_out": python_imports.leave_one_out(python, ALL_IMPORTS, LEAVE_OUT, ROOT),
        "brief": {"statement": BRIEF_IMPORT, **python_imports.fresh_rss(python, BRIEF_IMPORT, ROOT)},
        "all": {"statement": ALL_IMPORTS, **python_imports.fresh_rss(python, ALL_IMPORTS, ROOT)},
        # every import plus one run of every collector against the same peers (zonewatch-agent check)
        "check": python_imports.fresh_rss(python, check, ROOT),
    }


def print_imports(imports: dict, agent_rss_mb: float) -> None:
    def line(label: str, row: dict, extra: str = "") -> None:
        print(
            f"  {label:<66} {row['rss_mb']:>6.1f} MB {extra:>8}  anon {row['anon_mb']:4.1f} / file "
            f"{row['file_mb']:4.1f}, {row['modules']} modules"
        )

    print(f"\nagent imports, each row a fresh interpreter ({imports['python']}):")
    previous = None
    for row in imports["cumulative"]:
        line(row["step"], row, "" if previous is None else f"+{row['rss_mb'] - previous:.1f}")
        previous = row["rss_mb"]
    line("import agent.service, agent.collectors.printer, …network", imports["brief"])
    line("everything the running agent imports", imports["all"])
    line("… plus one run of every collector (zonewatch-agent check)", imports["check"])
    print(f"  {'the running agent (median in the window)':<66} {agent_rss_mb:>6.1f} MB")
    print("saving if a package were gone from everything the agent imports (its modules stubbed out):")
    for row in imports["leave_one_out"][1:]:
        print(f"  {row['package']:<66} {row['saving_mb']:>6.1f} MB")


def collector_costs(python: str, config: Path) -> list[dict]:
    """Rows of bench/collector_costs.py ([] with a warning when it fails: the footprint figures still count)."""
    try:
        done = subprocess.run(
            [python, str(ROOT / "bench" / "collector_costs.py"), str(config), "40"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip()[-500:])
        return json.loads(done.stdout)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
        print(f"warning: bench/collector_costs.py failed: {exc}", file=sys.stderr)
        return []


def print_costs(costs: list[dict], agent_cpu_s_per_h: float) -> None:
    print("\nCPU per collector run (bench/collector_costs.py, in one process, against the same peers):")
    print(f"  {'collector':<42} {'ms/run':>7} {'every s':>8} {'runs/h':>7} {'CPU s/h':>8}")
    for row in costs:
        every = "" if row["every_s"] is None else f"{row['every_s']:g}"
        print(
            f"  {row['name']:<42} {row['cpu_ms_per_run']:>7.3f} {every:>8} {row['runs_per_h'] or '':>7} "
            f"{row['cpu_s_per_h'] or 0:>8.2f}"
        )
    total = sum(r["cpu_s_per_h"] or 0 for r in costs if not r["name"].startswith(" "))
    runs = sum(r["runs_per_h"] or 0 for r in costs if not r["name"].startswith((" ", "printer (full")))
    if not runs:
        return
    print(f"  {'collectors at their rates':<42} {'':>7} {'':>8} {runs:>7} {total:>8.2f}")
    print(
        f"  {'the rest of the agent (running collectors, link, reports)':<58} {agent_cpu_s_per_h - total:>8.2f}"
        f"  ({(agent_cpu_s_per_h - total) / runs * 1000:.2f} ms per collector run if it were all that)"
    )
