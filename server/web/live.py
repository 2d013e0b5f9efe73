"""``/events``: Server-Sent Events for the pages — zone status and counts, incidents — as they change.

Each connection subscribes to the service's :class:`~server.events.EventBus` with a bounded queue; a
client too slow to keep up is sent ``event: resync`` (its queue was dropped) and re-reads the page, so it
never holds ingest back. A comment line every ``HEARTBEAT`` seconds keeps proxies from closing the
stream and lets the server notice a client that went away. On reconnect the browser's EventSource
comes back by itself and the page re-reads what it shows (``static/live.js``).
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from ..app import SERVICE
from ..auth.web import require

log = logging.getLogger("zonewatch.web.live")
HEARTBEAT = web.AppKey("live_heartbeat", float)
DEFAULT_HEARTBEAT = 15.0


def frame(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:
    require(request, "viewer")
    bus = request.app[SERVICE].events
    heartbeat = request.app.get(HEARTBEAT, DEFAULT_HEARTBEAT)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    subscription = bus.subscribe()
    try:
        await response.write(b"retry: 3000\n" + frame("hello", {"subscribers": bus.subscribers}))
        while True:
            event = await subscription.next(heartbeat)
            if event is None:
                await response.write(b": heartbeat\n\n")
                continue
            if event.kind == "bye":
                break
            await response.write(frame(event.kind, event.data))
    except ConnectionResetError:
        pass  # the client went away
    finally:
        bus.unsubscribe(subscription)
    return response


async def _close_streams(app: web.Application) -> None:
    app[SERVICE].events.close()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/events", events, name="page_events")
    app.on_shutdown.append(_close_streams)
