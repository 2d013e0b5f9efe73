"""webhook — POST every notice as JSON to a URL of yours, optionally signed with HMAC-SHA256.

    [receivers.ops-bridge]
    kind = "webhook"
    url = "https://ops.example.gov.cn/hooks/zonewatch"
    secret_file = "/etc/zonewatch/webhook.secret"
    headers = ["X-Team: haidian-it"]

**Body** (``Content-Type: application/json; charset=utf-8``): the notice's fields, plus three:

    {"v": 1, "kind": "opened", "incident_id": 42, "rule": "printer_media_empty",
     "severity": "critical", "urgency": "high", "zone_code": "110108-001",
     "zone_name": "Zhongguancun Service Hall", "region": "Haidian District / Zhongguancun Street",
     "subject": "printer HP-Hall-1 on kiosk-1", "summary": "out of paper", "since": 1715652120.0,
     "timezone": "Asia/Shanghai", "url": "https://…/incidents/42", "ack_url": "https://…/ack/…",
     "escalation_level": 0, "resolved_at": null,
     "title": "[CRITICAL] Zhongguancun Service Hall — printer HP-Hall-1 on kiosk-1: out of paper",
     "text": "…the same message as plain text, ready to show…"}

``v`` is the body's version (fields are only ever added within a version); ``kind`` is one of
opened, reminder, escalated, resolved, flapping. Any 2xx answer is success; 5xx, 408 and 429 are
retried with backoff, other answers are not.

**Signature** (when ``secret`` or ``secret_file`` is set): two headers,

    X-Zonewatch-Timestamp: 1715652125                      (Unix seconds when it was sent)
    X-Zonewatch-Signature: sha256=<hex HMAC-SHA256>        (key: the secret)

where the HMAC is computed over ``<timestamp> + "." + <raw body bytes>`` (the scheme Stripe and
Slack use: the timestamp is inside the signed bytes, so an old request cannot be replayed with a
fresh timestamp). A receiver verifies it like this::

    ts = request.headers["X-Zonewatch-Timestamp"]
    expected = "sha256=" + hmac.new(secret, ts.encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    ok = hmac.compare_digest(expected, request.headers["X-Zonewatch-Signature"]) \\
         and abs(time.time() - int(ts)) <= 300       # refuse anything older than 5 minutes

Verify against the raw bytes received, before parsing the JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import aiohttp
import msgspec

from . import render
from .base import (
    Notice,
    Notifier,
    NotifyError,
    ReceiverOptions,
    check_each,
    check_url,
    excerpt,
    http_error,
    post_json,
    secret_value,
)

#: Version of the JSON body.
BODY_VERSION = 1
SIGNATURE_HEADER = "X-Zonewatch-Signature"
TIMESTAMP_HEADER = "X-Zonewatch-Timestamp"

#: "Name: value" with an RFC 9110 token as the name.
HEADER_LINE = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+:[ \t]*[^\r\n]*"


class WebhookOptions(ReceiverOptions, kw_only=True, forbid_unknown_fields=True):
    #: Where to POST the JSON body: http:// or https://.
    url: str
    #: Key for the HMAC-SHA256 signature header (prefer secret_file). Unset: requests are not signed.
    secret: str | None = None
    #: File holding the signing key (its first line).
    secret_file: str | None = None
    #: Extra request headers, each "Name: value", e.g. ["Authorization: Bearer …"].
    headers: list[str] = msgspec.field(default_factory=list)


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` over ``timestamp + "." + body``: the X-Zonewatch-Signature value."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def body_of(notice: Notice, now: float | None = None) -> bytes:
    """The JSON body: the notice's fields plus ``v``, ``title`` and ``text``."""
    fields = msgspec.to_builtins(notice)
    return msgspec.json.encode({"v": BODY_VERSION, **fields, "title": render.title(notice),
                                "text": render.plain(notice, now)})


class WebhookNotifier(Notifier):
    name = "webhook"
    Options = WebhookOptions

    def __init__(self, options: WebhookOptions) -> None:
        super().__init__(options)
        check_url(options.url)
        check_each(options.headers, HEADER_LINE, "headers", "a header line like 'Authorization: Bearer …'")
        secret = secret_value(options.secret, options.secret_file, "secret")
        self._secret = secret.encode() if secret else None
        self._headers = {name: value.strip() for name, value in (line.split(":", 1) for line in options.headers)}

    async def send(self, notice: Notice, http: aiohttp.ClientSession) -> str:
        o: WebhookOptions = self.options
        body = body_of(notice)
        headers = dict(self._headers)
        if self._secret is not None:
            timestamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        status, reply = await post_json(http, o.url, body, headers)
        if not 200 <= status < 300:
            raise http_error(status, reply)
        note = f"HTTP {status}"
        return f"{note}: {excerpt(reply, 80)}" if reply.strip() else note


__all__ = ["NotifyError", "WebhookNotifier", "WebhookOptions", "body_of", "sign"]
