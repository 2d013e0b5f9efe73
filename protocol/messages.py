"""The five messages of the contract, versioned with ``v``.

Every message carries ``v`` (schema version), ``device_id`` and ``ts`` (the sender's clock,
seconds since the Unix epoch). See docs/protocol.md for one example of each.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .checks import AnyCheck
from .fields import (
    Count,
    DeviceId,
    Keyword,
    LongText,
    SchemaVersion,
    Seconds,
    Sha256,
    Text,
    Timestamp,
    Url,
    Version,
)

#: The schema version this code writes. Older versions are refused; newer ones are
#: decoded leniently (unknown fields and check kinds dropped and listed).
CURRENT_VERSION = 1


class Message(msgspec.Struct, kw_only=True):
    v: SchemaVersion = CURRENT_VERSION
    device_id: DeviceId
    ts: Timestamp


class Presence(Message, kw_only=True):
    """Birth (``online: true``, retained) and, as the Last Will, ``online: false``."""

    online: bool
    agent_version: Version | None = None
    interval_s: Seconds | None = None
    reason: Text | None = None


class Report(Message, kw_only=True):
    """A full health report: every check, every interval and at once on any status change.

    ``seq`` increases by one per report per device and survives agent restarts, so the
    server stores each report exactly once however often or late it arrives.
    """

    seq: Count
    interval_s: Seconds
    checks: list[AnyCheck]
    trigger: Keyword = "interval"
    agent_version: Version | None = None
    config_version: Version | None = None
    #: Reports the agent's spool had to drop (full or too old) since it started counting.
    spool_dropped: Count = 0
    #: Reports waiting in the spool when this one was written (backlog after an outage).
    spool_backlog: Count = 0


class Ack(Message, kw_only=True):
    """Progress of a command (``target: command``) or of applying desired state."""

    ref: Keyword
    target: Keyword = "command"
    state: Keyword
    detail: Text = ""
    progress: float | None = None
    result: dict[str, Any] | None = None


class DesiredConfig(msgspec.Struct, kw_only=True):
    version: Version
    sha256: Sha256
    body: LongText


class DesiredContent(msgspec.Struct, kw_only=True):
    version: Version
    url: Url
    sha256: Sha256
    size: Count
    signature: Text


class Desired(Message, kw_only=True):
    """What the device should run: agent config and content bundle. Retained."""

    generation: Count
    config: DesiredConfig | None = None
    content: DesiredContent | None = None


class Command(Message, kw_only=True):
    """A one-shot command (test print, reload kiosk, diagnostics, restart agent)."""

    id: Keyword
    action: Keyword
    expires: Timestamp
    args: dict[str, str | int | float | bool] = msgspec.field(default_factory=dict)
    signature: Text | None = None


#: Which model a topic's last level carries.
MESSAGE_TYPES: dict[str, type[Message]] = {
    "presence": Presence,
    "report": Report,
    "ack": Ack,
    "desired": Desired,
    "run": Command,
}
