"""The fleet page (``/``): zone counts, the zones in breach first with why and for how long, filters,
search, the district roll-up. Filters are plain GET parameters, so the page works without JavaScript."""

from __future__ import annotations

from aiohttp import web
from markupsafe import Markup

from ..api.routes_fleet import read
from ..app import SERVICE
from .fleet_view import PAGE_SIZE, FleetView, fleet_view, parse_filter
from .render import render, render_part, words


async def fleet_page(request: web.Request) -> web.Response:
    """The page's main part (the same for every user) is rendered once per view, language and fleet
    change (:mod:`server.microcache`); the frame around it (user name, CSRF token) for each request."""
    w = words(request)
    f = parse_filter(request.query, w)
    service = request.app[SERVICE]
    key = ("fleet page", w.lang, tuple(sorted((k, v) for k, v in request.query.items() if k != "lang")),
           service.fleet_version)

    async def main_part() -> tuple[FleetView, Markup]:
        view = await read(request, fleet_view, f, w, PAGE_SIZE)
        return view, render_part(request, "fleet_main.html", {"f": f, "view": view, "page_size": PAGE_SIZE})

    view, main = await service.views.get(key, main_part)
    return render(request, "fleet.html", {"f": f, "view": view, "page_size": PAGE_SIZE, "main_html": main})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", fleet_page, name="page_fleet")
