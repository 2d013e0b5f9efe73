"""What every notifier is: a kind name, its own documented options, and ``send(notice)``.

The incident engine decides *that* someone must be told and hands a :class:`Notice` to the
:class:`~server.notify.delivery.Dispatcher`; a notifier only knows *how* to tell one receiver
(one webhook URL, one mailbox list, one robot). It raises :class:`NotifyError` with a short detail
a person can act on (HTTP status and body excerpt, SMTP reply, the platform's errmsg) and says
whether trying again can help; it never retries by itself (the dispatcher does, with backoff).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import aiohttp
import msgspec
from msgspec import Meta

Kind = Literal["opened", "reminder", "escalated", "resolved", "flapping"]
Severity = Literal["critical", "warning"]
Urgency = Literal["high", "low"]
#: Seconds for one delivery attempt.
AttemptSeconds = Annotated[float, Meta(gt=0, le=600)]


class Notice(msgspec.Struct, kw_only=True, frozen=True):
    """One thing to tell on-call staff about one incident. Also the webhook's JSON body."""

    #: What happened to the incident: opened, reminder (still open, nobody acted),
    #: escalated (not acknowledged in time), resolved, flapping (opens and clears too often).
    kind: Kind
    #: The incident's id (its page is ``url``).
    incident_id: int | str
    #: The rule that opened it: zone_breach, device_offline, printer_media_empty, …
    rule: str
    severity: Severity
    #: high during the zone's opening hours, low outside them.
    urgency: Urgency
    zone_code: str
    zone_name: str
    #: Where the zone is, e.g. "Haidian District / Zhongguancun Street".
    region: str
    #: What is affected, e.g. "printer HP-Hall-1 on kiosk-1" or "zone".
    subject: str
    #: What broke, in plain words, e.g. "out of paper".
    summary: str
    #: When the condition began (Unix seconds).
    since: float
    #: The zone's IANA time zone; times are shown in it.
    timezone: str = "Asia/Shanghai"
    #: Link to the incident (or zone) page.
    url: str = ""
    #: Signed one-click acknowledge link, when the incident can still be acknowledged.
    ack_url: str | None = None
    #: 0 for the first receivers, 1 after the first escalation, …
    escalation_level: int = 0
    #: When the condition cleared (Unix seconds), for resolved notices.
    resolved_at: float | None = None


class NotifyError(Exception):
    """A receiver did not take a notice. ``detail`` is short: status + body excerpt, SMTP reply, errmsg.

    ``retryable`` is False when trying again cannot help (a 4xx answer, a wrong signature or key),
    so the dispatcher gives up at once instead of hammering the receiver.
    """

    def __init__(self, detail: str, *, retryable: bool = True) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable


class OptionError(ValueError):
    """A receiver option that cannot be used; ``key`` is the option's name (``secret_file``)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


_HTTP_URL = re.compile(r"^https?://[^/\s?#]+(/\S*)?$")


def check_url(url: str, key: str = "url", query: bool = True) -> str:
    """An http(s) URL, else :class:`OptionError` saying what is expected."""
    if not _HTTP_URL.match(url) or (not query and "?" in url):
        shape = "http(s)://host[:port]/path" + ("[?query]" if query else " (no ?query)")
        raise OptionError(key, f"{url!r} is not an URL like {shape}")
    return url


def check_each(values: list[str], pattern: str, key: str, what: str) -> None:
    """Every value matches ``pattern``, else :class:`OptionError` naming ``key[i]`` and the expected form."""
    for i, value in enumerate(values):
        if not re.fullmatch(pattern, value):
            raise OptionError(f"{key}[{i}]", f"{value!r} is not {what}")


def secret_value(value: str | None, file: str | None, key: str) -> str | None:
    """A secret given inline (``key``) or in a file (``key_file``, first line); not both."""
    if value is not None and file is not None:
        raise OptionError(key, f"set {key} or {key}_file, not both")
    if file is None:
        return value or None
    try:
        lines = Path(file).read_text().splitlines()
    except OSError as exc:
        raise OptionError(f"{key}_file", f"cannot read {file}: {exc.strerror or exc}") from None
    if not lines or not lines[0].strip():
        raise OptionError(f"{key}_file", f"{file} is empty; put the {key} on its first line")
    return lines[0].strip()


class ReceiverOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Options every receiver has, under ``[receivers.<name>]`` next to ``kind``."""

    #: Also send a notice when the incident is resolved.
    send_resolved: bool = True
    #: Seconds one delivery attempt may take; unset: attempt_timeout of the delivery settings.
    timeout: AttemptSeconds | None = None


class Notifier:
    """Base class: set ``name`` (the ``kind`` in config) and ``Options``; implement ``send``."""

    name: ClassVar[str]
    Options: ClassVar[type[ReceiverOptions]] = ReceiverOptions

    def __init__(self, options: ReceiverOptions) -> None:
        self.options = options

    async def send(self, notice: Notice, http: aiohttp.ClientSession) -> str:
        """Deliver one notice; return a short delivery note or raise :class:`NotifyError`."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release what the notifier holds (none of the built-in ones hold anything)."""


def excerpt(text: str | bytes, limit: int = 200) -> str:
    """The first ``limit`` characters of a reply body on one line, for an error detail."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def http_error(status: int, body: bytes | str) -> NotifyError:
    """An HTTP answer other than 2xx: 5xx, 408 and 429 are worth retrying, other 4xx are not."""
    retryable = status >= 500 or status in (408, 425, 429)
    return NotifyError(f"HTTP {status}: {excerpt(body) or '(empty body)'}", retryable=retryable)


async def post_json(http: aiohttp.ClientSession, url: str, body: bytes,
                    headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """POST a JSON body; connection failures become a retryable :class:`NotifyError`."""
    all_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    try:
        async with http.post(url, data=body, headers=all_headers, allow_redirects=False) as response:
            return response.status, await response.read()
    except aiohttp.ClientConnectorError as exc:
        raise NotifyError(f"cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc}") from None
    except aiohttp.ClientError as exc:
        raise NotifyError(f"{type(exc).__name__}: {exc}") from None


def platform_reply(status: int, body: bytes, code_fields: tuple[str, ...], msg_fields: tuple[str, ...],
                   retry_codes: frozenset[int] = frozenset()) -> tuple[int, str]:
    """``(code, message)`` from a robot platform's JSON reply; raise NotifyError when it is not success.

    IM robot platforms answer HTTP 200 with ``{"errcode": 0}`` (or ``{"code": 0}``) on success and a
    non-zero code plus a message otherwise; the message is what the platform says to do about it.
    """
    try:
        reply = msgspec.json.decode(body) if body else None
    except msgspec.DecodeError:
        reply = None
    if not isinstance(reply, dict):
        if not 200 <= status < 300:
            raise http_error(status, body)
        raise NotifyError(f"HTTP {status}, reply is not JSON: {excerpt(body) or '(empty body)'}")
    code = next((reply[f] for f in code_fields if isinstance(reply.get(f), int)), None)
    message = next((str(reply[f]) for f in msg_fields if reply.get(f) not in (None, "")), "")
    if code is None:
        if not 200 <= status < 300:
            raise http_error(status, body)
        raise NotifyError(f"HTTP {status}, reply has no {code_fields[0]}: {excerpt(body)}")
    if code != 0:
        retryable = code in retry_codes or status >= 500
        raise NotifyError(f"{code_fields[0]} {code}: {excerpt(message) or '(no message)'}", retryable=retryable)
    if not 200 <= status < 300:
        raise http_error(status, body)
    return code, message
