"""``/audit`` — the audit log for admins: every state-changing action, who, what, when, from where.

Read-only: the log is written by :func:`server.auth.web.audit` (pages, API) and the admin CLI. Times are
shown in the fleet's default time zone (Asia/Shanghai), as zones without their own are.
"""

from __future__ import annotations

from aiohttp import web

from ..admin import DEFAULT_TIMEZONE
from ..api.routes_fleet import read
from ..auth.store import audit_entries
from ..auth.web import require
from .render import page_number, render, words

PAGE_SIZE = 100


async def audit_page(request: web.Request) -> web.Response:
    require(request, "admin")
    w = words(request)
    page = page_number(request.query, w, 9_999_999, width=7)
    total, entries = await read(request, audit_entries, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    pages = max(1, -(-total // PAGE_SIZE))
    return render(request, "audit.html", {"entries": entries, "total": total, "page": page, "pages": pages,
                                          "tz": DEFAULT_TIMEZONE})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/audit", audit_page, name="page_audit")
