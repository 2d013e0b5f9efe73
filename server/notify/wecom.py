"""wecom — a WeCom (企业微信) group robot (群机器人), Markdown message.

    [receivers.haidian-wecom]
    kind = "wecom"
    key_file = "/etc/zonewatch/wecom.key"      # the key=… part of the robot's webhook address
    mention_userids = ["zhangsan"]

The robot's webhook ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY`` takes a POST of
``{"msgtype": "markdown", "markdown": {"content": …}}`` and answers ``{"errcode": 0, "errmsg": "ok"}``;
any other errcode is a failure whose errmsg says why (93000: invalid webhook URL, i.e. a wrong key;
45009: too many messages, retried with backoff). The Markdown content may be at most 4096 bytes of
UTF-8 (WeCom 群机器人配置说明, developer.work.weixin.qq.com/document/path/91770; a longer one
fails with errcode 40058 "markdown.content exceed max length 4096", as seen in
github.com/dromara/domain-admin/issues/82), so longer messages are cut between characters,
keeping the links. WeCom robots have no signing: the key in the URL is the credential. Members are
@-mentioned with ``<@userid>`` inside the Markdown content (the text message type's
``mentioned_mobile_list`` does not apply to Markdown).
"""

from __future__ import annotations

import urllib.parse

import aiohttp
import msgspec

from . import render
from .base import (
    Notice,
    Notifier,
    OptionError,
    ReceiverOptions,
    check_each,
    check_url,
    platform_reply,
    post_json,
    secret_value,
)

USER_ID = r"[A-Za-z0-9_.@-]{1,64}"
#: WeCom's limit for markdown.content, in bytes of UTF-8.
MAX_CONTENT_BYTES = 4096
#: errcodes meaning "too many requests": worth retrying later.
RATE_LIMITED = frozenset({45009})


class WeComOptions(ReceiverOptions, kw_only=True, forbid_unknown_fields=True):
    #: The robot's key: the key=… part of its webhook address (prefer key_file).
    key: str | None = None
    #: File holding the robot's key (its first line).
    key_file: str | None = None
    #: The robot API's address without the query; change it only for a proxy or a test.
    base_url: str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
    #: WeCom user ids to @-mention in every message.
    mention_userids: list[str] = msgspec.field(default_factory=list)


class WeComNotifier(Notifier):
    name = "wecom"
    Options = WeComOptions

    def __init__(self, options: WeComOptions) -> None:
        super().__init__(options)
        check_url(options.base_url, "base_url", query=False)
        check_each(options.mention_userids, USER_ID, "mention_userids", "a WeCom user id like \"zhangsan\"")
        key = secret_value(options.key, options.key_file, "key")
        if not key:
            raise OptionError("key", "required: set key (or key_file) to the key=… part of the robot's webhook")
        self._url = f"{options.base_url}?key={urllib.parse.quote(key, safe='')}"

    def payload(self, notice: Notice) -> dict:
        o: WeComOptions = self.options
        mentions = "\n" + " ".join(f"<@{u}>" for u in o.mention_userids) if o.mention_userids else ""
        room = MAX_CONTENT_BYTES - len(mentions.encode())
        return {"msgtype": "markdown", "markdown": {"content": render.markdown(notice, limit=room) + mentions}}

    async def send(self, notice: Notice, http: aiohttp.ClientSession) -> str:
        status, reply = await post_json(http, self._url, msgspec.json.encode(self.payload(notice)))
        _, message = platform_reply(status, reply, ("errcode",), ("errmsg",), RATE_LIMITED)
        return f"errcode 0 ({message or 'ok'})"
