"""A private PostgreSQL cluster per test session, and a fresh database per test.

The cluster lives in its own temporary directory (initdb), listens only on
127.0.0.1:PORT plus a unix socket in that directory, trusts local connections and
trades durability for speed (fsync off). It is always stopped and removed at teardown.

initdb and postgres refuse to run as root, so as root they run as the ``postgres``
system user (Debian package ``postgresql``) in a directory it owns under /tmp; pytest's
own tmp dirs (/tmp/pytest-of-root, mode 0700) are not reachable for it.

Fixtures:

- ``postgres`` (session): the ``PostgresCluster``; ``postgres.dsn`` is a libpq URL
  for the ``postgres`` database, ``postgres.create_database(name)`` a SQLAlchemy URL.
- ``postgres_url`` (function): a SQLAlchemy URL (``postgresql+psycopg://…``) of a fresh
  empty database, dropped after the test.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import psycopg
import pytest
from psycopg import sql

from tests.peers._util import free_port, is_root, require_binary, wait_for, wait_for_port

HOST = "127.0.0.1"
SUPERUSER = "postgres"
START_TIMEOUT = 30.0
# Speed over durability: a test cluster is thrown away after the session.
SERVER_SETTINGS = {
    "listen_addresses": HOST,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "64MB",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "log_connections": "off",
}


def postgres_bindir() -> Path:
    """Directory holding initdb/postgres: on PATH, else the newest /usr/lib/postgresql/N/bin."""
    if found := shutil.which("initdb"):
        return Path(found).resolve().parent  # e.g. /usr/local/bin/initdb -> the real bin dir
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(m.group(1)) if (m := re.search(r"/(\d+)/bin/", p)) else 0,
    )
    if not candidates:
        require_binary("initdb", "postgresql")  # fails the test, naming the package
    return Path(candidates[-1]).parent


class PostgresCluster:
    """A throw-away PostgreSQL cluster on 127.0.0.1 with trust authentication."""

    host = HOST
    user = SUPERUSER

    def __init__(self, port: int | None = None) -> None:
        self.bindir = postgres_bindir()
        self.port = port or free_port()
        self.basedir = Path(tempfile.mkdtemp(prefix="zw-postgres-"))
        self.datadir = self.basedir / "data"
        self.socketdir = self.basedir / "run"
        self.log_path = self.basedir / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # As root everything runs as the postgres system user; otherwise as ourselves.
        self._as: dict[str, Any] = (
            {"user": "postgres", "group": "postgres", "extra_groups": []} if is_root() else {}
        )

    @property
    def dsn(self) -> str:
        """libpq URL of the default ``postgres`` database."""
        return self.url("postgres", driver="postgresql")

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Self:
        """initdb (first time only) and start the server; returns once it accepts queries."""
        if self.running:
            raise RuntimeError(f"postgres on {self.host}:{self.port} is already running")
        if not self.datadir.exists():
            self._initdb()
        args = [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port),
                "-k", str(self.socketdir)]
        for name, value in SERVER_SETTINGS.items():
            args += ["-c", f"{name}={value}"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.basedir,
                **self._as,
            )
        try:
            what = f"postgres on {self.host}:{self.port}"
            wait_for(self._accepts_queries, START_TIMEOUT, what, self.proc, self.log_path)
            wait_for_port(self.port, START_TIMEOUT, what, self.proc, self.log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def _initdb(self) -> None:
        self.socketdir.mkdir()
        if is_root():
            for path in (self.basedir, self.socketdir):
                shutil.chown(path, "postgres", "postgres")
        log = self.basedir / "initdb.log"
        with log.open("wb") as out:
            rc = subprocess.run(
                [str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", self.user,
                 "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.basedir, env={**os.environ, "LC_ALL": "C"}, **self._as,
            ).returncode
        if rc != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"initdb into {self.datadir} failed ({rc}):\n{tail}")

    def _accepts_queries(self) -> bool:
        # Through our own unix socket: a server answering on the TCP port could be
        # someone else's (our postmaster exits if the port was taken meanwhile).
        try:
            with psycopg.connect(host=str(self.socketdir), port=self.port, user=self.user,
                                 dbname="postgres", connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:  # refused, or "the database system is starting up"
            return False
        return True

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT: roll back sessions, disconnect clients). No-op if stopped."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        for sig in (signal.SIGINT, signal.SIGQUIT):  # fast, then immediate
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                continue
        proc.kill()  # its children notice the postmaster's death and exit by themselves
        proc.wait(timeout)
        raise RuntimeError(f"postgres on {self.host}:{self.port} ignored SIGINT/SIGQUIT")

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.basedir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its SQLAlchemy URL."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever still uses it."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<PostgresCluster {self.host}:{self.port} {state} in {self.basedir}>"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One private cluster for the whole session, removed at its end."""
    cluster = PostgresCluster()
    try:
        yield cluster.start()
    finally:
        cluster.remove()


@pytest.fixture
def postgres_url(postgres: PostgresCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """SQLAlchemy URL of a fresh empty database for this test, dropped after it."""
    stem = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    name = f"t_{stem}_{uuid.uuid4().hex[:8]}"
    url = postgres.create_database(name)
    try:
        yield url
    finally:
        postgres.drop_database(name)
