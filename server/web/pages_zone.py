"""The zone page (``/zones/{code}``): the self-service area — query devices and printers with status and
condition in plain words — opening hours and whether open now, open incidents, the state history of the
last 7 or 30 days as a timeline, with the availability during opening hours."""

from __future__ import annotations

import time

from aiohttp import web

from ..api.routes_fleet import read
from ..opening_hours import WEEKDAYS, is_open
from . import charts
from .availability import opening_intervals
from .i18n import local_time
from .render import PageError, render, words
from .zone_view import zone_view

WINDOWS = (7, 30)


def parse_days(query, w) -> int:
    raw = query.get("days", "7").strip() or "7"
    if raw not in {str(d) for d in WINDOWS}:
        raise PageError(400, w.gettext("days must be 7 or 30; got %(value)s", value=repr(raw[:40])), parameter="days")
    return int(raw)


async def zone_page(request: web.Request) -> web.Response:
    w = words(request)
    code = request.match_info["code"]
    days = parse_days(request.query, w)
    view = await read(request, zone_view, code, days)
    if view is None:
        raise PageError(404, w.gettext("There is no zone with the code %(code)s. The fleet page lists every zone.",
                                       code=repr(code[:80])))
    d = view.detail
    now = time.time()
    tz = d.timezone
    opens = opening_intervals(d.opening_hours, d.holidays, tz, view.start, view.end)
    timeline = charts.timeline(view.segments, view.start, view.end, opens,
                               label=lambda s: w.gettext("State history") if s == "timeline" else w.status(s),
                               when=lambda t: local_time(t, tz))
    hours = [(w.weekday(day), d.opening_hours.get(day, [])) for day in WEEKDAYS]
    return render(request, "zone.html", {
        "z": d, "view": view, "days": days, "windows": WINDOWS, "timeline": timeline, "hours": hours,
        "open_now": is_open(d.opening_hours, d.holidays, tz, now), "local_now": local_time(now, tz),
        "query_devices": [x for x in d.devices if x.role in ("kiosk", "desktop")],
        "other_devices": [x for x in d.devices if x.role not in ("kiosk", "desktop")],
    })


def add_routes(app: web.Application) -> None:
    app.router.add_get("/zones/{code}", zone_page, name="page_zone")
