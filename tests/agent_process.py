"""The real agent as a subprocess, and a real process standing in for the kiosk front end."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Kiosk:
    """A real process standing in for the kiosk front end, under a unique process name."""

    def __init__(self, tmp: Path) -> None:
        self.name = "zwk-" + uuid.uuid4().hex[:8]
        self.exe = tmp / self.name
        self.exe.symlink_to("/bin/sleep")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([str(self.exe), "3600"])

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class AgentProcess:
    def __init__(self, tmp: Path, broker_port: int, kiosk: Kiosk, *, interval: float = 0.5,
                 device_id: str | None = None, url: str | None = None, mqtt: str = "",
                 printer: str = "enabled = false", collectors: str = "") -> None:
        """``mqtt`` adds lines to [mqtt], ``printer`` is the body of [collectors.printer],
        ``collectors`` adds whole sections."""
        self.device_id = device_id or "kiosk-" + uuid.uuid4().hex[:6]
        self.config = tmp / "agent.toml"
        self.log = tmp / "agent.log"
        self.config.write_text(f"""
[agent]
device_id = "{self.device_id}"
data_dir = "{tmp / 'data'}"
interval = {interval}
log_level = "debug"

[mqtt]
url = "{url or f'mqtt://127.0.0.1:{broker_port}'}"
{mqtt}
keepalive = 2
reconnect_min = 0.1
reconnect_max = 0.5

[collectors.kiosk]
process = "{kiosk.name}"
every = 0.2

[collectors.network]
enabled = false

[collectors.printer]
{printer}

{collectors}
""")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(self.config)],
                                     cwd=ROOT, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def signal(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(15)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
