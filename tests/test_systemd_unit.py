"""The agent's systemd unit: hardened as the issue asks, in step with the install bundle's install.sh, and valid
for systemd itself (tests/test_provision_bundle.py verifies the unit as installed into a root)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

UNIT = Path(__file__).resolve().parent.parent / "provisioning" / "systemd" / "zonewatch-agent.service"


def directives(text: str | None = None) -> dict[str, str]:
    out = {}
    for line in (UNIT.read_text() if text is None else text).splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def test_unit_is_hardened():
    d = directives()
    assert d["User"] == d["Group"] == "zonewatch-agent" and d["NoNewPrivileges"] == "yes"
    assert d["ProtectSystem"] == "strict" and d["ProtectHome"] == "yes" and d["PrivateTmp"] == "yes"
    assert d["ReadWritePaths"] == "/var/lib/zonewatch"  # the data dir: spool and content, nothing else
    assert d["Restart"] == "on-failure" and d["RestartPreventExitStatus"] == "78"
    assert d["CapabilityBoundingSet"] == "" and d["AmbientCapabilities"] == ""
    assert d["ExecStart"] == "/opt/zonewatch-agent/bin/zonewatch-agent run --config /etc/zonewatch/agent.toml"


def test_the_unit_names_what_install_sh_creates():
    script = (UNIT.parent.parent / "install.sh").read_text()
    d = directives()
    assert f"AGENT_USER={d['User']}\n" in script
    assert f"PREFIX={d['ExecStart'].split('/bin/')[0]}\n" in script
    assert f"DATA_DIR={d['ReadWritePaths']}\n" in script
    assert "CONF_DIR=/etc/zonewatch\n" in script and "set -eu\n" in script


def verify(unit_text: str, executable: str, tmp_path) -> None:
    """``systemd-analyze verify`` on the unit with ExecStart pointing at ``executable`` (which must exist)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install systemd (scripts/test.sh does)"
    unit = tmp_path / "zonewatch-agent.service"
    unit.write_text(unit_text.replace("/opt/zonewatch-agent/bin/zonewatch-agent", executable))
    out = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (out.stdout + out.stderr).splitlines() if "zonewatch-agent.service" in line]
    assert out.returncode == 0 and not problems, out.stdout + out.stderr


def test_systemd_accepts_the_unit(tmp_path):
    exe = tmp_path / "zonewatch-agent"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    verify(UNIT.read_text(), str(exe), tmp_path)
