"""The checks a report carries, one model per kind.

Every check has ``name`` (unique within a report, e.g. ``printer:Hall-1``), ``kind``,
``status`` and a one-line ``summary`` a person can read; ``error`` is set when the
collector itself failed (then ``status`` is ``unknown``), and ``duration_ms`` is how long
collecting it took. Kind-specific fields follow. New optional fields may be added within
a version; an unknown ``kind`` is dropped by the decoder, not fatal.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from .fields import (
    Count,
    HttpStatus,
    Keyword,
    Millis,
    Name,
    Offset,
    Percent,
    Seconds,
    Sha256,
    Status,
    Text,
    Timestamp,
    Url,
    Version,
)


class Check(msgspec.Struct, kw_only=True, tag_field="kind", omit_defaults=True):
    name: Name
    status: Status
    summary: Text = ""
    error: Text | None = None
    duration_ms: Millis | None = None


class NetworkCheck(Check, tag="network", kw_only=True):
    """Reachability of one target: the portal, the gateway, a DNS name, a TCP service."""

    probe: Literal["icmp", "tcp", "http", "dns"]
    target: Text
    up: bool | None = None
    latency_ms: Millis | None = None
    loss_pct: Percent | None = None
    http_status: HttpStatus | None = None
    gateway: bool = False


class PrinterCondition(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One plain-language condition derived from a printer state reason.

    ``code`` is one of media-empty, media-low, media-jam, door-open, toner-low, toner-empty,
    marker-supply-low, marker-supply-empty, marker-waste-full, offline, connecting-to-device,
    paused, stopped, not-accepting, stuck-queue, cups-unreachable, missing, other — open-ended, so a newer agent may add
    codes an older server shows as-is.
    """

    code: Keyword
    severity: Status
    text: Text
    reason: Keyword | None = None


class Supply(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A marker or supply, normalised.

    ``raw_level`` is what the printer said (IPP: -1 unavailable, -2 unknown, -3 some
    remaining, else 0-100 or a count against ``max_level``); ``level`` is the normalised
    percentage or ``None`` when no percentage is known; ``state`` is ok / low / empty /
    near-full / full (waste receptacles) / remaining / unknown.
    """

    name: Text
    type: Keyword = "other"
    color: Keyword | None = None
    raw_level: int | None = None
    level: Percent | None = None
    state: Keyword = "unknown"


class PrinterCheck(Check, tag="printer", kw_only=True):
    """One print queue (and, for IPP printers, what the printer itself says)."""

    printer: Name
    state: Literal["idle", "processing", "stopped", "unknown"] = "unknown"
    accepting: bool | None = None
    reasons: list[Keyword] = msgspec.field(default_factory=list)
    conditions: list[PrinterCondition] = msgspec.field(default_factory=list)
    supplies: list[Supply] = msgspec.field(default_factory=list)
    media_ready: list[Text] | None = None
    jobs_queued: Count = 0
    oldest_job_age_s: Seconds | None = None
    make_model: Text | None = None
    uri: Text | None = None
    source: Keyword = "cups"


class Disk(msgspec.Struct, kw_only=True, omit_defaults=True):
    path: Text
    used_pct: Percent
    free_bytes: Count


class SystemCheck(Check, tag="system", kw_only=True):
    uptime_s: Seconds | None = None
    boot_time: Timestamp | None = None
    cpu_pct: Percent | None = None
    memory_pct: Percent | None = None
    disks: list[Disk] = msgspec.field(default_factory=list)


class KioskCheck(Check, tag="kiosk", kw_only=True):
    """The kiosk front-end process (browser in kiosk mode, query application)."""

    process: Text
    running: bool
    pid: Count | None = None
    running_for_s: Seconds | None = None


class ContentCheck(Check, tag="content", kw_only=True):
    """The installed content bundle (offline pages, guides, notices)."""

    version: Version | None = None
    sha256: Sha256 | None = None
    applied_at: Timestamp | None = None
    desired_version: Version | None = None
    source_url: Url | None = None


class ClockCheck(Check, tag="clock", kw_only=True):
    """The agent's clock against the server's; a wrong clock breaks TLS."""

    offset_s: Offset | None = None
    reference: Keyword = "server"


#: Every check kind this version understands, by its ``kind`` tag.
CHECK_TYPES: dict[str, type[Check]] = {
    t.__struct_config__.tag: t  # type: ignore[misc]
    for t in (NetworkCheck, PrinterCheck, SystemCheck, KioskCheck, ContentCheck, ClockCheck)
}
AnyCheck = NetworkCheck | PrinterCheck | SystemCheck | KioskCheck | ContentCheck | ClockCheck


def kind_of(check: Check) -> str:
    """A check's ``kind`` (its tag on the wire: network, printer, …)."""
    return type(check).__struct_config__.tag  # type: ignore[return-value]
