"""``decode(topic, payload)`` and ``encode(message)``: the one door in and out of the wire.

Decoding takes a fast typed path for well-formed current messages and falls back to a
lenient path that keeps what it understands of a newer version (unknown fields, unknown
check kinds) and lists what it dropped. Anything else is a :class:`ProtocolError` naming
the topic, the field and the reason — never another exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import msgspec

from .checks import CHECK_TYPES
from .errors import ProtocolError
from .messages import CURRENT_VERSION, MESSAGE_TYPES, Message
from .topics import DEFAULT_PREFIX, TopicInfo, Topics

DEFAULT_MAX_SIZE = 64 * 1024

_AT_PATH = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_DECODE_ERRORS = (msgspec.MsgspecError, RecursionError, ValueError, TypeError, OverflowError)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded message, the topic it came on, and what was dropped to understand it."""

    topic: TopicInfo
    message: Message
    dropped: tuple[str, ...] = ()


class Codec:
    """Decoder and encoder for one topic prefix and payload size limit."""

    def __init__(self, prefix: str = DEFAULT_PREFIX, max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.topics = Topics(prefix)
        self.max_size = max_size
        self._decoders = {k: msgspec.json.Decoder(t) for k, t in MESSAGE_TYPES.items()}
        self._encoder = msgspec.json.Encoder()
        self._parsed: dict[str, TopicInfo] = {}

    # -- decoding -------------------------------------------------------------------------
    def decode(self, topic: str, payload: bytes | bytearray | memoryview | str) -> Decoded:
        info = self._parsed.get(topic)
        if info is None:  # a server hears the same few topics per device again and again
            info = self.topics.parse(topic)
            if len(self._parsed) >= 500_000:
                self._parsed.clear()
            self._parsed[topic] = info
        if isinstance(payload, str):
            payload = payload.encode("utf-8", "surrogatepass")
        if len(payload) > self.max_size:
            raise ProtocolError(
                topic, None,
                f"payload is {len(payload)} bytes, over the limit of {_size(self.max_size)}; refused unread",
            )
        dropped: list[str] = []
        try:
            message = self._decoders[info.kind].decode(payload)
        except _DECODE_ERRORS:
            message = self._decode_lenient(topic, info, payload, dropped)
        else:
            if message.v > CURRENT_VERSION:
                message = self._decode_lenient(topic, info, payload, dropped)
        if message.device_id != info.device_id:
            raise ProtocolError(
                topic, "device_id",
                f"payload names device {message.device_id!r} but the topic is for "
                f"{info.device_id!r}; refused",
            )
        return Decoded(info, message, tuple(dropped))

    def _decode_lenient(self, topic: str, info: TopicInfo, payload: bytes, dropped: list[str]) -> Message:
        try:
            raw = msgspec.json.decode(payload)
        except _DECODE_ERRORS as exc:
            raise ProtocolError(topic, None, f"payload is not valid JSON ({_short(exc)})") from None
        if not isinstance(raw, dict):
            raise ProtocolError(topic, None, f"payload must be a JSON object, got {_json_type(raw)}")
        version = raw.get("v", CURRENT_VERSION)
        if type(version) is not int:
            raise ProtocolError(topic, "v", f"schema version must be an integer, got {_json_type(version)}")
        model = MESSAGE_TYPES[info.kind]
        future = version > CURRENT_VERSION
        if future:
            _drop_unknown_fields(raw, model, "", version, dropped)
        if isinstance(raw.get("checks"), list) and "checks" in model.__struct_fields__:
            raw["checks"] = _known_checks(raw["checks"], version, dropped)
        try:
            return msgspec.convert(raw, model)
        except _DECODE_ERRORS as exc:
            raise _protocol_error(topic, exc) from None

    # -- encoding -------------------------------------------------------------------------
    def encode(self, message: Message) -> bytes:
        """JSON bytes for ``message``, validated against the contract on the way out."""
        data = self._encoder.encode(message)
        if len(data) > self.max_size:
            raise ProtocolError(
                None, None,
                f"{type(message).__name__} encodes to {len(data)} bytes, over the limit of "
                f"{_size(self.max_size)}",
            )
        try:
            msgspec.json.decode(data, type=type(message))
        except _DECODE_ERRORS as exc:
            raise _protocol_error(None, exc) from None
        return data


def _known_checks(checks: list, version: int, dropped: list[str]) -> list:
    """The checks of a kind this version knows; the others are listed in ``dropped``."""
    kept = []
    for i, check in enumerate(checks):
        if not isinstance(check, dict) or not isinstance(check.get("kind"), str):
            kept.append(check)  # malformed: let validation name the field
            continue
        name = check.get("name")
        label = f"checks[{i}]" + (f" ({name!r})" if isinstance(name, str) else "")
        model = CHECK_TYPES.get(check["kind"])
        if model is None:
            dropped.append(f"{label}: unknown check kind {check['kind']!r}")
            continue
        if version > CURRENT_VERSION:
            _drop_unknown_fields(check, model, label + ".", version, dropped, keep=("kind",))
            try:
                msgspec.convert(check, model)
            except _DECODE_ERRORS as exc:
                dropped.append(f"{label}: not understood in version {version} ({_short(exc)})")
                continue
        kept.append(check)
    return kept


def _drop_unknown_fields(raw: dict, model: type, prefix: str, version: int, dropped: list[str],
                         keep: tuple[str, ...] = ()) -> None:
    known = set(model.__struct_fields__) | set(keep)
    for key in [k for k in raw if k not in known]:
        del raw[key]
        dropped.append(f"{prefix}{key}: field unknown to version {CURRENT_VERSION} (message is v{version})")


def _protocol_error(topic: str | None, exc: BaseException) -> ProtocolError:
    match = _AT_PATH.match(_short(exc))
    reason, path = match["reason"], (match["path"] or "").lstrip(".")
    missing = _MISSING.match(reason)
    if missing:
        path = f"{path}.{missing['name']}" if path else missing["name"]
        reason = "required field is missing"
    return ProtocolError(topic, path or None, reason)


def _size(n: int) -> str:
    return f"{n // 1024} KiB ({n} bytes)" if n % 1024 == 0 else f"{n} bytes"


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _json_type(value: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


@lru_cache(maxsize=8)
def codec(prefix: str = DEFAULT_PREFIX, max_size: int = DEFAULT_MAX_SIZE) -> Codec:
    """A shared codec for a prefix and size limit (codecs hold no mutable state)."""
    return Codec(prefix, max_size)


def decode(topic: str, payload: bytes | str, *, prefix: str = DEFAULT_PREFIX,
           max_size: int = DEFAULT_MAX_SIZE) -> Decoded:
    """Decode one MQTT message; raises only :class:`ProtocolError`."""
    return codec(prefix, max_size).decode(topic, payload)


def encode(message: Message, *, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
    """Encode and validate one message; raises only :class:`ProtocolError`."""
    return codec(DEFAULT_PREFIX, max_size).encode(message)
