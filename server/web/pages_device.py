"""The device page (``/devices/{id}``): latest checks (network targets and latency, printer conditions,
supply levels, uptime, kiosk process, content version, clock offset), presence, history, charts of network
latency and supply levels over time, recent commands."""

from __future__ import annotations

from aiohttp import web

from ..api.routes_fleet import read
from ..app import SERVICE
from . import charts
from .device_view import device_view
from .i18n import local_time
from .render import PageError, render, words

WINDOWS = (1, 7)


async def device_page(request: web.Request) -> web.Response:
    w = words(request)
    device_id = request.match_info["device_id"]
    raw = request.query.get("days", "1").strip() or "1"
    if raw not in {str(d) for d in WINDOWS}:
        raise PageError(400, w.gettext("days must be 1 or 7; got %(value)s", value=repr(raw[:40])), parameter="days")
    view = await read(request, device_view, device_id, request.app[SERVICE].codec, int(raw))
    if view is None:
        raise PageError(404, w.gettext("There is no device with the id %(id)s. Its zone's page lists its devices.",
                                       id=repr(device_id[:80])))
    tz = view.timezone

    def when(t: float) -> str:
        return local_time(t, tz)

    by_kind: dict[str, list[dict]] = {k: [] for k in ("network", "printer", "system", "kiosk", "content", "clock")}
    for check in view.checks:
        by_kind.setdefault(check.get("kind", "other"), []).append(check)
    return render(request, "device.html", {
        "d": view.detail, "view": view, "tz": tz, "by_kind": by_kind, "days": int(raw), "windows": WINDOWS,
        "latency_chart": charts.line_chart(view.latency, view.start, view.end, unit=" ms", when=when),
        "supply_chart": charts.line_chart(view.supplies, view.start, view.end, unit="%", y_max=100.0, when=when),
    })


def add_routes(app: web.Application) -> None:
    app.router.add_get("/devices/{device_id}", device_page, name="page_device")
