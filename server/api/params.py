"""Query parameters and JSON bodies: one pydantic model per route, validated strictly, with errors that say
what is allowed.

An unknown parameter or body field, a repeated parameter, or a value outside what the model allows
is answered ``400 {"error", "parameter", "allowed"}`` — never ignored, so a typo (``limt=5``) is not
silently an unfiltered list.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import sys
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from multidict import MultiMapping
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema

from ..incidents.rules import RULES
from .errors import ApiError, echo
from .schemas import CheckStatus, DeviceStatus, Subject, ZoneStatus

MAX_OFFSET = 1_000_000_000
MAX_ID = 2**31 - 1
TIME_HELP = "an ISO 8601 time (2024-05-01T08:30:00Z; no offset means UTC) or seconds since the Unix epoch"
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]+$"
#: Printable text with at least one character that is not a space (a name, a reason).
NAME_PATTERN = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
#: Like NAME_PATTERN, but line breaks and tabs are allowed (a comment).
NOTE_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x08\x0b-\x1f\x7f]*$"
#: Any text but control characters other than line breaks and tabs; may be empty (an optional comment).
COMMENT_PATTERN = r"^[^\x00-\x08\x0b-\x1f\x7f]*$"
DEVICE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def parse_time(value: Any) -> float:
    """ISO 8601 (``Z`` or an offset; naive means UTC) or epoch seconds → epoch seconds."""
    if isinstance(value, bool):
        raise ValueError("not a time")
    if isinstance(value, int | float):
        seconds = float(min(max(value, -sys.float_info.max), sys.float_info.max))
    else:
        text = str(value).strip()
        if any(word in text.lower() for word in ("inf", "nan")):
            raise ValueError("not a time")
        try:
            seconds = float(text)
        except ValueError:
            return _iso(text)
    if math.isnan(seconds):
        raise ValueError("not a time")
    return max(-sys.float_info.max, min(seconds, sys.float_info.max))  # far past / far future: still a bound


def _iso(text: str) -> float:
    if not text or not text[0].isdigit():
        raise ValueError("not a time")
    try:
        moment = datetime.fromisoformat(text.upper())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError, OSError) as exc:
        raise ValueError("not a time") from exc


TimeParam = Annotated[float, BeforeValidator(parse_time), WithJsonSchema({
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
    "description": "Time: " + TIME_HELP + ".",
})]


def parse_json_time(value: Any) -> float:
    """A time in a JSON body: a number of epoch seconds, or an ISO 8601 string (not a number in a string)."""
    return parse_time(value) if isinstance(value, int | float) else _iso(value if isinstance(value, str) else "")


BodyTime = Annotated[float, BeforeValidator(parse_json_time), WithJsonSchema({
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
    "description": "Time: " + TIME_HELP + ".",
})]
Text64 = Annotated[str, Field(min_length=1, max_length=64, pattern=TEXT_PATTERN)]
Limit = Annotated[int, Field(ge=1, le=1000, description="Items per page.")]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET, description="Items to skip.")]
DeviceId = Annotated[str, Field(min_length=1, max_length=64, pattern=DEVICE_PATTERN)]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=NAME_PATTERN)]
Note = Annotated[str, Field(min_length=1, max_length=2000, pattern=NOTE_PATTERN)]
RuleName = Literal[tuple(RULES)]  # type: ignore[valid-type]
Severity = Literal["critical", "warning"]


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Paging(Query):
    limit: Limit = 100
    offset: Offset = 0


class ZoneQuery(Paging):
    status: ZoneStatus | None = Field(None, description="Only zones with this status.")
    region_id: Annotated[int, Field(ge=1, le=MAX_ID)] | None = Field(
        None, description="Only zones in this region or any region below it (ids from /api/v1/regions).")


class DeviceQuery(Paging):
    zone: Text64 | None = Field(None, description="Only devices in the zone with this code.")
    status: DeviceStatus | None = Field(None, description="Only devices with this status.")
    unassigned: bool | None = Field(
        None, description="true: only devices in no zone (reported, not yet placed); false: only placed ones.")


class PrinterQuery(Paging):
    status: CheckStatus | None = Field(None, description="Only printers with this status.")
    zone: Text64 | None = Field(None, description="Only printers whose host device is in the zone with this code.")
    condition: Text64 | None = Field(
        None, description="Only printers with this condition now (media-empty, toner-low, media-jam, …).")


class HistoryQuery(Query):
    since: TimeParam | None = Field(None, description="Changes at or after this time.")
    until: TimeParam | None = Field(None, description="Changes before this time.")
    subject: Subject | None = Field(None, description="Only changes of this kind of subject.")
    limit: Limit = 100
    cursor: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")] | None = Field(
        None, description="next_cursor of the previous page (repeat the same filters).")
    offset: Offset | None = Field(None, description="Items to skip (instead of cursor).")


class IncidentQuery(Paging):
    status: Literal["open", "acknowledged", "resolved", "active"] | None = Field(
        None, description="Only incidents with this status; active: open or acknowledged.")
    severity: Severity | None = Field(None, description="Only incidents of this severity.")
    rule: RuleName | None = Field(None, description="Only incidents of this rule.")
    zone: Text64 | None = Field(None, description="Only incidents in the zone with this code.")
    device: DeviceId | None = Field(None, description="Only incidents of this device (or a printer or check on it).")
    since: TimeParam | None = Field(None, description="Incidents opened at or after this time.")
    until: TimeParam | None = Field(None, description="Incidents opened before this time.")


class SilenceQuery(Paging):
    all: bool = Field(False, description="true: also silences that have ended; false: only active and scheduled "
                                         "ones.")


# -- JSON bodies -------------------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AckBody(Body):
    by: Name = Field(description="Who acknowledges: the person taking care of it.")
    comment: Annotated[str, Field(max_length=2000, pattern=COMMENT_PATTERN)] = Field(
        "", description="What they are doing about it; kept on the incident's timeline.")


class SilenceBody(Body):
    zone: Text64 | None = Field(None, description="Silence incidents in the zone with this code.")
    device: DeviceId | None = Field(None, description="Silence incidents of this device and its printers and checks.")
    rule: RuleName | None = Field(None, description="Silence incidents of this rule.")
    starts_at: BodyTime | None = Field(None, description="When the silence begins; now when unset.")
    ends_at: BodyTime | None = Field(None, description="When it ends (give this or duration_minutes).")
    duration_minutes: Annotated[float, Field(gt=0, le=31 * 24 * 60, allow_inf_nan=False)] | None = Field(
        None, description="How long it lasts from starts_at, in minutes (give this or ends_at).")
    created_by: Name = Field(description="Who sets the silence.")
    comment: Note = Field(description="Why: the maintenance, the repair, the closed hall.")


B = TypeVar("B", bound=Body)


def parse_body(model: type[B], content_type: str, raw: bytes) -> B:
    """A JSON object → the body model; ApiError (400 naming the field, 415 for a non-JSON body) otherwise."""
    fields = ", ".join(model.model_fields)
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise ApiError(415, f"send the body as JSON with Content-Type: application/json (got {echo(content_type)})",
                       parameter="body", allowed="a JSON object with " + fields)
    try:
        data = json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        raise ApiError(400, "the request body is not valid JSON; send a JSON object with " + fields,
                       parameter="body", allowed="a JSON object with " + fields) from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the request body must be a JSON object with {fields}; got {echo(data)}",
                       parameter="body", allowed="a JSON object with " + fields)
    try:
        return model.model_validate(data, strict=True)  # JSON has types: "5" is not a number
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])  # a typo first
        name = str(first["loc"][0]) if first["loc"] else "body"
        if first["type"] == "extra_forbidden":
            raise ApiError(400, f"unknown field {echo(name)}; this body takes {fields}", parameter=name,
                           allowed=fields) from None
        what = allowed(model, name)
        if first["type"] == "missing":
            raise ApiError(400, f"{name} is required: {what}", parameter=name, allowed=what) from None
        raise ApiError(400, f"{name} must be {what}; got {echo(data.get(name))}", parameter=name,
                       allowed=what) from None


# -- parsing -----------------------------------------------------------------------------------

Q = TypeVar("Q", bound=Query)


def parse_query(model: type[Q], query: MultiMapping[str]) -> Q:
    fields = model.model_fields
    values: dict[str, str] = {}
    for name in query:
        if name in values:
            continue
        if name not in fields:
            raise ApiError(400, f"unknown query parameter {echo(name)}; this route takes "
                                f"{', '.join(fields) or 'no parameters'}", parameter=name,
                           allowed=", ".join(fields))
        given = query.getall(name)
        if len(given) > 1:
            raise ApiError(400, f"query parameter {echo(name)} is given {len(given)} times; give it once",
                           parameter=name, allowed=allowed(model, name))
        values[name] = given[0]
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        what = allowed(model, name)
        raise ApiError(400, f"{name} must be {what}; got {echo(values.get(name))}", parameter=name,
                       allowed=what) from None


def allowed(model: type[BaseModel], name: str) -> str:
    """What a parameter accepts, in words, from its JSON schema."""
    schema = param_schema(model, name)
    return describe(schema)


def param_schema(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The JSON schema of one query parameter, without the ``null`` of an optional one."""
    prop = dict(model.model_json_schema(mode="validation")["properties"].get(name, {}))
    variants = [v for v in prop.get("anyOf", []) if v.get("type") != "null"]
    if "anyOf" in prop and len(variants) == 1:
        del prop["anyOf"]
        prop = {**variants[0], **prop}
    prop.pop("title", None)
    if prop.get("default", 0) is None:
        del prop["default"]
    return prop


def describe(schema: dict[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    if "const" in schema:
        return str(schema["const"])
    kind = schema.get("type")
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return f"an integer from {low} to {high}"
        return "an integer" + (f" of at least {low}" if low is not None else "")
    if kind == "number":
        low = schema.get("exclusiveMinimum", schema.get("minimum"))
        return f"a number above {low:g} and at most {schema['maximum']:g}" if "maximum" in schema else "a number"
    if kind == "boolean":
        return "true or false"
    if kind == "string":
        text = f"text of {schema.get('minLength', 0)} to {schema.get('maxLength', 'any number of')} characters"
        return text + PATTERN_WORDS.get(schema.get("pattern"), "")
    if "anyOf" in schema and any(v.get("format") == "date-time" for v in schema["anyOf"]):
        return TIME_HELP
    return "a valid value"


PATTERN_WORDS = {
    TEXT_PATTERN: ", without control characters",
    NAME_PATTERN: ", not blank, without control characters",
    NOTE_PATTERN: ", not blank, without control characters other than line breaks and tabs",
    COMMENT_PATTERN: ", without control characters other than line breaks and tabs",
    DEVICE_PATTERN: ": letters, digits, '_', '.' and '-', starting with a letter or digit",
}


# -- history cursors ---------------------------------------------------------------------------


def make_cursor(at: float, row_id: int) -> str:
    raw = json.dumps([at, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_cursor(cursor: str) -> tuple[float, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        if (isinstance(at, int | float) and not isinstance(at, bool) and math.isfinite(at)
                and type(row_id) is int and 0 <= row_id <= 2**63 - 1):
            return float(at), row_id
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        pass
    raise ApiError(400, f"cursor {echo(cursor)} is not one this server gave out; pass the next_cursor of the "
                        "previous page unchanged, or start again without cursor", parameter="cursor",
                   allowed="a next_cursor value from a previous page")
