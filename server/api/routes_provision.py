"""Enrolment over HTTP: the device-facing ``POST /enroll`` (open, but it needs a one-time token) and the admin
API for enrolment tokens, revoking a device and rotating its secret.

After every change the broker's password and ACL files are rewritten and mosquitto is reloaded
(``[provisioning]`` settings; :mod:`provisioning.sync`). A token or a secret is never logged or audited.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy.exc import SQLAlchemyError

from provisioning.broker import BrokerError
from provisioning.enrolment import EnrolmentRefused, create_token, enrol, list_tokens, revoke, rotate
from provisioning.sync import sync_broker

from ..auth.web import audit, client_address, current_user
from ..errors import Conflict, NotFound
from .errors import ApiError, error_response
from .params import DEVICE_PATTERN, Body, Paging, Text64
from .schemas import Out, Page, Time, utc

log = logging.getLogger("zonewatch.enrol")
MAX_ENROL_BODY = 16 * 1024
ENROL_FIELDS = {"token": 200, "device_id": 64, "name": 200, "zone": 64}
LIST_DEVICES = "GET /api/v1/devices lists them"


# -- the device side -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EnrolRequest:
    token: str
    device_id: str | None = None
    name: str = ""
    zone: str | None = None


def parse_enrol_request(body: bytes, content_type: str) -> EnrolRequest:
    """The JSON body of ``POST /enroll``; :class:`EnrolmentRefused` (400/413/415) says what is wrong."""
    if content_type != "application/json":
        raise EnrolmentRefused(415, "send the enrolment request as JSON (Content-Type: application/json)")
    if len(body) > MAX_ENROL_BODY:
        raise EnrolmentRefused(413, f"the enrolment request is larger than {MAX_ENROL_BODY} bytes; send only "
                                    "token, device_id, name and zone")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise EnrolmentRefused(400, "the enrolment request is not valid JSON; send {\"token\": \"zwe_…\"}") from None
    if not isinstance(data, dict):
        raise EnrolmentRefused(400, "the enrolment request must be a JSON object: {\"token\": \"zwe_…\"}")
    for key, value in data.items():
        limit = ENROL_FIELDS.get(key)
        if limit is None:
            raise EnrolmentRefused(400, f"unknown field {key[:40]!r}; the fields are {', '.join(ENROL_FIELDS)}")
        if value is not None and not isinstance(value, str):
            raise EnrolmentRefused(400, f"{key} must be a string")
        if value is not None and (len(value) > limit or any(ord(c) < 32 or ord(c) == 127 for c in value)):
            raise EnrolmentRefused(400, f"{key} must be at most {limit} printable characters")
    token = (data.get("token") or "").strip()
    if not token:  # absent, empty or only spaces
        raise EnrolmentRefused(400, "the enrolment token is missing: send {\"token\": \"zwe_…\"}")
    return EnrolRequest(token, (data.get("device_id") or "").strip() or None,
                        (data.get("name") or "").strip(), (data.get("zone") or "").strip() or None)


async def enroll(request: web.Request) -> web.Response:
    """``POST /enroll``: a one-time token → the device, its MQTT credentials and the broker's CA."""
    from ..app import SERVICE, SETTINGS

    settings = request.app[SETTINGS]
    try:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise EnrolmentRefused(413, f"the enrolment request is larger than {MAX_ENROL_BODY} bytes") from None
        asked = parse_enrol_request(body, request.content_type)
        ca_pem = _ca_pem(settings)
        service = request.app[SERVICE]

        def work():
            with service.new_session() as s:
                done = enrol(s, asked.token, asked.device_id, asked.name, asked.zone)
                _sync(s, settings)
                return done

        done = await asyncio.to_thread(work)
    except EnrolmentRefused as exc:
        log.info("enrolment from %s refused: %s", client_address(request), exc)
        return error_response(exc.status, str(exc))
    except SQLAlchemyError as exc:
        log.warning("enrolment: the database did not answer: %s", str(exc).splitlines()[0][:300])
        return error_response(503, "the server's database did not answer; try again shortly",
                              headers={"Retry-After": "5"})
    await audit(request, "device_enrol", f"device:{done.device_id}", f"zone={done.zone_code} role={done.role}",
                actor=f"enrolment token {asked.token[:10]}…")
    log.info("device %s enrolled in zone %s from %s", done.device_id, done.zone_code, client_address(request))
    p, m = settings.provisioning, settings.mqtt
    answer = {"device_id": done.device_id, "zone": done.zone_code, "role": done.role,
              "mqtt": {"url": p.device_broker_url or m.url, "username": done.device_id, "password": done.secret,
                       "topic_prefix": m.topic_prefix, "ca_pem": ca_pem},
              "content": await _content_answer(request)}
    return web.json_response(answer, status=201, headers={"Cache-Control": "no-store"})


async def _content_answer(request: web.Request) -> dict:
    """Where the device fetches content bundles and the key they are signed with (server/content/)."""
    from ..content.context import CONTENT

    content = request.app[CONTENT]
    key = await asyncio.to_thread(lambda: content.key.public_b64)
    return {"server_url": content.settings.content.device_url or f"{request.scheme}://{request.host}",
            "signing_key": key}


def _ca_pem(settings) -> str | None:
    path = settings.provisioning.device_ca_file or settings.mqtt.ca_file
    if not path:
        return None
    try:
        return Path(path).read_text()
    except OSError as exc:
        log.error("cannot read the CA file %s for enrolled devices: %s", path, exc.strerror)
        raise EnrolmentRefused(503, "the server cannot read the broker's CA certificate; tell an admin (see the "
                                    "server log)") from None


def _sync(s, settings) -> None:
    """Rewrite the broker files and reload mosquitto; a failure is logged (the database is already right)."""
    try:
        synced = sync_broker(s, settings)
    except (BrokerError, OSError) as exc:
        log.error("broker files not updated: %s; run `zonewatch provision broker`", exc)
        return
    if synced:
        log.info("%s", synced.describe())


# -- the admin side --------------------------------------------------------------------------------


class TokenBody(Body):
    zone: Text64 = Field(description="Code of the zone the enrolled device goes into.")
    expires_hours: Annotated[float, Field(ge=1 / 60, le=30 * 24, allow_inf_nan=False)] = Field(
        24.0, description="How long the token works, in hours (1 minute to 30 days).")
    role: Literal["kiosk", "desktop", "counter_pc"] = Field("kiosk", description="The enrolled device's role.")


class TokenItem(Out):
    prefix: str = Field(description="The token's first characters (the token itself is shown only once).")
    zone: str
    role: str
    created_at: Time
    expires_at: Time
    created_by: str
    used_at: Time | None
    device_id: str | None = Field(description="The device it enrolled, once used.")


class TokenCreated(TokenItem):
    token: str = Field(description="The one-time token: give it to the technician; it is not shown again.")


class TokenPage(Page):
    items: list[TokenItem]


class Revoked(Out):
    device_id: str
    revoked_at: Time
    broker: str = Field(description="What happened at the broker (files rewritten, reloaded).")


class Rotated(Out):
    device_id: str
    password: str = Field(description="The device's new MQTT secret, shown once.")
    broker: str


def _item(cls, row, zone: str, **extra: Any):
    return cls(prefix=row.prefix, zone=zone, role=row.role, created_at=utc(row.created_at),
               expires_at=utc(row.expires_at), created_by=row.created_by, used_at=utc(row.used_at),
               device_id=row.device_id, **extra)


async def _run(request: web.Request, fn, *args, sync: bool = True):
    """``fn(session, *args)`` in a worker thread, errors as API errors; then (``sync``) the broker files."""
    from ..app import SERVICE, SETTINGS

    service, settings = request.app[SERVICE], request.app[SETTINGS]

    def work():
        with service.new_session() as s:
            try:
                result = fn(s, *args)
            except NotFound as exc:
                raise ApiError(404, str(exc)) from None
            except Conflict as exc:
                raise ApiError(409, str(exc)) from None
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None
            if not sync:
                return result, ""
            try:
                synced = sync_broker(s, settings)
            except (BrokerError, OSError) as exc:
                log.error("broker files not updated: %s", exc)
                return result, f"broker files NOT updated ({exc}); run `zonewatch provision broker`"
            return result, synced.describe() if synced else "provisioning.broker_dir is not set: no broker files"

    return await asyncio.to_thread(work)


def _create_token(s, zone: str, *args):
    try:
        return create_token(s, zone, *args)
    except NotFound as exc:  # a body field, not the path: 400 naming it
        raise ApiError(400, str(exc), parameter="zone", allowed="the code of an existing zone") from None


async def create_enrolment_token(request: web.Request, body: TokenBody) -> TokenCreated:
    user = current_user(request)
    (token, row), _ = await _run(request, _create_token, body.zone, body.expires_hours * 3600, body.role,
                                 user.username if user else "", sync=False)
    return _item(TokenCreated, row, body.zone.strip(), token=token)


async def enrolment_tokens(request: web.Request, query: Paging) -> TokenPage:
    rows, _ = await _run(request, list_tokens, sync=False)
    page = rows[query.offset:query.offset + query.limit]
    return TokenPage(total=len(rows), limit=query.limit, offset=query.offset,
                     items=[_item(TokenItem, t, zone) for t, zone in page])


def _device_id(request: web.Request) -> str:
    device_id = request.match_info["device_id"]
    if not re.fullmatch(DEVICE_PATTERN, device_id):
        raise ApiError(404, f"no device {device_id[:64]!r}; {LIST_DEVICES}")
    return device_id


async def revoke_device(request: web.Request, _body: None) -> Revoked:
    (device, _already), broker = await _run(request, revoke, _device_id(request))
    return Revoked(device_id=device.id, revoked_at=utc(device.revoked_at), broker=broker)


async def rotate_device_secret(request: web.Request, _body: None) -> Rotated:
    device_id = _device_id(request)
    secret, broker = await _run(request, rotate, device_id)
    return Rotated(device_id=device_id, password=secret, broker=broker)
