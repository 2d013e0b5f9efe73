"""Shared by the benchmarks in bench/: machine facts, processes and per-process meters, a Prometheus-like
scraper, figures as JSON.

Every figure a benchmark prints is compared against a reference measured in the same run on the
same machine; ``figure()`` builds the record that ``--json`` writes (name, value, unit, reference,
ratio, target, whether it is met, date, machine).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

import psutil

MB = 1024 * 1024


# -- the machine ---------------------------------------------------------------------------


def debian_version(package: str) -> str | None:
    """Installed version of a Debian package, or None."""
    if shutil.which("dpkg-query") is None:
        return None
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True, check=False
    )
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def python_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def wait(predicate: Callable[[], object], timeout: float, what: str, every: float = 0.05,
         tolerate: tuple[type[BaseException], ...] = ()):
    """``predicate()``'s first truthy value, polled every ``every`` s; a raised ``tolerate`` error counts as not
    yet (a peer still starting); TimeoutError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except tolerate:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def loopback_only() -> bool:
    """Whether this process's network namespace has no interface but lo (``unshare -n``)."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def machine_info(debian_packages: Sequence[str] = (), python_packages: Sequence[str] = ()) -> dict:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "debian_packages": {p: debian_version(p) for p in debian_packages},
        "python_packages": {p: python_version(p) for p in python_packages},
        "loopback_only_namespace": loopback_only(),
    }


def machine_summary(machine: dict) -> str:
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, {machine['os']}, "
        f"kernel {machine['kernel']}, Python {machine['python']}"
    )


def command_line() -> str:
    """The command that started this process, as typed (interpreter and script included)."""
    return " ".join(shlex.quote(a) for a in getattr(sys, "orig_argv", sys.argv))


def today() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- measuring a process -------------------------------------------------------------------


class ProcessMeter:
    """Resident memory samples and CPU seconds of one process (and any children it has).

    CPU is user + system of the process, of its children already reaped (the kernel adds those to
    the parent's children_user / children_system) and of its live descendants, read at
    ``start()`` and ``finish()``; RSS is the process's plus its live descendants', per sample.
    """

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.process = psutil.Process(pid)
        self.rss_samples: list[int] = []
        self._cpu0 = self._cpu1 = 0.0
        self._t0 = self._t1 = 0.0
        self.rss_split: dict[str, int] = {}

    def _tree(self) -> list[psutil.Process]:
        return [self.process, *self.process.children(recursive=True)]

    def cpu_seconds(self) -> float:
        total = 0.0
        for i, proc in enumerate(self._tree()):
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                if i == 0:
                    raise
                continue
            total += t.user + t.system + (t.children_user + t.children_system if i == 0 else 0.0)
        return total

    def rss(self) -> int:
        total = 0
        for i, proc in enumerate(self._tree()):
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                if i == 0:
                    raise
        return total

    def alive(self) -> bool:
        return self.process.is_running() and self.process.status() != psutil.STATUS_ZOMBIE

    def start(self) -> None:
        self._t0, self._cpu0 = time.monotonic(), self.cpu_seconds()

    def sample(self) -> None:
        self.rss_samples.append(self.rss())

    def finish(self) -> None:
        self._t1, self._cpu1 = time.monotonic(), self.cpu_seconds()
        self.rss_split = status_rss(self.process.pid)

    @property
    def window_s(self) -> float:
        return self._t1 - self._t0

    @property
    def cpu_s(self) -> float:
        return self._cpu1 - self._cpu0

    @property
    def cpu_s_per_h(self) -> float:
        return self.cpu_s / self.window_s * 3600

    @property
    def rss_median_mb(self) -> float:
        return statistics.median(self.rss_samples) / MB

    @property
    def rss_max_mb(self) -> float:
        return max(self.rss_samples) / MB


def status_rss(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and its parts (RssAnon, RssFile, RssShmem) in bytes, from /proc/PID/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) * 1024
    return out


# -- processes ------------------------------------------------------------------------


class Daemon:
    """A process started with its output in a log file; stopped with SIGTERM (then SIGKILL)."""

    def __init__(
        self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> None:
        self.name, self.argv, self.log, self.env, self.cwd = name, argv, log, env, cwd or log.parent
        self.proc: subprocess.Popen | None = None

    def start(self) -> Daemon:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.cwd, env=self.env
            )
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not leave in time; reaps it either way."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:] if self.log.exists() else []
        return f"--- last lines of {self.log} ---\n" + "\n".join(text)


def zabbix_free_port() -> int:
    """A free 127.0.0.1 port that zabbix_agent2 accepts (its ListenPort must be 1024-32767)."""
    import random
    import socket

    for port in random.sample(range(20000, 32768), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port in 20000-32767 on 127.0.0.1 for zabbix_agent2")


# -- driving a reference --------------------------------------


class Scraper(threading.Thread):
    """GET /metrics every ``every`` seconds, as a Prometheus server with scrape_interval 15s."""

    def __init__(self, url: str, every: float) -> None:
        super().__init__(name="scraper", daemon=True)
        self.url, self.every = url, every
        self.stop_event = threading.Event()
        self.scrapes: list[tuple[float, int]] = []  # (monotonic, bytes)
        self.errors: list[str] = []

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stop_event.wait(max(0.0, next_at - time.monotonic())):
            next_at += self.every
            try:
                with urllib.request.urlopen(self.url, timeout=10) as response:
                    self.scrapes.append((time.monotonic(), len(response.read())))
            except OSError as exc:
                self.errors.append(str(exc))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(15)


# -- measuring -------------------------------------------------------------------------------


def measure(
    meters: list[ProcessMeter], daemons: dict[str, Daemon], warmup: float, window: float, sample_every: float
) -> tuple[float, float]:
    """Warm up, then sample every meter until the window ends; the window's monotonic bounds.

    Exits (with the last lines of its log) when a measured process dies; ``daemons`` by meter name.
    """

    def check_alive() -> None:
        for meter in meters:
            if not meter.alive():
                sys.exit(f"{meter.name} exited during the run\n{daemons[meter.name].tail()}")

    print(f"warming up for {warmup:.0f} s …", flush=True)
    end = time.monotonic() + warmup
    while time.monotonic() < end:
        check_alive()
        time.sleep(min(1.0, max(0.0, end - time.monotonic())))
    print(f"measuring for {window:.0f} s (RSS every {sample_every:g} s) …", flush=True)
    for meter in meters:
        meter.start()
        meter.sample()
    start = time.monotonic()
    end = start + window
    next_sample = start + sample_every
    while (now := time.monotonic()) < end:
        time.sleep(max(0.0, min(next_sample, end) - now))
        if time.monotonic() >= next_sample:
            check_alive()
            for meter in meters:
                meter.sample()
            next_sample += sample_every
    for meter in meters:
        meter.sample()
        meter.finish()
    return start, time.monotonic()


# -- figures -------------------------------------------------------------------------------


def figure(
    name: str,
    value: float,
    unit: str,
    reference_name: str | None,
    reference_value: float | None,
    max_ratio: float | None,
    date: str,
    machine: dict,
) -> dict:
    """One figure as ``--json`` writes it. ``max_ratio``: the target, value / reference ≤ it."""
    ratio = value / reference_value if reference_value else None
    return {
        "name": name,
        "value": round(value, 3),
        "unit": unit,
        "reference": None if reference_name is None else {"name": reference_name, "value": round(reference_value, 3)},
        "ratio": None if ratio is None else round(ratio, 3),
        "target": None if max_ratio is None else f"ratio <= {max_ratio:g}",
        "met": None if max_ratio is None or ratio is None else ratio <= max_ratio,
        "date": date,
        "machine": machine,
    }


def write_json(
    path: Path, benchmark: str, machine: dict, date: str, settings: dict, figures: list[dict], extra: dict | None = None
) -> None:
    document = {
        "benchmark": benchmark,
        "date": date,
        "command": command_line(),
        "machine": machine,
        "settings": settings,
        "figures": figures,
        **(extra or {}),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
