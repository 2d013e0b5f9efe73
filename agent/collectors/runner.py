"""Runs collectors side by side in worker threads, times each, and contains their failures."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from protocol import AnyCheck

from .base import Collector

log = logging.getLogger("zonewatch.agent.collectors")


class CollectorRunner:
    """``await runner.run(collector)`` → its checks; never raises for a collector's fault."""

    def __init__(self, max_workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="collector")
        #: name -> seconds the last run took (reported by the agent as its own collection times)
        self.durations: dict[str, float] = {}

    async def run(self, collector: Collector) -> list[AnyCheck]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        future = loop.run_in_executor(self._pool, collector.collect)
        try:
            checks = await asyncio.wait_for(future, collector.options.timeout)
        except TimeoutError:
            checks = collector.failed(f"{collector.name} collector timed out after {collector.options.timeout:g} s")
            log.warning("collector %s timed out after %.1f s", collector.name, collector.options.timeout)
        except Exception as exc:  # a collector's bug must not stop the agent
            checks = collector.failed(f"{collector.name} collector failed: {type(exc).__name__}: {exc}")
            log.exception("collector %s failed", collector.name)
        elapsed = time.perf_counter() - started
        self.durations[collector.name] = elapsed
        for check in checks:
            if check.duration_ms is None:
                check.duration_ms = round(elapsed * 1000, 3)
        return checks

    def run_once(self, collectors: list[Collector]) -> list[AnyCheck]:
        """Run every collector once, side by side (for ``zonewatch-agent check``)."""

        async def all_of() -> list[AnyCheck]:
            results = await asyncio.gather(*(self.run(c) for c in collectors))
            return [check for checks in results for check in checks]

        return asyncio.run(all_of())

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
