"""The aiohttp application factory: ``create_app(settings) -> web.Application``. No module state.

The app owns one :class:`~server.service.FleetService` (database, ingest, health, jobs), opened
when the app starts and closed when it stops, so tests run real servers on free ports in-process.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from . import __version__
from .service import FleetService
from .settings import Settings

SERVICE = web.AppKey("service", FleetService)
SETTINGS = web.AppKey("settings", Settings)


async def _healthz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    checks = await asyncio.to_thread(service.health)
    ok = all(part["ok"] for part in checks.values())
    body = {"status": "ok" if ok else "failing", "version": __version__, **checks}
    return web.json_response(body, status=200 if ok else 503)


def create_app(settings: Settings, *, with_broker: bool = True) -> web.Application:
    from .security import MAX_REQUEST_BYTES, setup_security

    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[SETTINGS] = settings
    app[SERVICE] = FleetService(settings, with_broker=with_broker)
    app.cleanup_ctx.append(_service_ctx)
    app.router.add_get("/healthz", _healthz)
    from .ack_pages import add_ack_routes
    from .api import setup_api
    from .auth.web import setup as setup_auth
    from .web import setup_pages

    setup_auth(app, app[SERVICE].new_session)
    setup_api(app)
    add_ack_routes(app)
    setup_pages(app)
    setup_security(app)  # last: its size-limit middleware first in line; headers on every answer
    return app


async def _service_ctx(app: web.Application):
    service = app[SERVICE]
    await asyncio.to_thread(service.open)
    await service.start_incidents()
    service.start_jobs()
    yield
    await service.close_incidents()
    await asyncio.to_thread(service.close)
