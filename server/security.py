"""HTTP hardening for every answer the server gives — the one place security headers are set.

- Headers on every response (pages, API, static files, errors, the event stream): ``X-Content-Type-Options:
  nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer`` (ack links carry a token in their
  path), a Content-Security-Policy — the pages' own (:data:`server.web.render.CSP`: our script and stylesheet
  only, no inline script, ``frame-ancestors 'none'``) on HTML, ``default-src 'none'`` on everything else —
  ``Cache-Control: no-store`` on the API and enrolment (answers may carry tokens and secrets), and
  ``Strict-Transport-Security`` when the request came over TLS.
- Request bodies are limited to :data:`MAX_REQUEST_BYTES` (aiohttp's ``client_max_size``): a bigger one is
  a 413 saying the limit — JSON for the API and device routes, a page otherwise. Routes that stream a large
  upload themselves (content bundles) read ``request.content`` with their own limit.
"""

from __future__ import annotations

import logging

from aiohttp import web

log = logging.getLogger("zonewatch.http")
#: Largest request body read into memory (JSON bodies, forms); the API's own bodies are a few KiB.
MAX_REQUEST_BYTES = 1024 * 1024
#: For anything that is not a page: nothing may load, nothing may frame it.
NON_PAGE_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
NO_STORE_PREFIXES = ("/api/", "/enroll", "/device/")
MACHINE_PREFIXES = ("/api/", "/enroll", "/device/", "/healthz", "/metrics")


def setup_security(app: web.Application) -> None:
    """Call last in the app factory: the size-limit middleware goes first in line, the headers on every answer."""
    app.middlewares.insert(0, body_limit_middleware)
    app.on_response_prepare.append(security_headers)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    from .auth.web import over_tls
    from .web.render import CSP

    headers = response.headers
    for name, value in HEADERS.items():
        headers[name] = value
    html = (response.content_type or "").startswith("text/html")
    headers["Content-Security-Policy"] = CSP if html else NON_PAGE_CSP
    if request.path.startswith(NO_STORE_PREFIXES) and "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"
    if over_tls(request):
        headers["Strict-Transport-Security"] = "max-age=31536000"


def too_large(request: web.Request) -> web.StreamResponse:
    limit = request.client_max_size
    message = (f"the request body is larger than the limit of {limit} bytes ({limit // 1024} KiB) on requests; "
               "send less (a JSON body or form of a few KiB)")
    if request.path.startswith(MACHINE_PREFIXES):
        from .api.errors import error_response

        return error_response(413, message, parameter="body", allowed=f"at most {limit} bytes")
    try:
        from .auth.web import render_error

        return render_error(request, 413, message)
    except Exception:  # the page machinery could not render: say it plainly
        log.exception("413 page for %s failed", request.path[:200])
        return web.Response(status=413, text=message + "\n", content_type="text/plain")


@web.middleware
async def body_limit_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        log.info("request to %s refused: body over %d bytes", request.path[:200], request.client_max_size)
        return too_large(request)
