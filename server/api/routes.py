"""Every route of the JSON API under ``/api/v1``, declared once; served and documented from this list."""

from __future__ import annotations

from aiohttp import web

from .. import __version__
from ..content import api as content_api
from ..content import commands as content_commands
from . import routes_auth as auth
from . import routes_fleet as fleet
from . import routes_history as history
from . import routes_incidents as inc
from . import routes_provision as prov
from . import schemas as S
from . import schemas_incidents as SI
from .openapi import document
from .params import (
    AckBody,
    DeviceQuery,
    HistoryQuery,
    IncidentQuery,
    Paging,
    PrinterQuery,
    SilenceBody,
    SilenceQuery,
    ZoneQuery,
)
from .registry import Endpoint, PathParam, mount

ZONE_CODE = PathParam("code", "The zone's code (hall-01).", {"type": "string", "minLength": 1, "maxLength": 64})
DEVICE_ID = PathParam("device_id", "The device id (its MQTT user name).",
                      {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"})
NO_ZONE = "No zone has this code."
NO_DEVICE = "No device has this id."
NO_ZONE_FILTER = "No zone has the code given as zone."
INCIDENT_ID = PathParam("id", "The incident's id (from /api/v1/incidents).",
                        {"type": "integer", "minimum": 1, "maximum": inc.MAX_ID})
SILENCE_ID = PathParam("id", "The silence's id (from /api/v1/silences).",
                       {"type": "integer", "minimum": 1, "maximum": inc.MAX_ID})
NO_INCIDENT = "No incident has this id."
NO_SILENCE = "No silence has this id."
ROLE_NOTE = " Needs the oncall or admin role."


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
    Endpoint("/incidents", inc.incidents, "Incidents, newest first, with why nobody was told (deferred)",
             SI.IncidentPage, IncidentQuery, not_found=NO_ZONE_FILTER, tag="incidents",
             description="since ≤ opened_at < until. status=active: open or acknowledged."),
    Endpoint("/incidents/{id}", inc.incident, "One incident and its timeline: opened, notified whom, delivered, "
             "acknowledged by whom, escalated, resolved", SI.IncidentDetail, path_params=(INCIDENT_ID,),
             not_found=NO_INCIDENT, tag="incidents"),
    Endpoint("/incidents/{id}/ack", inc.ack_incident, "Acknowledge an incident: escalation and reminders stop",
             SI.IncidentDetail, path_params=(INCIDENT_ID,), not_found=NO_INCIDENT, tag="incidents", method="POST",
             body=AckBody, conflict="The incident is resolved: there is nothing to acknowledge.",
             description="Acknowledging an acknowledged incident changes nothing and answers it as it is "
                         "(acked_by says who was first). A comment is kept on the timeline." + ROLE_NOTE),
    Endpoint("/silences", inc.silences, "Silences: active and scheduled ones, or all with all=true",
             SI.SilencePage, SilenceQuery, tag="silences"),
    Endpoint("/silences", inc.create_silence, "Silence notifications for a zone, device and/or rule for a while",
             SI.SilenceItem, tag="silences", method="POST", body=SilenceBody, status=201,
             description="Matching incidents are still opened and recorded (deferred: silenced) but nobody is "
                         "told until the silence ends. At least one of zone, device, rule; ends_at or "
                         "duration_minutes; at most 31 days." + ROLE_NOTE),
    Endpoint("/silences/{id}", inc.silence, "One silence", SI.SilenceItem, path_params=(SILENCE_ID,),
             not_found=NO_SILENCE, tag="silences"),
    Endpoint("/silences/{id}", inc.end_silence, "End a silence now (the record is kept)", SI.SilenceItem,
             path_params=(SILENCE_ID,), not_found=NO_SILENCE, tag="silences", method="DELETE",
             description="Sets ends_at to now; a silence that has ended already is answered unchanged. "
                         "Incidents it held are told at the next tick." + ROLE_NOTE),
    Endpoint("/alerting", inc.alerting, "The effective alerting configuration: routes, rules, receivers "
             "(names and kinds only) and timings", SI.Alerting, tag="alerting"),
    Endpoint("/me", auth.me, "Who is asking: user name, role, and the CSRF token of a browser session", auth.Me,
             tag="auth"),
    Endpoint("/audit", auth.audit_log, "The audit log, newest first: every state-changing action, who, when, "
             "from where", auth.AuditPage, auth.AuditQuery, tag="auth", role="admin"),
    Endpoint("/enrolment-tokens", prov.create_enrolment_token, "Make a one-time enrolment token for a zone "
             "(the token is in this answer only)", prov.TokenCreated, tag="enrolment", method="POST",
             body=prov.TokenBody, status=201, role="admin",
             description="On the device: zonewatch-agent enroll --server URL --token TOKEN. The token works once, "
                         "until it expires; it is stored only as a digest. Needs the admin role."),
    Endpoint("/enrolment-tokens", prov.enrolment_tokens, "Enrolment tokens, newest first (never the tokens)",
             prov.TokenPage, Paging, tag="enrolment", role="admin"),
    Endpoint("/devices/{device_id}/revoke", prov.revoke_device, "Revoke a device: its broker login is removed "
             "and the broker reloaded, so it is disconnected within seconds", prov.Revoked,
             path_params=(DEVICE_ID,), not_found=NO_DEVICE, tag="enrolment", method="POST", role="admin"),
    Endpoint("/devices/{device_id}/rotate", prov.rotate_device_secret, "Give a device a new MQTT secret (in this "
             "answer only); the old one stops working when the broker reloads", prov.Rotated,
             path_params=(DEVICE_ID,), not_found=NO_DEVICE, tag="enrolment", method="POST", role="admin",
             conflict="The device is revoked."),
    *content_api.ENDPOINTS,
    *content_commands.ENDPOINTS,
    Endpoint("/openapi.json", openapi, "This document (OpenAPI 3.1)", None, tag="meta", role=""),
]


def add_routes(app: web.Application) -> None:
    mount(app, ENDPOINTS)
