"""What the JSON API answers: one pydantic model per response shape.

The same models validate every response on its way out and describe it in the OpenAPI
document, so the two cannot drift apart. Times are ISO 8601 UTC strings (``…Z``); the
database keeps epoch seconds, converted with :func:`utc`.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ZoneStatus = Literal["meets", "degraded", "breach", "unknown"]
DeviceStatus = Literal["ok", "warning", "critical", "offline", "unknown"]
CheckStatus = Literal["ok", "warning", "critical", "unknown"]
DeviceRole = Literal["kiosk", "desktop", "counter_pc", "unknown"]
Subject = Literal["check", "printer", "device", "presence", "zone"]
SUBJECTS: tuple[str, ...] = Subject.__args__
CHECK_STATUSES: tuple[str, ...] = CheckStatus.__args__

Time = datetime
#: How bad a zone status is, for roll-ups: a region is as bad as its worst zone.
ZONE_RANK = {"meets": 0, "unknown": 1, "degraded": 2, "breach": 3}


def utc(ts: float | None) -> datetime | None:
    """Epoch seconds → an aware UTC datetime (None for missing or unrepresentable values)."""
    if ts is None or not math.isfinite(ts):
        return None
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def known(value: str | None, allowed: tuple[str, ...], fallback: str = "unknown") -> str:
    """A status as the schema allows it; anything else stored in the database shows as ``fallback``."""
    return value if value in allowed else fallback


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors ------------------------------------------------------------------------------------


class Error(Out):
    """Every 4xx/5xx answer of the API."""

    error: str = Field(description="What went wrong, to what, and what to do.")
    parameter: str | None = Field(None, description="The query parameter or body field at fault (400 only); "
                                                    "body: the request body as a whole.")
    allowed: str | None = Field(None, description="What the parameter or field accepts (400 only).")


# -- counts ------------------------------------------------------------------------------------


class ZoneCounts(Out):
    meets: int = 0
    degraded: int = 0
    breach: int = 0
    unknown: int = 0


class DeviceCounts(Out):
    ok: int = 0
    warning: int = 0
    critical: int = 0
    offline: int = 0
    unknown: int = 0


class PrinterCounts(Out):
    ok: int = 0
    warning: int = 0
    critical: int = 0
    unknown: int = 0


class ZoneTally(Out):
    total: int
    by_status: ZoneCounts


class DeviceTally(Out):
    total: int
    by_status: DeviceCounts
    unassigned: int = Field(description="Devices that reported but are in no zone yet (an admin places them).")


class PrinterTally(Out):
    total: int
    by_status: PrinterCounts


class IngestStats(Out):
    broker_connected: bool
    received: int = Field(description="Messages taken from the broker since the server started.")
    stored: int = Field(description="Reports stored (each once).")
    duplicates: int = Field(description="Reports received again and ignored.")
    late: int = Field(description="Reports that arrived after a newer one and were merged into the history.")
    sequence_restarts: int
    presence: int = Field(description="Presence messages (birth, Last Will).")
    refused_total: int
    refused: dict[str, int] = Field(description="Refused messages by the field at fault ('payload' for the whole).")
    last_commit_at: Time | None
    database_errors: int
    last_database_error: str | None


class Summary(Out):
    generated_at: Time
    zones: ZoneTally
    devices: DeviceTally
    printers: PrinterTally
    ingest: IngestStats


# -- regions -----------------------------------------------------------------------------------


class RegionRef(Out):
    id: int
    name: str
    level: str = Field(description="city, district or township.")


class RegionNode(Out):
    id: int
    name: str
    level: str = Field(description="city, district or township.")
    zones: ZoneTally = Field(description="Zones in this region and every region below it.")
    worst_status: ZoneStatus | None = Field(
        description="The worst status of those zones (breach > degraded > unknown > meets); null without zones.")
    children: list[RegionNode]


class RegionTree(Out):
    regions: list[RegionNode] = Field(description="Top-level regions (cities), each with its sub-regions.")
    unplaced_zones: ZoneTally = Field(description="Zones not placed in any region.")


# -- printers, devices, zones ------------------------------------------------------------------


class ZoneRef(Out):
    code: str
    name: str


class Condition(Out):
    code: str = Field(description="media-empty, toner-low, media-jam, door-open, stuck-queue, … (open-ended).")
    severity: str
    text: str = Field(description="The condition in plain words.")
    since: Time | None


class Supply(Out):
    name: str
    type: str | None = None
    color: str | None = None
    level: float | None = Field(None, description="Percent left; null when the printer does not say.")
    state: str | None = Field(None, description="ok, low, empty, near-full, full, remaining or unknown.")


class PrinterItem(Out):
    id: int
    name: str = Field(description="The print queue's name.")
    device_id: str = Field(description="The PC the printer is attached to (its host).")
    device_name: str
    zone: ZoneRef | None
    status: CheckStatus
    since: Time | None
    summary: str
    state: str = Field(description="idle, processing, stopped or unknown.")
    accepting: bool | None
    conditions: list[Condition]
    supplies: list[Supply]
    jobs_queued: int
    oldest_job_age_s: float | None
    make_model: str | None
    updated_at: Time | None


class DeviceItem(Out):
    id: str
    name: str
    role: DeviceRole
    zone: ZoneRef | None = Field(description="Null for an unassigned device.")
    status: DeviceStatus
    since: Time | None
    reason: str = Field(description="Why the device has this status.")
    online: bool | None = Field(description="Presence: null when never heard.")
    last_report_at: Time | None = Field(description="When the newest report was measured.")
    last_heard: Time | None
    revoked_at: Time | None = Field(description="When an admin revoked the device (UTC): its broker credentials "
                                                "are disabled and it cannot enrol again under this id; null while "
                                                "it is not revoked.")


class ZoneItem(Out):
    code: str
    name: str
    kind: str = Field(description="service_hall, convenience_centre, archive or library.")
    status: ZoneStatus
    since: Time | None
    reasons: list[str] = Field(description="Why the zone does not simply meet the rule, in plain words.")
    region: list[RegionRef] = Field(description="The region path, city first; empty when not placed.")
    device_count: int
    printer_count: int


class ZoneDetail(ZoneItem):
    timezone: str
    opening_hours: dict[str, list[str]] = Field(
        description='Per weekday ("mon" … "sun") a list of "HH:MM-HH:MM"; a missing weekday is closed.')
    holidays: list[str] = Field(description="Dates (YYYY-MM-DD) the zone is closed.")
    devices: list[DeviceItem]
    printers: list[PrinterItem]


class CheckState(Out):
    name: str
    kind: str
    status: CheckStatus
    summary: str
    since: Time | None = Field(description="When the check last changed status (the agent's measured time).")


class ReportedCheck(BaseModel):
    """One check as the device reported it: the common fields plus its kind's own."""

    model_config = ConfigDict(extra="allow")
    name: str
    kind: str = Field(description="network, printer, system, kiosk, content or clock.")
    status: CheckStatus
    summary: str = ""


class LatestReport(Out):
    seq: int
    epoch: int = Field(description="Sequence epoch: bumped when the device restarted its numbering.")
    measured_at: Time | None
    received_at: Time | None
    trigger: str
    status: CheckStatus = Field(description="The worst status of its checks.")
    agent_version: str | None
    checks: list[ReportedCheck]
    error: str | None = Field(None, description="Set when the stored report could not be read back.")


class DeviceDetail(DeviceItem):
    measured: CheckStatus = Field(description="The worst status of the newest report's checks.")
    measured_since: Time | None
    online_since: Time | None
    agent_version: str | None
    first_seen: Time | None
    last_seq: int | None
    seq_epoch: int
    interval_s: float | None = Field(description="Report interval set by an admin (null: the device's own).")
    reported_interval_s: float | None
    check_states: list[CheckState]
    latest_report: LatestReport | None
    printers: list[PrinterItem]


# -- pages -------------------------------------------------------------------------------------


class Page(Out):
    total: int = Field(description="Items matching the filters, over all pages.")
    limit: int
    offset: int


class ZonePage(Page):
    items: list[ZoneItem]


class DevicePage(Page):
    items: list[DeviceItem]


class PrinterPage(Page):
    items: list[PrinterItem]


class HistoryEntry(Out):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    id: int
    subject: Subject
    subject_id: str = Field(description='"device/check", "device/printer", the device id or the zone code.')
    device_id: str | None
    zone: str | None = Field(description="The code of the zone the subject was in at the time.")
    from_: str = Field(alias="from", description="Status before the change.")
    to: str = Field(description="Status after the change.")
    at: Time = Field(description="When it happened (the agent's measured time for report-derived changes).")
    recorded_at: Time | None
    why: str
    seq: int | None = Field(description="The report that caused it, if any.")


class HistoryPage(Out):
    items: list[HistoryEntry] = Field(description="Ordered by at, then id.")
    limit: int
    next_cursor: str | None = Field(description="Pass as cursor (with the same filters) for the next page; "
                                                "null on the last page.")
    next_offset: int | None = Field(description="Offset of the next page when paging by offset; null otherwise.")


def dump(model: BaseModel) -> bytes:
    return model.model_dump_json(by_alias=True).encode()
