"""Handlers of the fleet's current state: summary, regions, zones, devices, printers.

Each reads the database through the app's :class:`~server.service.FleetService` in a worker
thread (``asyncio.to_thread``), so the event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from ..app import SERVICE
from ..service import FleetService
from . import fleet_queries as Q
from . import schemas as S
from .errors import ApiError, not_found
from .params import DeviceQuery, PrinterQuery, ZoneQuery

T = TypeVar("T")


async def read(request: web.Request, query: Callable[..., T], *args: Any) -> T:
    """Run ``query(session, *args)`` in a worker thread with a fresh session."""
    service = request.app[SERVICE]

    def work() -> T:
        with service.new_session() as session:
            return query(session, *args)

    return await asyncio.to_thread(work)


async def shared(request: web.Request, key: tuple, produce: Callable[[], Awaitable[T]]) -> T:
    """``produce()`` for what is the same for every user: shared by concurrent requests and for a
    second, and made afresh once the fleet changed (:mod:`server.microcache`)."""
    service = request.app[SERVICE]
    return await service.views.get((*key, service.fleet_version), produce)


async def shared_read(request: web.Request, key: tuple, query: Callable[..., T], *args: Any) -> T:
    """:func:`read` through :func:`shared`."""
    return await shared(request, key, lambda: read(request, query, *args))


async def summary(request: web.Request, _query: None) -> S.Summary:
    counts = await shared_read(request, ("fleet counts",), Q.fleet_counts)
    return S.Summary(generated_at=S.utc(time.time()), ingest=ingest_stats(request.app[SERVICE]), **counts)


def ingest_stats(service: FleetService) -> S.IngestStats:
    writer = service.writer
    link = service.link
    if writer is None:
        return S.IngestStats(broker_connected=False, received=0, stored=0, duplicates=0, late=0,
                             sequence_restarts=0, presence=0, refused_total=0, refused={}, last_commit_at=None,
                             database_errors=0, last_database_error=None)
    st = writer.stats
    refused = {str(k): int(v) for k, v in dict(st.refused).items()}
    return S.IngestStats(
        broker_connected=bool(link and link.connected),
        received=st.received, stored=st.reports_stored, duplicates=st.duplicates, late=st.late,
        sequence_restarts=st.sequence_restarts, presence=st.presence, refused_total=sum(refused.values()),
        refused=refused, last_commit_at=S.utc(st.last_commit_at), database_errors=st.db_errors,
        last_database_error=st.last_db_error)


async def regions(request: web.Request, _query: None) -> S.RegionTree:
    return await read(request, Q.region_tree)


async def zones(request: web.Request, query: ZoneQuery) -> bytes:
    async def page_json() -> bytes | None:  # cached as JSON: a page of 1,000 zones costs more to dump than to read
        page = await read(request, Q.list_zones, query)
        return None if page is None else S.dump(page)

    body = await shared(request, ("zones", query.model_dump_json()), page_json)
    if body is None:
        raise ApiError(404, f"no region with id {query.region_id}; /api/v1/regions lists the regions and their ids")
    return body


async def zone(request: web.Request, _query: None) -> S.ZoneDetail:
    code = request.match_info["code"]
    detail = await read(request, Q.zone_detail, code)
    if detail is None:
        raise not_found("zone with code", code, "/api/v1/zones lists the zones and their codes")
    return detail


async def devices(request: web.Request, query: DeviceQuery) -> S.DevicePage:
    if query.unassigned and query.zone is not None:
        raise ApiError(400, "unassigned=true lists devices in no zone, so it cannot be combined with zone; "
                            "drop one of the two", parameter="unassigned", allowed="false, or no zone parameter")
    page = await read(request, Q.list_devices, query)
    if page is None:
        raise not_found("zone with code", query.zone, "/api/v1/zones lists the zones and their codes")
    return page


async def device(request: web.Request, _query: None) -> S.DeviceDetail:
    device_id = request.match_info["device_id"]
    detail = await read(request, Q.device_detail, device_id, request.app[SERVICE].codec)
    if detail is None:
        raise not_found("device", device_id, "/api/v1/devices lists the devices, including unassigned ones")
    return detail


async def printers(request: web.Request, query: PrinterQuery) -> S.PrinterPage:
    page = await read(request, Q.list_printers, query)
    if page is None:
        raise not_found("zone with code", query.zone, "/api/v1/zones lists the zones and their codes")
    return page
