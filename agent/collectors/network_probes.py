"""The probes behind the network collector: ping, TCP connect, HTTP GET, DNS lookup, default gateway.

Each probe gets what to probe and a time budget, and returns a :class:`Result`: whether the
target answered as it should, how fast, and one line saying what happened. A network outcome
(refused, timed out, NXDOMAIN, 503) is a result, never an exception; an exception raised here
is a fault of the probe itself (a bad CA file, a bug) and becomes an ``unknown`` check.

icmplib, http.client/ssl and dnspython are imported on first use, so an agent without such
targets never loads them (resident memory matters on a kiosk).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass

#: Pause between echo requests of one ping run (shrunk when the timeout is shorter).
PING_INTERVAL = 0.2
#: Redirects followed at most when a target has ``follow_redirects``.
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "zonewatch-agent (network check)"
#: Route flags in /proc/net/route.
RTF_UP, RTF_GATEWAY = 0x1, 0x2


@dataclass
class Result:
    """What one probe found. ``up``: the target answered as the probe requires."""

    up: bool
    summary: str
    latency_ms: float | None = None
    loss_pct: float | None = None
    http_status: int | None = None


def fmt_ms(ms: float) -> str:
    """0.12 ms, 0.9 ms, 38 ms, 1.6 s."""
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


# -- default gateway ------------------------------------------------------------------------

def default_gateway(route_table: str) -> str | None:
    """The IPv4 default gateway in the text of /proc/net/route (lowest metric), or None."""
    best: tuple[int, str] | None = None
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination, gateway, flags = int(fields[1], 16), int(fields[2], 16), int(fields[3], 16)
            metric, mask = int(fields[6]), int(fields[7], 16)
        except ValueError:
            continue
        if destination or mask or not flags & RTF_UP or not flags & RTF_GATEWAY or not gateway:
            continue
        # The kernel prints the address as a native-endian 32-bit number.
        address = socket.inet_ntoa(struct.pack("=I", gateway))
        if best is None or metric < best[0]:
            best = (metric, address)
    return best[1] if best else None


# -- ICMP ping ------------------------------------------------------------------------------

class IcmpNotPermitted(Exception):
    """This process may open neither an ICMP datagram (ping) socket nor a raw socket."""


class Pinger:
    """Sends echo requests the least privileged way this system allows.

    First an unprivileged ICMP datagram socket (Linux: the process's group must be within
    ``net.ipv4.ping_group_range`` — that holds for root too), then a raw socket (needs root or
    CAP_NET_RAW). The way that worked is remembered.
    """

    MODES = ("unprivileged", "privileged")

    def __init__(self) -> None:
        self.mode: str | None = None
        self._lock = threading.Lock()

    def _open(self, ipv6: bool):
        import icmplib

        cls = icmplib.ICMPv6Socket if ipv6 else icmplib.ICMPv4Socket
        with self._lock:
            modes = (self.mode, *(m for m in self.MODES if m != self.mode)) if self.mode else self.MODES
        for mode in modes:
            try:
                sock = cls(privileged=mode == "privileged")
            except icmplib.SocketPermissionError:
                continue
            with self._lock:
                self.mode = mode
            return sock
        with self._lock:
            self.mode = None  # permissions may change (sysctl); try all ways next time
        raise IcmpNotPermitted

    def ping(self, address: str, count: int, timeout: float) -> tuple[int, list[float], str | None]:
        """Send ``count`` echo requests within ``timeout`` s: (sent, round trips in ms, last error)."""
        import icmplib

        deadline = time.monotonic() + timeout
        interval = min(PING_INTERVAL, timeout / (count * 4))
        sent, rtts, error = 0, [], None
        with self._open(ipaddress.ip_address(address).version == 6) as sock:
            ident = icmplib.utils.unique_identifier()
            for sequence in range(count):
                if sequence:
                    time.sleep(interval)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                wait = max((left - interval * (count - sequence - 1)) / (count - sequence), min(left, 0.05))
                request = icmplib.ICMPRequest(destination=address, id=ident, sequence=sequence)
                try:
                    sock.send(request)
                except icmplib.ICMPLibError as exc:
                    error = re.sub(r"^\[Errno \d+\] ", "", str(exc))
                    continue
                sent += 1
                try:
                    reply = sock.receive(request, wait)
                    reply.raise_for_status()
                except icmplib.TimeoutExceeded:
                    continue
                except icmplib.ICMPError as exc:  # destination unreachable, time exceeded
                    error = str(exc)
                    continue
                rtts.append((reply.time - request.time) * 1000)
        return sent, rtts, error


def probe_icmp(name: str, host: str, count: int, timeout: float, fallback_port: int, pinger: Pinger) -> Result:
    started = time.monotonic()
    try:
        address = _resolve_one(host)
    except OSError as exc:
        return Result(False, f"{name}: {host} did not resolve: {_reason(exc)}")
    left = timeout - (time.monotonic() - started)
    if left <= 0:
        return Result(False, f"{name} did not answer within {timeout:g} s (resolving {host} took it all)")
    try:
        sent, rtts, error = pinger.ping(address, count, left)
    except IcmpNotPermitted:
        return _icmp_fallback(name, address, fallback_port, timeout - (time.monotonic() - started))
    if not rtts:
        if not sent:
            return Result(False, f"{name} unreachable: {error}", loss_pct=100.0)
        why = f": {error}" if error else ""
        return Result(False, f"{name} 100% loss, no reply to {sent} pings within {timeout:g} s{why}", loss_pct=100.0)
    loss = 100.0 * (count - len(rtts)) / count
    average = sum(rtts) / len(rtts)
    return Result(True, f"{name} {loss:.0f}% loss, {fmt_ms(average)}", latency_ms=average, loss_pct=loss)


def _icmp_fallback(name: str, address: str, port: int, timeout: float) -> Result:
    """No ICMP here: a TCP connect proves the host is up even when the port is closed (refused)."""
    note = "ping not permitted here (see net.ipv4.ping_group_range), checked by TCP connect"
    started = time.perf_counter()
    try:
        with socket.create_connection((address, port), timeout=max(timeout, 0.05)):
            pass
    except ConnectionRefusedError:
        pass
    except TimeoutError:
        return Result(False, f"{name} did not answer on TCP port {port} within {timeout:.3g} s; {note}")
    except OSError as exc:
        return Result(False, f"{name} unreachable on TCP port {port}: {_reason(exc)}; {note}")
    ms = _elapsed_ms(started)
    return Result(True, f"{name} answered on TCP port {port} in {fmt_ms(ms)}; {note}", latency_ms=ms)


def _resolve_one(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        infos.sort(key=lambda info: info[0] != socket.AF_INET)  # IPv4 first, like ping
        return infos[0][4][0]


# -- TCP connect ----------------------------------------------------------------------------

def probe_tcp(name: str, host: str, port: int, timeout: float) -> Result:
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except ConnectionRefusedError:
        return Result(False, f"{name} refused the connection on port {port} (host up, port closed)")
    except TimeoutError:
        return Result(False, f"{name} did not answer on port {port} within {timeout:g} s")
    except socket.gaierror as exc:
        return Result(False, f"{name}: {host} did not resolve: {_reason(exc)}")
    except OSError as exc:
        return Result(False, f"{name} unreachable on port {port}: {_reason(exc)}")
    ms = _elapsed_ms(started)
    return Result(True, f"{name} accepted a connection on port {port} in {fmt_ms(ms)}", latency_ms=ms)


# -- HTTP(S) GET ----------------------------------------------------------------------------

def tls_context(ca_file: str | None, verify: bool):
    """An SSLContext for https targets; raises RuntimeError naming a CA file it cannot load."""
    import ssl

    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise RuntimeError(f"ca_file {ca_file}: cannot load it: {_reason(exc)}") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def probe_http(name: str, url: str, expect_status: list[int], timeout: float, follow_redirects: bool,
               tls) -> Result:
    """GET ``url``; latency is the time to the response headers (of the last redirect followed).

    ``tls`` is a callable returning the SSLContext, called only for an https URL.
    """
    import http.client
    import ssl
    from urllib.parse import urljoin, urlsplit

    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    try:
        for hops in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if parts.scheme == "https":
                conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=left, context=tls())
            else:
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=left)
            try:
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                conn.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"})
                response = conn.getresponse()
                status, location = response.status, response.getheader("Location")
            finally:
                conn.close()
            if not (follow_redirects and status in REDIRECT_STATUSES and location and hops < MAX_REDIRECTS):
                break
            url = urljoin(url, location)
    except TimeoutError:
        return Result(False, f"{name} did not answer within {timeout:g} s")
    except ssl.SSLCertVerificationError as exc:
        return Result(False, f"{name} TLS certificate not accepted: {exc.verify_message or exc.reason}")
    except ssl.SSLError as exc:
        return Result(False, f"{name} TLS handshake failed: {exc.reason or exc}")
    except ConnectionRefusedError:
        return Result(False, f"{name} refused the connection ({url})")
    except socket.gaierror as exc:
        return Result(False, f"{name}: {urlsplit(url).hostname} did not resolve: {_reason(exc)}")
    except http.client.HTTPException as exc:
        return Result(False, f"{name} sent no valid HTTP response ({_reason(exc)})")
    except OSError as exc:
        return Result(False, f"{name} unreachable: {_reason(exc)}")
    ms = _elapsed_ms(started)
    if status in expect_status:
        return Result(True, f"{name} answered {status} in {fmt_ms(ms)}", latency_ms=ms, http_status=status)
    moved = f" (redirect to {location})" if status in REDIRECT_STATUSES and location else ""
    return Result(False, f"{name} answered {status}{moved}, expected {_either(expect_status)}",
                  latency_ms=ms, http_status=status)


def _either(values: list) -> str:
    values = [str(v) for v in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


# -- DNS ------------------------------------------------------------------------------------

def parse_resolver(text: str) -> tuple[str, int]:
    """``"192.168.1.1"``, ``"192.168.1.1:5353"``, ``"[::1]:53"`` or ``"::1"`` → (address, port)."""
    host, port_text = text, "53"
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(text)
        port_text = rest[1:] if rest else "53"
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    if not (port_text.isascii() and port_text.isdigit() and 0 < int(port_text) < 65536):
        raise ValueError(text)
    return str(ipaddress.ip_address(host)), int(port_text)


def make_resolver(resolver: str, timeout: float):
    """A dnspython resolver asking only ``resolver`` (no resolv.conf, no search list, no cache)."""
    import dns.resolver

    address, port = parse_resolver(resolver)
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = [address]
    r.port = port
    r.timeout = r.lifetime = timeout
    return r


def probe_dns(query: str, expect: list[str] | None, timeout: float, resolver=None) -> Result:
    """Resolve ``query`` with the system resolver, or with ``resolver`` (from :func:`make_resolver`)."""
    started = time.perf_counter()
    if resolver is None:
        addresses, failure = _system_lookup(query)
    else:
        want_v6 = any(ipaddress.ip_address(a).version == 6 for a in expect or ())
        addresses, failure = _dns_lookup(resolver, query, timeout, want_v6)
    ms = _elapsed_ms(started)
    if not addresses:
        return Result(False, f"{query} did not resolve: {failure}", latency_ms=None)
    shown = ", ".join(addresses[:3]) + (f" (+{len(addresses) - 3} more)" if len(addresses) > 3 else "")
    if expect and not {ipaddress.ip_address(a) for a in addresses} & {ipaddress.ip_address(a) for a in expect}:
        return Result(False, f"{query} resolved to {shown}, expected {_either(expect)}", latency_ms=ms)
    return Result(True, f"{query} resolved to {shown} in {fmt_ms(ms)}", latency_ms=ms)


def _system_lookup(query: str) -> tuple[list[str], str | None]:
    try:
        infos = socket.getaddrinfo(query, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return [], _reason(exc)
    except UnicodeError as exc:
        return [], f"not a valid host name ({exc})"
    return list(dict.fromkeys(info[4][0] for info in infos)), None


def _dns_lookup(resolver, query: str, timeout: float, want_v6: bool) -> tuple[list[str], str | None]:
    """A records, then AAAA when there are none (or ``want_v6``). A NXDOMAIN for one type alone
    does not fail the name: some servers answer it for the type they have no record of."""
    import dns.exception
    import dns.resolver

    deadline = time.monotonic() + timeout
    addresses: list[str] = []
    failure: str | None = None
    server = f"{resolver.nameservers[0]}:{resolver.port}"
    for rdtype in ("A", "AAAA"):
        if rdtype == "AAAA" and addresses and not want_v6:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            failure = failure or f"resolver {server} did not answer within {timeout:g} s"
            break
        try:
            answer = resolver.resolve(query, rdtype, lifetime=left, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            failure = failure or "NXDOMAIN"
            continue
        except dns.resolver.LifetimeTimeout:
            failure = failure or f"resolver {server} did not answer within {timeout:g} s"
            break
        except dns.resolver.NoNameservers as exc:
            failure = failure or _server_failure(exc, server)
            continue
        except dns.exception.DNSException as exc:
            failure = failure or str(exc)
            continue
        addresses += [record.address for record in answer.rrset or ()]
    if not addresses and failure is None:
        failure = "no address records (NOERROR, no data)"
    return addresses, failure


def _server_failure(exc, server: str) -> str:
    """'resolver 127.0.0.1:53 answered SERVFAIL' from dnspython's NoNameservers.

    Its ``errors`` are (server, tcp, port, error or rcode text, response) tuples."""
    for entry in (exc.kwargs.get("errors") or [])[:1]:
        detail = entry[3] if len(entry) > 3 else entry[-1]
        if isinstance(detail, str):
            return f"resolver {server} answered {detail}"
        return f"resolver {server} failed: {detail}"
    return str(exc)
