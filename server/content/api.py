"""The admin API for content: upload and list bundles, create, list, read and cancel rollouts.

Declared as :class:`~server.api.registry.Endpoint` s (so they are in the OpenAPI document and the role checks);
:data:`ENDPOINTS` is mounted with the rest of the API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Annotated

from aiohttp import web
from pydantic import Field

from ..api.errors import ApiError
from ..api.params import Body, Paging
from ..api.registry import Endpoint, PathParam
from ..api.routes_incidents import path_id
from ..api.schemas import Out, Page, Time, utc
from ..auth.web import current_user
from ..errors import Conflict, NotFound
from . import rollouts as R
from .context import CONTENT, ContentContext
from .models import ContentBundle, Rollout
from .publisher import PublishFailed, publish_desired
from .store import BundleRefused, list_bundles

log = logging.getLogger("zonewatch.content")
ROLLOUT_ID = PathParam("id", "The rollout's id.", {"type": "integer", "minimum": 1, "maximum": 2**62})
Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=10_000)]


class BundleItem(Out):
    sha256: str
    version: str
    size: int = Field(description="Bytes of the archive.")
    files: int
    unpacked_bytes: int
    description: str
    signature: str = Field(description="Ed25519 signature (base64) of the bundle statement.")
    uploaded_at: Time
    uploaded_by: str
    created: bool | None = Field(None, description="On upload: false when these bytes were uploaded before.")


class BundlePage(Page):
    items: list[BundleItem]


class RolloutBody(Body):
    bundle: str = Field(min_length=1, max_length=64, description="The bundle's version or sha256.")
    zones: Names = Field(default_factory=list, description="Zone codes: every device in them.")
    regions: Names = Field(default_factory=list, description="Regions as City[/District[/Township]]: every "
                                                             "device in every zone below.")
    devices: Names = Field(default_factory=list, description="Device ids.")


class DeviceProgress(Out):
    device_id: str
    state: str = Field(description="pending, offline-waiting, downloading, applying, applied, failed, cancelled "
                                   "or superseded.")
    detail: str
    progress: float | None
    updated_at: Time


class RolloutItem(Out):
    id: int
    bundle_version: str
    bundle_sha256: str
    status: str = Field(description="active or cancelled.")
    target: dict
    created_at: Time
    created_by: str
    cancelled_at: Time | None
    counts: dict[str, int] = Field(description="Devices per state.")


class RolloutDetail(RolloutItem):
    devices: list[DeviceProgress]
    publish_error: str | None = Field(None, description="Set when the desired state could not be published.")


class RolloutPage(Page):
    items: list[RolloutItem]


def _bundle_item(b: ContentBundle, created: bool | None = None) -> BundleItem:
    return BundleItem(sha256=b.sha256, version=b.version, size=b.size, files=b.files,
                      unpacked_bytes=b.unpacked_bytes, description=b.description, signature=b.signature,
                      uploaded_at=utc(b.uploaded_at), uploaded_by=b.uploaded_by, created=created)


async def _db(request: web.Request, fn, *args):
    from ..app import SERVICE

    def work():
        with request.app[SERVICE].new_session() as s:
            try:
                return fn(s, *args)
            except NotFound as exc:
                raise ApiError(404, str(exc)) from None
            except Conflict as exc:
                raise ApiError(409, str(exc)) from None
            except (ValueError, BundleRefused) as exc:
                raise ApiError(400, str(exc)) from None

    return await asyncio.to_thread(work)


async def upload_bundle(request: web.Request, _body: None) -> BundleItem:
    content: ContentContext = request.app[CONTENT]
    limit = content.settings.content.max_upload_mb * 1024 * 1024
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, f"the bundle is larger than content.max_upload_mb ({limit // 2**20} MiB)")
    store = await asyncio.to_thread(lambda: content.store)
    fd, path = store.new_upload()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in request.content.iter_chunked(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"the bundle is larger than content.max_upload_mb ({limit // 2**20} MiB)")
                await asyncio.to_thread(out.write, chunk)
        if size == 0:
            raise ApiError(400, "the request body is empty: send the archive (tar.gz or zip) as the body")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    user = current_user(request)
    stored = await _db(request, store.add, path, user.username if user else "")
    log.info("content bundle %s (%s, %d bytes) %s", stored.bundle.version, stored.bundle.sha256[:12], size,
             "stored" if stored.created else "uploaded again (already stored)")
    return _bundle_item(stored.bundle, stored.created)


async def bundles(request: web.Request, query: Paging) -> BundlePage:
    rows = await _db(request, list_bundles)
    return BundlePage(total=len(rows), limit=query.limit, offset=query.offset,
                      items=[_bundle_item(b) for b in rows[query.offset:query.offset + query.limit]])


def _base_url(request: web.Request) -> str:
    configured = request.app[CONTENT].settings.content.device_url
    return configured or f"{request.scheme}://{request.host}"


def _states(request: web.Request, rows) -> list[DeviceProgress]:
    from ..app import SERVICE

    fleet = request.app[SERVICE].fleet
    out = []
    for r in rows:
        state = r.state
        if state == "pending" and getattr(fleet.devices.get(r.device_id), "online", None) is not True:
            state = "offline-waiting"
        out.append(DeviceProgress(device_id=r.device_id, state=state, detail=r.detail, progress=r.progress,
                                  updated_at=utc(r.updated_at)))
    return out


def _counts(devices: list[DeviceProgress]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in devices:
        counts[d.state] = counts.get(d.state, 0) + 1
    return counts


def _detail(request: web.Request, rollout: Rollout, bundle: ContentBundle, rows, error: str | None = None):
    devices = _states(request, rows)
    return RolloutDetail(id=rollout.id, bundle_version=bundle.version, bundle_sha256=bundle.sha256,
                         status=rollout.status, target=json.loads(rollout.target), created_at=utc(rollout.created_at),
                         created_by=rollout.created_by, cancelled_at=utc(rollout.cancelled_at),
                         counts=_counts(devices), devices=devices, publish_error=error)


async def _publish(request: web.Request, messages: list[R.Outgoing]) -> str | None:
    try:
        await asyncio.to_thread(publish_desired, request.app[CONTENT].settings, messages)
    except PublishFailed as exc:
        log.error("desired state not published: %s", exc)
        return str(exc)
    return None


def _load(s, rollout_id: int):
    rollout = R.get(s, rollout_id)
    return rollout, s.get(ContentBundle, rollout.bundle_sha256), R.devices_of(s, rollout_id)


async def create_rollout(request: web.Request, body: RolloutBody) -> RolloutDetail:
    if not (body.zones or body.regions or body.devices):
        raise ApiError(400, "name at least one of zones, regions or devices", parameter="zones")
    user = current_user(request)
    target = R.Target(tuple(body.zones), tuple(body.regions), tuple(body.devices))

    def work(s):
        rollout, messages = R.create(s, body.bundle, target, _base_url(request), user.username if user else "")
        return (*_load(s, rollout.id), messages)

    rollout, bundle, rows, messages = await _db(request, work)
    error = await _publish(request, messages)
    return _detail(request, rollout, bundle, rows, error)


async def rollouts(request: web.Request, query: Paging) -> RolloutPage:
    def work(s):
        total, rows = R.list_rollouts(s, query.limit, query.offset)
        return total, [(r, b, R.devices_of(s, r.id)) for r, b in rows]

    total, rows = await _db(request, work)
    items = [RolloutItem(**_detail(request, r, b, d).model_dump(exclude={"devices", "publish_error"}))
             for r, b, d in rows]
    return RolloutPage(total=total, limit=query.limit, offset=query.offset, items=items)


def _rollout_id(request: web.Request) -> int:
    """The path's id; anything that cannot be one (not digits, or beyond a database integer) is a 404."""
    return path_id(request, "rollout", "GET /api/v1/content/rollouts lists them")


async def rollout(request: web.Request, _query: None) -> RolloutDetail:
    rollout, bundle, rows = await _db(request, _load, _rollout_id(request))
    return _detail(request, rollout, bundle, rows)


async def cancel_rollout(request: web.Request, _body: None) -> RolloutDetail:
    def work(s):
        rollout, messages = R.cancel(s, _rollout_id(request), _base_url(request))
        return (*_load(s, rollout.id), messages)

    rollout, bundle, rows, messages = await _db(request, work)
    error = await _publish(request, messages)
    return _detail(request, rollout, bundle, rows, error)


ENDPOINTS = [
    Endpoint("/content/bundles", upload_bundle, "Upload a content bundle (tar.gz or zip with manifest.json): "
             "checked with the device's unpacking rules, stored once by sha256, signed", BundleItem,
             tag="content", method="POST", status=201, role="admin",
             description="The request body is the archive itself (Content-Type: application/octet-stream). "
                         "Refused with 400 naming the entry and the rule; 409 when the version is taken by other "
                         "bytes; 413 past content.max_upload_mb. The same bytes again answer the stored bundle "
                         "(created: false). CLI: zonewatch content upload FILE. Needs the admin role."),
    Endpoint("/content/bundles", bundles, "Content bundles, newest first", BundlePage, Paging, tag="content"),
    Endpoint("/content/rollouts", create_rollout, "Roll a bundle out to zones, regions and/or devices",
             RolloutDetail, tag="content", method="POST", body=RolloutBody, status=201, role="admin",
             not_found="The bundle, a zone, a region or a device does not exist.",
             conflict="A named device is revoked.",
             description="Publishes retained desired state to every targeted device; devices offline now converge "
                         "when they reconnect. A device in an earlier unfinished rollout moves to this one "
                         "(superseded there). Needs the admin role."),
    Endpoint("/content/rollouts", rollouts, "Rollouts, newest first, with device counts per state", RolloutPage,
             Paging, tag="content"),
    Endpoint("/content/rollouts/{id}", rollout, "One rollout: each device's state (pending, offline-waiting, "
             "downloading, applying, applied, failed with the reason)", RolloutDetail, path_params=(ROLLOUT_ID,),
             not_found="No rollout has this id.", tag="content"),
    Endpoint("/content/rollouts/{id}/cancel", cancel_rollout, "Cancel a rollout: devices that have not applied it "
             "go back to what they had", RolloutDetail, path_params=(ROLLOUT_ID,),
             not_found="No rollout has this id.", tag="content", method="POST", role="admin",
             description="Devices that applied it keep it; roll them back with a rollout of the earlier version. "
                         "Cancelling twice changes nothing. Needs the admin role."),
]


def setup_content(app: web.Application) -> None:
    from ..app import SETTINGS
    from .device_http import add_device_routes

    app[CONTENT] = ContentContext(app[SETTINGS])
    add_device_routes(app)
