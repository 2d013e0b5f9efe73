"""Errors the agent shows a person: what happened, to what, and what to do."""

from __future__ import annotations


class ConfigError(Exception):
    """A config file that cannot be used. ``key`` is the dotted TOML key (``mqtt.keepalive``)."""

    def __init__(self, source: str, key: str | None, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        super().__init__(f"{source}: {key}: {problem}" if key else f"{source}: {problem}")
