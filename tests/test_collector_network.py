"""The network collector against real peers on 127.0.0.1: listening sockets, a real HTTP(S) server,
a private dnsmasq, ICMP to the loopback address. Nothing here sends a packet beyond 127.0.0.0/8:
the suite runs in a loopback-only network namespace, and auto_gateway is only ever pointed at a
routing table written by the test."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import icmplib
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.collectors import REGISTRY, collector_class
from agent.collectors import network as network_module
from agent.collectors.base import AgentContext
from agent.collectors.network import NetworkCollector, NetworkOptions, Target, grade
from agent.collectors.network_probes import Result, default_gateway, parse_resolver
from agent.collectors.runner import CollectorRunner
from agent.config import parse_config
from agent.errors import ConfigError
from protocol import NetworkCheck, Report, decode, encode
from tests.peers._util import free_port

pytestmark = pytest.mark.timeout(60)

LOCALHOST = "127.0.0.1"


# -- helpers ----------------------------------------------------------------------------------

def make(tmp_path: Path, *targets: dict, **options) -> NetworkCollector:
    opts = msgspec.convert({"targets": list(targets), **options}, NetworkOptions)
    return NetworkCollector(opts, AgentContext(device_id="kiosk-1", data_dir=tmp_path))


@pytest.fixture
def collect(tmp_path: Path) -> Iterator:
    """``collect(*targets, **options)`` -> {check name: check}, each run also encoded as a report."""
    made: list[NetworkCollector] = []

    def run(*targets: dict, **options) -> dict[str, NetworkCheck]:
        collector = make(tmp_path, *targets, **options)
        made.append(collector)
        checks = collector.collect()
        assert_encodes(checks)
        return {c.name: c for c in checks}

    yield run
    for collector in made:
        collector.close()


def assert_encodes(checks: list) -> None:
    """Every check goes on the wire: inside a Report, through protocol.encode, and back."""
    report = Report(device_id="kiosk-1", ts=time.time(), seq=1, interval_s=30.0, checks=list(checks))
    decoded = decode("zw/v1/dev/kiosk-1/report", encode(report)).message
    assert decoded.checks == list(checks)


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 with a listening socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        s.listen(16)
        yield s.getsockname()[1]


def closed_port() -> int:
    return free_port()


# -- TCP --------------------------------------------------------------------------------------

def test_tcp_open_port_is_up(collect, listener: int) -> None:
    check = collect({"name": "db", "probe": "tcp", "host": LOCALHOST, "port": listener})["network:db"]
    assert (check.status, check.up, check.probe) == ("ok", True, "tcp")
    assert check.target == f"{LOCALHOST}:{listener}"
    assert check.latency_ms is not None and check.latency_ms < 500
    assert check.summary.startswith(f"db accepted a connection on port {listener} in ")
    assert check.error is None and check.loss_pct is None


def test_tcp_closed_port_is_down(collect) -> None:
    port = closed_port()
    check = collect({"name": "db", "probe": "tcp", "host": LOCALHOST, "port": port})["network:db"]
    assert (check.status, check.up) == ("critical", False)
    assert check.summary == f"db refused the connection on port {port} (host up, port closed)"
    assert check.error is None


# -- HTTP -------------------------------------------------------------------------------------

def portal(url: str, **extra) -> dict:
    return {"name": "portal", "probe": "http", "url": url, **extra}


def test_http_200_is_ok(collect, http_target) -> None:
    check = collect(portal(http_target.url + "zwgk/index.html?a=1"))["network:portal"]
    assert (check.status, check.up, check.http_status) == ("ok", True, 200)
    assert check.summary.startswith("portal answered 200 in ")
    assert check.latency_ms is not None and check.latency_ms > 0
    assert http_target.requests == ["/zwgk/index.html?a=1"]


def test_http_503_is_critical_naming_both_statuses(collect, http_target) -> None:
    http_target.set(status=503)
    check = collect(portal(http_target.url))["network:portal"]
    assert (check.status, check.up, check.http_status) == ("critical", False, 503)
    assert check.summary == "portal answered 503, expected 200"


def test_http_expect_status_list(collect, http_target) -> None:
    http_target.set(status=204)
    assert collect(portal(http_target.url, expect_status=[200, 204]))["network:portal"].status == "ok"
    http_target.set(status=500)
    check = collect(portal(http_target.url, expect_status=[200, 204, 301]))["network:portal"]
    assert check.summary == "portal answered 500, expected 200, 204 or 301"


def test_slow_http_is_warning_by_latency(collect, http_target) -> None:
    http_target.set(delay=0.3)
    check = collect(portal(http_target.url, latency_warning_ms=100, latency_critical_ms=2500))["network:portal"]
    assert (check.status, check.up, check.http_status) == ("warning", True, 200)
    assert check.latency_ms >= 300
    assert "latency reached the 100 ms warning threshold" in check.summary


def test_slower_than_critical_threshold_is_critical_but_up(collect, http_target) -> None:
    http_target.set(delay=0.3)
    check = collect(portal(http_target.url, latency_warning_ms=50, latency_critical_ms=200))["network:portal"]
    assert (check.status, check.up) == ("critical", True)
    assert "200 ms critical threshold" in check.summary


def test_http_no_answer_within_timeout_is_down_and_run_is_bounded(collect, http_target) -> None:
    http_target.set(delay=30)
    started = time.monotonic()
    check = collect(portal(http_target.url, timeout=0.5))["network:portal"]
    assert time.monotonic() - started < 3
    assert (check.status, check.up) == ("critical", False)
    assert check.summary == "portal did not answer within 0.5 s"


def test_http_refused_is_down(collect) -> None:
    port = closed_port()
    check = collect(portal(f"http://{LOCALHOST}:{port}/"))["network:portal"]
    assert (check.status, check.up, check.http_status) == ("critical", False, None)
    assert "refused the connection" in check.summary


def test_redirect_not_followed_by_default(collect, http_target) -> None:
    http_target.set(status=302, location="/login")
    check = collect(portal(http_target.url))["network:portal"]
    assert (check.status, check.http_status) == ("critical", 302)
    assert check.summary == "portal answered 302 (redirect to /login), expected 200"
    assert http_target.requests == ["/"]


def test_redirect_followed_when_asked(collect, http_target) -> None:
    http_target.set(status=302, location="/login")
    collector_targets = portal(http_target.url, follow_redirects=True)
    # the server answers 302 to everything: a loop, cut off after 5 redirects
    check = collect(collector_targets)["network:portal"]
    assert (check.status, check.http_status) == ("critical", 302)
    assert len(http_target.requests) == 6
    http_target.requests.clear()
    http_target.set(status=200, location="")
    assert collect(collector_targets)["network:portal"].status == "ok"


def test_https_self_signed_is_refused_unless_its_ca_is_given(collect, https_target) -> None:
    check = collect(portal(https_target.url))["network:portal"]
    assert (check.status, check.up) == ("critical", False)
    assert "TLS certificate not accepted" in check.summary and "self" in check.summary
    check = collect(portal(https_target.url, ca_file=str(https_target.ca_file)))["network:portal"]
    assert (check.status, check.http_status) == ("ok", 200)
    check = collect(portal(https_target.url, verify_tls=False))["network:portal"]
    assert (check.status, check.http_status) == ("ok", 200)


def test_unreadable_ca_file_is_a_collector_fault_for_that_target_only(collect, https_target, listener) -> None:
    checks = collect(portal(https_target.url, ca_file="/nonexistent/ca.pem"),
                     {"name": "db", "probe": "tcp", "host": LOCALHOST, "port": listener})
    bad = checks["network:portal"]
    assert bad.status == "unknown" and bad.up is None
    assert "ca_file /nonexistent/ca.pem: cannot load it: No such file or directory" in bad.error
    assert checks["network:db"].status == "ok"


# -- ICMP -------------------------------------------------------------------------------------

def test_ping_loopback_is_up(tmp_path) -> None:
    collector = make(tmp_path, {"name": "lo", "probe": "icmp", "host": LOCALHOST, "count": 3})
    try:
        checks = collector.collect()
    finally:
        collector.close()
    if collector.pinger.mode is None:
        pytest.skip("this user may open no ICMP socket here (ping_group_range, no CAP_NET_RAW)")
    assert_encodes(checks)
    (check,) = checks
    assert (check.status, check.up, check.loss_pct) == ("ok", True, 0.0)
    assert check.summary.startswith("lo 0% loss, ")
    assert check.latency_ms is not None and check.latency_ms < 100


def refuse_icmp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every ICMP socket fail as on a system whose ping_group_range excludes us, without root."""
    def refused(*args, **kwargs):
        raise icmplib.SocketPermissionError(kwargs.get("privileged", True))

    monkeypatch.setattr(icmplib, "ICMPv4Socket", refused)


def test_ping_falls_back_to_tcp_connect_when_icmp_is_not_permitted(collect, monkeypatch, listener) -> None:
    refuse_icmp(monkeypatch)
    check = collect({"name": "lo", "probe": "icmp", "host": LOCALHOST, "fallback_port": listener})["network:lo"]
    assert (check.status, check.up, check.loss_pct) == ("ok", True, None)
    assert check.summary.startswith(f"lo answered on TCP port {listener} in ")
    assert "ping not permitted here" in check.summary


def test_tcp_fallback_counts_a_refused_connection_as_up(collect, monkeypatch) -> None:
    refuse_icmp(monkeypatch)
    check = collect({"name": "lo", "probe": "icmp", "host": LOCALHOST, "fallback_port": closed_port()})["network:lo"]
    assert (check.status, check.up) == ("ok", True)


def test_pinger_remembers_the_way_that_worked(tmp_path) -> None:
    collector = make(tmp_path, {"name": "lo", "probe": "icmp", "host": LOCALHOST, "count": 1})
    try:
        collector.collect()
        if collector.pinger.mode is None:
            pytest.skip("this user may open no ICMP socket here (ping_group_range, no CAP_NET_RAW)")
        assert collector.pinger.mode in ("unprivileged", "privileged")
    finally:
        collector.close()


# -- DNS --------------------------------------------------------------------------------------

def dns(query: str, **extra) -> dict:
    return {"name": "portal-dns", "probe": "dns", "query": query, **extra}


@pytest.mark.parametrize("name", ["portal.zonewatch.test", "printer.zonewatch.test"])
def test_served_name_resolves(collect, dns_resolver, name) -> None:
    address = dns_resolver.names[name]
    check = collect(dns(name, resolver=dns_resolver.address))["network:portal-dns"]
    assert (check.status, check.up) == ("ok", True), check.summary
    assert check.summary.startswith(f"{name} resolved to {address} in ")
    assert check.target == f"{name} @{dns_resolver.address}"
    assert check.latency_ms is not None


def test_expected_address_matches(collect, dns_resolver) -> None:
    check = collect(dns("portal.zonewatch.test", resolver=dns_resolver.address,
                        expect=["10.0.0.1", "127.0.0.1"]))["network:portal-dns"]
    assert check.status == "ok"


def test_unexpected_address_is_critical(collect, dns_resolver) -> None:
    check = collect(dns("moved.zonewatch.test", resolver=dns_resolver.address, expect=["127.0.0.1"]))
    check = check["network:portal-dns"]
    assert (check.status, check.up) == ("critical", False)
    assert check.summary == "moved.zonewatch.test resolved to 127.0.0.9, expected 127.0.0.1"


@pytest.mark.parametrize("name", ["nothing.zonewatch.test", "portal.elsewhere.test"])
def test_unknown_name_is_nxdomain(collect, dns_resolver, name) -> None:
    started = time.monotonic()
    check = collect(dns(name, resolver=dns_resolver.address))["network:portal-dns"]
    assert time.monotonic() - started < 2
    assert (check.status, check.up) == ("critical", False)
    assert check.summary == f"{name} did not resolve: NXDOMAIN"


def test_resolver_that_is_not_running_is_down(collect) -> None:
    check = collect(dns("portal.zonewatch.test", resolver=f"{LOCALHOST}:{closed_port()}", timeout=1))
    check = check["network:portal-dns"]
    assert (check.status, check.up) == ("critical", False)
    assert "did not resolve" in check.summary and check.error is None


def test_system_resolver_resolves_localhost(collect) -> None:
    check = collect(dns("localhost", expect=["127.0.0.1"]))["network:portal-dns"]
    assert (check.status, check.up) == ("ok", True), check.summary
    assert check.target == "localhost"
    assert "127.0.0.1" in check.summary


def test_dnspython_is_loaded_only_for_a_configured_resolver(tmp_path) -> None:
    import subprocess
    import sys

    code = ("import sys, msgspec\n"
            "from agent.collectors.network import NetworkCollector, NetworkOptions\n"
            "from agent.collectors.base import AgentContext\n"
            "o = msgspec.convert({'targets': [{'name': 'l', 'probe': 'dns', 'query': 'localhost'}]}, NetworkOptions)\n"
            "c = NetworkCollector(o, AgentContext(device_id='k', data_dir='.'))\n"
            "c.collect(); c.close()\n"
            "print(sorted(m for m in ('dns', 'icmplib', 'http.client', 'ssl') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent.parent)
    assert out.stdout.strip() == "[]"


# -- several targets, the default gateway -----------------------------------------------------

def test_targets_are_probed_side_by_side(collect, http_target, listener) -> None:
    http_target.set(delay=0.4)
    started = time.monotonic()
    checks = collect(portal(http_target.url), dict(portal(http_target.url), name="portal2"),
                     dict(portal(http_target.url), name="portal3"),
                     {"name": "db", "probe": "tcp", "host": LOCALHOST, "port": listener})
    assert time.monotonic() - started < 1.1  # one delay, not three
    assert list(checks) == ["network:portal", "network:portal2", "network:portal3", "network:db"]
    assert all(c.status == "ok" for c in checks.values())


ROUTES = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
wlan0\t00000000\t01FEA8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0001A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
"""


def test_default_gateway_from_route_table() -> None:
    assert default_gateway(ROUTES) == "192.168.254.1"  # wlan0: the lower metric wins
    assert default_gateway(ROUTES.replace("wlan0\t00000000\t01FEA8C0\t0003", "wlan0\t00000000\t01FEA8C0\t0002")) \
        == "192.168.1.1"  # a route that is not up does not count
    only_local = "\n".join(line for line in ROUTES.splitlines() if "\t00000000\t0" not in line[:20])
    assert default_gateway(only_local) is None
    assert default_gateway("") is None
    assert default_gateway("Iface Destination\ngarbage line here x y z w v\n") is None


@given(st.lists(st.tuples(st.ip_addresses(v=4), st.integers(0, 2**31)), min_size=1, max_size=5),
       st.lists(st.text(max_size=80), max_size=5))
def test_default_gateway_picks_the_lowest_metric_and_survives_garbage(routes, garbage) -> None:
    lines = [ROUTES.splitlines()[0]] + [
        f"eth{i}\t00000000\t{int.from_bytes(ip.packed, 'little'):08X}\t0003\t0\t0\t{metric}\t00000000\t0\t0\t0"
        for i, (ip, metric) in enumerate(routes)] + garbage
    usable = [(str(ip), metric) for ip, metric in routes if int(ip)]  # 0.0.0.0 is no gateway
    found = default_gateway("\n".join(lines))
    if usable:
        lowest = min(metric for _, metric in usable)
        assert found == next(ip for ip, metric in usable if metric == lowest)
    else:
        assert found is None


@given(st.text(max_size=40))
def test_parse_resolver_accepts_or_raises_value_error(text) -> None:
    try:
        address, port = parse_resolver(text)
    except ValueError:
        return
    assert 0 < port < 65536 and address


def test_auto_gateway_is_off_by_default(collect) -> None:
    assert NetworkOptions().auto_gateway is False
    assert collect() == {}


def test_auto_gateway_pings_the_default_route(collect, tmp_path, monkeypatch) -> None:
    table = tmp_path / "route"
    table.write_text(ROUTES.splitlines()[0] + "\nlo\t00000000\t0100007F\t0003\t0\t0\t0\t00000000\t0\t0\t0\n")
    monkeypatch.setattr(network_module, "ROUTE_TABLE", table)
    check = collect(auto_gateway=True, gateway={"count": 2, "latency_warning_ms": 100})["network:gateway"]
    assert (check.status, check.up, check.gateway, check.probe, check.target) == ("ok", True, True, "icmp", LOCALHOST)
    assert check.summary.startswith("gateway 0% loss, ")


def test_auto_gateway_without_default_route_is_critical(collect, tmp_path, monkeypatch) -> None:
    table = tmp_path / "route"
    table.write_text(ROUTES.splitlines()[0] + "\n")
    monkeypatch.setattr(network_module, "ROUTE_TABLE", table)
    check = collect(auto_gateway=True)["network:gateway"]
    assert (check.status, check.up, check.gateway) == ("critical", False, True)
    assert "no default gateway" in check.summary


# -- grading ----------------------------------------------------------------------------------

def test_grade_by_loss_and_latency() -> None:
    t = Target(name="gw", probe="icmp", host=LOCALHOST, loss_warning_pct=20, loss_critical_pct=60,
               latency_warning_ms=100, latency_critical_ms=300)
    assert grade(t, Result(True, "gw 0% loss, 1.0 ms", latency_ms=1, loss_pct=0)) == ("ok", "gw 0% loss, 1.0 ms")
    status, summary = grade(t, Result(True, "gw 33% loss", latency_ms=1, loss_pct=100 / 3))
    assert status == "warning" and summary == "gw 33% loss; loss reached the 20% warning threshold"
    assert grade(t, Result(True, "x", latency_ms=1, loss_pct=66.7))[0] == "critical"
    assert grade(t, Result(True, "x", latency_ms=150, loss_pct=0))[0] == "warning"
    status, summary = grade(t, Result(True, "x", latency_ms=300, loss_pct=40))
    assert status == "critical"
    assert summary == "x; latency reached the 300 ms critical threshold; loss reached the 20% warning threshold"
    assert grade(t, Result(False, "gw 100% loss", loss_pct=100)) == ("critical", "gw 100% loss")


# -- config -----------------------------------------------------------------------------------

# Other collectors are off: this file tests the network section alone (and they may not exist yet).
OTHERS_OFF = "".join(f"[collectors.{name}]\nenabled = false\n" for name in REGISTRY if name != "network")
CONFIG = """
[agent]
device_id = "kiosk-1"

""" + OTHERS_OFF.replace("{", "{{").replace("}", "}}") + """
[collectors.network]
every = 5
auto_gateway = false
{extra}
"""


def config(targets: str, extra: str = "") -> str:
    return CONFIG.format(extra=extra) + targets


def test_config_reads_naturally() -> None:
    cfg = parse_config(config("""
[[collectors.network.targets]]
name = "portal"
probe = "http"
url = "https://zwgk.example.gov.cn/"
expect_status = [200, 204]
latency_warning_ms = 1000

[[collectors.network.targets]]
name = "portal-dns"
probe = "dns"
query = "zwgk.example.gov.cn"
resolver = "127.0.0.1:5353"
expect = ["127.0.0.1"]

[[collectors.network.targets]]
name = "printer"
probe = "tcp"
host = "127.0.0.1"
port = 631

[[collectors.network.targets]]
name = "lo"
probe = "icmp"
host = "127.0.0.1"
count = 5
""", extra="[collectors.network.gateway]\ncount = 4\ntimeout = 2"))
    options = cfg.collector_options["network"]
    assert isinstance(options, NetworkOptions)
    assert [t.name for t in options.targets] == ["portal", "portal-dns", "printer", "lo"]
    assert options.targets[0].expect_status == [200, 204] and options.targets[0].verify_tls is True
    assert options.gateway.count == 4 and options.every == 5
    assert collector_class("network") is NetworkCollector


def test_network_every_defaults_to_1_s() -> None:
    """A target going down must be paged within 2 s with default settings (issue 5's target)."""
    assert parse_config('[agent]\ndevice_id = "k"\n' + OTHERS_OFF).collector_options["network"].every == 1.0


def test_a_target_with_its_own_every_keeps_its_last_result_until_due(tmp_path, listener) -> None:
    """A costly target (the portal) can be probed less often than the cheap ones beside it."""
    accepted: list[int] = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as slow:
        slow.bind((LOCALHOST, 0))
        slow.listen(16)
        port = slow.getsockname()[1]
        collector = make(tmp_path, {"name": "fast", "probe": "tcp", "host": LOCALHOST, "port": listener},
                         {"name": "slow", "probe": "tcp", "host": LOCALHOST, "port": port, "every": 3600})
        try:
            for _ in range(3):
                checks = {c.name: c for c in collector.collect()}
                assert checks["network:fast"].up and checks["network:slow"].up
                slow.settimeout(0.5)
                try:
                    while True:
                        conn, _ = slow.accept()
                        conn.close()
                        accepted.append(1)
                except TimeoutError:
                    pass
        finally:
            collector.close()
    assert len(accepted) == 1, "the slow target is probed once in its hour, its result reused in between"


@pytest.mark.parametrize(("target", "key", "words"), [
    ('name = "ok"\nprobe = "icmp"\nhost = "127.0.0.1"\n[[collectors.network.targets]]\nname = "portal"\nprobe = "http"',
     "collectors.network", ["targets[1] 'portal': probe http needs url"]),
    ('name = "db"\nprobe = "tcp"\nhost = "127.0.0.1"', "collectors.network", ["targets[0] 'db'", "needs port"]),
    ('name = "db"\nprobe = "tcp"\nhost = "127.0.0.1"\nport = 5432\nurl = "http://x/"', "collectors.network",
     ["'db'", "url applies only to probe http, not tcp"]),
    ('name = "p"\nprobe = "http"\nurl = "ftp://x/"', "collectors.network", ["'p'", "not an http:// or https:// URL"]),
    ('name = "p"\nprobe = "icmp"\nhost = "https://portal.example/"', "collectors.network",
     ["'p'", "use probe http with url"]),
    ('name = "p"\nprobe = "dns"\nquery = "x.test"\nresolver = "dns.example:53"', "collectors.network",
     ["'p'", "resolver 'dns.example:53' is not an IP address"]),
    ('name = "p"\nprobe = "dns"\nquery = "x.test"\nexpect = ["portal"]', "collectors.network",
     ["'p'", "expect 'portal' is not an IP address"]),
    ('name = "p"\nprobe = "tcp"\nhost = "h"\nport = 1\ntimeout = 12', "collectors.network",
     ["'p'", "timeout 12 s must be below the collector's timeout (10 s)"]),
    ('name = "p"\nprobe = "tcp"\nhost = "h"\nport = 1\nlatency_warning_ms = 900\nlatency_critical_ms = 100',
     "collectors.network", ["'p'", "latency_warning_ms (900) must not be above latency_critical_ms (100)"]),
    ('name = "p"\nprobe = "tcp"\nhost = "h"\nport = 70000', "collectors.network.targets[0].port", ["<= 65535"]),
    ('name = "p"\nprobe = "ping"\nhost = "h"', "collectors.network.targets[0].probe", ["invalid enum value 'ping'"]),
    ('name = "p"\nprobe = "http"\nurll = "http://x/"', "collectors.network.targets[0].urll", ["unknown key"]),
    ('name = "has space"\nprobe = "icmp"\nhost = "h"', "collectors.network.targets[0].name", ["regex"]),
])
def test_config_errors_name_the_key_and_the_target(target: str, key: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config("[[collectors.network.targets]]\n" + target))
    assert info.value.key == key, str(info.value)
    for word in words:
        assert word in info.value.problem, info.value.problem


def test_config_rejects_duplicate_names_and_a_target_named_gateway_with_auto_gateway() -> None:
    two = '[[collectors.network.targets]]\nname = "a"\nprobe = "icmp"\nhost = "h"\n' * 2
    with pytest.raises(ConfigError, match=r"targets\[1\] 'a': another target has this name"):
        parse_config(config(two))
    gw = '[[collectors.network.targets]]\nname = "gateway"\nprobe = "icmp"\nhost = "h"\n'
    parse_config(config(gw))  # fine while auto_gateway is off
    with pytest.raises(ConfigError, match="taken by auto_gateway"):
        parse_config(config(gw).replace("auto_gateway = false", "auto_gateway = true"))


def test_parse_resolver() -> None:
    assert parse_resolver("192.168.1.1") == ("192.168.1.1", 53)
    assert parse_resolver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_resolver("[::1]:5353") == ("::1", 5353)
    assert parse_resolver("::1") == ("::1", 53)
    for bad in ("host:53", "1.2.3.4:0", "1.2.3.4:x", "[::1", "1.2.3.4:70000"):
        with pytest.raises(ValueError):
            parse_resolver(bad)


# -- failures through the runner --------------------------------------------------------------

def test_collector_exception_through_runner_is_unknown_per_target(tmp_path, listener) -> None:
    collector = make(tmp_path, {"name": "db", "probe": "tcp", "host": LOCALHOST, "port": listener},
                     portal("http://127.0.0.1:1/"), auto_gateway=True)

    def broken() -> list:
        raise RuntimeError("routing table unreadable")

    collector.collect = broken
    runner = CollectorRunner()
    try:
        checks = runner.run_once([collector])
    finally:
        runner.close()
        collector.close()
    assert [c.name for c in checks] == ["network:db", "network:portal", "network:gateway"]
    assert all(c.status == "unknown" for c in checks)
    assert all(c.error == "network collector failed: RuntimeError: routing table unreadable" for c in checks)
    assert checks[2].gateway is True
    assert_encodes(checks)


def test_collector_timeout_through_runner_is_unknown_per_target(tmp_path, listener) -> None:
    collector = make(tmp_path, {"name": "db", "probe": "tcp", "host": LOCALHOST, "port": listener,
                                "timeout": 0.1}, timeout=0.3)
    collector.collect = lambda: time.sleep(2) or []
    runner = CollectorRunner()
    try:
        checks = runner.run_once([collector])
    finally:
        runner.close()
        collector.close()
    assert [(c.name, c.status) for c in checks] == [("network:db", "unknown")]
    assert checks[0].error == "network collector timed out after 0.3 s"
    assert_encodes(checks)


def test_runner_runs_the_real_collector(tmp_path, http_target, listener) -> None:
    collector = make(tmp_path, portal(http_target.url), {"name": "db", "probe": "tcp", "host": LOCALHOST,
                                                          "port": listener})
    runner = CollectorRunner()
    try:
        checks = runner.run_once([collector])
    finally:
        runner.close()
        collector.close()
    assert [(c.name, c.status) for c in checks] == [("network:portal", "ok"), ("network:db", "ok")]
    assert all(c.duration_ms is not None for c in checks)
    assert "network" in runner.durations
