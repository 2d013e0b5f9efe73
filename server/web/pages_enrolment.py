"""``/enrolment`` — for admins: make a one-time enrolment token for a zone, and see the tokens made.

The token is shown once, on the page that made it, with the command a technician runs on the kiosk; the
server keeps only its SHA-256 (:mod:`provisioning.enrolment`). The API (``/api/v1/enrolment-tokens``) and
``zonewatch provision token create`` do the same; every token made here is in the audit log (its prefix,
never the token).
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlmodel import select

from provisioning.enrolment import create_token, list_tokens, parse_ttl

from ..admin import ADMIN_ROLES, DEFAULT_TIMEZONE
from ..app import SERVICE
from ..auth.web import audit, require
from ..db.models import Zone
from ..errors import NotFound
from .render import render, words

EXPIRIES = ("1h", "24h", "7d")
SHOWN = 100


async def enrolment_page(request: web.Request) -> web.Response:
    require(request, "admin")
    return await _page(request)


async def create(request: web.Request) -> web.Response:
    user = require(request, "admin")
    w = words(request)
    form = await request.post()
    zone, expires, role = (str(form.get(k, "")).strip()[:64] for k in ("zone", "expires", "role"))
    if expires not in EXPIRIES:
        return await _page(request, error=w.gettext("Choose how long the token lasts."), status=400, form=form)
    if role not in ADMIN_ROLES:
        return await _page(request, error=w.gettext("Choose the device's role."), status=400, form=form)

    def work():
        with request.app[SERVICE].new_session() as s:
            return create_token(s, zone, parse_ttl(expires), role, user.username)

    try:
        token, row = await asyncio.to_thread(work)
    except (NotFound, ValueError):
        return await _page(request, error=w.gettext("There is no zone with the code %(code)s.", code=zone or "—"),
                           status=400, form=form)
    await audit(request, "create_enrolment_token", f"zone {zone}", f"token {row.prefix}…, {role}, {expires}")
    command = f"zonewatch-agent enroll --server {request.url.origin()} --token {token}"
    return await _page(request, made={"token": token, "zone": zone, "role": role, "expires_at": row.expires_at,
                                      "command": command})


async def _page(request: web.Request, *, error: str = "", status: int = 200, form=None, made=None) -> web.Response:
    def work():
        with request.app[SERVICE].new_session() as s:
            zones = s.exec(select(Zone.code, Zone.name).order_by(Zone.code)).all()
            return zones, list_tokens(s)[:SHOWN]

    zones, tokens = await asyncio.to_thread(work)
    return render(request, "enrolment.html", {
        "zones": zones, "tokens": tokens, "error": error, "made": made, "expiries": EXPIRIES,
        "roles": ADMIN_ROLES, "form": {k: str((form or {}).get(k, "")) for k in ("zone", "expires", "role")},
        "tz": DEFAULT_TIMEZONE}, status=status)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/enrolment", enrolment_page, name="page_enrolment")
    app.router.add_post("/enrolment", create, name="page_enrolment_create")
