"""A private mosquitto broker per test session (and per test, on demand).

Each broker listens only on 127.0.0.1 on a free port, keeps its config, log and
persistence database in its own directory, and is always stopped at teardown.

Fixtures:

- ``mosquitto`` (session): one anonymous, persistent broker shared by all tests.
  Do not stop or restart it; use ``mosquitto_factory`` for that.
- ``mosquitto_factory`` (function): ``make(password_file=None, acl_file=None,
  extra_conf="") -> Mosquitto``, started; every broker it made is stopped after the test.

Started as root, mosquitto switches to the ``mosquitto`` user by default, which cannot
open files in pytest's 0700 tmp dirs (log, persistence, password/ACL files). Like the
embedded broker the server supervises, a test broker runs as the user that started it:
as root the config says ``user root``.

mosquitto writes its persistence database on a clean stop (SIGTERM) and every
``autosave_interval`` seconds (default 1800), so after ``kill()`` the state since the
last save is lost, as in a real crash. ``extra_conf`` is appended last and overrides.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

import pytest

from provisioning.broker import hash_password, write_password_file  # noqa: F401 (re-exported)
from tests.peers._util import free_port, is_root, require_binary, wait_for, wait_for_port

HOST = "127.0.0.1"
START_TIMEOUT = 10.0


class Mosquitto:
    """One private mosquitto broker on 127.0.0.1 with its own config, log and persistence."""

    host = HOST

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        extra_conf: str = "",
        max_queued_messages: int = 0,
        max_inflight_messages: int = 1000,
    ) -> None:
        self.binary = require_binary("mosquitto", "mosquitto")
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.password_file = Path(password_file) if password_file else None
        self.acl_file = Path(acl_file) if acl_file else None
        self.extra_conf = extra_conf
        self.max_queued_messages = max_queued_messages
        self.max_inflight_messages = max_inflight_messages
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.persistence_dir = self.workdir / "persistence"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def config_text(self) -> str:
        """The mosquitto.conf this broker runs with."""
        lines = [
            f"listener {self.port} {self.host}",
            "persistence true",
            f"persistence_location {self.persistence_dir}/",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            f"max_queued_messages {self.max_queued_messages}",
            f"max_inflight_messages {self.max_inflight_messages}",
        ]
        if is_root():
            lines.append("user root")  # see the module docstring
        if self.password_file is not None:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        return "\n".join(lines) + "\n" + self.extra_conf + "\n"

    def start(self) -> Self:
        """Write the config and start the broker; returns once it accepts TCP connections."""
        if self.running:
            raise RuntimeError(f"mosquitto on {self.url} is already running")
        self.persistence_dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config_text())
        with self.log_path.open("ab") as log:  # early errors go to stderr, before the log opens
            offset = log.tell()
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.workdir,
            )
        try:
            # "running" is logged once our listener is bound; an open port alone could be
            # someone else's (a port taken since free_port() makes mosquitto exit).
            wait_for(lambda: self._logged(b" running", offset), START_TIMEOUT,
                     f"mosquitto on {self.url}", self.proc, self.log_path)
            wait_for_port(self.port, START_TIMEOUT, f"mosquitto on {self.url}", self.proc,
                          self.log_path)
        except BaseException:
            self._signal_and_wait(signal.SIGKILL)
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Clean shutdown (SIGTERM): saves the persistence database. No-op if not running."""
        if self.running:
            self._signal_and_wait(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing saved since the last autosave."""
        if self.running:
            self._signal_and_wait(signal.SIGKILL)

    def restart(self) -> Self:
        """Stop (cleanly, if still running) and start again on the same port and persistence."""
        self.stop()
        return self.start()

    def reload(self, timeout: float = START_TIMEOUT) -> None:
        """SIGHUP: re-read password and ACL files; returns once the broker has reloaded.

        The reload runs in mosquitto's single-threaded main loop right after it logs
        "Reloading config.", so connections made after this returns see the new files.
        """
        if not self.running or self.proc is None:
            raise RuntimeError(f"mosquitto on {self.url} is not running; cannot reload")
        offset = self.log_path.stat().st_size
        self.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self._logged(b"Reloading config.", offset), timeout,
                 f"mosquitto on {self.url} reload", self.proc, self.log_path)

    def _logged(self, text: bytes, offset: int) -> bool:
        """Whether the log has a line containing text after byte offset."""
        with self.log_path.open("rb") as f:
            f.seek(offset)
            return any(text in line for line in f)

    def log_text(self) -> str:
        """Everything the broker has logged so far (for assertions and debugging)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _signal_and_wait(self, sig: signal.Signals, timeout: float = 10.0) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
                raise RuntimeError(
                    f"mosquitto on {self.url} ignored {sig.name} for {timeout:.0f}s; killed it"
                ) from None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Mosquitto {self.url} {state} in {self.workdir}>"


MosquittoFactory = Callable[..., Mosquitto]


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One anonymous persistent broker shared by the whole session. Do not stop it."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    try:
        yield broker.start()
    finally:
        broker.stop()


@pytest.fixture
def mosquitto_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoFactory]:
    """``make(password_file=None, acl_file=None, extra_conf="")`` -> a started private broker."""
    brokers: list[Mosquitto] = []

    def make(
        password_file: Path | None = None, acl_file: Path | None = None, extra_conf: str = "",
    ) -> Mosquitto:
        broker = Mosquitto(
            tmp_path_factory.mktemp("mosquitto"),
            password_file=password_file, acl_file=acl_file, extra_conf=extra_conf,
        )
        brokers.append(broker)
        return broker.start()

    try:
        yield make
    finally:
        errors: list[BaseException] = []
        for broker in brokers:
            try:
                broker.stop()
            except BaseException as exc:  # stop the others before reporting
                errors.append(exc)
        if errors:
            raise errors[0]
