"""The web UI for people: server-rendered pages (aiohttp-jinja2), live updates over Server-Sent Events.

- :mod:`.render` — templates, what every page gets, error pages; :mod:`.i18n` — languages and wording;
- :mod:`.pages_fleet` ``/`` · :mod:`.pages_zone` ``/zones/{code}`` · :mod:`.pages_device`
  ``/devices/{id}`` · :mod:`.pages_incidents` ``/incidents``, ``/incidents/{id}`` (+ acknowledge, silence)
  · :mod:`.pages_audit` ``/audit`` and :mod:`.pages_enrolment` ``/enrolment`` (admins);
- :mod:`.live` ``/events`` — the event stream the pages' small script (``static/live.js``) listens to.

Sign-in, sessions, CSRF and roles are :mod:`server.auth.web`'s; this package only renders.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"


def setup_pages(app: web.Application) -> None:
    from . import live, pages_audit, pages_device, pages_enrolment, pages_fleet, pages_incidents, pages_zone
    from .i18n import language_middleware
    from .render import error_middleware, setup_templates

    setup_templates(app)
    app.middlewares.append(language_middleware)
    app.middlewares.append(error_middleware)
    app.router.add_static("/static/", STATIC, name="static", append_version=True)
    for module in (pages_fleet, pages_zone, pages_device, pages_incidents, pages_audit, pages_enrolment, live):
        module.add_routes(app)
