"""Storage: sqlmodel tables, the engine for SQLite or PostgreSQL, and Alembic migrations."""

from .engine import make_engine, session_factory
from .migrate import upgrade

__all__ = ["make_engine", "session_factory", "upgrade"]
