"""The incidents pages: ``/incidents`` (open / acknowledged / resolved, filters) and ``/incidents/{id}`` (its
timeline), with acknowledge and silence forms for ``oncall`` and above.

The forms POST to ``/incidents/{id}/ack`` and ``/incidents/{id}/silence`` with the session's CSRF token
(checked by the sign-in middleware); the handlers check the role themselves (a viewer gets 403) and go
through the same engine and store as the JSON API, and into the audit log.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from pydantic import ValidationError
from sqlmodel import Session, select

from ..admin import DEFAULT_TIMEZONE
from ..api.errors import ApiError
from ..api.params import IncidentQuery, SilenceBody
from ..api.routes_fleet import read
from ..api.routes_incidents import MAX_ID, check_matchers, incident_detail, list_incidents, silence_window
from ..app import SERVICE
from ..auth.web import audit, require
from ..db.models import Silence, Zone
from ..incidents.rules import RULES
from .render import PageError, digits, page_number, render, words

PAGE_SIZE = 50
FILTERS = ("status", "severity", "rule", "zone")
SILENCE_MINUTES = (30, 60, 240, 1440)


def parse_query(query, w) -> tuple[IncidentQuery, int, str]:
    """Page filters → the API's own query model (so both validate alike); 400 naming the parameter."""
    status = query.get("status", "active").strip() or "active"
    values = {"status": None if status == "all" else status}
    for name in FILTERS[1:]:
        raw = query.get(name, "").strip()
        if raw:
            values[name] = raw
    page = page_number(query, w, 10_000)
    try:
        q = IncidentQuery(**values, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err.get("loc") else "?"
        allowed = {"status": "active, open, acknowledged, resolved, all", "severity": "critical, warning",
                   "rule": ", ".join(RULES)}.get(name, w.gettext("a zone code"))
        raise PageError(400, w.gettext("%(param)s must be one of: %(allowed)s; got %(value)s", param=name,
                                       allowed=allowed, value=repr(str(values.get(name, ""))[:40])),
                        parameter=name) from None
    return q, page, status


def _timezones(session: Session, codes: set[str]) -> dict[str, str]:
    if not codes:
        return {}
    return dict(session.exec(select(Zone.code, Zone.timezone).where(Zone.code.in_(codes))).all())


def _listing(session: Session, q: IncidentQuery):
    page = list_incidents(session, q)
    if page is None:
        return None, {}
    return page, _timezones(session, {i.zone.code for i in page.items if i.zone is not None})


def _detail(session: Session, incident_id: int):
    detail = incident_detail(session, incident_id)
    if detail is None:
        return None, DEFAULT_TIMEZONE
    tz = _timezones(session, {detail.zone.code} if detail.zone else set())
    return detail, tz.get(detail.zone.code, DEFAULT_TIMEZONE) if detail.zone else DEFAULT_TIMEZONE


def incident_id(request: web.Request, w) -> int:
    raw = request.match_info["id"]
    if digits(raw) and len(raw) <= 10 and 1 <= int(raw) <= MAX_ID:
        return int(raw)
    raise PageError(404, w.gettext("There is no incident #%(id)s. The incidents page lists them.", id=raw[:20]))


async def incidents_page(request: web.Request) -> web.Response:
    w = words(request)
    q, page, status = parse_query(request.query, w)
    listing, zones_tz = await read(request, _listing, q)
    if listing is None:
        raise PageError(400, w.gettext("zone: there is no zone with the code %(code)s", code=repr(q.zone)),
                        parameter="zone")
    pages = max(1, -(-listing.total // PAGE_SIZE))
    return render(request, "incidents.html", {"listing": listing, "tz": zones_tz, "q": q, "status": status,
                                              "page": page, "pages": pages, "rules": list(RULES)})


async def incident_page(request: web.Request) -> web.Response:
    w = words(request)
    number = incident_id(request, w)
    detail, tz = await read(request, _detail, number)
    if detail is None:
        raise PageError(404, w.gettext("There is no incident #%(id)s. The incidents page lists them.", id=number))
    return render(request, "incident.html", {"i": detail, "tz": tz, "minutes": SILENCE_MINUTES,
                                             "notice": request.query.get("done", "")[:20]})


async def ack_submit(request: web.Request) -> web.Response:
    user = require(request, "oncall")
    w = words(request)
    number = incident_id(request, w)
    form = await request.post()
    comment = " ".join(str(form.get("comment", "")).split())[:2000]
    engine = request.app[SERVICE].incidents
    if engine is None:
        raise PageError(503, w.gettext("The incident engine is not running yet; try again shortly."))
    try:
        before = await asyncio.to_thread(engine.store.get, number)
        acked = await engine.acknowledge(number, user.username, how="web page")
    except LookupError:
        raise PageError(404, w.gettext("There is no incident #%(id)s. The incidents page lists them.",
                                       id=number)) from None
    if acked.status == "resolved":
        raise PageError(409, w.gettext("Incident #%(id)s is already resolved: there is nothing to acknowledge.",
                                       id=number))
    if before is not None and before.status == "open" and acked.acked_by == user.username and comment:
        await asyncio.to_thread(engine.store.event, number, "comment", comment, actor=user.username)
    await audit(request, "ack_incident", f"/incidents/{number}/ack", comment[:200])
    raise web.HTTPSeeOther(f"/incidents/{number}?done=acked")


async def silence_submit(request: web.Request) -> web.Response:
    user = require(request, "oncall")
    w = words(request)
    number = incident_id(request, w)
    form = await request.post()
    detail, _tz = await read(request, _detail, number)
    if detail is None:
        raise PageError(404, w.gettext("There is no incident #%(id)s. The incidents page lists them.", id=number))
    scope = str(form.get("scope", "zone"))
    raw = str(form.get("minutes", "")).strip()
    if not digits(raw) or len(raw) > 6 or not 1 <= int(raw) <= 31 * 24 * 60:
        raise PageError(400, w.gettext("minutes must be a whole number of minutes from 1 to 44640 (31 days); got "
                                       "%(value)s", value=repr(raw[:20])), parameter="minutes")
    matchers = {"zone": {"zone": detail.zone.code if detail.zone else None},
                "device": {"device": detail.device_id}, "rule": {"rule": detail.rule,
                                                                 "zone": detail.zone.code if detail.zone else None}}
    if scope not in matchers or not any(matchers[scope].values()):
        raise PageError(400, w.gettext("scope must be zone, device or rule (and the incident must have one)"),
                        parameter="scope")
    comment = " ".join(str(form.get("comment", "")).split())[:2000] or w.gettext("silenced from incident #%(id)s",
                                                                                id=number)
    engine = request.app[SERVICE].incidents
    if engine is None:
        raise PageError(503, w.gettext("The incident engine is not running yet; try again shortly."))
    try:
        body = SilenceBody(**{k: v for k, v in matchers[scope].items() if v}, duration_minutes=int(raw),
                           created_by=user.username, comment=comment)
        starts, ends = silence_window(body, time.time())
        await read(request, check_matchers, body)
    except ValidationError as exc:
        raise PageError(400, w.gettext("comment: %(why)s", why=exc.errors()[0].get("msg", "not valid")),
                        parameter="comment") from None
    except ApiError as exc:
        raise PageError(exc.status, exc.error, parameter=exc.parameter) from None
    row = Silence(zone_code=body.zone, device_id=body.device, rule=body.rule, starts_at=starts, ends_at=ends,
                  created_by=user.username, comment=body.comment, created_at=starts)
    row = await asyncio.to_thread(engine.store.add_silence, row)
    await audit(request, "create_silence", f"/incidents/{number}/silence",
                f"silence #{row.id}: {scope} for {raw} min")
    raise web.HTTPSeeOther(f"/incidents/{number}?done=silenced")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/incidents", incidents_page, name="page_incidents")
    app.router.add_get("/incidents/{id}", incident_page, name="page_incident")
    app.router.add_post("/incidents/{id}/ack", ack_submit)
    app.router.add_post("/incidents/{id}/silence", silence_submit)
