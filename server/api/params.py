"""Query parameters: one pydantic model per route, validated strictly, with errors that say what is allowed.

An unknown parameter, a repeated one, or a value outside what the model allows is answered
``400 {"error", "parameter", "allowed"}`` — never ignored, so a typo (``limt=5``) is not
silently an unfiltered list.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import sys
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from multidict import MultiMapping
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema

from .errors import ApiError, echo
from .schemas import CheckStatus, DeviceStatus, Subject, ZoneStatus

MAX_OFFSET = 1_000_000_000
MAX_ID = 2**31 - 1
TIME_HELP = "an ISO 8601 time (2024-05-01T08:30:00Z; no offset means UTC) or seconds since the Unix epoch"
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]+$"


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
Text64 = Annotated[str, Field(min_length=1, max_length=64, pattern=TEXT_PATTERN)]
Limit = Annotated[int, Field(ge=1, le=1000, description="Items per page.")]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET, description="Items to skip.")]


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


def allowed(model: type[Query], name: str) -> str:
    """What a parameter accepts, in words, from its JSON schema."""
    schema = param_schema(model, name)
    return describe(schema)


def param_schema(model: type[Query], name: str) -> dict[str, Any]:
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
    if kind == "boolean":
        return "true or false"
    if kind == "string":
        text = f"text of {schema.get('minLength', 0)} to {schema.get('maxLength', 'any number of')} characters"
        return text + (", without control characters" if schema.get("pattern") == TEXT_PATTERN else "")
    if "anyOf" in schema and any(v.get("format") == "date-time" for v in schema["anyOf"]):
        return TIME_HELP
    return "a valid value"


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
