"""The distribution's shape: extras kept apart, console scripts and their help screens."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
AGENT_VENV = ROOT / ".venv-agent"
SERVER_ONLY = {"aiohttp", "sqlmodel", "apscheduler", "alembic", "psycopg", "sqlalchemy"}


def extra_requirements(extra: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """Distribution names an extra of zonewatch pulls in, following zonewatch[...] self-references."""
    names: set[str] = set()
    for line in requires("zonewatch") or []:
        req = Requirement(line)
        if req.marker is None or not req.marker.evaluate({"extra": extra}):
            continue
        if req.name == "zonewatch":
            for sub in req.extras - seen:
                names |= extra_requirements(sub, seen | {sub})
        else:
            names.add(req.name.lower())
    return names


def test_agent_extra_pulls_no_server_dependency():
    agent = extra_requirements("agent")
    assert {"paho-mqtt", "psutil", "pycups"} <= agent
    assert not agent & SERVER_ONLY
    assert {"aiohttp", "sqlmodel", "apscheduler"} <= extra_requirements("server")
    assert extra_requirements("agent") | extra_requirements("server") <= extra_requirements("dev")


def agent_python() -> str:
    python = AGENT_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{AGENT_VENV} is missing: scripts/test.sh creates it with only the 'agent' extra")
    return str(python)


def test_agent_only_environment_imports_agent_and_protocol():
    out = subprocess.run(
        [agent_python(), "-c", "import agent, agent.cli, protocol, importlib.util as u;"
         "print([m for m in ('aiohttp','sqlmodel','apscheduler') if u.find_spec(m)])"],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "[]", "server packages leaked into the agent-only environment"


def test_server_import_without_its_extra_names_the_extra():
    out = subprocess.run([agent_python(), "-c", "import server"], capture_output=True, text=True)
    assert out.returncode != 0
    assert "pip install 'zonewatch[server]'" in out.stderr and "aiohttp" in out.stderr


@pytest.mark.parametrize("command", [
    ["zonewatch", "--help"], ["zonewatch-agent", "--help"],
    *[["zonewatch", sub, "--help"] for sub in ("server", "demo", "simulate", "provision", "user")],
    *[["zonewatch-agent", sub, "--help"] for sub in ("run", "check", "enroll")],
])
def test_console_scripts_show_help(command):
    exe = Path(sys.executable).parent / command[0]
    out = subprocess.run([str(exe), *command[1:]], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: " + command[0])
