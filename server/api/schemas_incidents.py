"""What the incident, silence and alerting routes answer: one pydantic model per response shape.

Kept apart from :mod:`.schemas` (the fleet's state) only for size; the same conventions hold:
times are ISO 8601 UTC, and these models both validate each answer and describe it in the
OpenAPI document.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .schemas import Out, Time, ZoneRef

IncidentStatus = Literal["open", "acknowledged", "resolved"]
INCIDENT_STATUSES: tuple[str, ...] = IncidentStatus.__args__
SEVERITIES = ("critical", "warning")


class IncidentItem(Out):
    id: int
    rule: str = Field(description="zone_breach, device_offline, printer_media_empty, … (GET /api/v1/alerting).")
    title: str = Field(description="The incident in a few words: \"printer P1 on Kiosk 1 is out of paper\".")
    severity: Literal["critical", "warning"]
    status: IncidentStatus
    subject: str = Field(description="zone:CODE, device:ID, printer:DEVICE/NAME or check:DEVICE/NAME.")
    label: str = Field(description="What a person calls the subject: \"printer P1 on Kiosk 1\".")
    summary: str = Field(description="What is wrong, in plain words, as measured when it opened.")
    zone: ZoneRef | None = Field(description="The zone it happened in; null for an unassigned device.")
    device_id: str | None
    started_at: Time | None = Field(description="When the condition began (as measured on the device).")
    opened_at: Time | None = Field(description="When the incident opened (after the rule's hold time).")
    acked_at: Time | None
    acked_by: str | None
    resolved_at: Time | None = Field(description="When the condition cleared (the incident resolved).")
    flapping: bool = Field(description="It keeps clearing and coming back; held as this one incident.")
    reactivations: int = Field(description="Times the condition came back before the incident resolved.")
    urgency: Literal["high", "low"] = Field(description="high in the zone's opening hours, low outside them.")
    deferred: str | None = Field(description="Why nobody has been told (yet): closed (outside opening hours), "
                                             "silenced, inhibited (part of a zone breach) or no-receivers; "
                                             "null when notified.")
    notified_at: Time | None = Field(description="When receivers were first told.")
    last_notified_at: Time | None
    escalation_level: int = Field(description="0: the route's receivers; n: the n-th escalation receiver too.")


class TimelineEvent(Out):
    at: Time
    kind: str = Field(description="opened, routed, notified, delivered, delivery_failed, closed, silenced, "
                                  "inhibited, no-receivers, acknowledged, comment, escalated, reactivated, "
                                  "flapping, resolved (open-ended).")
    actor: str | None = Field(description="Who did it (acknowledged, comment).")
    receiver: str | None = Field(description="The receiver (delivered, delivery_failed).")
    detail: str


class IncidentDetail(IncidentItem):
    timeline: list[TimelineEvent] = Field(description="Everything that happened to the incident, oldest first.")


class IncidentPage(Out):
    total: int = Field(description="Incidents matching the filters, over all pages.")
    limit: int
    offset: int
    items: list[IncidentItem] = Field(description="Newest first (by opened_at).")


class SilenceItem(Out):
    id: int
    zone: str | None = Field(description="Zone code it matches; null: any zone.")
    device: str | None = Field(description="Device it matches; null: any device.")
    rule: str | None = Field(description="Rule it matches; null: any rule.")
    starts_at: Time | None
    ends_at: Time | None
    state: Literal["scheduled", "active", "ended"]
    created_by: str
    comment: str
    created_at: Time | None


class SilencePage(Out):
    total: int
    limit: int
    offset: int
    items: list[SilenceItem] = Field(description="Newest first.")


class RouteMatchers(Out):
    region: str | None = Field(description="A region name in the zone's path (city / district / township).")
    zone: str | None
    severity: str | None
    rule: str | None


class RouteItem(Out):
    index: int = Field(description="Position in alerts.routes; the first route that matches decides.")
    matchers: RouteMatchers = Field(description="All set matchers must match; null matches anything.")
    receivers: list[str] = Field(description="Told at once.")
    escalation: list[str] = Field(description="Told one after another while nobody acknowledges.")
    after_hours: list[str] = Field(description="Told outside opening hours when alerts.after_hours is route.")


class RuleItem(Out):
    name: str
    title: str
    enabled: bool
    severity: Literal["critical", "warning"] = Field(description="Effective severity.")
    hold: float = Field(description="Effective seconds a condition must last before an incident opens.")
    configured: bool = Field(description="true when alerts.rules.<name> changes the rule's defaults.")
    default_severity: str
    default_hold: float


class ReceiverItem(Out):
    name: str
    kind: str = Field(description="webhook, email, dingtalk, wecom or feishu.")


class AlertTiming(Out):
    resolve_hold: float = Field(description="Seconds a condition stays cleared before its incident resolves.")
    escalate_after: float = Field(description="Seconds without acknowledgement before the next receiver is told.")
    renotify_every: float = Field(description="Seconds between reminders; 0: none.")
    flap_window: float
    flap_threshold: int
    after_hours: Literal["hold", "route"]
    ack_link_ttl: float = Field(description="Seconds a one-click acknowledge link stays valid.")
    retry_first: float
    retry_attempts: int


class Alerting(Out):
    routes: list[RouteItem]
    default_receivers: list[str] = Field(description="Told when no route matches.")
    rules: list[RuleItem]
    receivers: list[ReceiverItem] = Field(description="Names and kinds only; their addresses, keys and "
                                                      "secrets stay in the server's config.")
    timing: AlertTiming
