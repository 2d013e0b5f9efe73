"""Every route of the JSON API under ``/api/v1``, declared once; served and documented from this list."""

from __future__ import annotations

from aiohttp import web

from .. import __version__
from . import routes_fleet as fleet
from . import routes_history as history
from . import schemas as S
from .openapi import document
from .params import DeviceQuery, HistoryQuery, PrinterQuery, ZoneQuery
from .registry import Endpoint, PathParam, mount

ZONE_CODE = PathParam("code", "The zone's code (hall-01).", {"type": "string", "minLength": 1, "maxLength": 64})
DEVICE_ID = PathParam("device_id", "The device id (its MQTT user name).",
                      {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"})
NO_ZONE = "No zone has this code."
NO_DEVICE = "No device has this id."
NO_ZONE_FILTER = "No zone has the code given as zone."


async def openapi(request: web.Request, _query: None) -> dict:
    return document(ENDPOINTS, version=__version__)


ENDPOINTS: list[Endpoint] = [
    Endpoint("/summary", fleet.summary, "Fleet counts: zones, devices and printers by status; ingest statistics",
             S.Summary),
    Endpoint("/regions", fleet.regions, "The region tree (city → district → township) with zone counts and the "
             "worst zone status per region", S.RegionTree),
    Endpoint("/zones", fleet.zones, "Zones with their status, since when and why", S.ZonePage, ZoneQuery,
             not_found="No region has the id given as region_id."),
    Endpoint("/zones/{code}", fleet.zone, "One zone: status and reasons, region, opening hours, devices and "
             "printers", S.ZoneDetail, path_params=(ZONE_CODE,), not_found=NO_ZONE),
    Endpoint("/zones/{code}/history", history.zone_history, "State changes of a zone and of everything in it",
             S.HistoryPage, HistoryQuery, path_params=(ZONE_CODE,), not_found=NO_ZONE, tag="history",
             description="The zone's own status changes and those of the devices, checks and printers that were "
                         "in the zone when they happened. since ≤ at < until; ordered by at, then id."),
    Endpoint("/devices", fleet.devices, "Devices with their status, zone and presence", S.DevicePage, DeviceQuery,
             not_found=NO_ZONE_FILTER),
    Endpoint("/devices/{device_id}", fleet.device, "One device: status, its latest report's checks, check "
             "states and printers", S.DeviceDetail, path_params=(DEVICE_ID,), not_found=NO_DEVICE),
    Endpoint("/devices/{device_id}/history", history.device_history, "State changes of a device, its presence, "
             "checks and printers", S.HistoryPage, HistoryQuery, path_params=(DEVICE_ID,), not_found=NO_DEVICE,
             tag="history", description="since ≤ at < until; ordered by at, then id."),
    Endpoint("/printers", fleet.printers, "Printers with host device, zone, conditions in plain words and "
             "supply levels", S.PrinterPage, PrinterQuery, not_found=NO_ZONE_FILTER),
    Endpoint("/openapi.json", openapi, "This document (OpenAPI 3.1)", None, tag="meta"),
]


def add_routes(app: web.Application) -> None:
    mount(app, ENDPOINTS)
