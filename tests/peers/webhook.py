"""A real HTTP receiver on 127.0.0.1 that records what it gets: webhooks and IM robots' endpoints.

Fixture ``webhook_receiver`` (function): a started :class:`WebhookReceiver` — an aiohttp server in a
background thread with its own event loop, on a free port, answering any method on any path.

- ``receiver.url_for("/dingtalk?access_token=t")`` — an address on it.
- ``receiver.requests`` — every request so far, in arrival order: :class:`Recorded` (method, path,
  query, headers, raw body, parsed JSON or None). Recorded when it arrives, before it is answered.
- The default answer is ``200 {"errcode": 0, "errmsg": "ok"}``; ``receiver.set_default(json=…)``
  changes it (e.g. Feishu's ``{"code": 0, "msg": "success"}``).
- ``receiver.respond(status=500, times=2, path="/a")`` — the next 2 requests (to /a; any path when
  None) get that answer instead; ``respond(json={"errcode": 310000, "errmsg": "…"})`` an error code.
- ``receiver.hang(times=1, path="/slow")`` — the next matching request gets no answer until
  ``receiver.release()`` or the receiver stops (so teardown never waits on it).
- ``await receiver.wait_requests(n, path=None)`` — until n (matching) requests have arrived.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from aiohttp import web
from multidict import CIMultiDict

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    query_string: str  # as sent, still percent-encoded
    headers: CIMultiDict[str]  # case-insensitive
    body: bytes
    json: Any


@dataclass
class _Script:
    path: str | None
    times: int
    status: int = 200
    json: Any = None
    body: bytes | None = None
    hang: bool = False


class WebhookReceiver:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._scripts: list[_Script] = []
        self._default: tuple[int, Any] = (200, {"errcode": 0, "errmsg": "ok"})
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._release: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, name="webhook-receiver", daemon=True)
        self.port = 0

    # -- test side -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def url_for(self, path: str) -> str:
        return self.url + (path if path.startswith("/") else "/" + path)

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def set_default(self, status: int = 200, json: Any = None) -> None:
        with self._lock:
            self._default = (status, json)

    def respond(self, status: int = 200, json: Any = None, body: bytes | None = None, times: int = 1,
                path: str | None = None) -> None:
        with self._lock:
            self._scripts.append(_Script(path, times, status, json, body))

    def hang(self, times: int = 1, path: str | None = None) -> None:
        with self._lock:
            self._scripts.append(_Script(path, times, hang=True))

    def release(self) -> None:
        """Let every hanging request (and any later one told to hang) be answered."""
        if self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    async def wait_requests(self, n: int, path: str | None = None, timeout: float = 15.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.requests if path is None else self.requests_to(path)
            if len(got) >= n:
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(got)} of {n} requests to {path or 'any path'} arrived")
            await asyncio.sleep(0.01)

    # -- server side -----------------------------------------------------------------------
    def _next_script(self, path: str) -> _Script | None:
        with self._lock:
            for script in self._scripts:
                if script.path in (None, path) and script.times > 0:
                    script.times -= 1
                    return script
            return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed = msgspec.json.decode(body) if body else None
        except msgspec.DecodeError:
            parsed = None
        record = Recorded(request.method, request.path, dict(request.query), request.raw_path.partition("?")[2],
                          CIMultiDict(request.headers), body,
                          parsed)
        with self._lock:
            self._requests.append(record)
        script = self._next_script(request.path)
        if script is not None and script.hang:
            assert self._release is not None
            await self._release.wait()
            return web.json_response(self._default[1], status=self._default[0])
        if script is not None:
            if script.body is not None:
                return web.Response(body=script.body, status=script.status, content_type="text/plain")
            return web.json_response(script.json, status=script.status)
        status, json = self._default
        return web.json_response(json, status=status)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, HOST, 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self) -> WebhookReceiver:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("webhook receiver did not start")
        return self

    def stop(self) -> None:
        """Stop listening (a test may stop it early; the fixture's stop is then a no-op)."""
        if self._loop.is_closed() or not self._thread.is_alive():
            return
        self.release()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __repr__(self) -> str:
        return f"<WebhookReceiver {self.url}>"


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A recording HTTP receiver on a free 127.0.0.1 port, stopped after the test."""
    receiver = WebhookReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()
