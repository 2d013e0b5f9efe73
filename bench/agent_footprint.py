#!/usr/bin/env python3
"""Agent footprint at steady state, side by side with node_exporter and zabbix_agent2 in the same run.

What runs (everything on 127.0.0.1, every process stopped at the end):

- a private mosquitto, a private cupsd with 3 raw queues (one healthy, one reporting toner low, one
  idle that never printed), a private dnsmasq and an HTTP server (the "portal");
- the real agent (``zonewatch-agent run``) with ``interval = 30`` and defaults otherwise: 3 printers
  through ``cups_server``, 4 network targets (http portal, tcp broker port, icmp 127.0.0.1, dns via
  dnsmasq), its data dir in a temp dir;
- Debian's prometheus-node-exporter (default collectors) on a free port, scraped every 15 s;
- Debian's zabbix_agent2 with a minimal config (passive checks only) on a free port, polled for the
  items of Zabbix 6.0's "Linux by Zabbix agent" template at their default intervals (see
  bench/zabbix_passive.py).

After a warm-up, resident memory (psutil ``memory_info().rss``) is sampled every few seconds and CPU
seconds (user + system, children included) are read at the start and end of the window, for each
of the three. Targets: agent RSS median ≤ 1.25 × node_exporter's, agent CPU ≤ node_exporter's.
Then, unless --quick, where it goes (bench/agent_breakdown.py): what each import costs, measured in
fresh interpreters, and the CPU per run of each collector.

Run as root inside a loopback-only network namespace (the private cupsd needs root):

    unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/agent_footprint.py --json footprint.json'
    unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/agent_footprint.py --quick'

Needs the Debian packages mosquitto, cups-daemon, cups-client, dnsmasq-base,
prometheus-node-exporter and zabbix-agent2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import zabbix_passive  # noqa: E402
from bench.agent_breakdown import collector_costs, import_breakdown, print_costs, print_imports  # noqa: E402
from bench.benchlib import (  # noqa: E402
    MB,
    Daemon,
    ProcessMeter,
    Scraper,
    figure,
    machine_info,
    machine_summary,
    measure,
    today,
    write_json,
)
from tests.peers._util import free_port, wait_for_port  # noqa: E402

#: (executable, Debian package that provides it)
REQUIRED = [
    ("mosquitto", "mosquitto"),
    ("cupsd", "cups-daemon"),
    ("lpadmin", "cups-client"),
    ("dnsmasq", "dnsmasq-base"),
    ("prometheus-node-exporter", "prometheus-node-exporter"),
    ("zabbix_agent2", "zabbix-agent2"),
]
DEBIAN_PACKAGES = ["prometheus-node-exporter", "zabbix-agent2", "mosquitto", "cups-daemon", "dnsmasq-base"]
PYTHON_PACKAGES = ["zonewatch", "paho-mqtt", "psutil", "pycups", "msgspec", "icmplib", "dnspython"]
DEVICE_ID = "bench-kiosk-1"
INTERVAL = 30
SCRAPE_EVERY = 15
RSS_BUDGET = 1.25  # agent RSS ≤ 1.25 × node_exporter's (scraped)
CPU_BUDGET = 1.0  # agent CPU ≤ node_exporter's

AGENT, NODE_EXPORTER, ZABBIX = "zonewatch-agent", "node_exporter", "zabbix_agent2"


def find_binary(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/usr/bin", "/sbin") if (p := Path(d) / name).exists()), None
    )


def check_prerequisites() -> dict[str, str]:
    missing = sorted({package for name, package in REQUIRED if find_binary(name) is None})
    if missing:
        sys.exit(
            f"agent_footprint: missing Debian packages: {', '.join(missing)}.\n"
            f"Install them with: apt-get install {' '.join(missing)}"
        )
    if os.geteuid() != 0:
        sys.exit(
            "agent_footprint: run as root (the private cupsd needs it), inside a loopback-only namespace:\n"
            "  unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/agent_footprint.py'"
        )
    return {name: find_binary(name) for name, _ in REQUIRED}


def agent_config(
    work: Path, broker_port: int, cups_server: str, http_url: str, dns_address: str, options: Sequence[str] = ()
) -> str:
    """interval = 30, the 3 printers of the private cupsd, 4 network targets; defaults otherwise.

    ``options``: ``SECTION.KEY=VALUE`` (VALUE in TOML), e.g. ``collectors.printer.every=10``, to measure
    what a changed default would do.
    """
    extra: dict[str, list[str]] = {}
    for option in options:
        path, sep, value = option.partition("=")
        section, dot, key = path.strip().rpartition(".")
        if not (sep and dot and key and value.strip()):
            raise SystemExit(f"agent_footprint: --agent-option {option!r} is not SECTION.KEY=VALUE")
        extra.setdefault(section, []).append(f"{key} = {value.strip()}")

    def section(name: str, *lines: str) -> str:
        return "\n".join([f"[{name}]", *lines, *extra.pop(name, [])]) + "\n"

    text = "\n".join(
        [
            section(
                "agent", f'device_id = "{DEVICE_ID}"', f'data_dir = "{work / "agent-data"}"', f"interval = {INTERVAL}"
            ),
            section("mqtt", f'url = "mqtt://127.0.0.1:{broker_port}"'),
            section("collectors.printer", f'cups_server = "{cups_server}"'),
            section("collectors.network"),
            *(
                f"[[collectors.network.targets]]\n{target}\n"
                for target in (
                    f'name = "portal"\nprobe = "http"\nurl = "{http_url}"',
                    f'name = "broker"\nprobe = "tcp"\nhost = "127.0.0.1"\nport = {broker_port}',
                    'name = "loopback"\nprobe = "icmp"\nhost = "127.0.0.1"',
                    f'name = "dns"\nprobe = "dns"\nquery = "portal.zonewatch.test"\nresolver = "{dns_address}"\n'
                    'expect = ["127.0.0.1"]',
                )
            ),
        ]
    )
    return text + "".join("\n" + section(name) for name in list(extra))


def add_printers(cups) -> dict[str, str]:
    """3 raw queues: healthy (printed a job, toner 80 %), toner low (5 %, toner-low-report), idle."""
    black = ("Black", "toner", 80, "#000000")
    healthy, low, idle = "hall_printer", "counter_printer", "reading_room_printer"
    cups.add_queue(healthy, cups.zwtest_uri(healthy, markers=[black]))
    cups.set_condition(healthy, markers=[black], stop=False)
    cups.add_queue(low)
    cups.set_condition(low, reasons=["toner-low-report"], markers=[("Black", "toner", 5, "#000000")], stop=False)
    cups.add_queue(idle, "file:///dev/null")
    return {healthy: "healthy", low: "toner low", idle: "idle, never printed"}


# -- watching the agent --------------------------------------------------------------------


class ReportWatcher:
    """Subscribes to the agent's reports: how many arrived, and the checks of the last one."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.times: list[float] = []
        self.last: dict | None = None
        self.first = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-watcher")
        self.client.on_connect = lambda c, *a: c.subscribe(f"zw/v1/dev/{DEVICE_ID}/report", qos=1)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, client, userdata, message) -> None:
        self.times.append(time.monotonic())
        self.last = json.loads(message.payload)
        self.first.set()

    def between(self, start: float, end: float) -> int:
        return sum(start <= t < end for t in self.times)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- reporting -----------------------------------------------------------------------------


def print_report(
    machine: dict,
    meters: dict[str, ProcessMeter],
    settings: dict,
    counts: dict,
    agent_checks: list[dict],
    imports: dict | None,
) -> tuple[float, float]:
    print("\n== Agent footprint ==")
    print(f"machine: {machine_summary(machine)}")
    d, p = machine["debian_packages"], machine["python_packages"]
    print(
        f"versions: prometheus-node-exporter {d['prometheus-node-exporter']}, zabbix-agent2 {d['zabbix-agent2']}, "
        f"mosquitto {d['mosquitto']}, cups-daemon {d['cups-daemon']}; zonewatch {p['zonewatch']}, "
        f"paho-mqtt {p['paho-mqtt']}, psutil {p['psutil']}, pycups {p['pycups']}, msgspec {p['msgspec']}"
    )
    print(f"agent's Python: {machine['agent_python']}")
    changed = settings["agent"]["options"] + settings["agent"]["extra_env"]
    print(
        "agent config: interval 30 s, 3 printers, 4 network targets, "
        + (f"changed: {', '.join(changed)}" if changed else "every other option at its default")
    )
    print(f"network namespace loopback-only: {'yes' if machine['loopback_only_namespace'] else 'NO'}")
    print(
        f"warm-up {settings['warmup_s']:.0f} s, window {settings['window_s']:.0f} s, "
        f"RSS sampled every {settings['sample_every_s']:g} s ({len(meters[AGENT].rss_samples)} samples)"
    )
    print(
        f"in the window: agent reports {counts['reports']}, node_exporter scrapes {counts['scrapes']} "
        f"(every {SCRAPE_EVERY} s, {counts['scrape_bytes']} bytes each), zabbix polls {counts['zabbix']}"
    )
    print(f"agent threads at the end: {counts['agent_threads']}")
    print("agent checks (last report): " + ", ".join(f"{c['name']}={c['status']}" for c in agent_checks))
    print()
    header = f"{'process':<56} {'RSS median MB':>13} {'RSS max MB':>10} {'anon/file MB':>13} {'CPU s/h':>8}"
    print(header)
    print("-" * len(header))
    labels = {
        AGENT: f"zonewatch-agent (interval {INTERVAL} s, 3 printers, 4 targets)",
        NODE_EXPORTER: f"prometheus-node-exporter (scraped every {SCRAPE_EVERY} s)",
        ZABBIX: "zabbix_agent2 (Linux by Zabbix agent template)",
    }
    for name, meter in meters.items():
        split = f"{meter.rss_split.get('RssAnon', 0) / MB:.1f}/{meter.rss_split.get('RssFile', 0) / MB:.1f}"
        print(
            f"{labels[name]:<56} {meter.rss_median_mb:>13.1f} {meter.rss_max_mb:>10.1f} {split:>13} "
            f"{meter.cpu_s_per_h:>8.2f}"
        )
    agent, ne, zb = meters[AGENT], meters[NODE_EXPORTER], meters[ZABBIX]
    rss_ratio = agent.rss_median_mb / ne.rss_median_mb
    cpu_ratio = agent.cpu_s_per_h / ne.cpu_s_per_h if ne.cpu_s_per_h else float("inf")
    print()
    budget = RSS_BUDGET * ne.rss_median_mb
    print(
        f"RSS: agent / node_exporter (median) = {rss_ratio:.2f}  (target ≤ {RSS_BUDGET:g}, i.e. ≤ {budget:.1f} MB): "
        + ("MET" if rss_ratio <= RSS_BUDGET else f"MISSED by {agent.rss_median_mb - budget:.1f} MB")
    )
    print(
        f"CPU: agent / node_exporter = {cpu_ratio:.2f}  (target ≤ {CPU_BUDGET:g}, i.e. ≤ {ne.cpu_s_per_h:.2f} s/h): "
        + ("MET" if cpu_ratio <= CPU_BUDGET else f"MISSED by {agent.cpu_s_per_h - CPU_BUDGET * ne.cpu_s_per_h:.2f} s/h")
    )
    print(
        f"for comparison, agent / zabbix_agent2: RSS {agent.rss_median_mb / zb.rss_median_mb:.2f}, "
        f"CPU {agent.cpu_s_per_h / zb.cpu_s_per_h if zb.cpu_s_per_h else float('inf'):.2f}"
    )
    if imports:
        print_imports(imports, agent.rss_median_mb)
    return rss_ratio, cpu_ratio


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s warm-up, 40 s window (under a minute)")
    parser.add_argument("--duration", type=float, help="measurement window in seconds (default 600; --quick 40)")
    parser.add_argument("--warmup", type=float, help="warm-up in seconds (default 60; --quick 10)")
    parser.add_argument("--sample-every", type=float, default=2.0, help="seconds between RSS samples (default 2)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--imports",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure what each of the agent's imports costs (default: on, off with --quick)",
    )
    parser.add_argument(
        "--collector-costs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure each collector's CPU per run (bench/collector_costs.py; default: on, off with --quick)",
    )
    parser.add_argument(
        "--agent-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the agent, e.g. MALLOC_ARENA_MAX=2 (repeatable)",
    )
    parser.add_argument(
        "--agent-option",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="change one agent config option (VALUE in TOML), e.g. collectors.printer.every=10 "
        "(repeatable); the figures then show what that change would do",
    )
    parser.add_argument(
        "--agent-python",
        metavar="PYTHON",
        help="run the agent as PYTHON -m agent.cli from this tree (e.g. a venv made from Debian's "
        "/usr/bin/python3 with the agent's dependencies, as docs/install-agent.md installs it); "
        "default: this venv's zonewatch-agent",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs) for a look after")
    parser.add_argument("--fail-on-miss", action="store_true", help="exit 1 when the agent misses a target")
    args = parser.parse_args(argv)
    args.window = args.duration or (40.0 if args.quick else 600.0)
    args.warmup = args.warmup if args.warmup is not None else (10.0 if args.quick else 60.0)
    args.imports = args.imports if args.imports is not None else not args.quick
    args.collector_costs = args.collector_costs if args.collector_costs is not None else not args.quick
    return args


def start_peers(stack: contextlib.ExitStack, work: Path) -> dict:
    """mosquitto, cupsd with the 3 queues, dnsmasq and the portal; each stopped when the stack closes."""
    from tests.peers.cups import Cupsd
    from tests.peers.dnsmasq import Dnsmasq
    from tests.peers.http_target import HttpTarget
    from tests.peers.mosquitto import Mosquitto

    print("starting mosquitto, cupsd (3 queues), dnsmasq, the portal …", flush=True)
    (work / "mosquitto").mkdir()
    broker = Mosquitto(work / "mosquitto")
    stack.callback(broker.stop)
    broker.start()
    cups = Cupsd()
    stack.callback(cups.cleanup)
    cups.start()
    printers = add_printers(cups)
    (work / "dnsmasq").mkdir()
    dns = Dnsmasq(work / "dnsmasq")
    stack.callback(dns.stop)
    dns.start()
    portal = HttpTarget()
    stack.callback(portal.stop)
    portal.start()
    return {"broker": broker, "cups": cups, "printers": printers, "dns": dns, "portal": portal}


def start_measured(
    stack: contextlib.ExitStack, work: Path, peers: dict, binaries: dict[str, str], args: argparse.Namespace
) -> tuple[dict[str, Daemon], int, int]:
    """The agent, node_exporter and zabbix_agent2, started and answering; (daemons, ne port, zabbix port)."""
    config = work / "agent.toml"
    cups = peers["cups"]
    config.write_text(
        agent_config(
            work, peers["broker"].port, cups.server, peers["portal"].url, peers["dns"].address, args.agent_option
        )
    )
    agent_argv = (
        [args.agent_python, "-m", "agent.cli"]
        if args.agent_python
        else [str(Path(sys.executable).parent / "zonewatch-agent")]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUPS_", "PYTHON"))}
    env.update({"CUPS_SERVER": cups.server, **dict(e.split("=", 1) for e in args.agent_env)})
    ne_port, zb_port = free_port(), zabbix_passive.free_port()
    zdir = work / "zabbix"
    zdir.mkdir()
    zconf = zdir / "zabbix_agent2.conf"
    zconf.write_text(zabbix_passive.CONF.format(dir=zdir, port=zb_port, hostname=DEVICE_ID))
    daemons = {
        AGENT: Daemon(AGENT, [*agent_argv, "run", "--config", str(config)], work / "agent.log", env, cwd=ROOT),
        NODE_EXPORTER: Daemon(
            NODE_EXPORTER,
            [binaries["prometheus-node-exporter"], f"--web.listen-address=127.0.0.1:{ne_port}"],
            work / "node_exporter.log",
        ),
        ZABBIX: Daemon(ZABBIX, [binaries["zabbix_agent2"], "-c", str(zconf)], zdir / "stdout.log"),
    }
    print("starting the agent, node_exporter, zabbix_agent2 …", flush=True)
    for daemon in daemons.values():
        stack.callback(daemon.stop)
        daemon.start()
    wait_for_port(ne_port, 15, "node_exporter", daemons[NODE_EXPORTER].proc, daemons[NODE_EXPORTER].log)
    wait_for_port(zb_port, 15, "zabbix_agent2", daemons[ZABBIX].proc, zdir / "zabbix_agent2.log")
    return daemons, ne_port, zb_port


def json_figures(meters: dict[str, ProcessMeter], date: str, machine: dict) -> list[dict]:
    ne, agent, zb = meters[NODE_EXPORTER], meters[AGENT], meters[ZABBIX]
    ref_rss, ref_cpu = "node_exporter RSS median (scraped every 15 s)", "node_exporter CPU s/h (scraped every 15 s)"
    return [
        figure("agent RSS median", agent.rss_median_mb, "MB", ref_rss, ne.rss_median_mb, RSS_BUDGET, date, machine),
        figure("agent RSS max", agent.rss_max_mb, "MB", "node_exporter RSS max", ne.rss_max_mb, None, date, machine),
        figure("agent CPU", agent.cpu_s_per_h, "s/h", ref_cpu, ne.cpu_s_per_h, CPU_BUDGET, date, machine),
        figure("zabbix_agent2 RSS median", zb.rss_median_mb, "MB", ref_rss, ne.rss_median_mb, None, date, machine),
        figure("zabbix_agent2 CPU", zb.cpu_s_per_h, "s/h", ref_cpu, ne.cpu_s_per_h, None, date, machine),
        figure("node_exporter RSS median", ne.rss_median_mb, "MB", None, None, None, date, machine),
        figure("node_exporter CPU", ne.cpu_s_per_h, "s/h", None, None, None, date, machine),
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    binaries = check_prerequisites()
    date = today()
    machine = machine_info(DEBIAN_PACKAGES, PYTHON_PACKAGES)
    agent_python = args.agent_python or sys.executable
    machine["agent_python"] = subprocess.run(
        [agent_python, "-c", "import platform, sys; print(sys.executable, platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not machine["loopback_only_namespace"]:
        print(
            "warning: not in a loopback-only network namespace; everything still targets 127.0.0.1 only.\n"
            "  Run: unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/agent_footprint.py …'",
            file=sys.stderr,
        )
    # SIGTERM (e.g. from a timeout) unwinds like Ctrl-C, so every process started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="zw-bench-footprint-"))
        work.chmod(0o755)  # cupsd's backends run as lp
        if args.keep:
            print(f"keeping {work}")
        else:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        peers = start_peers(stack, work)
        watcher = ReportWatcher(peers["broker"].port)
        stack.callback(watcher.stop)
        daemons, ne_port, zb_port = start_measured(stack, work, peers, binaries, args)
        if not watcher.first.wait(60):
            sys.exit(f"agent_footprint: no report from the agent within 60 s\n{daemons[AGENT].tail()}")
        scraper = Scraper(f"http://127.0.0.1:{ne_port}/metrics", SCRAPE_EVERY)
        poller = zabbix_passive.Poller(zb_port, zabbix_passive.template_items(zb_port))
        for thread in (scraper, poller):
            stack.callback(thread.stop)
            thread.start()
        meters = {name: ProcessMeter(name, d.proc.pid) for name, d in daemons.items()}
        start, end = measure(list(meters.values()), daemons, args.warmup, args.window, args.sample_every)
        threads = meters[AGENT].process.num_threads()
        scraper.stop()
        poller.stop()

        polls = poller.polls_between(start, end)
        scrapes = [b for t, b in scraper.scrapes if start <= t < end]
        counts = {
            "reports": watcher.between(start, end),
            "scrapes": len(scrapes),
            "scrape_bytes": round(sum(scrapes) / len(scrapes)) if scrapes else 0,
            "zabbix": ", ".join(f"{n} × {d}-s items" for d, n in sorted(polls.items())) or "none",
            "agent_threads": threads,
        }
        agent_checks = [{"name": c["name"], "status": c["status"]} for c in (watcher.last or {}).get("checks", [])]
        if scraper.errors or poller.errors:
            print(
                f"warning: {len(scraper.errors)} failed scrapes, {len(poller.errors)} failed zabbix polls: "
                f"{(scraper.errors + poller.errors)[:3]}",
                file=sys.stderr,
            )
        costs = None
        if args.collector_costs:
            print("measuring each collector's CPU per run …", flush=True)
            costs = collector_costs(agent_python, work / "agent.toml")
        imports = None
        if args.imports:
            print("measuring the agent's imports in fresh interpreters …", flush=True)
            imports = import_breakdown(agent_python, work / "agent.toml")
        settings = {
            "warmup_s": args.warmup,
            "window_s": round(end - start, 1),
            "sample_every_s": args.sample_every,
            "agent": {
                "interval_s": INTERVAL,
                "printers": peers["printers"],
                "network_targets": ["http portal", "tcp broker port", "icmp 127.0.0.1", "dns via dnsmasq"],
                "options": args.agent_option,
                "extra_env": args.agent_env,
                "python": machine["agent_python"],
            },
            "node_exporter": {"scrape_every_s": SCRAPE_EVERY, "collectors": "defaults"},
            "zabbix_agent2": {
                "template": "Linux by Zabbix agent (Zabbix 6.0)",
                "items": len(poller.items),
                "polls_in_window_by_interval_s": dict(polls),
                "unsupported": sorted(poller.unsupported),
            },
            "counts": counts,
        }
        rss_ratio, cpu_ratio = print_report(machine, meters, settings, counts, agent_checks, imports)
        if costs:
            print_costs(costs, meters[AGENT].cpu_s_per_h)
        if args.json:
            write_json(
                args.json,
                "agent_footprint",
                machine,
                date,
                settings,
                json_figures(meters, date, machine),
                {"imports": imports, "collector_costs": costs, "agent_checks": agent_checks},
            )
            print(f"figures written to {args.json}")
        met = rss_ratio <= RSS_BUDGET and cpu_ratio <= CPU_BUDGET
        return 1 if args.fail_on_miss and not met else 0


if __name__ == "__main__":
    sys.exit(main())
