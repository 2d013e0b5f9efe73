"""The device side of content over HTTP: ``GET /device/content/<sha256>`` and ``GET /device/content-key``.

Devices authenticate with HTTP Basic: their MQTT user name (device id) and MQTT secret, checked against the
stored mosquitto hash (revoked devices have no credential). Chosen over signed URLs because the URL sits in a
*retained* message that a device may read weeks later: a signed URL would have expired by then, or, never
expiring, be a bearer secret in every broker backup. A device may fetch only bundles a rollout sent it.
aiohttp's FileResponse answers Range requests, so an interrupted download resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re

from aiohttp import web

from provisioning.broker import verify_password
from provisioning.models import DeviceCredential
from server.db.models import Device

from .context import CONTENT
from .rollouts import may_download

SHA256 = re.compile(r"[0-9a-f]{64}")
REALM = 'Basic realm="zonewatch devices", charset="UTF-8"'


def _deny(status: int, error: str) -> web.Response:
    headers = {"WWW-Authenticate": REALM} if status == 401 else {}
    return web.json_response({"error": error}, status=status, headers=headers)


def _basic(request: web.Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        user, _, secret = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (user, secret) if user and secret else None


def device_allowed(new_session, device_id: str, secret: str, sha256: str) -> str | None:
    """None when the device may fetch the bundle, else why not (blocking)."""
    with new_session() as s:
        credential = s.get(DeviceCredential, device_id[:64])
        device = s.get(Device, device_id[:64])
        if credential is None or device is None or device.revoked_at is not None \
                or not verify_password(secret, credential.mqtt_hash):
            return "401"
        if not may_download(s, device_id, sha256):
            return "403"
    return None


async def download(request: web.Request) -> web.StreamResponse:
    from ..app import SERVICE

    sha256 = request.match_info["sha256"]
    if not SHA256.fullmatch(sha256):
        return _deny(404, "no such bundle: the path ends in the bundle's sha256 (64 lowercase hex digits)")
    given = _basic(request)
    if given is None:
        return _deny(401, "devices authenticate with HTTP Basic: their device id and MQTT secret")
    content = request.app[CONTENT]
    why = await asyncio.to_thread(device_allowed, request.app[SERVICE].new_session, given[0], given[1], sha256)
    if why == "401":
        return _deny(401, "device id or secret not accepted (unknown, revoked or rotated device); re-enrol it")
    if why == "403":
        return _deny(403, f"bundle {sha256[:12]}… was not rolled out to device {given[0]!r}")
    path = content.store.path(sha256)
    if not path.is_file():
        return _deny(404, f"bundle {sha256[:12]}… is recorded but its file is missing from the server's data dir; "
                          "upload it again")
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream",
                                           "Cache-Control": "private, no-transform"})


async def public_key(request: web.Request) -> web.Response:
    """The content signing public key (base64 of 32 raw bytes): public by nature."""
    key = await asyncio.to_thread(lambda: request.app[CONTENT].key.public_b64)
    return web.Response(text=key + "\n", content_type="text/plain")


def add_device_routes(app: web.Application) -> None:
    app.router.add_get("/device/content/{sha256}", download)
    app.router.add_get("/device/content-key", public_key)
