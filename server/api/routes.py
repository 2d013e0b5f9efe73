"""Read side of the fleet (placeholder until the API lands)."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application) -> None:
    pass
