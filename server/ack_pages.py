"""The one-click acknowledge page behind the signed links in notifications.

GET shows what the incident is and a button; POST acknowledges. (Chat apps fetch links to show
previews: a GET must never acknowledge anything by itself.)
"""

from __future__ import annotations

import html
import time

from aiohttp import web

from .auth.web import audit
from .incidents.acklink import AckLinkError, check_token


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (f"<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
            f"<title>{html.escape(title)} — zonewatch</title><main style='font:16px system-ui;max-width:32em;"
            f"margin:2em auto'><h1>{html.escape(title)}</h1>{body}</main>")
    return web.Response(text=text, content_type="text/html", status=status)


async def ack_form(request: web.Request) -> web.Response:
    from .app import SERVICE

    service = request.app[SERVICE]
    token = request.match_info["token"]
    engine = service.incidents
    try:
        incident_id, nonce = check_token(engine.secret, token, time.time())
    except AckLinkError as exc:
        return _page("Link not valid", f"<p>{html.escape(str(exc))}</p>", exc.status)
    incident = next((i for i in engine.open.values() if i.id == incident_id), None)
    if incident is None or incident.ack_nonce != nonce:
        return _page("Nothing to acknowledge", f"<p>Incident #{incident_id} is already acknowledged or resolved; "
                     "this link has been used.</p>", 409)
    return _page(f"Incident #{incident.id}", f"<p><b>{html.escape(incident.label)}</b>: "
                 f"{html.escape(incident.summary)}</p><form method=post><button style='font-size:1.2em;"
                 f"padding:.5em 1em'>Acknowledge — I am on it</button></form>")


async def ack_submit(request: web.Request) -> web.Response:
    from .app import SERVICE

    engine = request.app[SERVICE].incidents
    try:
        incident = await engine.acknowledge_link(request.match_info["token"])
    except AckLinkError as exc:
        return _page("Not acknowledged", f"<p>{html.escape(str(exc))}</p>", exc.status)
    await audit(request, "ack_incident", f"/api/v1/incidents/{incident.id}", "one-click link", actor="ack link")
    return _page("Acknowledged", f"<p>Incident #{incident.id} ({html.escape(incident.label)}) is acknowledged. "
                 "Escalation and reminders stop; you will be told when it is resolved.</p>")


def add_ack_routes(app: web.Application) -> None:
    app.router.add_get("/ack/{token}", ack_form)
    app.router.add_post("/ack/{token}", ack_submit)
