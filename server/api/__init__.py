"""The JSON API under ``/api/v1`` and its OpenAPI document."""

from __future__ import annotations

from aiohttp import web


def setup_api(app: web.Application) -> None:
    from .routes import add_routes
    from .routes_provision import enroll

    add_routes(app)
    from ..content.api import setup_content

    setup_content(app)  # content: the bundle store and signing key; device download routes under /device/
    # device-facing, outside /api/v1: open in the auth middleware, but it needs a one-time enrolment token
    app.router.add_post("/enroll", enroll)
