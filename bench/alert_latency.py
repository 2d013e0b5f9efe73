#!/usr/bin/env python3
"""Alert latency: from a fault appearing to the webhook receiving the alert, zonewatch beside
Prometheus + Alertmanager at their default timings, in the same run (issue 5).

Everything runs on 127.0.0.1 with default settings: the real server (hold times, resolve hold,
sweep, ingest batching at their defaults) and real agents (interval 30 s, keepalive 10 s, printer
collector every 2 s, network collector every 5 s), a private mosquitto and cupsd. One zone per fault,
its kiosk's agent reporting, the server routing every incident to a local webhook receiver that
stamps arrivals. Faults, each timed from the moment it appears until the alert's POST arrives:

- printer out of paper: the zwtest backend reports ``media-empty-error`` in cupsd; the fault time
  is the last poll of cupsd (every ~10 ms) that did not show it yet. The zone has a second printer,
  so the alert is the printer incident (``printer_media_empty``).
- network target down: the HTTP server the agent probes closes its port (the zone's only kiosk
  then finds the portal unreachable → ``zone_breach``).
- device vanished: the agent is killed with SIGKILL (the broker sends its Last Will at once →
  device offline → ``zone_breach``, the zone's only kiosk).
- device frozen (extra): the agent is stopped with SIGSTOP; the broker notices only after
  1.5 × keepalive without a packet — the case the keepalive target is about.

Between trials the fault is cleared and the resolve notice awaited (the default resolve hold is
30 s, so a trial takes ~40 s; the fault types run side by side, one zone and agent each). Each fault
comes after a random pause of 0–10 s (Prometheus: 0–60 s), so it falls at a random point of the
collectors', keepalive's and scrapes' cycles rather than at the same point every trial.
Prometheus + Alertmanager (bench/alert_prometheus.py) watch an identical HTTP server through
blackbox_exporter and a node_exporter through ``up == 0``; with a 1-minute scrape and evaluation
interval and a 30-s group_wait a trial takes 1–3 minutes, so it gets fewer trials (default 5).

    unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/alert_latency.py --json /tmp/alert.json'
    unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/alert_latency.py --quick'
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agent.collectors.network import NetworkOptions  # noqa: E402
from agent.collectors.printer import Options as PrinterOptions  # noqa: E402
from agent.config import AgentSection, MqttSection  # noqa: E402
from bench import alert_prometheus  # noqa: E402
from bench.alert_peers import (  # noqa: E402
    Agent,
    FleetView,
    PortalTarget,
    TimedReceiver,
    add_zones,
    find_binary,
    server_config,
)
from bench.benchlib import figure, machine_info, machine_summary, today, wait, write_json  # noqa: E402
from tests.agent_process import Kiosk  # noqa: E402
from tests.peers.cups import Cupsd  # noqa: E402
from tests.peers.mosquitto import Mosquitto  # noqa: E402
from tests.server_process import ServerProcess  # noqa: E402


def default(struct, name: str):
    """A config option's default, read from the code that defines it."""
    return struct.__struct_defaults__[struct.__struct_fields__.index(name) - (
        len(struct.__struct_fields__) - len(struct.__struct_defaults__))]


KEEPALIVE = default(MqttSection, "keepalive")
DEVICE_TARGET = 1.5 * KEEPALIVE + 2.0
FAULTS = {  # key: (label, zone, kiosk device id, target on p99 in seconds)
    "printer": ("printer out of paper", "bench-printer", "bench-kiosk-printer", 2.0),
    "network": ("network target down", "bench-network", "bench-kiosk-network", 2.0),
    "vanished": ("device vanished (SIGKILL)", "bench-vanished", "bench-kiosk-vanished", DEVICE_TARGET),
    "frozen": ("device frozen (SIGSTOP)", "bench-frozen", "bench-kiosk-frozen", DEVICE_TARGET),
}
REQUIRED = [("mosquitto", "mosquitto"), ("cupsd", "cups-daemon"), ("lpadmin", "cups-client")]
PROM_REQUIRED = [(b, b) for b in alert_prometheus.BINARIES]
DEBIAN = ["mosquitto", "cups-daemon", "prometheus", "prometheus-alertmanager", "prometheus-blackbox-exporter",
          "prometheus-node-exporter"]
PYTHON = ["zonewatch", "paho-mqtt", "pycups", "aiohttp", "SQLAlchemy"]
#: After a zone is quiet, a fault waits a random 0–JITTER s, so it lands at a random point of the agent's
#: collector and keepalive cycles. Without it every trial starts in the same phase (the 30-s resolve hold
#: is a whole number of collector periods) and measures one point of the cycle 20 times.
JITTER = 10.0
OPENED_TIMEOUT = 90.0
RESOLVED_TIMEOUT = 180.0
_print_lock = threading.Lock()


def log(text: str) -> None:
    with _print_lock:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass
class Trial:
    fault: str
    trial: int
    latency: float | None = None
    rule: str = ""
    notices: int = 0  # notices for the zone during the trial: 2 expected (opened, resolved)
    error: str = ""


def notices_for(receiver: TimedReceiver, mark: int, zone: str):
    return [a for a in receiver.arrivals_since(mark, "/zonewatch") if (a.json or {}).get("zone_code") == zone]


def first_notice(receiver: TimedReceiver, mark: int, zone: str, kind: str, incident=None):
    return next((a for a in notices_for(receiver, mark, zone) if a.json["kind"] == kind
                 and (incident is None or a.json["incident_id"] == incident)), None)


def zonewatch_trials(fault: str, trials: int, inject: Callable[[], float], restore: Callable[[], None],
                     receiver: TimedReceiver, view: FleetView, deadline: float, rng: random.Random,
                     results: list[Trial]) -> list[Trial]:
    """inject() makes the fault and returns when it appeared (monotonic); restore() clears it. Each
    finished trial is appended to ``results`` at once, so a later failure keeps the trials before it."""
    _, zone, _, _ = FAULTS[fault]
    for k in range(1, trials + 1):
        if time.monotonic() + 60 + JITTER > deadline:
            log(f"{fault}: time budget spent, {k - 1} trials done")
            break
        wait(lambda: view.quiet(zone), RESOLVED_TIMEOUT, f"zone {zone} meeting the rule, no incident open", 0.2)
        time.sleep(rng.uniform(0, JITTER))
        mark = len(receiver.arrivals)
        t0 = inject()
        trial = Trial(fault, k)
        try:
            opened = wait(partial(first_notice, receiver, mark, zone, "opened"), OPENED_TIMEOUT,
                          f"the {fault} alert")
            trial.latency, trial.rule = opened.at - t0, opened.json["rule"]
        except TimeoutError as exc:
            opened, trial.error = None, str(exc)
        restore()
        if opened is not None:
            try:
                wait(partial(first_notice, receiver, mark, zone, "resolved", opened.json["incident_id"]),
                     RESOLVED_TIMEOUT, f"the {fault} resolve notice", 0.2)
            except TimeoutError as exc:
                trial.error = str(exc)
        trial.notices = len(notices_for(receiver, mark, zone))
        results.append(trial)
        shown = f"{trial.latency:.3f} s ({trial.rule})" if trial.latency is not None else trial.error
        log(f"{fault} trial {k}: {shown}" + (f", {trial.notices} notices" if trial.notices != 2 else ""))
    return results


def printer_fault(cupsd: Cupsd, queue: str) -> float:
    """Out of paper, the way a printer reports it; when cupsd first showed it (last poll without it)."""
    cupsd.set_device_uri(queue, cupsd.zwtest_uri(queue, ["media-empty-error"], exit_code=4))
    cupsd.enable(queue)
    conn = cupsd.connection()
    unseen = time.monotonic()
    cupsd.submit_job(queue, "bench: out of paper")
    while True:
        before = time.monotonic()
        attrs = conn.getPrinterAttributes(queue, requested_attributes=["printer-state-reasons"])
        if "media-empty-error" in attrs["printer-state-reasons"]:
            return unseen
        unseen = before
        time.sleep(0.005)


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(latencies: list[float]) -> dict | None:
    if not latencies:
        return None
    return {"n": len(latencies), "p50": nearest_rank(latencies, 50), "p99": nearest_rank(latencies, 99),
            "min": min(latencies), "max": max(latencies)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 trials per fault, no frozen device, no Prometheus, resolve_hold 1 s (under a minute)")
    parser.add_argument("--trials", type=int, help="zonewatch trials per fault (default 20; --quick 2)")
    parser.add_argument("--frozen-trials", type=int, help="SIGSTOP trials (default 10; --quick 0)")
    parser.add_argument("--prom-trials", type=int, help="Prometheus + Alertmanager trials (default 5; --quick 0)")
    parser.add_argument("--resolve-hold", type=float,
                        help="server alerts.resolve_hold (default: the server's default, 30 s; --quick 1); "
                             "not on the alert's path, it only sets how soon a trial can follow the last")
    parser.add_argument("--budget", type=float, default=1110.0,
                        help="seconds from the start by which every trial should have ended: no trial starts that "
                             "would not (default 1110)")
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help=f"which zonewatch fault types to time, comma-separated (default {','.join(FAULTS)})")
    parser.add_argument("--agent-option", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="change one agent option (VALUE in TOML), e.g. collectors.network.every=1, "
                             "to measure what a changed default would do (repeatable)")
    parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(1_000_000),
                        help="seed of the random pauses before the faults (default: a new one, printed)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = parser.parse_args(argv)
    args.trials = args.trials if args.trials is not None else (2 if args.quick else 20)
    args.frozen_trials = args.frozen_trials if args.frozen_trials is not None else (0 if args.quick else 10)
    args.prom_trials = args.prom_trials if args.prom_trials is not None else (0 if args.quick else 5)
    args.resolve_hold = args.resolve_hold if args.resolve_hold is not None else (1.0 if args.quick else None)
    args.faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    if unknown := [f for f in args.faults if f not in FAULTS]:
        parser.error(f"--faults: unknown {', '.join(unknown)}; choose from {', '.join(FAULTS)}")
    return args


def check_prerequisites(args: argparse.Namespace) -> None:
    required = REQUIRED + (PROM_REQUIRED if args.prom_trials else [])
    missing = sorted({package for name, package in required if find_binary(name) is None})
    if missing:
        sys.exit(f"alert_latency: missing Debian packages: {', '.join(missing)}.\n"
                 f"Install them with: apt-get install {' '.join(missing)}")
    if os.geteuid() != 0:
        sys.exit("alert_latency: run as root (the private cupsd needs it), in a loopback-only namespace:\n"
                 "  unshare -n sh -c 'ip link set lo up; .venv/bin/python bench/alert_latency.py'")


def start_zonewatch(stack: contextlib.ExitStack, work: Path, receiver: TimedReceiver, args) -> dict:
    log("starting mosquitto, cupsd, the portal, the server and 4 agents …")
    broker = Mosquitto(work / "mosquitto")
    stack.callback(broker.stop)
    broker.start()
    cupsd = Cupsd()
    stack.callback(cupsd.cleanup)
    cupsd.start()
    queues = {"printer": ["hall_printer", "spare_printer"], "network": ["net_printer"],
              "vanished": ["vanished_printer"], "frozen": ["frozen_printer"]}
    for names in queues.values():
        for name in names:
            cupsd.add_queue(name)
    portals = {"network": PortalTarget(), "steady": PortalTarget()}
    for portal in portals.values():
        stack.callback(portal.stop)
        portal.start()
    database_url = f"sqlite:///{work / 'fleet.db'}"
    add_zones(database_url, {zone: device for _, zone, device, _ in FAULTS.values()})
    server = ServerProcess(work / "server", broker.port, database_url)
    server.config.write_text(server_config(server.port, work / "server", database_url, broker.port,
                                           receiver.url_for("/zonewatch"), args.resolve_hold))
    stack.callback(server.stop)
    server.start()
    kiosk = Kiosk(work)
    stack.callback(kiosk.kill)
    kiosk.start()
    agents = {}
    for fault, (_, _, device, _) in FAULTS.items():
        portal = portals["network" if fault == "network" else "steady"]
        agent = Agent(work, device, broker.port, kiosk.name, cupsd.server, queues[fault], portal.url,
                      args.agent_option)
        stack.callback(agent.stop)
        agent.start()
        agents[fault] = agent
    view = FleetView(database_url)
    stack.callback(view.close)
    return {"cupsd": cupsd, "portal": portals["network"], "agents": agents, "view": view, "server": server,
            "broker": broker}


def run(args: argparse.Namespace, work: Path, stack: contextlib.ExitStack) -> tuple[dict, dict, list[str]]:
    started = time.monotonic()
    deadline = started + args.budget
    receiver = TimedReceiver().start()
    stack.callback(receiver.stop)
    zw = start_zonewatch(stack, work, receiver, args)
    prom = None
    if args.prom_trials:
        log("starting Prometheus, Alertmanager, blackbox_exporter, node_exporter …")
        (work / "prometheus-stack").mkdir()
        prom = alert_prometheus.PrometheusStack(work / "prometheus-stack", receiver).start(stack)
    view, agents, cupsd, portal = zw["view"], zw["agents"], zw["cupsd"], zw["portal"]
    frozen_at: list[float] = []  # wall-clock times of the freezes, to find the broker's view in its log
    zones = [zone for _, zone, _, _ in FAULTS.values()]
    wait(lambda: all(view.quiet(z) for z in zones), RESOLVED_TIMEOUT, "every zone meeting the rule, quiet", 0.5)
    startup = [f"{a.json['kind']} {a.json['rule']} in {a.json['zone_code']}: {a.json['summary']}"
               for a in receiver.arrivals_since(0, "/zonewatch")]
    log(f"fleet up and quiet after {time.monotonic() - started:.0f} s ({len(startup)} notices while it came up)")
    plans = {
        "printer": (args.trials, lambda: printer_fault(cupsd, "hall_printer"),
                    lambda: cupsd.clear_condition("hall_printer")),
        "network": (args.trials, lambda: (time.monotonic(), portal.stop())[0], portal.start),
        "vanished": (args.trials, lambda: agents["vanished"].signal(signal.SIGKILL), agents["vanished"].restart),
        "frozen": (args.frozen_trials, lambda: freeze(agents["frozen"], frozen_at), agents["frozen"].restart),
    }
    results: dict[str, list] = {}
    errors: list[str] = []

    def runner(key: str, body: Callable[[list], list]) -> None:
        results[key] = []
        try:
            body(results[key])
        except Exception as exc:  # reported, and the other fault types go on
            errors.append(f"{key}: {exc!r}")
            log(f"{key}: FAILED: {exc!r}")

    log(f"random seed {args.seed} (--seed to repeat the same pauses before the faults)")
    threads = [threading.Thread(target=runner, args=(fault, lambda out, f=fault, p=plan: zonewatch_trials(
        f, p[0], p[1], p[2], receiver, view, deadline, random.Random(f"{args.seed}-{f}"), out)), daemon=True)
        for fault, plan in plans.items() if plan[0] and fault in args.faults]
    if prom is not None:
        threads.append(threading.Thread(target=runner, args=("prometheus", lambda out: out.extend(
            alert_prometheus.run_trials(prom, args.prom_trials, deadline, log,
                                        random.Random(f"{args.seed}-prometheus")))), daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log(f"all trials done after {time.monotonic() - started:.0f} s")
    broker = broker_timeouts(zw["broker"].log_path, FAULTS["frozen"][2], frozen_at)
    return results, {"startup_notices": startup, "frozen_broker_timeout_s": broker, "errors": errors}, errors


def freeze(agent: Agent, frozen_at: list[float]) -> float:
    at = agent.signal(signal.SIGSTOP)
    frozen_at.append(time.time() - (time.monotonic() - at))
    return at


def broker_timeouts(log_path: Path, client: str, frozen_at: list[float]) -> list[float | None]:
    """Seconds from each freeze to the broker's "exceeded timeout" for that client (its log: 1-s resolution)."""
    stamps = []
    for line in log_path.read_text(errors="replace").splitlines():
        if f"Client {client} has exceeded timeout" in line:
            stamps.append(datetime.datetime.strptime(line.split(": ", 1)[0], "%Y-%m-%dT%H:%M:%S").timestamp())
    return [next((round(t - at, 1) for t in stamps if t >= int(at)), None) for at in frozen_at]


def fmt(stats: dict | None) -> str:
    return "—" if stats is None else f"{stats['p50']:.2f} / {stats['p99']:.2f} s"


def report(results: dict, machine: dict, args: argparse.Namespace, date: str) -> tuple[list[dict], dict]:
    zw = {f: summary([t.latency for t in results.get(f, []) if t.latency is not None]) for f in FAULTS}
    prom_trials = results.get("prometheus", [])
    prom = {f: summary([t.latency for t in prom_trials if t.fault == f and t.latency is not None])
            for f in alert_prometheus.ALERTS}
    print("\n== Alert latency: fault appears → webhook receives the alert ==")
    print(f"machine: {machine_summary(machine)}")
    d = machine["debian_packages"]
    print("versions: " + ", ".join(f"{p} {d[p]}" for p in DEBIAN if d.get(p)))
    print(f"network namespace loopback-only: {'yes' if machine['loopback_only_namespace'] else 'NO'}")
    hold = "30 s (default)" if args.resolve_hold is None else f"{args.resolve_hold:g} s (NOT the default)"
    changed = f"; agent options changed: {', '.join(args.agent_option)}" if args.agent_option else ""
    print(f"zonewatch: server and agents at their defaults (agent interval {default(AgentSection, 'interval'):g} s, "
          f"keepalive {KEEPALIVE} s, printer collector every {default(PrinterOptions, 'every'):g} s, network "
          f"every {default(NetworkOptions, 'every'):g} s; rule hold 0 s; resolve_hold {hold}){changed}")
    if prom_trials:
        print("Prometheus + Alertmanager: scrape_interval 1m, evaluation_interval 1m, for: 0s, group_wait 30s "
              "(defaults); group_by [alertname, trial]; each trial stops the probed HTTP server and kills "
              "node_exporter at the same moment")
    print("p50 / p99 by nearest rank (with 20 trials the p99 is the slowest trial)\n")
    header = (f"{'fault':<28} {'n':>3} {'zonewatch p50 / p99':>20} {'max':>7} {'target (p99)':>13} {'':<6} "
              f"{'n':>3} {'Prometheus+AM p50 / p99':>24}")
    print(header)
    print("-" * len(header))
    figures, verdicts = [], {}
    for fault, (label, _, _, target) in FAULTS.items():
        stats, ref = zw[fault], prom.get(fault)
        if stats is None and not results.get(fault):
            continue
        met = stats is not None and stats["p99"] <= target and all(t.latency is not None for t in results[fault])
        wanted = args.frozen_trials if fault == "frozen" else args.trials
        verdict = "MISSED" if not met else "MET" if len(results[fault]) >= wanted else "PART"  # failed midway
        verdicts[fault] = met
        ref_n = sum(1 for t in prom_trials if t.fault == fault and t.latency is not None)
        compared = "(not compared)" if fault not in prom else fmt(ref) if "prometheus" in results else "(not run)"
        print(f"{label:<28} {stats['n'] if stats else 0:>3} {fmt(stats):>20} "
              f"{(stats['max'] if stats else float('nan')):>6.2f}s {'≤ ' + format(target, 'g') + ' s':>13} "
              f"{verdict:<6} {ref_n if fault in prom and 'prometheus' in results else '':>3} "
              f"{compared:>24}")
        for p in ("p50", "p99"):
            if stats is None:
                continue
            fig = figure(f"alert latency {p}, {label}", stats[p], "s",
                         f"Prometheus + Alertmanager {p} (defaults)" if ref else None, ref[p] if ref else None,
                         None, date, machine)
            if p == "p99":
                fig |= {"target": f"p99 <= {target:g} s", "met": met}
            figures.append(fig)
    bad = {f: [t for t in ts if t.notices != 2 or t.error] for f, ts in results.items() if f != "prometheus"}
    for fault, trials in bad.items():
        for t in trials:
            print(f"note: {fault} trial {t.trial}: {t.notices} notices for the zone (2 expected) {t.error}")
    for t in prom_trials:
        if t.firing_posts != 1 or t.error:
            print(f"note: Prometheus {t.fault} trial {t.trial}: {t.firing_posts} firing posts {t.error}")
    return figures, {"zonewatch": zw, "prometheus": prom, "met": verdicts}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_prerequisites(args)
    machine = machine_info(DEBIAN, PYTHON)
    date = today()
    if not machine["loopback_only_namespace"]:
        print("warning: not in a loopback-only network namespace; everything still targets 127.0.0.1 only.",
              file=sys.stderr)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: every process started here is stopped
    with contextlib.ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="zw-bench-alert-"))
        work.chmod(0o755)  # cupsd's backends run as lp
        if args.keep:
            print(f"keeping {work}")
        else:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        results, extra, errors = run(args, work, stack)
        figures, stats = report(results, machine, args, date)
        if extra["frozen_broker_timeout_s"]:
            print("note: device frozen: mosquitto disconnected the frozen agent (\"exceeded timeout\") "
                  f"{extra['frozen_broker_timeout_s']} s after each freeze (its log, 1-s resolution); keepalive "
                  f"{KEEPALIVE} s → 1.5 × keepalive = {1.5 * KEEPALIVE:g} s after the agent's last packet")
        if extra["startup_notices"]:
            print(f"note: {len(extra['startup_notices'])} notices while the fleet came up (before any fault): "
                  + "; ".join(extra["startup_notices"][:4]))
        if args.json:
            settings = {"seed": args.seed, "jitter_s": JITTER, "prom_jitter_s": alert_prometheus.JITTER,
                        "trials": args.trials, "frozen_trials": args.frozen_trials, "prom_trials": args.prom_trials,
                        "resolve_hold": args.resolve_hold, "agent_keepalive_s": KEEPALIVE}
            trials = {k: [vars(t) for t in v] for k, v in results.items()}
            write_json(args.json, "alert_latency", machine, date, settings, figures,
                       {"summary": stats, "trials": trials, **extra})
            print(f"figures written to {args.json}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
