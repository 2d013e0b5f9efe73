"""feishu — a Feishu / Lark (飞书) group's custom bot (自定义机器人): a message card, signed.

    [receivers.haidian-feishu]
    kind = "feishu"
    url = "https://open.feishu.cn/open-apis/bot/v2/hook/…"    # Lark: https://open.larksuite.com/…
    secret_file = "/etc/zonewatch/feishu.secret"             # the bot's 签名校验 secret

The bot's webhook takes a POST of ``{"timestamp": "<seconds>", "sign": …, "msg_type": …, …}``:

- ``interactive`` (default): a message card, ``"card": {"config": {"wide_screen_mode": true},
  "header": {"title": {"tag": "plain_text", "content": <title>}, "template": "red"|"orange"|"green"},
  "elements": [{"tag": "markdown", "content": <facts and links>}]}``;
- ``post``: rich text, ``"content": {"post": {"zh_cn": {"title": …, "content": [[{"tag": "text", …}],
  [{"tag": "a", "text": "Details", "href": …}], …]}}}``;
- ``text``: ``"content": {"text": <plain text>}``.

It answers ``{"code": 0, "msg": "success", "data": {}}`` (older bots: ``"StatusCode": 0``); any other
code is a failure whose msg says why (19021 "sign match fail or timestamp is not within one hour
from current time"; 11232: too many messages, retried with backoff; 9499: bad request).

签名校验: ``string_to_sign = timestamp + "\\n" + secret`` with the timestamp in **seconds**, used as
the HMAC-SHA256 **key** over an empty message, then Base64 (not URL-encoded: it travels in the JSON
body). This is the reverse of DingTalk, where the secret is the key. (Feishu open platform,
自定义机器人使用指南, "签名校验", whose Python sample does
``hmac.new((f"{timestamp}\\n{secret}").encode(), b"", sha256)``; the difference from DingTalk is the
cause of github.com/THEWOLFWALKER/dsh-notifier/issues/8 and apache/dolphinscheduler#16569.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Literal

import aiohttp
import msgspec

from . import render
from .base import Notice, Notifier, ReceiverOptions, check_url, platform_reply, post_json, secret_value

#: codes meaning "too many requests": worth retrying later.
RATE_LIMITED = frozenset({11232})
_TEMPLATE = {"critical": "red", "warning": "orange", "resolved": "green"}


class FeishuOptions(ReceiverOptions, kw_only=True, forbid_unknown_fields=True):
    #: The bot's webhook URL (https://open.feishu.cn/open-apis/bot/v2/hook/…).
    url: str
    #: The bot's 签名校验 secret (prefer secret_file). Unset: requests are not signed.
    secret: str | None = None
    #: File holding the signing secret (its first line).
    secret_file: str | None = None
    #: interactive (a message card), post (rich text) or text.
    msg_type: Literal["interactive", "post", "text"] = "interactive"
    #: @-mention everyone in the group.
    at_all: bool = False


def sign(secret: str, timestamp_s: str) -> str:
    """base64(HMAC-SHA256(key = timestamp + "\\n" + secret, message = b""))."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _card(notice: Notice, at_all: bool) -> dict:
    content = render.markdown(notice, heading=False)
    if at_all:
        content += "\n<at id=all></at>"
    colour = _TEMPLATE["resolved" if notice.kind == "resolved" else notice.severity]
    return {
        "config": {"wide_screen_mode": True},
        "header": {"title": {"tag": "plain_text", "content": render.title(notice)}, "template": colour},
        "elements": [{"tag": "markdown", "content": content}],
    }


def _post(notice: Notice, at_all: bool) -> dict:
    rows: list[list[dict]] = [[{"tag": "text", "text": f"{label}: {value}"}]
                              for label, value in render.facts(notice)]
    if notice.url:
        rows.append([{"tag": "a", "text": "Details", "href": notice.url}])
    if notice.kind != "resolved" and notice.ack_url:
        rows.append([{"tag": "text", "text": "Acknowledge: "},
                     {"tag": "a", "text": "acknowledge in one click", "href": notice.ack_url}])
    if at_all:
        rows.append([{"tag": "at", "user_id": "all"}])
    return {"post": {"zh_cn": {"title": render.title(notice), "content": rows}}}


class FeishuNotifier(Notifier):
    name = "feishu"
    Options = FeishuOptions

    def __init__(self, options: FeishuOptions) -> None:
        super().__init__(options)
        check_url(options.url)
        self._secret = secret_value(options.secret, options.secret_file, "secret")

    def payload(self, notice: Notice, timestamp_s: str | None = None) -> dict:
        o: FeishuOptions = self.options
        body: dict = {}
        if self._secret:
            timestamp_s = timestamp_s or str(int(time.time()))
            body.update(timestamp=timestamp_s, sign=sign(self._secret, timestamp_s))
        body["msg_type"] = o.msg_type
        if o.msg_type == "interactive":
            body["card"] = _card(notice, o.at_all)
        elif o.msg_type == "post":
            body["content"] = _post(notice, o.at_all)
        else:
            text = render.plain(notice)
            body["content"] = {"text": text + ('\n<at user_id="all">all</at>' if o.at_all else "")}
        return body

    async def send(self, notice: Notice, http: aiohttp.ClientSession) -> str:
        status, reply = await post_json(http, self.options.url, msgspec.json.encode(self.payload(notice)))
        _, message = platform_reply(status, reply, ("code", "StatusCode"), ("msg", "StatusMessage"), RATE_LIMITED)
        return f"code 0 ({message or 'success'})"
