"""The one error the wire contract raises."""

from __future__ import annotations

import re


class ProtocolError(ValueError):
    """A message or topic that does not follow the contract.

    ``topic`` is the MQTT topic it came on (or ``None`` when encoding), ``field`` the
    dotted path of the offending field (``checks[2].status``; ``None`` for the payload
    as a whole), ``reason`` what is wrong in words a person can act on.
    """

    def __init__(self, topic: str | None, field: str | None, reason: str) -> None:
        self.topic = topic
        self.field = field
        self.reason = reason
        where = " ".join(p for p in (f"topic {topic!r}" if topic else "", f"field {field!r}" if field else "") if p)
        super().__init__(f"{where}: {reason}" if where else reason)


_AT = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_KEY = re.compile(r"^Object (?P<what>contains unknown|missing required) field `(?P<name>[^`]+)`$")


def explain_validation(exc: Exception) -> tuple[str | None, str]:
    """A msgspec validation error as ``(dotted key path or None, reason in plain words)``.

    Shared by the agent's and the server's config loaders so both name keys the same way.
    """
    m = _AT.match(str(exc))
    reason, path = m["reason"], (m["path"] or "").lstrip(".")
    key = _KEY.match(reason)
    if key:
        path = f"{path}.{key['name']}" if path else key["name"]
        reason = ("unknown key (check its spelling; see the example config)" if key["what"] == "contains unknown"
                  else "required key is missing")
    reason = reason.replace("`", "")
    return path or None, reason[0].lower() + reason[1:] if reason else reason
