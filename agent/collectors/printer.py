"""Printer collector: one check per CUPS queue, read through pycups (and IPP printers directly).

Every run reports every queue (or the configured ones): state, accepting jobs, each state reason
as a plain condition, supplies, queued jobs and how long the oldest has waited. What the facts
mean lives in agent/printer_state.py; this module only asks CUPS and printers.

Cheap change notice: the collector holds one CUPS connection and one pull subscription to
CUPS's printer and job events. A run with nothing new costs one Get-Notifications request and
re-evaluates the last facts against the clock (a job waiting past ``stuck_job_after`` becomes a
stuck queue without asking CUPS). CUPS is read in full only when an event arrived, every
``full_every`` seconds, after a reconnect, or on every run when CUPS refuses subscriptions.

CUPS server: ``cups_server`` when set; otherwise libcups' own default (the ``CUPS_SERVER``
environment variable, then client.conf, then the local socket), resolved when the connection is
opened. libcups keeps that default per thread once resolved, so changing ``CUPS_SERVER`` later
needs a new agent process (or a test calling ``cups.setServer("")`` in the collecting thread).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
import time
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

import msgspec
from msgspec import Meta

from agent.printer_state import (
    QueueFacts,
    evaluate,
    missing_check,
    supplies_from_markers,
    supplies_from_printer_supply,
    unreachable_check,
    waiting_jobs,
)
from protocol import AnyCheck, PrinterCheck, PrinterCondition

from . import ipp_query
from .base import Collector, CollectorOptions, Seconds

Percent = Annotated[float, Meta(ge=0, le=100)]

#: Queue attributes read per queue on a full run.
QUEUE_ATTRIBUTES = [
    "printer-state", "printer-state-reasons", "printer-state-message", "printer-is-accepting-jobs",
    "device-uri", "printer-make-and-model", "marker-names", "marker-types", "marker-levels",
    "marker-colors", "marker-low-levels", "marker-high-levels",
]
JOB_ATTRIBUTES = ["job-id", "job-state", "job-state-reasons", "time-at-creation", "job-printer-uri"]
#: Asked of an IPP network printer itself.
PRINTER_ATTRIBUTES = [
    "printer-state", "printer-state-reasons", "printer-supply", "printer-supply-description",
    "marker-names", "marker-types", "marker-levels", "marker-colors", "media-ready",
]
#: CUPS events that mean "read again".
EVENTS = [
    "printer-state-changed", "printer-stopped", "printer-added", "printer-deleted", "printer-modified",
    "printer-config-changed", "job-created", "job-state-changed", "job-stopped", "job-completed",
    "server-started", "server-restarted",
]
LEASE_S = 600  # subscription lease; renewed on full runs well before it ends
IPP_NOT_FOUND = 0x0406


class Options(CollectorOptions, kw_only=True, forbid_unknown_fields=True):
    """``[collectors.printer]``"""

    #: Seconds between runs. A run without CUPS events costs one small request to the local CUPS.
    every: Seconds = 1.0
    #: CUPS server: "host", "host:port" or a socket path. Unset: libcups' default, which honours
    #: the CUPS_SERVER environment variable and client.conf, so no config is needed on a CUPS host.
    cups_server: str | None = None
    #: Queue names to check; empty = every queue on the server.
    printers: list[str] = msgspec.field(default_factory=list)
    #: Queue names never to check (e.g. PDF or fax queues).
    ignore: list[str] = msgspec.field(default_factory=list)
    #: Seconds a job may wait to print before the queue counts as stuck. Jobs held by their owner
    #: (job-hold-until) never count; a job held for a retry of a failing printer does.
    stuck_job_after: Seconds = 300.0
    #: A supply at or below this percent is low. Unset: the printer's own low level
    #: (marker-low-levels) when it reports one, else 10. 0: only empty supplies count.
    supply_low_pct: Percent | None = None
    #: Also ask IPP network printers (device URI ipp:// or ipps://) for their live state reasons,
    #: supplies and loaded media, which CUPS only learns while a job prints.
    ipp: bool = True
    #: Seconds between questions to each IPP printer (≈0.5 ms CPU each): CUPS events cover what
    #: happens while a job prints; this is how soon a change between jobs is noticed.
    ipp_every: Seconds = 10.0
    #: Seconds to wait for an IPP printer's answer.
    ipp_timeout: Seconds = 2.0
    #: Seconds between full reads of CUPS even when no CUPS event arrived.
    full_every: Seconds = 60.0

    def __post_init__(self) -> None:
        if self.cups_server is not None:
            parse_server(self.cups_server)
        both = sorted(set(self.printers) & set(self.ignore))
        if both:
            raise ValueError(f"{both[0]!r} is in both printers and ignore; keep it in one of them")
        if any(not name.strip() or "/" in name for name in self.printers):
            raise ValueError("printers: queue names must be non-empty and contain no '/'")


def parse_server(server: str) -> tuple[str, int]:
    """``'host'``, ``'host:port'``, ``'[::1]:631'`` or ``'/run/cups/cups.sock'`` → (host, port)."""
    server = server.strip()
    if server.startswith("/"):
        return server, 0
    m = re.fullmatch(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+))(?::(?P<port>\d{1,5}))?", server)
    if m is None or (m["port"] and not 0 < int(m["port"]) < 65536):
        raise ValueError(f"cups_server {server!r} is not host, host:port or a socket path")
    return m["v6"] or m["host"], int(m["port"] or 631)


class PrinterCollector(Collector):
    name = "printer"
    Options = Options
    options: Options

    #: Seconds connecting-to-device may last before it is a warning (tests shorten it).
    connecting_grace: float | None = None

    def __init__(self, options: CollectorOptions, context) -> None:
        super().__init__(options, context)
        self._lock = threading.Lock()
        self._conn: Any = None
        self._server = options.cups_server or _default_server()
        self._sub: int | None = None
        self._seq = 0
        self._renewed = 0.0
        self._refused_at = float("-inf")
        #: checks to hand out again while nothing changed and nothing depends on the clock
        self._reuse: list[AnyCheck] | None = None
        self._reuse_until = float("-inf")
        self._last_full = float("-inf")
        self._queues: dict[str, QueueFacts] = {}  # name -> what CUPS said at the last full run
        self._jobs: dict[str, list[dict]] = {}
        self._missing: list[str] = []
        self._known: list[str] = []  # queue names from the last successful listing
        self._first_seen: dict[tuple[str, str], float] = {}
        self._ipp: dict[str, tuple[float, dict | None, str | None]] = {}
        self._media_seen: set[str] = set()
        #: counters for benchmarks and tests
        self.stats = {"runs": 0, "full": 0, "polls": 0, "ipp": 0, "connects": 0}

    # -- collector interface ------------------------------------------------------------------

    def collect(self) -> list[AnyCheck]:
        if not self._lock.acquire(blocking=False):
            return self.failed(f"the previous run is still waiting for CUPS at {self._server}")
        try:
            self.stats["runs"] += 1
            try:
                self._refresh()
            except Exception as exc:  # CUPS down, refusing, or the connection broke
                if not _is_cups_error(exc):
                    raise
                self._disconnect()
                return self._unreachable(_describe(exc))
            return self._checks(time.time())
        finally:
            self._lock.release()

    def failed(self, error: str) -> list[AnyCheck]:
        return [PrinterCheck(name=c.name, printer=c.printer, status="unknown", summary=error[:1024],
                             error=error[:1024]) for c in self._unreachable(error)]

    def close(self) -> None:
        if not self._lock.acquire(timeout=1):  # a run hangs on CUPS: just let go of the connection
            self._disconnect()
            return
        try:
            if self._conn is not None and self._sub is not None:
                with contextlib.suppress(Exception):  # best effort: the lease ends it anyway
                    self._conn.cancelSubscription(self._sub)
            self._disconnect()
        finally:
            self._lock.release()

    # -- talking to CUPS ------------------------------------------------------------------------

    def _connect(self):
        import cups

        if self.options.cups_server:
            host, port = parse_server(self.options.cups_server)
            conn = cups.Connection(host=host, port=port) if port else cups.Connection(host=host)
        else:  # libcups' default, resolved in this thread (CUPS_SERVER, client.conf, socket)
            host, port = cups.getServer(), cups.getPort()
            conn = cups.Connection(host=host, port=port)
        self._server = host if host.startswith("/") else f"{host}:{port}"
        self.stats["connects"] += 1
        self._conn, self._sub = conn, None
        self._last_full = float("-inf")
        return conn

    def _disconnect(self) -> None:
        self._conn, self._sub, self._reuse = None, None, None

    def _refresh(self) -> None:
        conn = self._conn or self._connect()
        now = time.monotonic()
        if self._sub is None and now - self._refused_at >= self.options.full_every:
            self._subscribe(conn, now)
        if self._sub is None or now - self._last_full >= self.options.full_every or self._changed(conn):
            self._read_all(conn)
            self._last_full = now
            if self._sub is not None and now - self._renewed > LEASE_S / 3:
                self._renew(conn, now)

    def _subscribe(self, conn, now: float) -> None:
        import cups

        try:
            self._sub = conn.createSubscription("ipp://localhost/", events=EVENTS, lease_duration=LEASE_S)
            self._seq, self._renewed = 0, now
        except cups.IPPError as exc:
            if exc.args and exc.args[0] == 0x0502:  # service unavailable: CUPS is down
                raise
            self._sub, self._refused_at = None, now  # refused by policy: a full read every run

    def _renew(self, conn, now: float) -> None:
        import cups

        try:
            conn.renewSubscription(self._sub, lease_duration=LEASE_S)
            self._renewed = now
        except cups.IPPError:
            self._sub = None

    def _changed(self, conn) -> bool:
        """True when CUPS reported an event since the last poll (or lost the subscription)."""
        import cups

        self.stats["polls"] += 1
        try:
            reply = conn.getNotifications([self._sub], sequence_numbers=[self._seq + 1])
        except cups.IPPError as exc:
            if exc.args and exc.args[0] == IPP_NOT_FOUND:  # lease ended or CUPS forgot it
                self._sub = None
                return True
            raise
        events = reply.get("events") or []
        if events:
            self._seq = max(self._seq, *(int(e.get("notify-sequence-number", 0)) for e in events))
        # (Not printer-up-time: in a Get-Notifications reply CUPS sends its current time there.
        # A restart shows as server-started / printer events, a broken connection, or a lost
        # subscription; the full read every full_every seconds catches the rest.)
        return bool(events)

    def _read_all(self, conn) -> None:
        import cups

        self.stats["full"] += 1
        opts = self.options
        if opts.printers:
            names = [n for n in opts.printers if n not in opts.ignore]
        else:
            names = sorted(n for n in conn.getPrinters() if n not in opts.ignore)
        queues, missing = {}, []
        for name in names:
            try:
                queues[name] = self._facts(name, conn.getPrinterAttributes(name, requested_attributes=QUEUE_ATTRIBUTES))
            except cups.IPPError as exc:
                if not (exc.args and exc.args[0] == IPP_NOT_FOUND):
                    raise
                if opts.printers:  # a configured queue that is not there; a listed one just left
                    missing.append(name)
        jobs: dict[str, list[dict]] = {}
        for job in conn.getJobs(which_jobs="not-completed", requested_attributes=JOB_ATTRIBUTES).values():
            queue = unquote(str(job.get("job-printer-uri", "")).rstrip("/").rsplit("/", 1)[-1])
            jobs.setdefault(queue, []).append(job)
        self._queues, self._jobs, self._missing = queues, jobs, missing
        self._reuse = None
        self._known = [*queues, *missing]

    # -- asking an IPP printer directly ---------------------------------------------------------

    def _ask_printer(self, name: str, device_uri: str) -> tuple[dict | None, str | None]:
        """The printer's own attributes (or why not), asked at most every ``ipp_every`` seconds."""
        now = time.monotonic()
        cached = self._ipp.get(name)
        if cached is not None and now - cached[0] < self.options.ipp_every:
            return cached[1], cached[2]
        self.stats["ipp"] += 1
        try:
            attrs, error = ipp_query.get_printer_attributes(device_uri, PRINTER_ATTRIBUTES,
                                                            self.options.ipp_timeout), None
        except OSError as exc:
            attrs, error = None, f"not answering ({exc.strerror or type(exc).__name__})"
        except ipp_query.IppError as exc:
            attrs, error = None, f"answered with an error ({exc})"
        except ValueError:
            attrs, error = None, None
        self._ipp[name] = (now, attrs, error)
        return attrs, error

    def _merge_printer(self, facts: QueueFacts, device_uri: str) -> None:
        attrs, error = self._ask_printer(facts.name, device_uri)
        if error is not None:
            where = urlsplit(device_uri).hostname or "?"
            offline = error.startswith("not answering")
            facts.extra.append(PrinterCondition(
                code="offline" if offline else "other", severity="critical" if offline else "warning",
                text=f"printer at {where} is {error}"[:1024] if offline else f"printer at {where} {error}"[:1024]))
        if attrs is None:
            return
        facts.source = "cups+ipp"
        facts.reasons += [r for r in attrs.get("printer-state-reasons", []) if r not in facts.reasons]
        supplies = supplies_from_printer_supply(attrs.get("printer-supply", []),
                                                attrs.get("printer-supply-description", []),
                                                self.options.supply_low_pct)
        if not supplies and attrs.get("marker-levels"):
            supplies = supplies_from_markers(attrs, self.options.supply_low_pct)
        if supplies:  # the printer's live levels; CUPS's change only while a job prints
            facts.supplies = supplies
        if "media-ready" in attrs:
            self._media_seen.add(facts.name)
            facts.media_ready = [str(m)[:1024] for m in attrs["media-ready"]]
        elif facts.name in self._media_seen:  # reported media before, none loaded now
            facts.media_ready = []

    # -- turning facts into checks --------------------------------------------------------------

    def _checks(self, now: float) -> list[AnyCheck]:
        mono = time.monotonic()
        if self._reuse is not None and mono < self._reuse_until:  # nothing new, nothing time-bound
            return [msgspec.structs.replace(check) for check in self._reuse]
        seen: dict[tuple[str, str], float] = {}
        checks: list[AnyCheck] = []
        timeless = True  # no waiting job ages, no reason on a grace period, no IPP printer to ask
        for name, base in self._queues.items():
            timeless = timeless and not self._jobs.get(name) and "connecting-to-device" not in base.reasons
            queued, oldest = waiting_jobs(self._jobs.get(name, []), now)
            facts = dataclasses.replace(base, reasons=list(base.reasons), reason_ages={}, extra=[],
                                        jobs_queued=queued, oldest_job_age_s=oldest)
            if self.options.ipp and (base.uri or "").lower().startswith(("ipp://", "ipps://")):
                self._merge_printer(facts, base.uri or "")
            for reason in facts.reasons:
                key = (name, reason)
                seen[key] = self._first_seen.get(key, mono)
                facts.reason_ages[reason] = mono - seen[key]
            checks.append(evaluate(facts, self.options.stuck_job_after, self.connecting_grace))
        self._first_seen = seen
        checks += [missing_check(name, self._server) for name in self._missing]
        ipp_due = [when + self.options.ipp_every for when, _, _ in self._ipp.values()]
        self._reuse_until = min(ipp_due, default=float("inf")) if timeless else float("-inf")
        self._reuse = checks if timeless else None
        return [msgspec.structs.replace(check) for check in checks] if timeless else checks

    def _facts(self, name: str, attrs: dict) -> QueueFacts:
        """What CUPS said about one queue (jobs and the printer's own answers are added per run)."""
        reasons = attrs.get("printer-state-reasons") or []
        return QueueFacts(
            name=name, state=attrs.get("printer-state"), accepting=attrs.get("printer-is-accepting-jobs"),
            reasons=[str(r) for r in ([reasons] if isinstance(reasons, str) else reasons)],
            message=str(attrs.get("printer-state-message") or ""),
            supplies=supplies_from_markers(attrs, self.options.supply_low_pct),
            make_model=attrs.get("printer-make-and-model") or None, uri=str(attrs.get("device-uri") or "") or None)

    def _unreachable(self, error: str) -> list[PrinterCheck]:
        names = [n for n in self.options.printers if n not in self.options.ignore] or self._known
        if not names:  # never listed the queues: one check for the server itself
            names = [self._server]
        return [unreachable_check(name, self._server, error) for name in names]


def _default_server() -> str:
    """libcups' default server as ``host:port`` (or the socket path), for naming it."""
    import cups

    host = cups.getServer()
    return host if host.startswith("/") else f"{host}:{cups.getPort()}"


def _is_cups_error(exc: Exception) -> bool:
    import cups

    return isinstance(exc, (cups.IPPError, cups.HTTPError, RuntimeError, OSError))


def _describe(exc: Exception) -> str:
    import cups

    if isinstance(exc, cups.IPPError) and len(exc.args) == 2:
        return f"{exc.args[1]}, IPP status 0x{exc.args[0]:04x}"
    if isinstance(exc, cups.HTTPError) and exc.args:
        return f"HTTP error {exc.args[0]}"
    return str(exc) or type(exc).__name__
