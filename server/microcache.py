"""Micro-caching for a page everyone keeps open: at most one render per key and second, shared.

IT staff keep the fleet page open all day, and its live script reloads parts of it on every change;
twenty people looking at the same view must not cost twenty renders. A render is shared by everyone
asking for the same key while it runs (single flight) and for ``ttl`` seconds after, and the key
includes the fleet's version, which the ingest writer bumps on every commit that changed a status
(check, printer, device, presence, zone) or added a device — so a change is never hidden, while the
steady stream of "still the same" reports leaves the cache alone; only the "for 2 h 5 min" texts and
what an admin changes from another process can be up to ``ttl`` old.
Only what is the same for every user may be cached (never a CSRF token or a user name).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class MicroCache(Generic[T]):
    def __init__(self, ttl: float = 1.0, max_entries: int = 256) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self._done: OrderedDict[Hashable, tuple[float, T]] = OrderedDict()
        self._running: dict[Hashable, asyncio.Task] = {}
        self.hits = self.misses = 0

    async def get(self, key: Hashable, produce: Callable[[], Awaitable[T]]) -> T:
        """The cached value for ``key``, or ``produce()``'s (errors are passed on, never cached)."""
        entry = self._done.get(key)
        if entry is not None and time.monotonic() - entry[0] < self.ttl:
            self._done.move_to_end(key)
            self.hits += 1
            return entry[1]
        task = self._running.get(key)
        if task is not None:  # someone is rendering it right now: wait for theirs
            self.hits += 1
            return await asyncio.shield(task)
        self.misses += 1
        started = time.monotonic()
        task = asyncio.ensure_future(produce())
        self._running[key] = task
        try:
            value = await asyncio.shield(task)
        finally:
            if self._running.get(key) is task:
                del self._running[key]
        self._done[key] = (started, value)
        self._done.move_to_end(key)
        while len(self._done) > self.max_entries:
            self._done.popitem(last=False)
        return value
