"""The fleet page (``/``): zone counts, the zones in breach first with why and for how long, filters,
search, the district roll-up. Filters are plain GET parameters, so the page works without JavaScript."""

from __future__ import annotations

from aiohttp import web

from ..api.routes_fleet import read
from .fleet_view import PAGE_SIZE, fleet_view, parse_filter
from .render import render, words


async def fleet_page(request: web.Request) -> web.Response:
    w = words(request)
    f = parse_filter(request.query, w)
    view = await read(request, fleet_view, f, w, PAGE_SIZE)
    return render(request, "fleet.html", {"f": f, "view": view, "page_size": PAGE_SIZE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", fleet_page, name="page_fleet")
