"""network — can this kiosk reach what it must: the gateway, the government portal, DNS, services.

Each configured target has its own probe: ``icmp`` (ping), ``tcp`` (connect to a port), ``http``
(GET a URL, expect a status) or ``dns`` (resolve a name, with the system resolver or a given one).
With ``auto_gateway`` the default gateway is read from /proc/net/route and pinged as the target
``gateway``. Every run probes all targets side by side and reports one check per target,
``network:<name>``: up/down, latency, packet loss, HTTP status, and a status — down is
critical; otherwise latency and loss against the target's thresholds.

    [collectors.network]
    every = 5
    auto_gateway = true

    [[collectors.network.targets]]
    name = "portal"
    probe = "http"
    url = "https://zwgk.example.gov.cn/"
    expect_status = [200]
    latency_warning_ms = 1000
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import re
import threading
import time
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from protocol import NetworkCheck, worst

from . import network_probes as probes
from .base import AgentContext, Collector, CollectorOptions, Seconds

#: Where the kernel lists IPv4 routes (auto_gateway reads the default route from it).
ROUTE_TABLE = Path("/proc/net/route")
#: Seconds a run waits beyond the slowest target's timeout before calling it down.
GRACE = 0.25

Port = Annotated[int, Meta(ge=1, le=65535)]
ProbeSeconds = Annotated[float, Meta(gt=0, le=300)]
Millis = Annotated[float, Meta(gt=0)]
LossPercent = Annotated[float, Meta(gt=0, le=100)]
TargetName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
HttpStatus = Annotated[int, Meta(ge=100, le=999)]


class ProbeSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How one target is probed and judged (also ``[collectors.network.gateway]``)."""

    #: Seconds one probe may take; no answer by then means down. Must be below the collector's
    #: ``timeout`` (the whole run's limit).
    timeout: ProbeSeconds = 3.0
    #: Latency in ms at which the check turns warning. icmp: average round trip; tcp: connect
    #: time; http: time to the response headers; dns: resolution time.
    latency_warning_ms: Millis = 500.0
    #: Latency in ms at which the check turns critical (the target is still reported up).
    latency_critical_ms: Millis = 2000.0
    #: icmp: packet loss in percent at which the check turns warning.
    loss_warning_pct: LossPercent = 20.0
    #: icmp: packet loss in percent at which the check turns critical (all lost = down, critical).
    loss_critical_pct: LossPercent = 60.0
    #: icmp: echo requests per run; loss is measured over them.
    count: Annotated[int, Meta(ge=1, le=20)] = 3
    #: icmp: TCP port to connect to where this system permits no ICMP at all; a refused
    #: connection still proves the host is up.
    fallback_port: Port = 80


class Target(ProbeSettings, kw_only=True, forbid_unknown_fields=True):
    """One thing to reach, ``[[collectors.network.targets]]``."""

    #: Names the check in reports: ``network:<name>``. Letters, digits, ``_ . -``; unique.
    name: TargetName
    #: icmp (ping a host), tcp (connect to host:port), http (GET url), dns (resolve query).
    probe: Literal["icmp", "tcp", "http", "dns"]
    #: icmp, tcp: host name or IP address.
    host: str | None = None
    #: tcp: port to connect to; a refused connection means down.
    port: Port | None = None
    #: http: the http:// or https:// URL to GET (e.g. the local government portal).
    url: str | None = None
    #: http: status codes that count as up.
    expect_status: list[HttpStatus] = msgspec.field(default_factory=lambda: [200])
    #: http: follow up to 5 redirects and judge the last response; off: a redirect is the answer.
    follow_redirects: bool = False
    #: http: verify the server's TLS certificate and host name. Turn off only for a test portal.
    verify_tls: bool = True
    #: http: CA bundle (PEM) that signed the portal's certificate; system CAs when unset.
    ca_file: str | None = None
    #: Seconds between probes of this target; unset: every run (the collector's ``every``). A fault
    #: is noticed within this time, so keep one cheap target (the gateway, a tcp port) at the
    #: collector's pace and slow down costly ones: an http target probed every second by every
    #: kiosk is one GET per kiosk per second on the portal.
    every: Seconds | None = None
    #: dns: the name to resolve.
    query: str | None = None
    #: dns: DNS server to ask, "address" or "address:port" ("[v6]:port"); unset: the system
    #: resolver (getaddrinfo: /etc/hosts, nsswitch, resolv.conf).
    resolver: str | None = None
    #: dns: addresses the name should resolve to; down unless at least one of them is among the answers.
    expect: list[str] | None = None


#: Which probes each probe-specific key applies to; setting it on another probe is an error.
APPLIES_TO: dict[str, frozenset[str]] = {
    "host": frozenset({"icmp", "tcp"}), "port": frozenset({"tcp"}), "url": frozenset({"http"}),
    "expect_status": frozenset({"http"}), "follow_redirects": frozenset({"http"}),
    "verify_tls": frozenset({"http"}), "ca_file": frozenset({"http"}), "query": frozenset({"dns"}),
    "resolver": frozenset({"dns"}), "expect": frozenset({"dns"}), "count": frozenset({"icmp"}),
    "fallback_port": frozenset({"icmp"}), "loss_warning_pct": frozenset({"icmp"}),
    "loss_critical_pct": frozenset({"icmp"}),
}
REQUIRED: dict[str, tuple[str, ...]] = {"icmp": ("host",), "tcp": ("host", "port"), "http": ("url",), "dns": ("query",)}
_HOST = re.compile(r"^[^\s/:@\[\]]{1,253}$")


class NetworkOptions(CollectorOptions, kw_only=True, forbid_unknown_fields=True):
    """``[collectors.network]``: the targets this device must reach."""

    #: Seconds between runs. With the server's defaults a target going down is paged within about
    #: ``every`` + 1 s; raise it (or a target's own ``every``) where the probes' load matters more.
    every: Seconds = 1.0
    #: What to reach, one ``[[collectors.network.targets]]`` table each.
    targets: Annotated[list[Target], Meta(max_length=64)] = msgspec.field(default_factory=list)
    #: Find the default gateway in /proc/net/route and ping it as the target "gateway".
    #: Provisioning turns it on for real kiosks; example and demo configs keep it off.
    auto_gateway: bool = False
    #: How the gateway is pinged: the icmp keys of a target (timeout, count, thresholds, fallback_port).
    gateway: ProbeSettings = msgspec.field(default_factory=ProbeSettings)

    def __post_init__(self) -> None:
        if self.auto_gateway:
            _check_settings(self.gateway, "gateway", self.timeout)
        seen: set[str] = set()
        for i, target in enumerate(self.targets):
            where = f"targets[{i}] {target.name!r}"
            if target.name in seen:
                raise ValueError(f"{where}: another target has this name; each needs its own")
            if target.name == "gateway" and self.auto_gateway:
                raise ValueError(f"{where}: the name 'gateway' is taken by auto_gateway; choose another")
            seen.add(target.name)
            _check_target(target, where, self.timeout)


def _check_settings(s: ProbeSettings, where: str, run_timeout: float) -> None:
    if s.timeout >= run_timeout:
        raise ValueError(f"{where}: timeout {s.timeout:g} s must be below the collector's timeout "
                         f"({run_timeout:g} s), or the run is cut off before the answer")
    for kind, unit in (("latency", "ms"), ("loss", "pct")):
        warning, critical = getattr(s, f"{kind}_warning_{unit}"), getattr(s, f"{kind}_critical_{unit}")
        if warning > critical:
            raise ValueError(f"{where}: {kind}_warning_{unit} ({warning:g}) must not be above "
                             f"{kind}_critical_{unit} ({critical:g})")


def _check_target(t: Target, where: str, run_timeout: float) -> None:
    for key in REQUIRED[t.probe]:
        if getattr(t, key) is None:
            raise ValueError(f"{where}: probe {t.probe} needs {key}")
    for f in msgspec.structs.fields(Target):
        probes_ok = APPLIES_TO.get(f.name)
        if probes_ok and t.probe not in probes_ok and getattr(t, f.name) != _default(f):
            raise ValueError(f"{where}: {f.name} applies only to probe {' or '.join(sorted(probes_ok))}, "
                             f"not {t.probe}")
    _check_settings(t, where, run_timeout)
    if t.host is not None and not _valid_host(t.host):
        raise ValueError(f"{where}: host {t.host!r} is not a host name or IP address"
                         + (" (for a web address use probe http with url)" if "/" in t.host else ""))
    if t.url is not None:
        parts = urlsplit(t.url)
        if parts.scheme not in ("http", "https") or not parts.hostname or len(t.url) > 1000 or " " in t.url:
            raise ValueError(f"{where}: url {t.url!r} is not an http:// or https:// URL with a host")
        try:
            parts.port  # noqa: B018 - raises for a bad port
        except ValueError:
            raise ValueError(f"{where}: url {t.url!r} has an invalid port") from None
    if t.ca_file is not None and not t.verify_tls:
        raise ValueError(f"{where}: ca_file is set but verify_tls is off; drop one of them")
    if t.query is not None and not _valid_host(t.query.rstrip(".")):
        raise ValueError(f"{where}: query {t.query!r} is not a DNS name")
    if t.resolver is not None:
        try:
            probes.parse_resolver(t.resolver)
        except ValueError:
            raise ValueError(f"{where}: resolver {t.resolver!r} is not an IP address with an optional port "
                             "(e.g. 192.168.1.1 or 192.168.1.1:53)") from None
    for address in t.expect or ():
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"{where}: expect {address!r} is not an IP address") from None
    if not t.expect_status:
        raise ValueError(f"{where}: expect_status needs at least one status code")


def _default(f: msgspec.structs.FieldInfo):
    return f.default_factory() if f.default_factory is not msgspec.NODEFAULT else f.default


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOST.match(host))


class NetworkCollector(Collector):
    name = "network"
    Options = NetworkOptions

    def __init__(self, options: NetworkOptions, context: AgentContext) -> None:
        super().__init__(options, context)
        self.options: NetworkOptions = options
        self.pinger = probes.Pinger()
        workers = len(options.targets) + (1 if options.auto_gateway else 0)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(workers, 1),
                                                           thread_name_prefix="network-probe")
        #: target name -> its probe still running or last finished (one in flight per target)
        self._running: dict[str, concurrent.futures.Future] = {}
        #: target name -> monotonic time its last probe started (for targets with their own ``every``)
        self._probed_at: dict[str, float] = {}
        self._resolvers: dict[str, object] = {}
        self._tls: dict[str, object] = {}
        self._lock = threading.Lock()

    # -- the run ---------------------------------------------------------------------------
    def collect(self) -> list[NetworkCheck]:
        plan = list(self.options.targets)
        checks: list[NetworkCheck] = []
        if self.options.auto_gateway:
            gateway = self._gateway_target()
            if gateway is None:
                checks.append(NetworkCheck(
                    name="network:gateway", status="critical", probe="icmp", target="default gateway",
                    up=False, gateway=True, summary=f"no default gateway: {ROUTE_TABLE} has no default route"))
            else:
                plan.append(gateway)
        started = time.monotonic()
        busy: set[str] = set()
        probing = []
        for target in plan:
            previous = self._running.get(target.name)
            if previous is not None and not previous.done():
                busy.add(target.name)  # a probe that outlived its run: do not pile up threads
                probing.append(target)
                continue
            if previous is not None and target.every is not None \
                    and started - self._probed_at.get(target.name, -target.every) < target.every:
                continue  # not due: its last result stands
            self._probed_at[target.name] = started
            self._running[target.name] = self._pool.submit(self._probe, target)
            probing.append(target)
        if probing:
            budget = min(max(t.timeout for t in probing) + GRACE, self.options.timeout * 0.95)
            concurrent.futures.wait([self._running[t.name] for t in probing], timeout=budget)
        waited_ms = (time.monotonic() - started) * 1000
        checks[:0] = [self._check(t, busy, waited_ms) for t in plan]
        return checks

    def _check(self, target: Target, busy: set[str], waited_ms: float) -> NetworkCheck:
        future = self._running[target.name]
        base = dict(name=f"network:{target.name}", probe=target.probe, target=_clip(_describe(target)),
                    gateway=self.options.auto_gateway and target.name == "gateway")
        if not future.done():
            still = " (its previous probe is still running)" if target.name in busy else ""
            what = "did not resolve" if target.probe == "dns" else "did not answer"
            return NetworkCheck(**base, status="critical", up=False, duration_ms=round(waited_ms, 3),
                                summary=_clip(f"{_label(target)} {what} within {target.timeout:g} s{still}"))
        try:
            result, duration_ms = future.result()
        except Exception as exc:  # the probe's own fault, not the target's
            error = _clip(f"{target.probe} probe failed: {type(exc).__name__}: {exc}")
            return NetworkCheck(**base, status="unknown", summary=error, error=error)
        status, summary = grade(target, result)
        return NetworkCheck(
            **base, status=status, summary=_clip(summary), up=result.up, duration_ms=round(duration_ms, 3),
            latency_ms=_round(result.latency_ms), loss_pct=_round(result.loss_pct), http_status=result.http_status)

    def _probe(self, t: Target) -> tuple[probes.Result, float]:
        started = time.perf_counter()
        if t.probe == "icmp":
            result = probes.probe_icmp(t.name, t.host, t.count, t.timeout, t.fallback_port, self.pinger)
        elif t.probe == "tcp":
            result = probes.probe_tcp(t.name, t.host, t.port, t.timeout)
        elif t.probe == "http":
            result = probes.probe_http(t.name, t.url, t.expect_status, t.timeout, t.follow_redirects,
                                       lambda: self._tls_context(t))
        else:
            resolver = self._resolver(t) if t.resolver else None
            result = probes.probe_dns(t.query, t.expect, t.timeout, resolver)
        return result, (time.perf_counter() - started) * 1000

    def _tls_context(self, t: Target):
        with self._lock:
            if t.name not in self._tls:  # loading the CA store costs; do it once per target
                self._tls[t.name] = probes.tls_context(t.ca_file, t.verify_tls)
            return self._tls[t.name]

    def _resolver(self, t: Target):
        with self._lock:
            if t.name not in self._resolvers:
                self._resolvers[t.name] = probes.make_resolver(t.resolver, t.timeout)
            return self._resolvers[t.name]

    def _gateway_target(self) -> Target | None:
        try:
            address = probes.default_gateway(ROUTE_TABLE.read_text())
        except OSError:
            address = None
        if address is None:
            return None
        return Target(name="gateway", probe="icmp", host=address, **msgspec.structs.asdict(self.options.gateway))

    # -- failure and shutdown ----------------------------------------------------------------
    def failed(self, error: str) -> list[NetworkCheck]:
        error = _clip(error)
        checks = [NetworkCheck(name=f"network:{t.name}", status="unknown", summary=error, error=error,
                               probe=t.probe, target=_clip(_describe(t))) for t in self.options.targets]
        if self.options.auto_gateway:
            checks.append(NetworkCheck(name="network:gateway", status="unknown", summary=error, error=error,
                                       probe="icmp", target="default gateway", gateway=True))
        return checks

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def grade(t: ProbeSettings, result: probes.Result) -> tuple[str, str]:
    """Status and summary of one result: down is critical; else latency and loss against thresholds."""
    if not result.up:
        return "critical", result.summary
    status, notes = "ok", []
    for kind, value, unit, fmt in (("latency", result.latency_ms, "ms", probes.fmt_ms),
                                   ("loss", result.loss_pct, "pct", lambda v: f"{v:g}%")):
        if value is None:
            continue
        for level in ("critical", "warning"):
            threshold = getattr(t, f"{kind}_{level}_{unit}")
            if value >= threshold:
                status = worst((status, level))
                notes.append(f"{kind} reached the {fmt(threshold)} {level} threshold")
                break
    return status, "; ".join([result.summary, *notes])


def _label(t: Target) -> str:
    return t.query if t.probe == "dns" else t.name


def _describe(t: Target) -> str:
    """What the check's ``target`` field shows: host, host:port, URL, or name @resolver."""
    if t.probe == "tcp":
        return f"[{t.host}]:{t.port}" if ":" in (t.host or "") else f"{t.host}:{t.port}"
    if t.probe == "http":
        return t.url or ""
    if t.probe == "dns":
        return f"{t.query} @{t.resolver}" if t.resolver else f"{t.query}"
    return t.host or ""


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _clip(text: str, limit: int = 1024) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
