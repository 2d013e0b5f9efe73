"""The page micro-cache: one render per key shared by everyone asking at once or within its ttl."""

from __future__ import annotations

import asyncio

import pytest

from server.microcache import MicroCache


def test_concurrent_requests_share_one_render_and_a_new_key_renders_again():
    async def scenario():
        cache: MicroCache[str] = MicroCache(ttl=60)
        renders = []

        async def produce(version):
            renders.append(version)
            await asyncio.sleep(0.05)
            return f"page v{version}"

        first = await asyncio.gather(*(cache.get(("fleet", 1), lambda: produce(1)) for _ in range(20)))
        again = await cache.get(("fleet", 1), lambda: produce(1))
        changed = await cache.get(("fleet", 2), lambda: produce(2))  # the fleet changed: a new key
        return first, again, changed, renders, cache

    first, again, changed, renders, cache = asyncio.run(scenario())
    assert first == ["page v1"] * 20 and again == "page v1" and changed == "page v2"
    assert renders == [1, 2]
    assert (cache.hits, cache.misses) == (20, 2)


def test_an_entry_older_than_its_ttl_is_rendered_again():
    async def scenario():
        cache: MicroCache[int] = MicroCache(ttl=0)
        count = iter(range(10))

        async def produce():
            return next(count)

        return [await cache.get("k", produce) for _ in range(3)]

    assert asyncio.run(scenario()) == [0, 1, 2]


def test_an_error_reaches_everyone_waiting_and_is_not_cached():
    async def scenario():
        cache: MicroCache[str] = MicroCache(ttl=60)
        calls = []

        async def failing():
            calls.append(1)
            await asyncio.sleep(0.01)
            raise ValueError("bad filter")

        results = await asyncio.gather(*(cache.get("k", failing) for _ in range(3)), return_exceptions=True)

        async def fine():
            return "ok"

        return results, await cache.get("k", fine), calls

    results, after, calls = asyncio.run(scenario())
    assert all(isinstance(r, ValueError) for r in results) and calls == [1]
    assert after == "ok"


def test_the_cache_keeps_at_most_max_entries():
    async def scenario():
        cache: MicroCache[int] = MicroCache(ttl=60, max_entries=3)
        for k in range(10):
            await cache.get(k, lambda k=k: asyncio.sleep(0, k))
        return cache

    cache = asyncio.run(scenario())
    assert list(cache._done) == [7, 8, 9]


@pytest.mark.parametrize("ttl", [0.0, 1.0])
def test_a_cancelled_first_asker_does_not_cancel_the_render_for_the_others(ttl):
    async def scenario():
        cache: MicroCache[str] = MicroCache(ttl=ttl)
        started = asyncio.Event()

        async def produce():
            started.set()
            await asyncio.sleep(0.05)
            return "page"

        first = asyncio.create_task(cache.get("k", produce))
        await started.wait()
        second = asyncio.create_task(cache.get("k", produce))
        await asyncio.sleep(0)
        first.cancel()
        return await second

    assert asyncio.run(scenario()) == "page"
