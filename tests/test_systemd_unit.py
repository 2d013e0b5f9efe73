"""The agent's systemd unit: hardened as the issue asks, and valid for systemd itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

UNIT = Path(__file__).resolve().parent.parent / "provisioning" / "systemd" / "zonewatch-agent.service"


def directives() -> dict[str, str]:
    out = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def test_unit_is_hardened():
    d = directives()
    assert d["User"] == "zonewatch" and d["NoNewPrivileges"] == "yes"
    assert d["ProtectSystem"] == "strict" and d["ReadWritePaths"] == "/var/lib/zonewatch"
    assert d["Restart"] == "on-failure" and d["RestartPreventExitStatus"] == "78"
    assert d["CapabilityBoundingSet"] == ""
    assert d["ExecStart"].endswith("zonewatch-agent run --config /etc/zonewatch/agent.toml")


def test_systemd_accepts_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install systemd (scripts/test.sh does)"
    exe = tmp_path / "zonewatch-agent"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    unit = tmp_path / "zonewatch-agent.service"
    unit.write_text(UNIT.read_text().replace("/opt/zonewatch/bin/zonewatch-agent", str(exe)))
    out = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (out.stdout + out.stderr).splitlines() if "zonewatch-agent.service" in line]
    assert out.returncode == 0 and not problems, out.stdout + out.stderr
