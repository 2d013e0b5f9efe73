"""``zonewatch-agent check``: what a field technician runs. No broker needed; Nagios exit codes."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from protocol import Report, decode
from tests.agent_process import ROOT, Kiosk
from tests.peers._util import free_port


@pytest.fixture
def kiosk(tmp_path):
    k = Kiosk(tmp_path)
    k.start()
    yield k
    k.kill()


@pytest.fixture
def listening_port():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def write_config(tmp_path, kiosk: Kiosk, port: int, system: str = "") -> str:
    path = tmp_path / "agent.toml"
    path.write_text(f"""
[agent]
device_id = "counter-7"
data_dir = "{tmp_path}"

[mqtt]
url = "mqtt://127.0.0.1:{free_port()}"  # nothing listens there: check needs no broker

[collectors.kiosk]
process = "{kiosk.name}"

[collectors.printer]
enabled = false

[collectors.system]
{system}

[[collectors.network.targets]]
name = "service"
probe = "tcp"
host = "127.0.0.1"
port = {port}
""")
    return str(path)


def check(config: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", "check", "--config", config, *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_all_ok_exits_0_with_a_readable_table(tmp_path, kiosk, listening_port):
    out = check(write_config(tmp_path, kiosk, listening_port))
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["STATUS", "CHECK", "SUMMARY"]
    assert any(line.startswith("OK") and "network:service" in line for line in lines)
    assert "counter-7: OK" in out.stdout


def test_json_is_exactly_the_report_message(tmp_path, kiosk, listening_port):
    out = check(write_config(tmp_path, kiosk, listening_port), "--json")
    report = decode("zw/v1/dev/counter-7/report", out.stdout.strip()).message
    assert isinstance(report, Report) and report.trigger == "check"
    assert {c.name for c in report.checks} >= {"kiosk", "system", "content", "network:service"}


def test_critical_exits_2(tmp_path, kiosk, listening_port):
    kiosk.kill()
    out = check(write_config(tmp_path, kiosk, listening_port))
    assert out.returncode == 2
    assert any(line.startswith("CRITICAL") and "kiosk" in line for line in out.stdout.splitlines())


def test_warning_exits_1(tmp_path, kiosk, listening_port):
    out = check(write_config(tmp_path, kiosk, listening_port, system="disk_warning_pct = 0.0"))
    assert out.returncode == 1, out.stdout


def test_unknown_exits_3(tmp_path, kiosk, listening_port):
    out = check(write_config(tmp_path, kiosk, listening_port, system='disks = ["/no/such/volume"]'))
    assert out.returncode == 3, out.stdout
    assert "/no/such/volume" in out.stdout


def test_config_error_names_the_key_and_exits_3(tmp_path, kiosk, listening_port):
    config = write_config(tmp_path, kiosk, listening_port, system="evry = 5")
    out = check(config)
    assert out.returncode == 3
    assert "collectors.system.evry: unknown key" in out.stderr and "Traceback" not in out.stderr
