"""Constrained field types shared by the message models.

Every bound here is part of the contract: a value outside it is refused with a
:class:`~protocol.errors.ProtocolError` naming the field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

#: Health of one check, worst last. ``unknown`` = the check could not be evaluated.
Status = Literal["ok", "warning", "critical", "unknown"]
STATUS_RANK: dict[str, int] = {"ok": 0, "unknown": 1, "warning": 2, "critical": 3}

DeviceId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Name = Annotated[str, Meta(min_length=1, max_length=128)]
Keyword = Annotated[str, Meta(min_length=1, max_length=64)]
Text = Annotated[str, Meta(max_length=1024)]
LongText = Annotated[str, Meta(max_length=16384)]
#: Seconds since the Unix epoch, UTC (fractions allowed). Up to the year 5138.
Timestamp = Annotated[float, Meta(ge=0, le=1e11)]
Seconds = Annotated[float, Meta(ge=0, le=1e10)]
Millis = Annotated[float, Meta(ge=0, le=1e9)]
#: Signed offset in seconds (a clock may run behind or ahead).
Offset = Annotated[float, Meta(ge=-1e10, le=1e10)]
Percent = Annotated[float, Meta(ge=0, le=100)]
SchemaVersion = Annotated[int, Meta(ge=1, le=1_000_000)]
HttpStatus = Annotated[int, Meta(ge=100, le=999)]
Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
Version = Annotated[str, Meta(min_length=1, max_length=64)]
Url = Annotated[str, Meta(min_length=1, max_length=2048)]


def worst(statuses) -> str:
    """The worst of some statuses (``ok`` for none)."""
    return max(statuses, key=STATUS_RANK.__getitem__, default="ok")
