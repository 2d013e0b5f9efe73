"""The aiohttp application factory: ``create_app(settings) -> web.Application``. No module state."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from . import __version__


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


async def _index(request: web.Request) -> web.Response:
    return web.Response(
        content_type="text/html",
        text="<!doctype html><title>zonewatch</title><h1>zonewatch</h1>"
        "<p>The server is running. The fleet health page arrives with the server and UI work.</p>",
    )


def create_app(settings: Settings) -> web.Application:
    app = web.Application()
    app["settings"] = settings
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/", _index)
    return app
