"""The on-disk spool: every report is written here first and removed only once the broker
acknowledged it (QoS 1 PUBACK).

One SQLite file (stdlib ``sqlite3``, WAL, ``synchronous=FULL``) holds the queued reports and
the device's sequence counter, so a report survives a broker outage, a network outage, an
agent restart and a power cut, and ``seq`` never repeats. The spool is bounded by count,
bytes and age; past a bound the *oldest* reports are dropped and counted, and the count
travels in every report (``spool_dropped``) so the loss is visible, never silent.

The spool is used from one thread (the agent's event loop).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reports (
    seq INTEGER PRIMARY KEY,
    created REAL NOT NULL,
    size INTEGER NOT NULL,
    payload BLOB NOT NULL
);
INSERT OR IGNORE INTO counters VALUES ('next_seq', 1), ('dropped', 0);
"""


@dataclass(frozen=True)
class SpoolLimits:
    max_reports: int = 100_000
    max_bytes: int = 256 * 1024 * 1024
    max_age: float = 14 * 86400.0


class SpoolError(Exception):
    """The spool file cannot be used (permissions, disk, corruption): says which file and what to do."""


class Spool:
    def __init__(self, path: Path, limits: SpoolLimits = SpoolLimits()) -> None:
        self.path = Path(path)
        self.limits = limits
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise SpoolError(
                f"cannot open the report spool {self.path}: {exc}. Check that the agent's data_dir "
                "exists, is writable by the agent user and the disk is not full."
            ) from exc

    # -- writing --------------------------------------------------------------------------
    def append(self, build: Callable[[int, int, int], bytes], now: float | None = None) -> int:
        """Allocate the next ``seq``, store ``build(seq, dropped, backlog)`` durably; return seq.

        ``dropped`` is the total number of reports this spool ever dropped and ``backlog`` the
        number still waiting, both as they stand when this report is written.
        """
        now = time.time() if now is None else now
        with self._transaction():
            seq = self._counter("next_seq")
            self._trim(now, incoming=1)
            backlog = self._db.execute("SELECT COUNT(*) FROM reports").fetchone()[0]
            payload = build(seq, self._counter("dropped"), backlog)
            self._db.execute("INSERT INTO reports VALUES (?, ?, ?, ?)", (seq, now, len(payload), payload))
            self._db.execute("UPDATE counters SET value = ? WHERE name = 'next_seq'", (seq + 1,))
            self._trim(now, incoming=0)
        return seq

    def _trim(self, now: float, incoming: int) -> None:
        """Drop the oldest reports while any bound is exceeded (counted in ``dropped``)."""
        lim = self.limits
        count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM reports").fetchone()
        dropped, freed, last = 0, 0, None
        for seq, row_size, created in self._db.execute("SELECT seq, size, created FROM reports ORDER BY seq"):
            too_old = created < now - lim.max_age
            too_many = count - dropped + incoming > lim.max_reports
            too_big = size - freed > lim.max_bytes
            if not (too_old or too_many or too_big):
                break
            dropped, freed, last = dropped + 1, freed + row_size, seq
        if dropped:
            self._db.execute("DELETE FROM reports WHERE seq <= ?", (last,))
            self._db.execute("UPDATE counters SET value = value + ? WHERE name = 'dropped'", (dropped,))

    # -- reading and acknowledging --------------------------------------------------------
    def pending(self, after: int = 0, limit: int = 100) -> list[tuple[int, bytes]]:
        """Reports still waiting, oldest first, with ``seq`` greater than ``after``."""
        return self._db.execute(
            "SELECT seq, payload FROM reports WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
        ).fetchall()

    def remove(self, seq: int) -> None:
        """The broker acknowledged ``seq``: forget it."""
        self._db.execute("DELETE FROM reports WHERE seq = ?", (seq,))

    @property
    def backlog(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM reports").fetchone()[0]

    @property
    def dropped(self) -> int:
        return self._counter("dropped")

    @property
    def next_seq(self) -> int:
        return self._counter("next_seq")

    def close(self) -> None:
        self._db.close()

    # -- helpers --------------------------------------------------------------------------
    def _counter(self, name: str) -> int:
        return self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0]

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
