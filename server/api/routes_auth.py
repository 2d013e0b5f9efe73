"""Who am I (any signed-in user) and the audit log (admins)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from ..auth.store import audit_entries
from ..auth.web import current_user
from .errors import ApiError
from .params import Paging
from .routes_fleet import read
from .schemas import Out, Page, Time, utc

Role = Literal["viewer", "oncall", "admin"]


class Me(Out):
    username: str
    role: Role
    via: Literal["session", "token"] = Field(description="How the request proved who it is.")
    csrf_token: str | None = Field(description="With a session: the token to send in X-CSRF-Token on "
                                               "state-changing calls; null with a bearer token.")


class AuditItem(Out):
    id: int
    at: Time
    actor: str = Field(description="The user (\"cli:<os user>\" from the command line; \"ack link\" for a "
                                   "one-click acknowledgement).")
    action: str = Field(description="login, login_failed, logout, ack_incident, create_silence, end_silence, "
                                    "user_add, …")
    target: str
    detail: str
    address: str = Field(description="The client's address (empty from the command line).")


class AuditPage(Page):
    items: list[AuditItem]


class AuditQuery(Paging):
    pass


async def me(request: web.Request, _query: None) -> Me:
    user = current_user(request)
    if user is None:  # the registry lets nobody in without a user; kept for type checkers
        raise ApiError(401, "sign in first")
    return Me(username=user.username, role=user.role, via=user.via, csrf_token=user.csrf_token)


async def audit_log(request: web.Request, query: AuditQuery) -> AuditPage:
    total, rows = await read(request, audit_entries, query.limit, query.offset)
    return AuditPage(total=total, limit=query.limit, offset=query.offset, items=[
        AuditItem(id=r.id, at=utc(r.at), actor=r.actor, action=r.action, target=r.target, detail=r.detail,
                  address=r.address) for r in rows])
