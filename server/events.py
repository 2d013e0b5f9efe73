"""A small in-process publish/subscribe for what changed: zone status, incidents. Owned by the service.

Producers call :meth:`EventBus.publish` from any thread (the ingest writer's thread, a worker thread
of the incident store); events are fanned out on the event loop to each :class:`Subscription`'s
bounded queue. A subscriber that falls behind never slows a producer down: when its queue is full it
is emptied and marked *overflowed*, and the subscriber is expected to resync from the current state
(the web UI's live updates do exactly that). With no subscribers, publishing costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("zonewatch.events")


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # "zone" | "incident" | "counts"
    data: dict[str, Any]


@dataclass(eq=False)
class Subscription:
    maxsize: int
    queue: asyncio.Queue = field(init=False)
    overflowed: bool = False
    dropped: int = 0

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.maxsize)

    def offer(self, event: Event) -> None:
        """On the loop: queue the event, or drop everything queued and ask for a resync."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += self.queue.qsize() + 1
            while not self.queue.empty():
                self.queue.get_nowait()
            self.overflowed = True
            self.queue.put_nowait(Event("resync", {"dropped": self.dropped}))

    async def next(self, timeout: float) -> Event | None:
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class EventBus:
    def __init__(self, queue_size: int = 256) -> None:
        self.queue_size = queue_size
        self.loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[Subscription] = set()
        self.closed = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    @property
    def wanted(self) -> bool:
        """Whether anyone listens (producers may skip building events otherwise)."""
        return bool(self._subscribers) and self.loop is not None

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """From any thread. Never blocks; silently does nothing when nobody listens or the loop is gone."""
        if not self.wanted:
            return
        event = Event(kind, data)
        with contextlib.suppress(RuntimeError):  # the loop closed (shutting down)
            self.loop.call_soon_threadsafe(self._fan_out, event)

    def _fan_out(self, event: Event) -> None:
        for subscription in list(self._subscribers):
            subscription.offer(event)

    def subscribe(self) -> Subscription:
        """On the loop. Pair with :meth:`unsubscribe` (try/finally)."""
        subscription = Subscription(self.queue_size)
        self._subscribers.add(subscription)
        if self.closed:
            subscription.offer(Event("bye", {}))
        return subscription

    def close(self) -> None:
        """On the loop, when the server stops: every subscriber is sent ``bye`` (streams end, shutdown waits
        for none of them)."""
        self.closed = True
        for subscription in list(self._subscribers):
            # Empty the queue the stream is waiting on (not a new one: the waiter would never see it, and
            # the server's shutdown would wait out a whole heartbeat for each open stream).
            while not subscription.queue.empty():
                subscription.queue.get_nowait()
            subscription.offer(Event("bye", {}))

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
