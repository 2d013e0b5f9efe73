"""Rendering pages: the jinja2 environment (autoescaped, i18n), what every template gets, error pages.

Handlers call :func:`render`. A handler that finds bad input raises :class:`PageError` (400 naming the
parameter, or 404 naming what was not found); :func:`error_middleware` turns that — and aiohttp's own
404/403/405 — into a page in the request's language. Anything else that goes wrong is logged and shown
as a 500 page that says so; the JSON API keeps its own JSON errors.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web
from markupsafe import Markup
from sqlalchemy.exc import SQLAlchemyError

from ..auth import role_at_least
from ..auth.web import current_user
from . import i18n

log = logging.getLogger("zonewatch.web")
TEMPLATES = Path(__file__).parent / "templates"
CATALOGS = web.AppKey("web_catalogs", dict)
#: Paths whose errors are not pages (JSON API, event stream, static files, signed ack links).
NOT_PAGES = ("/api/", "/events", "/static/", "/ack/", "/healthz")
#: Pages run only our own script and stylesheet: an injected <script> or style would not run even if it got in.
#: server/security.py sends it with every HTML answer (the one place security headers are set).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


class PageError(Exception):
    """Bad input or a missing thing, shown as a page: ``PageError(400, "…", parameter="status")``."""

    def __init__(self, status: int, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.parameter = status, message, parameter


def digits(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also takes ``²``, which ``int`` refuses)."""
    return text.isascii() and text.isdigit()


def page_number(query, words, most: int, width: int = 6) -> int:
    """The ``page`` query parameter (1 when absent): at most ``width`` digits, from 1 to ``most``; else a 400
    naming it."""
    raw = query.get("page", "1").strip() or "1"
    if not digits(raw) or len(raw) > width or not 1 <= int(raw) <= most:
        raise PageError(400, words.gettext("page must be a page number, 1 or more; got %(value)s",
                                           value=repr(raw[:40])), parameter="page")
    return int(raw)


def setup_templates(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True, default=True),
        extensions=["jinja2.ext.i18n"], undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.newstyle_gettext = True
    env.globals.update(local_time=i18n.local_time, iso=i18n.iso_utc, languages=i18n.LANGUAGES)
    app[CATALOGS] = i18n.load_catalogs()


def words(request: web.Request) -> i18n.Words:
    lang = i18n.language(request)
    return i18n.Words(lang, request.app[CATALOGS].get(lang) or request.app[CATALOGS]["en"])


def url_with(request: web.Request, **changes) -> str:
    """This page's URL with some query parameters changed (None removes one)."""
    query = {k: v for k, v in request.query.items() if k not in changes and k != "lang"}
    query.update({k: str(v) for k, v in changes.items() if v is not None and v != ""})
    return request.path + ("?" + urlencode(query) if query else "")


def _context(request: web.Request, context: dict | None) -> dict:
    w = words(request)
    user = current_user(request)
    base = {
        "w": w, "lang": w.lang, "user": user, "csrf": (user.csrf_token or "") if user else "",
        "can_act": bool(user and role_at_least(user.role, "oncall")), "path": request.path,
        "url_with": lambda **kw: url_with(request, **kw), "now": time.time(),
        **i18n.template_callables(w),
    }
    base.update(context or {})
    return base


def render_part(request: web.Request, template: str, context: dict | None = None) -> Markup:
    """A template that is part of a page, as HTML, with the same context as :func:`render` (to cache it)."""
    return Markup(aiohttp_jinja2.get_env(request.app).get_template(template).render(_context(request, context)))


def render(request: web.Request, template: str, context: dict | None = None, status: int = 200) -> web.Response:
    w = words(request)
    response = aiohttp_jinja2.render_template(template, request, _context(request, context), status=status)
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("Content-Language", w.lang.replace("_", "-"))
    return response


def error_page(request: web.Request, status: int, message: str, parameter: str | None = None,
               headers: dict[str, str] | None = None) -> web.Response:
    response = render(request, "error.html", {"status": status, "message": message, "parameter": parameter},
                      status=status)
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    if request.path.startswith(NOT_PAGES):
        return await handler(request)
    w = words(request)
    try:
        return await handler(request)
    except PageError as exc:
        return error_page(request, exc.status, exc.message, exc.parameter)
    except web.HTTPNotFound:
        return error_page(request, 404, w.gettext("There is no page at this address."))
    except web.HTTPMethodNotAllowed as exc:
        return error_page(request, 405, w.gettext("This page cannot be used that way."),
                          headers={"Allow": ",".join(sorted(exc.allowed_methods))})
    except web.HTTPForbidden:
        return error_page(request, 403, w.gettext("Your role does not allow this. Ask an admin for the oncall role "
                                                  "if you need to acknowledge or silence incidents."))
    except web.HTTPException:
        raise
    except SQLAlchemyError as exc:
        log.warning("page %s: the database did not answer: %s", request.path, str(exc).splitlines()[0][:300])
        return error_page(request, 503, w.gettext("The database did not answer; try again shortly."))
    except Exception:
        log.exception("page %s failed", request.path)
        return error_page(request, 500, w.gettext("Something went wrong on the server showing this page; "
                                                  "it has been logged."))
