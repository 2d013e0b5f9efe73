"""kiosk — the kiosk front-end process (browser in kiosk mode, query application) is running.

Options (``[collectors.kiosk]``) are documented on :class:`KioskOptions`. With no ``process``
configured (a desktop PC without a kiosk front end) the collector reports nothing.
"""

from __future__ import annotations

import time

import psutil

from protocol import KioskCheck

from .base import Collector, CollectorOptions, Seconds


class KioskOptions(CollectorOptions, kw_only=True, forbid_unknown_fields=True):
    #: Seconds between runs (a running kiosk costs one process lookup per run).
    every: Seconds = 2.0
    #: Process name of the kiosk front end (as `ps -e` shows it), e.g. "chromium". Unset: no check.
    process: str | None = None
    #: Also require this text in the command line (e.g. "--kiosk"), to tell the kiosk from other instances.
    cmdline_contains: str | None = None
    #: Seconds the front end must have run before it counts as up (a crash loop looks "running").
    min_uptime: float = 0.0


class KioskCollector(Collector):
    name = "kiosk"
    Options = KioskOptions

    def __init__(self, options: KioskOptions, context) -> None:
        super().__init__(options, context)
        self._proc: psutil.Process | None = None  # cached, so a healthy kiosk costs one stat per run

    def collect(self) -> list[KioskCheck]:
        o: KioskOptions = self.options
        if not o.process:
            return []
        proc = self._find()
        if proc is None:
            return [KioskCheck(name="kiosk", status="critical", process=o.process, running=False,
                               summary=f"kiosk front end {o.process!r} is not running")]
        running_for = max(0.0, time.time() - proc.create_time())
        if running_for < o.min_uptime:
            return [KioskCheck(name="kiosk", status="warning", process=o.process, running=True, pid=proc.pid,
                               running_for_s=running_for,
                               summary=f"{o.process} restarted {running_for:.0f} s ago")]
        return [KioskCheck(name="kiosk", status="ok", process=o.process, running=True, pid=proc.pid,
                           running_for_s=running_for, summary=f"{o.process} running for {_ago(running_for)}")]

    def _find(self) -> psutil.Process | None:
        if self._proc is not None and self._proc.is_running() and self._proc.status() != psutil.STATUS_ZOMBIE:
            return self._proc
        self._proc = None
        o: KioskOptions = self.options
        for proc in psutil.process_iter(["name", "cmdline"]):
            if proc.info["name"] != o.process:
                continue
            if o.cmdline_contains and o.cmdline_contains not in " ".join(proc.info["cmdline"] or []):
                continue
            self._proc = proc
            return proc
        return None

    def failed(self, error: str) -> list[KioskCheck]:
        return [KioskCheck(name="kiosk", status="unknown", process=self.options.process or "?", running=False,
                           summary=error, error=error)]


def _ago(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.0f} d"
    return f"{seconds / 3600:.0f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"
