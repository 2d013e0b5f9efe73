"""The JSON API under ``/api/v1`` and its OpenAPI document."""

from __future__ import annotations

from aiohttp import web


def setup_api(app: web.Application) -> None:
    from .routes import add_routes

    add_routes(app)
