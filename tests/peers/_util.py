"""Small helpers shared by the peer fixtures: ports, waiting, binaries, processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_binary(name: str, package: str) -> str:
    """Path of an executable, or fail the test naming the Debian package that provides it."""
    path = shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/usr/bin", "/sbin") if (p := Path(d) / name).exists()),
        None,
    )
    if path is None:
        pytest.fail(
            f"'{name}' is not installed: install the Debian package '{package}' "
            f"(apt-get install {package}), or run scripts/test.sh as root, which installs it.",
            pytrace=False,
        )
    return path


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen | None = None,
    log: Path | None = None,
) -> None:
    """Poll until predicate() is true; fail with the peer's log if it never is or the peer died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}{_tail(log)}")
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f}s{_tail(log)}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def wait_for_port(port: int, timeout: float, what: str, proc=None, log=None) -> None:
    wait_for(lambda: port_open(port), timeout, what, proc, log)


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it does not leave in time; reaps the child either way."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def is_root() -> bool:
    return os.geteuid() == 0


def _tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n--- last lines of " + str(log) + " ---\n" + "\n".join(text)
