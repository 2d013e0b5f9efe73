"""The reference for bench/alert_latency.py: Prometheus + Alertmanager (Debian packages) at their
documented default timings, watching a network target through blackbox_exporter and a "device"
through ``up == 0`` of its node_exporter, posting to the same webhook receiver as zonewatch.

Timings left at their defaults (none is set in the generated configs):

- Prometheus 2.42: ``scrape_interval`` 1m, ``scrape_timeout`` 10s, ``evaluation_interval`` 1m;
  alert rules with ``for: 0s`` (written out; it is also the default).
- Alertmanager 0.25: ``group_wait`` 30s, ``group_interval`` 5m, ``repeat_interval`` 4h; the webhook
  receiver's ``send_resolved`` true.
- blackbox_exporter 0.23: module ``http_2xx`` (``prober: http``, as in Debian's blackbox.yml).

Two settings are not timings and are chosen: Alertmanager's route groups by ``[alertname, trial]``
and every trial's rules carry a ``trial`` label (rules reloaded with SIGHUP between trials, while
the targets are healthy), so each trial is a fresh alert group that waits ``group_wait`` — as a new
fault does — rather than one that waits for the 5-minute ``group_interval`` of the last trial's
group. Alertmanager runs without its HA cluster listener (``--cluster.listen-address=``), as a
single instance does.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bench import benchlib
from bench.alert_peers import PortalTarget, TimedReceiver, find_binary
from bench.benchlib import Daemon
from tests.peers._util import free_port, wait_for_port

BINARIES = {
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus-blackbox-exporter": "prometheus-blackbox-exporter",
    "prometheus-node-exporter": "prometheus-node-exporter",
}
ALERTS = {"network": "PortalDown", "vanished": "DeviceDown"}
TRIAL_TIMEOUT = 330.0  # worst case: 60 s to the scrape + 60 s to the evaluation + 30 s group_wait, twice over
#: A fault waits a random 0–JITTER s after the targets were last scraped healthy and the rules reloaded,
#: so it lands at a random point of the scrape and evaluation cycles (else each trial has the same phase).
JITTER = 60.0
#: What one trial takes at most when nothing fails: 60 s to a healthy scrape, the pause, 150 s, restarts.
TRIAL_WORST = 60.0 + JITTER + 160.0


@dataclass
class PromTrial:
    fault: str
    trial: int
    latency: float | None = None
    firing_posts: int = 0  # Alertmanager posts announcing this trial's alert as firing (1 expected)
    error: str = ""


@dataclass
class PrometheusStack:
    work: Path
    receiver: TimedReceiver
    ports: dict[str, int] = field(default_factory=dict)
    daemons: dict[str, Daemon] = field(default_factory=dict)
    portal: PortalTarget | None = None

    # -- configuration ---------------------------------------------------------------------

    def _write_configs(self, trial: int) -> None:
        p = self.ports
        (self.work / "blackbox.yml").write_text("modules:\n  http_2xx:\n    prober: http\n")
        (self.work / "prometheus.yml").write_text(f"""\
# no global section: scrape_interval 1m, scrape_timeout 10s, evaluation_interval 1m (the defaults)
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{p['alertmanager']}"]
rule_files: ["{self.work / 'rules.yml'}"]
scrape_configs:
  - job_name: device
    static_configs:
      - targets: ["127.0.0.1:{p['node_exporter']}"]
  - job_name: portal
    metrics_path: /probe
    params:
      module: [http_2xx]
    static_configs:
      - targets: ["{self.portal.url}"]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: 127.0.0.1:{p['blackbox']}
""")
        self._write_rules(trial)
        (self.work / "alertmanager.yml").write_text(f"""\
# group_wait 30s, group_interval 5m, repeat_interval 4h: the defaults (not set)
route:
  receiver: bench
  group_by: [alertname, trial]
receivers:
  - name: bench
    webhook_configs:
      - url: {self.receiver.url_for("/alertmanager")}
""")

    def _write_rules(self, trial: int) -> None:
        (self.work / "rules.yml").write_text(f"""\
groups:
  - name: bench
    rules:
      - alert: {ALERTS["network"]}
        expr: probe_success{{job="portal"}} == 0
        for: 0s
        labels: {{trial: "{trial}"}}
      - alert: {ALERTS["vanished"]}
        expr: up{{job="device"}} == 0
        for: 0s
        labels: {{trial: "{trial}"}}
""")

    # -- processes -------------------------------------------------------------------------

    def start(self, stack: contextlib.ExitStack) -> PrometheusStack:
        binaries = {name: find_binary(name) for name in BINARIES}
        self.ports = {name: free_port() for name in ("prometheus", "alertmanager", "blackbox", "node_exporter")}
        self.portal = PortalTarget()
        stack.callback(self.portal.stop)
        self.portal.start()
        self._write_configs(0)
        w, p = self.work, self.ports
        listen = {name: f"--web.listen-address=127.0.0.1:{port}" for name, port in p.items()}
        specs = {
            "alertmanager": [binaries["prometheus-alertmanager"], f"--config.file={w / 'alertmanager.yml'}",
                             f"--storage.path={w / 'alertmanager'}", listen["alertmanager"],
                             "--cluster.listen-address="],
            "blackbox": [binaries["prometheus-blackbox-exporter"], f"--config.file={w / 'blackbox.yml'}",
                         listen["blackbox"]],
            "node_exporter": [binaries["prometheus-node-exporter"], listen["node_exporter"]],
            "prometheus": [binaries["prometheus"], f"--config.file={w / 'prometheus.yml'}",
                           f"--storage.tsdb.path={w / 'prometheus'}", listen["prometheus"]],
        }
        for name, argv in specs.items():
            daemon = Daemon(name, argv, w / f"{name}.log")
            self.daemons[name] = daemon
            stack.callback(daemon.stop)
            daemon.start()
            wait_for_port(p[name], 30, name, daemon.proc, daemon.log)
        return self

    def kill_device(self) -> float:
        """SIGKILL node_exporter (the vanished device); the moment it was sent."""
        proc = self.daemons["node_exporter"].proc
        at = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        return at

    def restart_device(self) -> None:
        daemon = self.daemons["node_exporter"].start()
        wait_for_port(self.ports["node_exporter"], 30, "node_exporter", daemon.proc, daemon.log)

    # -- Prometheus' view ------------------------------------------------------------------

    def _api(self, path: str, **query: str) -> dict:
        url = f"http://127.0.0.1:{self.ports['prometheus']}/api/v1/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())["data"]

    def healthy_since(self, since_wall: float) -> bool:
        """Both targets scraped healthy at a time after ``since_wall`` (Unix seconds)."""
        for expr in ('timestamp(up{job="device"} == 1)', 'timestamp(probe_success{job="portal"} == 1)'):
            result = self._api("query", query=expr)["result"]
            if not result or float(result[0]["value"][1]) <= since_wall:
                return False
        return True

    def rules_at(self, trial: int) -> bool:
        groups = self._api("rules")["groups"]
        labels = [r.get("labels", {}).get("trial") for g in groups for r in g["rules"]]
        return len(labels) == 2 and all(t == str(trial) for t in labels)

    def reload_rules(self, trial: int) -> None:
        self._write_rules(trial)
        self.daemons["prometheus"].proc.send_signal(signal.SIGHUP)
        wait(lambda: self.rules_at(trial), 30, f"Prometheus rules reloaded for trial {trial}")

    def firing(self, alert: str, trial: int, from_index: int) -> list[float]:
        """Arrival times of Alertmanager posts since ``from_index`` announcing ``alert`` of ``trial`` firing."""
        out = []
        for arrival in self.receiver.arrivals_since(from_index, "/alertmanager"):
            for a in (arrival.json or {}).get("alerts", []):
                labels = a.get("labels", {})
                wanted = (labels.get("alertname"), labels.get("trial")) == (alert, str(trial))
                if a.get("status") == "firing" and wanted:
                    out.append(arrival.at)
                    break
        return out


def wait(predicate, timeout: float, what: str, every: float = 0.5):
    """benchlib's wait with this module's pace, a peer not answering yet (OSError) counting as not yet."""
    return benchlib.wait(predicate, timeout, what, every, tolerate=(OSError,))


def run_trials(stack: PrometheusStack, trials: int, deadline: float, log, rng: random.Random) -> list[PromTrial]:
    """Each trial: both targets healthy in a scrape → rules relabelled → a random pause → portal stopped and
    node_exporter killed at once → wait for both alerts at the receiver → both restored. No trial starts that
    could end after ``deadline`` (monotonic)."""
    results: list[PromTrial] = []
    restored_wall = time.time()
    for trial in range(1, trials + 1):
        if time.monotonic() + TRIAL_WORST > deadline:
            log(f"prometheus: time budget spent, {trial - 1} trials done")
            break
        wait(partial(stack.healthy_since, restored_wall), 150, "both targets scraped healthy")
        stack.reload_rules(trial)
        time.sleep(rng.uniform(0, JITTER))
        mark = len(stack.receiver.arrivals)
        t0 = time.monotonic()
        stack.portal.stop()
        stack.kill_device()
        got: dict[str, PromTrial] = {f: PromTrial(f, trial) for f in ALERTS}
        end = t0 + TRIAL_TIMEOUT
        while time.monotonic() < end and any(r.latency is None for r in got.values()):
            for fault, alert in ALERTS.items():
                if got[fault].latency is None and (times := stack.firing(alert, trial, mark)):
                    got[fault].latency = times[0] - t0
            time.sleep(0.2)
        for fault, alert in ALERTS.items():
            got[fault].firing_posts = len(stack.firing(alert, trial, mark))
            if got[fault].latency is None:
                got[fault].error = f"no firing {alert} within {TRIAL_TIMEOUT:.0f} s"
        stack.portal.start()
        stack.restart_device()
        restored_wall = time.time()
        results += got.values()
        log(f"prometheus trial {trial}: " + ", ".join(
            f"{f} {r.latency:.1f} s" if r.latency is not None else f"{f} {r.error}" for f, r in got.items()))
    return results
