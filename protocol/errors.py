"""The one error the wire contract raises."""

from __future__ import annotations


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
