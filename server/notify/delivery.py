"""Delivery: one notice to many receivers at once, each retried on its own, every attempt reported.

Alertmanager's retry stage, for zonewatch: each receiver gets its own asyncio task on one shared
aiohttp session, so a receiver that hangs or is down never delays another. A failed attempt is
retried after an exponentially growing, jittered wait (``first_delay``, doubled each time, at most
``max_delay``) until ``attempts`` are used up or the failure is one that retrying cannot fix
(a 4xx answer, a wrong signature or key). Every attempt's outcome goes to
``on_result(receiver_name, notice, attempt, ok, detail)`` so the incident engine can put it on the
incident's timeline. Nothing here raises into the caller; ``await dispatcher.close()`` cancels
whatever is still waiting or sending.

    async with Dispatcher(DeliveryOptions(attempts=5), on_result=record) as dispatcher:
        dispatcher.dispatch(notice, receivers)                  # returns at once
        outcomes = await dispatcher.deliver(notice, receivers)  # or wait for the final outcomes
    # leaving the block is ``await dispatcher.close()``
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

import aiohttp
import msgspec
from msgspec import Meta

from . import Receiver
from .base import Notice, NotifyError

log = logging.getLogger(__name__)

#: ``on_result(receiver_name, notice, attempt, ok, detail)``; may be a coroutine function.
OnResult = Callable[[str, Notice, int, bool, str], Awaitable[None] | None]
Delay = Annotated[float, Meta(ge=0, le=86400)]
USER_AGENT = "zonewatch-notify/1"


class DeliveryOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How hard to try each receiver (``[delivery]``)."""

    #: Attempts per receiver and notice, the first one included.
    attempts: Annotated[int, Meta(ge=1, le=50)] = 5
    #: Seconds to wait before the second attempt; each further wait doubles.
    first_delay: Delay = 2.0
    #: Longest wait between two attempts, in seconds.
    max_delay: Delay = 120.0
    #: Seconds one attempt may take, unless the receiver sets its own timeout.
    attempt_timeout: Annotated[float, Meta(gt=0, le=600)] = 10.0
    #: Each wait is shortened by a random part of up to this fraction, so that retries from many
    #: notices to a receiver that comes back do not all arrive at once.
    jitter: Annotated[float, Meta(ge=0, le=1)] = 0.5


@dataclass(frozen=True)
class Outcome:
    """How delivering one notice to one receiver ended."""

    receiver: str
    ok: bool
    attempts: int
    detail: str


def backoff(options: DeliveryOptions, failures: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after the ``failures``-th failed attempt (1, 2, …): capped doubling, jittered."""
    base = min(options.max_delay, options.first_delay * 2 ** (failures - 1))
    return base * (1 - options.jitter * rand())


class Dispatcher:
    """Sends notices to receivers concurrently, with retries; owns one aiohttp session."""

    def __init__(self, options: DeliveryOptions | None = None, on_result: OnResult | None = None, *,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.options = options or DeliveryOptions()
        self.on_result = on_result
        self._session = session
        self._own_session = session is None
        self._tasks: set[asyncio.Task[Outcome]] = set()
        self._closed = False

    async def __aenter__(self) -> Dispatcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def pending(self) -> int:
        """Deliveries still sending or waiting to retry."""
        return len(self._tasks)

    def dispatch(self, notice: Notice, receivers: Iterable[Receiver]) -> list[asyncio.Task[Outcome]]:
        """Start delivering ``notice`` to every receiver and return at once (call from the event loop).

        Receivers with ``send_resolved = false`` are left out of resolved notices.
        """
        if self._closed:
            log.warning("notice for incident %s not sent: the dispatcher is closed", notice.incident_id)
            return []
        started = []
        for receiver in receivers:
            if notice.kind == "resolved" and not receiver.notifier.options.send_resolved:
                continue
            task = asyncio.get_running_loop().create_task(
                self._deliver(receiver, notice), name=f"notify {receiver.name} incident {notice.incident_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            started.append(task)
        return started

    async def deliver(self, notice: Notice, receivers: Iterable[Receiver]) -> list[Outcome]:
        """Deliver to every receiver and wait for the final outcomes (cancelled ones are left out).

        Cancelling this wait does not cancel the deliveries; :meth:`close` does.
        """
        tasks = self.dispatch(notice, receivers)
        if tasks:
            await asyncio.wait(tasks)
        return [t.result() for t in tasks if not t.cancelled() and t.exception() is None]

    async def drain(self) -> None:
        """Wait until every delivery started so far has finished (tests, orderly shutdown)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self) -> None:
        """Cancel pending deliveries and retries, wait for them to stop, close the session."""
        self._closed = True
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None), headers={"User-Agent": USER_AGENT})
        return self._session

    async def _deliver(self, receiver: Receiver, notice: Notice) -> Outcome:
        opts = self.options
        timeout = receiver.notifier.options.timeout or opts.attempt_timeout
        detail = ""
        for attempt in range(1, opts.attempts + 1):
            ok, retryable, detail = await self._attempt(receiver, notice, timeout)
            last = ok or not retryable or attempt == opts.attempts
            if not ok:
                if not retryable:
                    detail += "; not retried: trying again cannot help"
                elif last:
                    detail += f"; giving up after {attempt} attempts"
                else:
                    wait = backoff(opts, attempt)
                    detail += f"; next attempt in {wait:.1f} s"
            await self._report(receiver.name, notice, attempt, ok, detail)
            if last:
                return Outcome(receiver.name, ok, attempt, detail)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, receiver: Receiver, notice: Notice, timeout: float) -> tuple[bool, bool, str]:
        """``(ok, retryable, detail)`` of one attempt."""
        try:
            async with asyncio.timeout(timeout):
                return True, False, await receiver.notifier.send(notice, self._http())
        except NotifyError as exc:
            return False, exc.retryable, exc.detail
        except TimeoutError:
            return False, True, f"no answer within {timeout:g} s"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a notifier bug must not end the delivery loop or reach the caller
            log.exception("receiver %s (%s) failed unexpectedly", receiver.name, receiver.kind)
            return False, True, f"{type(exc).__name__}: {exc}"

    async def _report(self, name: str, notice: Notice, attempt: int, ok: bool, detail: str) -> None:
        if self.on_result is None:
            return
        try:
            result = self.on_result(name, notice, attempt, ok, detail)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("on_result callback failed for receiver %s", name)
