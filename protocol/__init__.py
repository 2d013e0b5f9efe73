"""zonewatch's wire contract, shared by the agent and the server. No I/O.

    from protocol import decode, encode, Topics, Report, NetworkCheck, ProtocolError

Topics say who and what (``zw/v1/dev/{id}/report``); messages are JSON with a schema
version ``v``, the device id and a timestamp; :func:`decode` returns a typed message or
raises :class:`ProtocolError` naming the topic, the field and the reason.
"""

from .checks import (
    CHECK_TYPES,
    AnyCheck,
    Check,
    ClockCheck,
    ContentCheck,
    Disk,
    KioskCheck,
    NetworkCheck,
    PrinterCheck,
    PrinterCondition,
    Supply,
    SystemCheck,
)
from .codec import DEFAULT_MAX_SIZE, Codec, Decoded, decode, encode
from .errors import ProtocolError
from .fields import STATUS_RANK, Status, worst
from .messages import (
    CURRENT_VERSION,
    MESSAGE_TYPES,
    Ack,
    Command,
    Desired,
    DesiredConfig,
    DesiredContent,
    Message,
    Presence,
    Report,
)
from .topics import DEFAULT_PREFIX, DEVICE_ID_RE, TopicInfo, Topics, check_device_id

__all__ = [
    "CHECK_TYPES", "CURRENT_VERSION", "DEFAULT_MAX_SIZE", "DEFAULT_PREFIX", "DEVICE_ID_RE",
    "MESSAGE_TYPES", "STATUS_RANK", "Ack", "AnyCheck", "Check", "ClockCheck", "Codec", "Command",
    "ContentCheck", "Decoded", "Desired", "DesiredConfig", "DesiredContent", "Disk", "KioskCheck",
    "Message", "NetworkCheck", "Presence", "PrinterCheck", "PrinterCondition", "ProtocolError",
    "Report", "Status", "Supply", "SystemCheck", "TopicInfo", "Topics", "check_device_id",
    "decode", "encode", "worst",
]
