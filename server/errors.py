"""Errors the server shows a person: what happened, to what, and what to do."""

from __future__ import annotations


class ConfigError(Exception):
    """A settings file that cannot be used. ``key`` is the dotted TOML key (``database.url``)."""

    def __init__(self, source: str, key: str | None, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        super().__init__(f"{source}: {key}: {problem}" if key else f"{source}: {problem}")


class NotFound(LookupError):
    """A zone, device or region named by a person that does not exist."""


class Conflict(ValueError):
    """A change that clashes with what is stored (a zone code already taken, …)."""
