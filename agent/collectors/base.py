"""What every collector is: a name, its own documented options, and ``collect()``.

A collector is synchronous and may block (pycups, sockets); the runner calls it in a worker
thread with a timeout, times it, and turns an exception into ``unknown`` checks carrying the
error, so one broken collector never takes the others down (node_exporter's rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from protocol import AnyCheck

Seconds = Annotated[float, Meta(gt=0, le=86400)]


class CollectorOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Options every collector has, under ``[collectors.<name>]``."""

    #: Run this collector at all.
    enabled: bool = True
    #: Seconds between runs. Local checks run far more often than reports are sent, so a
    #: status change is noticed within ``every`` seconds and reported at once.
    every: Seconds = 5.0
    #: Seconds one run may take before its checks are reported ``unknown`` (timed out).
    timeout: Seconds = 10.0


@dataclass
class AgentContext:
    """What collectors may know about the agent they run in."""

    device_id: str
    data_dir: Path
    #: Latest measured offset of this clock against the server's (seconds), if any.
    clock_offset: float | None = None
    #: Where content bundles live (content collector; the content push installs there).
    content_dir: Path | None = None
    extra: dict = field(default_factory=dict)


class Collector:
    """Base class: set ``name`` and ``Options``; implement ``collect`` and ``failed``."""

    name: ClassVar[str]
    Options: ClassVar[type[CollectorOptions]] = CollectorOptions

    def __init__(self, options: CollectorOptions, context: AgentContext) -> None:
        self.options = options
        self.context = context

    def collect(self) -> list[AnyCheck]:
        raise NotImplementedError

    def failed(self, error: str) -> list[AnyCheck]:
        """The checks to report when ``collect`` raised or timed out: ``unknown`` with the error."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the collector holds (connections, subscriptions)."""
