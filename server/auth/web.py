"""Sign-in over HTTP: the middleware that says who is asking, ``/login``, ``/logout``.

- ``/healthz``, ``/login``, ``/api/v1/openapi.json``, the signed one-click ack links ``/ack/…`` and the
  pages' stylesheet and script under ``/static/`` are open; everything else needs a session cookie or
  ``Authorization: Bearer <token>``. Without one, the JSON API answers 401 and a page redirects to ``/login``.
- A state-changing request (not GET/HEAD/OPTIONS) made with a session cookie must carry the session's
  CSRF token in ``X-CSRF-Token`` or a ``csrf_token`` form field (403 otherwise). Bearer requests are
  exempt: a browser never adds that header by itself.
- Roles are checked where the route is declared (:mod:`server.api.registry`); :func:`require` for pages.
- The session cookie is HttpOnly, SameSite=Lax, and Secure when the request came over TLS (directly
  or, per ``X-Forwarded-Proto``, through a proxy).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from urllib.parse import quote, urlsplit

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from . import role_at_least, store
from .ratelimit import LoginLimiter
from .store import Principal

log = logging.getLogger("zonewatch.auth")
COOKIE = "zw_session"
LOGIN_COOKIE = "zw_login"  # the login form's own CSRF token (there is no session yet)
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/healthz", "/login", "/api/v1/openapi.json", "/enroll"})  # /enroll needs its token
OPEN_PREFIXES = ("/ack/", "/static/", "/device/")  # /device/ checks device credentials itself
REQUEST_USER = web.RequestKey("zonewatch_user", Principal)
DB = web.AppKey("auth_new_session", Callable)
LIMITER = web.AppKey("auth_limiter", LoginLimiter)


def setup(app: web.Application, new_session: Callable) -> None:
    """Sign-in for ``app``: the middleware first in line, and the /login and /logout routes."""
    app[DB] = new_session
    app[LIMITER] = LoginLimiter()
    app.middlewares.insert(0, auth_middleware)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)


def current_user(request: web.Request) -> Principal | None:
    return request.get(REQUEST_USER)


def client_address(request: web.Request) -> str:
    return (request.remote or "")[:64]


def over_tls(request: web.Request) -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


async def db(request: web.Request, fn, *args):
    """``fn(session, *args)`` in a worker thread with a fresh database session."""
    def run():
        with request.app[DB]() as s:
            return fn(s, *args)
    return await asyncio.to_thread(run)


async def audit(request: web.Request, action: str, target: str = "", detail: str = "",
                actor: str | None = None) -> None:
    """Record a state-changing action by the request's user (or ``actor``), from its address. A failure is
    logged, not raised: the action itself has happened."""
    user = current_user(request)
    who = actor if actor is not None else (user.username if user else "-")
    try:
        await db(request, store.audit, who, action, target, detail, client_address(request))
    except SQLAlchemyError as exc:
        log.error("audit log: could not record %s by %r on %r: %s", action, who, target, str(exc).splitlines()[0])


# -- the middleware ----------------------------------------------------------------------------


async def identify(request: web.Request) -> Principal | bool | None:
    """The principal; None without credentials; False for credentials that are not valid."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        return await db(request, store.token_principal, token.strip()) or False
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return await db(request, store.session_principal, cookie)
    return None


@web.middleware
async def auth_middleware(request: web.Request, handler) -> web.StreamResponse:
    path = request.path
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
        return await handler(request)
    api = path.startswith("/api/")
    try:
        principal = await identify(request)
    except SQLAlchemyError as exc:
        log.warning("sign-in: the database did not answer: %s", str(exc).splitlines()[0][:300])
        return _deny(request, api, 503, "the database did not answer; try again shortly, and see /healthz")
    if not principal:
        if api:
            why = ("the Authorization header holds no valid API token (expected Bearer zwt_…; a revoked token, or "
                   "its user was removed?)" if principal is False else
                   "sign in first: send Authorization: Bearer <token> (`zonewatch user token NAME` makes one) "
                   "or a session cookie from /login")
            return _deny(request, True, 401, why, {"WWW-Authenticate": 'Bearer realm="zonewatch"'})
        raise web.HTTPSeeOther("/login?next=" + quote(request.path_qs if request.method == "GET" else "/", safe=""))
    if request.method not in SAFE_METHODS and principal.via == "session" and not await _csrf_ok(request, principal):
        return _deny(request, api, 403, f"the CSRF token is missing or wrong: send the session's token in "
                                        f"{CSRF_HEADER} (or the {CSRF_FIELD} form field); reload the page to get a "
                                        "fresh one")
    request[REQUEST_USER] = principal
    return await handler(request)


async def _csrf_ok(request: web.Request, principal: Principal) -> bool:
    sent = request.headers.get(CSRF_HEADER)
    try:
        if sent is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            sent = (await request.post()).get(CSRF_FIELD)
        return isinstance(sent, str) and bool(principal.csrf_token) and hmac.compare_digest(
            sent.encode(), principal.csrf_token.encode())
    except (ValueError, UnicodeError):  # a malformed form, or text that is no token
        return False


def _deny(request: web.Request, api: bool, status: int, error: str,
          headers: dict[str, str] | None = None) -> web.Response:
    if api:
        from ..api.errors import error_response

        return error_response(status, error, headers=headers)
    return render_error(request, status, error, headers)


def require(request: web.Request, role: str) -> Principal:
    """For a page handler: the user, who must have ``role`` or above (403 otherwise)."""
    user = current_user(request)
    if user is None or not role_at_least(user.role, role):
        raise web.HTTPForbidden(text=f"this needs the {role} role", content_type="text/plain")
    return user


# -- pages -------------------------------------------------------------------------------------


def render_error(request: web.Request, status: int, error: str,
                 headers: dict[str, str] | None = None) -> web.Response:
    """An error page in the web UI's look and the request's language."""
    from ..web.render import error_page

    return error_page(request, status, error, headers=headers)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this server only (never //elsewhere or a scheme)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in target):
        return "/"
    return target[:2000]


def _login_page(request: web.Request, next_: str, message: str = "", status: int = 200,
                headers: dict[str, str] | None = None, username: str = "") -> web.Response:
    from ..web.render import render

    token = request.cookies.get(LOGIN_COOKIE) or ""
    if len(token) != 43:
        token = secrets.token_urlsafe(32)
    response = render(request, "login.html", {"token": token, "next": next_, "message": message,
                                              "username": username}, status)
    for k, v in (headers or {}).items():
        response.headers[k] = v
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Lax", secure=over_tls(request),
                        path="/login", max_age=3600)
    return response


def _words(request: web.Request):
    from ..web.render import words

    return words(request)


async def login_form(request: web.Request) -> web.Response:
    next_ = safe_next(request.query.get("next"))
    try:
        if (await identify(request)) and request.cookies.get(COOKIE):
            raise web.HTTPSeeOther(next_)
    except SQLAlchemyError:
        pass
    return _login_page(request, next_)


async def login_submit(request: web.Request) -> web.Response:
    form = await request.post()
    username, password = str(form.get("username", "")).strip(), str(form.get("password", ""))
    next_ = safe_next(str(form.get("next", "")))
    sent, expected = str(form.get(CSRF_FIELD, "")), request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return _login_page(request, next_, _words(request).gettext("The sign-in form expired; please try again."),
                           403, username=username)
    address, now = client_address(request), time.time()
    limiter = request.app[LIMITER]
    wait = limiter.retry_after(username, address, now)
    if wait is not None:
        return _login_page(request, next_, _words(request).gettext(
            "Too many failed sign-ins; try again in %(n)s s.", n=wait), 429, {"Retry-After": str(wait)},
            username=username)
    limiter.attempt(username, address, now)
    try:
        user = await db(request, store.authenticate, username[:200], password[:2048]) if username else None
    except SQLAlchemyError:
        limiter.forgive(username, address, now)
        return _login_page(request, next_, _words(request).gettext("The database did not answer; try again shortly."),
                           503)
    if user is None:
        await audit(request, "login_failed", f"user:{username[:64]}", actor=username[:64] or "-")
        return _login_page(request, next_, _words(request).gettext("Wrong user name or password."), 401,
                           username=username)
    limiter.succeeded(username, address, now)
    cookie, _csrf = await db(request, store.new_session, user, address)
    await audit(request, "login", f"user:{user.username}", actor=user.username)
    response = web.HTTPSeeOther(next_)
    response.set_cookie(COOKIE, cookie, httponly=True, samesite="Lax", secure=over_tls(request), path="/")
    response.del_cookie(LOGIN_COOKIE, path="/login")
    raise response


async def logout(request: web.Request) -> web.Response:
    user = current_user(request)
    if user is not None and user.session_hash:
        await db(request, store.end_session, user.session_hash)
        await audit(request, "logout", f"user:{user.username}")
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response
