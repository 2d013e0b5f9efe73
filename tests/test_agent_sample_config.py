"""agent/agent.example.toml is generated from the code, valid, and never points beyond loopback."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import urlsplit

from agent.config import parse_config
from agent.sample_config import render

EXAMPLE = Path(__file__).resolve().parent.parent / "agent" / "agent.example.toml"
DEFAULT_LINE = re.compile(r"^# ([a-z_]+) = (?!\s*\(unset\))(.+)$")


def test_example_config_is_generated_from_the_code():
    assert EXAMPLE.read_text() == render(), (
        "agent/agent.example.toml is out of date: run `python -m agent.sample_config > agent/agent.example.toml`"
    )


def loopback(host: str | None) -> bool:
    return host is not None and (host == "localhost" or ipaddress.ip_address(host).is_loopback)


def test_example_config_is_valid_and_stays_on_loopback():
    config = parse_config(EXAMPLE.read_text(), str(EXAMPLE))
    assert loopback(urlsplit(config.mqtt.url).hostname)
    network = config.collector_options["network"]
    assert network.auto_gateway is False, "example configs never probe the real gateway"
    assert network.targets, "the example shows how targets are written"
    for target in network.targets:
        host = urlsplit(target.url).hostname if target.url else target.host
        if target.probe == "dns":
            assert target.query == "localhost" and target.resolver is None
        else:
            assert loopback(host), f"{target.name} points beyond 127.0.0.0/8"
    assert config.collector_options["printer"].printers == [], "the example monitors every CUPS queue"


def test_every_documented_default_is_itself_valid():
    """Uncommenting every default line must still give a valid config: the docs show real values."""
    lines = [DEFAULT_LINE.sub(r"\1 = \2", line) for line in EXAMPLE.read_text().splitlines()]
    uncommented = sum(1 for a, b in zip(EXAMPLE.read_text().splitlines(), lines, strict=True) if a != b)
    assert uncommented > 40
    parse_config("\n".join(lines), "uncommented example")
