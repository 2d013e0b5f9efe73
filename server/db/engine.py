"""The database engine: SQLite (WAL, fsync on commit) or PostgreSQL, chosen by the URL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a SQLite file's directory is created, and WAL is switched on.

    Ingest acknowledges a message to the broker only after its commit, so commits must be
    durable: SQLite runs with ``synchronous=FULL`` (batching keeps the fsyncs few).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def session_factory(engine: Engine):
    """``with new_session() as s: …`` — sessions that keep loaded objects usable after commit."""

    def new_session() -> Session:
        return Session(engine, expire_on_commit=False)

    return new_session


def describe(engine: Engine) -> str:
    """The URL with the password hidden, for logs and errors."""
    return engine.url.render_as_string(hide_password=True)
