"""The aiohttp application factory: ``create_app(settings) -> web.Application``. No module state.

The app owns one :class:`~server.service.FleetService` (database, ingest, health, jobs), opened
when the app starts and closed when it stops, so tests run real servers on free ports in-process.
"""

from __future__ import annotations

import asyncio
import html

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


async def _index(request: web.Request) -> web.Response:
    from .auth.web import CSRF_FIELD, current_user

    user = current_user(request)
    who = ""
    if user is not None:
        csrf = html.escape(user.csrf_token or "", quote=True)
        who = (f"<p>Signed in as <b>{html.escape(user.username)}</b> ({html.escape(user.role)}).</p>"
               + (f"<form method=post action=/logout><input type=hidden name={CSRF_FIELD} value='{csrf}'>"
                  "<button>Sign out</button></form>" if user.via == "session" else ""))
    return web.Response(
        content_type="text/html",
        text="<!doctype html><meta charset=utf-8><title>zonewatch</title>"
        f"<meta name=csrf-token content='{html.escape(user.csrf_token or '', quote=True) if user else ''}'>"
        "<h1>zonewatch</h1>"
        "<p>The server is running. The fleet health page arrives with the web UI; the JSON API is at "
        f"<a href='/api/v1/summary'>/api/v1/summary</a>.</p>{who}",
    )


def create_app(settings: Settings, *, with_broker: bool = True) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[SERVICE] = FleetService(settings, with_broker=with_broker)
    app.cleanup_ctx.append(_service_ctx)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/", _index)
    from .ack_pages import add_ack_routes
    from .api import setup_api
    from .auth.web import setup as setup_auth

    setup_auth(app, app[SERVICE].new_session)
    setup_api(app)
    add_ack_routes(app)
    return app


async def _service_ctx(app: web.Application):
    service = app[SERVICE]
    await asyncio.to_thread(service.open)
    await service.start_incidents()
    service.start_jobs()
    yield
    await service.close_incidents()
    await asyncio.to_thread(service.close)
