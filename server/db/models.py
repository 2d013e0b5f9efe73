"""The fleet's tables (sqlmodel). Times are seconds since the Unix epoch (UTC) as floats.

Regions nest city → district → township; a zone sits in a region; devices sit in a zone (or
none: *unassigned*, reported but not yet placed by an admin); printers are monitored items under
their host device. ``report`` holds every report exactly once by ``(device_id, epoch, seq)``;
``history`` holds every state change of a check, printer, device (measured health and presence)
and zone; ``metric_point`` holds downsampled series.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

REGION_LEVELS = ("city", "district", "township")
ZONE_KINDS = ("service_hall", "convenience_centre", "archive", "library")
DEVICE_ROLES = ("kiosk", "desktop", "counter_pc", "unknown")
#: Roles that count as a working query device for the zone rule.
QUERY_ROLES = ("kiosk", "desktop")
DEVICE_STATUSES = ("ok", "warning", "critical", "offline", "unknown")
ZONE_STATUSES = ("meets", "degraded", "breach", "unknown")


def _json(default: Any) -> Any:
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


class Region(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("parent_id", "name", name="uq_region_parent_name"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    level: str = Field(max_length=20)  # city | district | township
    parent_id: int | None = Field(default=None, foreign_key="region.id", index=True)


class Zone(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    #: Short unique code people and CSV files use (``hall-01``).
    code: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=200)
    kind: str = Field(default="service_hall", max_length=32)
    region_id: int | None = Field(default=None, foreign_key="region.id", index=True)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    #: ``{"mon": ["08:30-12:00", "13:30-17:30"], …}``; a missing weekday is closed.
    opening_hours: dict[str, list[str]] = _json(dict)
    #: Dates (``YYYY-MM-DD``) the zone is closed.
    holidays: list[str] = _json(list)
    status: str = Field(default="unknown", max_length=16)
    status_since: float | None = None
    reasons: list[str] = _json(list)
    created_at: float = 0.0


class Device(SQLModel, table=True):
    #: The device id: its MQTT user name and topic level.
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(default="", max_length=200)
    role: str = Field(default="unknown", max_length=16)
    zone_id: int | None = Field(default=None, foreign_key="zone.id", index=True)
    #: Expected seconds between reports set by an admin; the device's own when unset.
    interval_s: float | None = None
    reported_interval_s: float | None = None
    #: Shown status: ok / warning / critical / offline / unknown.
    status: str = Field(default="unknown", max_length=16)
    status_since: float | None = None
    status_reason: str = ""
    #: Worst status of the latest report's checks (what the device measured).
    measured: str = Field(default="unknown", max_length=16)
    measured_since: float | None = None
    #: Presence: None never heard, True online, False offline (Last Will, goodbye or silence).
    online: bool | None = None
    online_since: float | None = None
    agent_version: str | None = Field(default=None, max_length=64)
    first_seen: float | None = None
    #: Server time of the last message of any kind from the device.
    last_heard: float | None = None
    #: Measured time, sequence and sequence epoch of the newest report.
    last_report_at: float | None = None
    last_seq: int | None = Field(default=None, sa_type=BigInteger)
    seq_epoch: int = 0
    created_at: float = 0.0
    #: When an admin revoked the device: its broker login is gone and it cannot enrol again under this id.
    revoked_at: float | None = None


class Printer(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("device_id", "name", name="uq_printer_device_name"),)
    id: int | None = Field(default=None, primary_key=True)
    device_id: str = Field(foreign_key="device.id", index=True, max_length=64)
    #: The CUPS queue (or IPP printer) name as the agent reports it.
    name: str = Field(max_length=128)
    status: str = Field(default="unknown", max_length=16)
    status_since: float | None = None
    summary: str = ""
    state: str = Field(default="unknown", max_length=16)
    accepting: bool | None = None
    #: ``[{"code", "severity", "text", "since"}]``: each condition in plain words.
    conditions: list[dict[str, Any]] = _json(list)
    supplies: list[dict[str, Any]] = _json(list)
    jobs_queued: int = Field(default=0, sa_type=BigInteger)
    oldest_job_age_s: float | None = None
    make_model: str | None = None
    updated_at: float | None = None


class CheckState(SQLModel, table=True):
    """The current status of each check of each device (changes only; details are in the latest report)."""

    __tablename__ = "check_state"
    device_id: str = Field(primary_key=True, foreign_key="device.id", max_length=64)
    name: str = Field(primary_key=True, max_length=128)
    kind: str = Field(max_length=16)
    status: str = Field(max_length=16)
    summary: str = ""
    since: float


class Report(SQLModel, table=True):
    __table_args__ = (Index("ix_report_device_ts", "device_id", "ts"),)
    device_id: str = Field(primary_key=True, max_length=64)
    #: Bumped when a device's sequence restarts (its spool was wiped), so old and new both keep.
    epoch: int = Field(default=0, primary_key=True)
    seq: int = Field(primary_key=True, sa_type=BigInteger)
    #: When the agent measured it.
    ts: float
    received_at: float = Field(index=True)
    status: str = Field(max_length=16)
    trigger: str = Field(default="interval", max_length=32)
    #: The report as received (JSON bytes).
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class History(SQLModel, table=True):
    """One state change of a check, printer, device, presence or zone: from, to, at, why."""

    __table_args__ = (
        Index("ix_history_subject_at", "subject", "subject_id", "at"),
        Index("ix_history_zone_at", "zone_id", "at"),
        Index("ix_history_device_seq", "device_id", "seq"),
        Index("ix_history_device_at", "device_id", "at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    #: check | printer | device | presence | zone
    subject: str = Field(max_length=16)
    #: ``device/check``, ``device/printer``, ``device`` or the zone code.
    subject_id: str = Field(max_length=200)
    zone_id: int | None = None
    device_id: str | None = Field(default=None, max_length=64)
    from_status: str = Field(max_length=16)
    to_status: str = Field(max_length=16)
    #: When it happened: the agent's measured time for report-derived changes.
    at: float = Field(index=True)
    recorded_at: float
    why: str = ""
    #: The report that caused it (report-derived changes), so late reports can be merged in.
    seq: int | None = Field(default=None, sa_type=BigInteger)
    epoch: int | None = None


class MetricPoint(SQLModel, table=True):
    """A downsampled series point: min/max/sum/count/last over ``resolution`` seconds from ``bucket``."""

    __tablename__ = "metric_point"
    device_id: str = Field(primary_key=True, max_length=64)
    #: ``network.<target>.latency_ms``, ``printer.<queue>.supply.<name>``, ``system.uptime_s``, …
    series: str = Field(primary_key=True, max_length=200)
    resolution: int = Field(primary_key=True)
    bucket: int = Field(primary_key=True)
    min: float
    max: float
    sum: float
    count: int
    last: float


class IngestMark(SQLModel, table=True):
    """Small key → number facts ingest keeps across restarts (the metrics flush watermark)."""

    __tablename__ = "ingest_mark"
    name: str = Field(primary_key=True, max_length=64)
    value: float


class Incident(SQLModel, table=True):
    """One incident per rule and subject while the condition lasts: open → acknowledged → resolved."""

    __table_args__ = (Index("ix_incident_rule_subject_status", "rule", "subject", "status"),)
    id: int | None = Field(default=None, primary_key=True)
    rule: str = Field(max_length=48)
    #: ``zone:CODE``, ``device:ID``, ``printer:ID/NAME``, ``check:ID/NAME``
    subject: str = Field(max_length=200)
    label: str = Field(default="", max_length=300)
    severity: str = Field(max_length=16)
    zone_id: int | None = Field(default=None, index=True)
    device_id: str | None = Field(default=None, max_length=64)
    #: open | acknowledged | resolved
    status: str = Field(default="open", max_length=16, index=True)
    summary: str = ""
    #: When the condition began (as measured), when the incident opened (after the hold time).
    started_at: float
    opened_at: float
    acked_at: float | None = None
    acked_by: str | None = Field(default=None, max_length=200)
    resolved_at: float | None = None
    flapping: bool = False
    reactivations: int = 0
    #: high (zone open) or low (outside opening hours)
    urgency: str = Field(default="high", max_length=8)
    notified_at: float | None = None
    last_notified_at: float | None = None
    escalation_level: int = 0
    #: Why nobody was told yet: "closed" (outside opening hours), "silenced", "inhibited", or "".
    deferred: str = Field(default="", max_length=16)
    #: Random part of the signed one-click ack link; cleared once used.
    ack_nonce: str = Field(default="", max_length=64)


class IncidentEvent(SQLModel, table=True):
    """The incident's timeline: opened, notified whom, delivery failed, acked by whom, escalated, resolved."""

    __tablename__ = "incident_event"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    at: float
    kind: str = Field(max_length=24)
    actor: str | None = Field(default=None, max_length=200)
    receiver: str | None = Field(default=None, max_length=100)
    detail: str = ""


class Silence(SQLModel, table=True):
    """No notifications for matching incidents between ``starts_at`` and ``ends_at`` (still recorded)."""

    id: int | None = Field(default=None, primary_key=True)
    zone_code: str | None = Field(default=None, max_length=64)
    device_id: str | None = Field(default=None, max_length=64)
    rule: str | None = Field(default=None, max_length=48)
    starts_at: float
    ends_at: float = Field(index=True)
    created_by: str = Field(max_length=200)
    comment: str = ""
    created_at: float


# The sign-in tables live with the auth package, enrolment and device credentials with provisioning;
# importing them here registers them with the metadata.
from provisioning.models import DeviceCredential, EnrolmentToken  # noqa: E402, F401

from ..auth.models import ApiToken, AuditEntry, User, WebSession  # noqa: E402, F401
from ..content.models import ContentBundle, DeviceCommand, DeviceDesired, Rollout, RolloutDevice  # noqa: E402, F401
