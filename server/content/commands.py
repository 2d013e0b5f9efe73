"""One-shot commands to a device: ``POST /api/v1/devices/{device_id}/commands`` (admin).

The server gives the command an id and an expiry, signs it with its content-signing key over the statement in
:func:`agent.commands.statement` (device, id, action, expiry, arguments) and publishes it on
``zw/v1/cmd/<device>/run`` with QoS 1, not retained. The agent runs it at most once (by id) and acks progress,
the result, or its refusal (unsigned, forged, replayed, expired) on its ack topic with ``ref`` = the id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Annotated

from aiohttp import web
from pydantic import Field
from sqlmodel import Session, select

from agent.commands import ACTIONS, statement
from protocol import Ack, Command, encode
from server.db.models import Device

from ..api.errors import ApiError
from ..api.params import Body, Paging
from ..api.registry import Endpoint, PathParam
from ..api.schemas import Out, Page, Time, utc
from ..auth.web import current_user
from .context import CONTENT
from .models import DeviceCommand
from .publisher import PublishFailed, publish_desired
from .rollouts import Outgoing, record_ack_in

log = logging.getLogger("zonewatch.commands")
DEVICE_ID = PathParam("device_id", "The device id (its MQTT user name).",
                      {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"})
ArgValue = Annotated[str, Field(max_length=200)] | int | float | bool


class CommandBody(Body):
    action: str = Field(description="print_test_page (args.printer: a CUPS queue, default: the device's default "
                                     "printer), reload_kiosk (runs the device's content.reload_command) or "
                                     "diagnostics (the device sends a full report at once; the result sums it up).",
                        min_length=1, max_length=64)
    args: dict[Annotated[str, Field(min_length=1, max_length=64)], ArgValue] = Field(
        default_factory=dict, max_length=20, description="Arguments of the action.")
    expires_s: float = Field(600.0, gt=0, le=7 * 86400,
                             description="Seconds from now after which the device refuses the command.")


class CommandItem(Out):
    id: str = Field(description="The command's id: the device acks with ref = this id.")
    device_id: str
    action: str
    args: dict
    expires: float = Field(description="Unix time after which the device refuses it.")
    created_at: Time
    created_by: str
    state: str = Field(description="sent (no ack yet), running, done, failed, or refused (unsigned, forged, "
                                   "replayed, expired; detail says which).")
    detail: str
    result: dict | None = Field(description="What the device acked with the outcome (e.g. the CUPS job id).")
    updated_at: Time


class CommandSent(CommandItem):
    publish_error: str | None = Field(None, description="Set when the command could not be published.")


class CommandPage(Page):
    items: list[CommandItem]


def _item(row: DeviceCommand) -> CommandItem:
    return CommandItem(id=row.id, device_id=row.device_id, action=row.action, args=json.loads(row.args),
                       expires=row.expires, created_at=utc(row.created_at), created_by=row.created_by,
                       state=row.state, detail=row.detail, result=json.loads(row.result) if row.result else None,
                       updated_at=utc(row.updated_at))


def record_command_ack(s: Session, ack: Ack, received_at: float) -> bool:
    """Fold a device's command ack into the command it names; False when it names none of this device's."""
    row = s.get(DeviceCommand, ack.ref)
    if row is None or row.device_id != ack.device_id or ack.state not in ("running", "done", "failed", "refused"):
        return False
    if row.state in ("done", "failed") and ack.state in ("running", "refused"):
        return False  # the outcome stands: a late "running", or the refusal of a replay of it
    row.state, row.detail, row.updated_at = ack.state, ack.detail[:1024], received_at
    if ack.result is not None:
        result = json.dumps(ack.result)
        row.result = result if len(result) <= 16384 else json.dumps({"truncated": True, "bytes": len(result)})
    s.add(row)
    return True


def record_any_ack_in(conn, ack: Ack, received_at: float) -> None:
    """The ingest writer's hook: command acks to their command, the rest to rollout progress."""
    if ack.target != "command":
        record_ack_in(conn, ack, received_at)
        return
    with Session(bind=conn) as s:
        if record_command_ack(s, ack, received_at):
            s.flush()


def signed_command(key, device_id: str, action: str, args: dict, expires: float, command_id: str | None = None,
                   now: float | None = None) -> Command:
    """A command for a device, signed with the server's content-signing key."""
    command_id = command_id or "cmd-" + secrets.token_hex(8)
    signature = key.sign_bytes(statement(device_id, command_id, action, expires, args))
    return Command(device_id=device_id, ts=time.time() if now is None else now, id=command_id, action=action,
                   expires=expires, args=args, signature=signature)


async def send_command(request: web.Request, body: CommandBody) -> CommandSent:
    from ..app import SERVICE

    device_id = request.match_info["device_id"]
    if body.action not in ACTIONS:
        raise ApiError(400, f"unknown action {body.action!r}: use one of {', '.join(sorted(ACTIONS))}",
                       parameter="action")
    content = request.app[CONTENT]

    key = await asyncio.to_thread(lambda: content.key)
    now = time.time()
    command = signed_command(key, device_id, body.action, dict(body.args), now + body.expires_s, now=now)
    user = current_user(request)

    def record() -> DeviceCommand:
        with request.app[SERVICE].new_session() as s:
            device = s.get(Device, device_id)
            if device is None:
                raise ApiError(404, f"no device has the id {device_id!r}")
            if device.revoked_at is not None:
                raise ApiError(409, f"device {device_id!r} is revoked; it takes no commands")
            row = DeviceCommand(id=command.id, device_id=device_id, action=command.action,
                                args=json.dumps(command.args), expires=command.expires, created_at=now,
                                created_by=user.username if user else "", updated_at=now)
            s.add(row)
            s.commit()
            s.refresh(row)
            return row

    row = await asyncio.to_thread(record)
    error = None
    try:
        await asyncio.to_thread(publish_desired, content.settings, [Outgoing(device_id, encode(command))],
                                kind="run")
    except PublishFailed as exc:
        log.error("command %s to %s not published: %s", command.id, device_id, exc)
        error = str(exc)
    else:
        log.info("command %s (%s) sent to %s", command.id, command.action, device_id)
    return CommandSent(**_item(row).model_dump(), publish_error=error)


async def device_commands(request: web.Request, query: Paging) -> CommandPage:
    from ..app import SERVICE

    device_id = request.match_info["device_id"]

    def load():
        with request.app[SERVICE].new_session() as s:
            if s.get(Device, device_id) is None:
                raise ApiError(404, f"no device has the id {device_id!r}")
            rows = s.exec(select(DeviceCommand).where(DeviceCommand.device_id == device_id)
                          .order_by(DeviceCommand.created_at.desc())).all()
            return [_item(r) for r in rows]

    items = await asyncio.to_thread(load)
    return CommandPage(total=len(items), limit=query.limit, offset=query.offset,
                       items=items[query.offset:query.offset + query.limit])


ENDPOINTS = [
    Endpoint("/devices/{device_id}/commands", send_command, "Send a device a one-shot command (test page, reload "
             "the kiosk), signed, with an expiry", CommandSent, path_params=(DEVICE_ID,), tag="content",
             method="POST", body=CommandBody, status=201, role="admin", not_found="No device has this id.",
             conflict="The device is revoked.",
             description="Published on zw/v1/cmd/<device>/run with QoS 1, not retained: a device offline now does "
                         "not get it later. The device runs a command at most once and refuses it after "
                         "expires_s; progress, the result or the refusal come back as acks with ref = id. "
                         "Needs the admin role."),
    Endpoint("/devices/{device_id}/commands", device_commands, "A device's one-shot commands, newest first, with "
             "each one's state (sent, running, done, failed, refused) and result from the device's acks",
             CommandPage, Paging, path_params=(DEVICE_ID,), not_found="No device has this id.", tag="content"),
]
