"""MQTT topic names: builders for both sides and the parser the server and agent use.

Device → server topics live under ``{prefix}/dev/{device_id}/…`` and server → device
under ``{prefix}/cmd/{device_id}/…``, so the broker ACL
``pattern write zw/v1/dev/%u/#`` + ``pattern read zw/v1/cmd/%u/#`` confines a device to itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .errors import ProtocolError

DEFAULT_PREFIX = "zw/v1"

#: Device ids double as MQTT user names and topic levels: letters, digits, ``_ . -``,
#: starting with a letter or digit, at most 64 characters. No ``/ + #`` or spaces.
DEVICE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

Direction = Literal["dev", "cmd"]
#: Message kinds per direction, as they appear in the last topic level.
DEVICE_KINDS = ("presence", "report", "ack")
COMMAND_KINDS = ("desired", "run")


def check_device_id(device_id: object, topic: str | None = None) -> str:
    """Return ``device_id`` if it is in the safe alphabet, else raise :class:`ProtocolError`."""
    if not isinstance(device_id, str) or not DEVICE_ID_RE.fullmatch(device_id):
        raise ProtocolError(
            topic, "device_id",
            f"device id {device_id!r} is not allowed: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit",
        )
    return device_id


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """What a topic names: direction (``dev`` or ``cmd``), device and message kind."""

    direction: Direction
    device_id: str
    kind: str


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic builders and parser for one prefix (``zw/v1`` unless configured)."""

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        levels = self.prefix.split("/")
        if not self.prefix or any(not lv or set(lv) & {"+", "#"} for lv in levels):
            raise ProtocolError(
                None, "prefix",
                f"topic prefix {self.prefix!r} is not usable: give non-empty levels separated "
                "by '/', without '+' or '#' and without a leading or trailing '/'",
            )

    # -- builders -------------------------------------------------------------------------
    def device(self, device_id: str, kind: str) -> str:
        if kind not in DEVICE_KINDS:
            raise ProtocolError(None, "kind", f"unknown device message kind {kind!r}")
        return f"{self.prefix}/dev/{check_device_id(device_id)}/{kind}"

    def command(self, device_id: str, kind: str) -> str:
        if kind not in COMMAND_KINDS:
            raise ProtocolError(None, "kind", f"unknown command message kind {kind!r}")
        return f"{self.prefix}/cmd/{check_device_id(device_id)}/{kind}"

    def presence(self, device_id: str) -> str:
        return self.device(device_id, "presence")

    def report(self, device_id: str) -> str:
        return self.device(device_id, "report")

    def ack(self, device_id: str) -> str:
        return self.device(device_id, "ack")

    def desired(self, device_id: str) -> str:
        return self.command(device_id, "desired")

    def run(self, device_id: str) -> str:
        return self.command(device_id, "run")

    # -- subscription filters -------------------------------------------------------------
    def all_devices(self, kind: str) -> str:
        """Filter the server subscribes to for one device message kind, e.g. every report."""
        if kind not in DEVICE_KINDS:
            raise ProtocolError(None, "kind", f"unknown device message kind {kind!r}")
        return f"{self.prefix}/dev/+/{kind}"

    def commands_for(self, device_id: str) -> str:
        """Filter an agent subscribes to: everything the server sends it."""
        return f"{self.prefix}/cmd/{check_device_id(device_id)}/#"

    # -- parser ---------------------------------------------------------------------------
    def parse(self, topic: str) -> TopicInfo:
        """Split a topic into direction, device id and kind, or raise :class:`ProtocolError`."""
        head = self.prefix + "/"
        if not isinstance(topic, str) or not topic.startswith(head):
            raise ProtocolError(topic, None, f"topic is not under the prefix {self.prefix!r}")
        parts = topic[len(head):].split("/")
        if len(parts) != 3:
            raise ProtocolError(
                topic, None, f"expected {self.prefix}/dev|cmd/<device_id>/<kind>",
            )
        direction, device_id, kind = parts
        check_device_id(device_id, topic)
        allowed = {"dev": DEVICE_KINDS, "cmd": COMMAND_KINDS}.get(direction)
        if allowed is None:
            raise ProtocolError(topic, None, f"unknown direction {direction!r}: expected dev or cmd")
        if kind not in allowed:
            raise ProtocolError(
                topic, None, f"unknown {direction} message kind {kind!r}: expected one of "
                + ", ".join(allowed),
            )
        return TopicInfo(direction, device_id, kind)  # type: ignore[arg-type]
