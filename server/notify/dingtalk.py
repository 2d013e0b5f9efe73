"""dingtalk — a DingTalk (钉钉) group's custom robot (自定义机器人), Markdown message, 加签 signing.

    [receivers.haidian-dingtalk]
    kind = "dingtalk"
    url = "https://oapi.dingtalk.com/robot/send?access_token=…"
    secret_file = "/etc/zonewatch/dingtalk.secret"    # the SEC… string of the robot's 加签 setting
    at_mobiles = ["13800000000"]

The robot's webhook takes a POST of
``{"msgtype": "markdown", "markdown": {"title": …, "text": …}, "at": {"atMobiles": […], "isAtAll": …}}``
and answers ``{"errcode": 0, "errmsg": "ok"}``; any other errcode is a failure whose errmsg says
why (310000: signature, keyword or IP check failed). A mobile number is only @-mentioned when it
also appears as ``@<number>`` in the Markdown text, so the notifier appends those.

加签 (the robot's "sign" security setting): ``string_to_sign = timestamp + "\\n" + secret`` with the
timestamp in milliseconds, HMAC-SHA256 keyed with the secret, Base64, then URL-encoded, sent as
``&timestamp=…&sign=…`` on the webhook URL; DingTalk refuses a timestamp more than an hour off.
(DingTalk open platform, 自定义机器人安全设置, as reproduced in its Java/Python samples; e.g.
cnblogs.com/haozheyu/p/15321646.html. A robot accepts at most 20 messages a minute; over that it
answers errcode 130101 / 410100, which is retried with backoff.) With the "custom keyword"
setting instead, set ``keyword`` so every message carries it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse

import aiohttp
import msgspec

from . import render
from .base import Notice, Notifier, ReceiverOptions, check_each, check_url, platform_reply, post_json, secret_value

MOBILE = r"\+?[0-9-]{5,20}"
#: errcodes meaning "too many messages, slow down": worth retrying later.
RATE_LIMITED = frozenset({130101, 410100})


class DingTalkOptions(ReceiverOptions, kw_only=True, forbid_unknown_fields=True):
    #: The robot's webhook URL, with its access_token (https://oapi.dingtalk.com/robot/send?access_token=…).
    url: str
    #: The robot's 加签 secret (starts with SEC; prefer secret_file). Unset: requests are not signed.
    secret: str | None = None
    #: File holding the 加签 secret (its first line).
    secret_file: str | None = None
    #: Mobile numbers to @-mention in every message.
    at_mobiles: list[str] = msgspec.field(default_factory=list)
    #: @-mention everyone in the group.
    at_all: bool = False
    #: The robot's custom keyword (关键词 security setting), added to messages that lack it.
    keyword: str | None = None


def sign(secret: str, timestamp_ms: str) -> str:
    """The ``sign`` query value: urlencode(base64(HMAC-SHA256(secret, timestamp + "\\n" + secret)))."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def signed_url(url: str, secret: str, timestamp_ms: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp_ms}&sign={sign(secret, timestamp_ms)}"


class DingTalkNotifier(Notifier):
    name = "dingtalk"
    Options = DingTalkOptions

    def __init__(self, options: DingTalkOptions) -> None:
        super().__init__(options)
        check_url(options.url)
        check_each(options.at_mobiles, MOBILE, "at_mobiles", "a mobile number like \"13800000000\"")
        self._secret = secret_value(options.secret, options.secret_file, "secret")

    def payload(self, notice: Notice) -> dict:
        o: DingTalkOptions = self.options
        text = render.markdown(notice)
        if o.keyword and o.keyword not in text:
            text += f"\n\n{o.keyword}"
        if o.at_mobiles:
            text += "\n\n" + " ".join(f"@{m}" for m in o.at_mobiles)
        return {
            "msgtype": "markdown",
            "markdown": {"title": render.title(notice), "text": text},
            "at": {"atMobiles": list(o.at_mobiles), "isAtAll": o.at_all},
        }

    async def send(self, notice: Notice, http: aiohttp.ClientSession) -> str:
        url = self.options.url
        if self._secret:
            url = signed_url(url, self._secret, str(round(time.time() * 1000)))
        status, reply = await post_json(http, url, msgspec.json.encode(self.payload(notice)))
        _, message = platform_reply(status, reply, ("errcode",), ("errmsg",), RATE_LIMITED)
        return f"errcode 0 ({message or 'ok'})"
