"""The in-process event bus: fan-out from any thread, bounded queues, a slow subscriber is told to resync."""

from __future__ import annotations

import asyncio
import threading

from server.events import EventBus


def test_publish_from_a_thread_reaches_every_subscriber_and_a_slow_one_resyncs():
    async def main():
        bus = EventBus(queue_size=4)
        bus.publish("zone", {"n": 0})  # no loop, nobody listens: nothing happens
        bus.attach(asyncio.get_running_loop())
        fast, slow = bus.subscribe(), bus.subscribe()
        got = []

        def producer():
            for n in range(3):
                bus.publish("zone", {"n": n})

        thread = threading.Thread(target=producer)
        thread.start()
        thread.join()
        for _ in range(3):
            got.append((await fast.next(1)).data["n"])
        assert got == [0, 1, 2]
        for n in range(3, 10):  # nobody reads: the queues overflow, publishing never blocks
            bus.publish("zone", {"n": n})
        await asyncio.sleep(0.05)
        events = []
        while (event := await slow.next(0.05)) is not None:
            events.append(event.kind)
        assert "resync" in events and len(events) <= 4 and slow.overflowed and slow.dropped > 0
        bus.unsubscribe(fast)
        bus.close()
        assert (await slow.next(1)).kind == "bye"
        late = bus.subscribe()
        assert (await late.next(1)).kind == "bye"

    asyncio.run(main())


def test_closing_wakes_a_stream_already_waiting_for_its_next_event():
    """The server's shutdown must not wait out a heartbeat (15 s) for each open event stream."""
    async def main():
        bus = EventBus(queue_size=4)
        bus.attach(asyncio.get_running_loop())
        waiting = bus.subscribe()
        pending = asyncio.create_task(waiting.next(3600))
        await asyncio.sleep(0)  # the stream is now waiting on its queue
        bus.close()
        return await asyncio.wait_for(pending, 5)

    assert asyncio.run(main()).kind == "bye"
