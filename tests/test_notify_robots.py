"""DingTalk, WeCom and Feishu robots against a real local HTTP receiver standing in for the platform.

Payloads are checked field by field against each platform's documented format, and signatures are
verified the way the platform verifies them (recomputing the HMAC from the secret).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import urllib.parse

import aiohttp
import pytest

from server.notify import build_receiver
from server.notify.base import Notice, NotifyError
from tests.peers.webhook import WebhookReceiver
from tests.test_notify_render import make_notice

DING_SECRET = "SECa1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2"
FEISHU_SECRET = "feishu-signing-secret"


def send(kind: str, options: dict, notice: Notice) -> str:
    notifier = build_receiver(kind, kind, options).notifier

    async def go() -> str:
        async with aiohttp.ClientSession() as http:
            return await notifier.send(notice, http)

    return asyncio.run(go())


def within_an_hour(ts_seconds: float) -> bool:
    """Both platforms refuse a timestamp more than an hour away from their clock."""
    return abs(time.time() - ts_seconds) < 3600


# -- DingTalk ------------------------------------------------------------------------------------


def test_dingtalk_markdown_payload(webhook_receiver: WebhookReceiver) -> None:
    url = webhook_receiver.url_for("/robot/send?access_token=tok123")
    note = send("dingtalk", {"url": url, "at_mobiles": ["13800000000"]}, make_notice())
    assert note == "errcode 0 (ok)"
    [request] = webhook_receiver.requests
    assert request.path == "/robot/send" and request.query == {"access_token": "tok123"}
    assert request.headers["Content-Type"].startswith("application/json")
    body = request.json
    assert set(body) == {"msgtype", "markdown", "at"}
    assert body["msgtype"] == "markdown"
    assert set(body["markdown"]) == {"title", "text"}
    assert body["markdown"]["title"].startswith("[CRITICAL] Zhongguancun Service Hall")
    text = body["markdown"]["text"]
    assert "out of paper" in text and "https://zw.example.gov.cn/ack/42?sig=abc" in text
    assert body["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}
    assert text.endswith("@13800000000"), "DingTalk only @-mentions numbers that also appear in the text"


def test_dingtalk_signature_verifies_like_dingtalk_does(webhook_receiver: WebhookReceiver) -> None:
    url = webhook_receiver.url_for("/robot/send?access_token=tok123")
    send("dingtalk", {"url": url, "secret": DING_SECRET}, make_notice())
    [request] = webhook_receiver.requests
    assert set(request.query) == {"access_token", "timestamp", "sign"}
    timestamp = request.query["timestamp"]
    assert timestamp.isdigit() and len(timestamp) == 13, "milliseconds"
    assert within_an_hour(int(timestamp) / 1000)
    string_to_sign = f"{timestamp}\n{DING_SECRET}".encode()
    expected = base64.b64encode(hmac.new(DING_SECRET.encode(), string_to_sign, hashlib.sha256).digest()).decode()
    assert request.query["sign"] == expected
    raw_sign = urllib.parse.parse_qs(request.query_string, keep_blank_values=True)
    assert raw_sign["sign"] == [expected]
    assert "%3D" in request.query_string, "the Base64 signature must be URL-encoded on the query"


@pytest.mark.parametrize(("errcode", "errmsg", "retryable"), [
    (310000, "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]", False),
    (130101, "send too fast, exceed 20 times per minute", True),
])
def test_dingtalk_errcode_is_a_failure_with_errmsg(webhook_receiver: WebhookReceiver, errcode: int, errmsg: str,
                                                   retryable: bool) -> None:
    webhook_receiver.respond(json={"errcode": errcode, "errmsg": errmsg})
    with pytest.raises(NotifyError) as caught:
        send("dingtalk", {"url": webhook_receiver.url_for("/robot/send?access_token=t")}, make_notice())
    assert caught.value.detail == f"errcode {errcode}: {errmsg}"
    assert caught.value.retryable is retryable


def test_dingtalk_keyword_is_added_when_missing(webhook_receiver: WebhookReceiver) -> None:
    send("dingtalk", {"url": webhook_receiver.url_for("/r"), "keyword": "告警", "at_all": True}, make_notice())
    body = webhook_receiver.requests[0].json
    assert "告警" in body["markdown"]["text"]
    assert body["at"] == {"atMobiles": [], "isAtAll": True}


# -- WeCom ---------------------------------------------------------------------------------------


def test_wecom_markdown_payload_and_key(webhook_receiver: WebhookReceiver) -> None:
    options = {"key": "693a91f6-7xxx-4bc4", "base_url": webhook_receiver.url_for("/cgi-bin/webhook/send"),
               "mention_userids": ["zhangsan"]}
    assert send("wecom", options, make_notice()) == "errcode 0 (ok)"
    [request] = webhook_receiver.requests
    assert request.path == "/cgi-bin/webhook/send" and request.query == {"key": "693a91f6-7xxx-4bc4"}
    assert set(request.json) == {"msgtype", "markdown"}
    assert request.json["msgtype"] == "markdown"
    assert set(request.json["markdown"]) == {"content"}
    content = request.json["markdown"]["content"]
    assert "Zhongguancun Service Hall" in content and "https://zw.example.gov.cn/ack/42?sig=abc" in content
    assert content.endswith("<@zhangsan>")


def test_wecom_content_stays_within_4096_bytes(webhook_receiver: WebhookReceiver) -> None:
    huge = make_notice(summary="打印机卡纸，请到现场处理。" * 500)
    send("wecom", {"key": "k", "base_url": webhook_receiver.url_for("/send")}, huge)
    content = webhook_receiver.requests[0].json["markdown"]["content"]
    assert len(content.encode("utf-8")) <= 4096
    assert "https://zw.example.gov.cn/ack/42?sig=abc" in content, "the links survive the cut"


def test_wecom_errcode_is_a_failure_with_errmsg(webhook_receiver: WebhookReceiver) -> None:
    errmsg = "invalid webhook url, hint: [1755605200056773468916791], from ip: 127.0.0.1"
    webhook_receiver.respond(json={"errcode": 93000, "errmsg": errmsg})
    with pytest.raises(NotifyError) as caught:
        send("wecom", {"key": "wrong", "base_url": webhook_receiver.url_for("/send")}, make_notice())
    assert caught.value.detail == f"errcode 93000: {errmsg}"
    assert not caught.value.retryable


# -- Feishu --------------------------------------------------------------------------------------


def feishu_sign(secret: str, timestamp: str) -> str:
    """Feishu's documented check: HMAC-SHA256 keyed with timestamp + "\\n" + secret over nothing."""
    return base64.b64encode(hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()


@pytest.fixture
def feishu(webhook_receiver: WebhookReceiver) -> WebhookReceiver:
    webhook_receiver.set_default(json={"code": 0, "data": {}, "msg": "success"})
    return webhook_receiver


def test_feishu_card_payload_and_signature(feishu: WebhookReceiver) -> None:
    url = feishu.url_for("/open-apis/bot/v2/hook/abc")
    assert send("feishu", {"url": url, "secret": FEISHU_SECRET}, make_notice()) == "code 0 (success)"
    [request] = feishu.requests
    body = request.json
    assert set(body) == {"timestamp", "sign", "msg_type", "card"}
    assert isinstance(body["timestamp"], str) and len(body["timestamp"]) == 10, "seconds, as a string"
    assert within_an_hour(int(body["timestamp"]))
    assert body["sign"] == feishu_sign(FEISHU_SECRET, body["timestamp"])
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert card["header"] == {"title": {"tag": "plain_text", "content": card["header"]["title"]["content"]},
                              "template": "red"}
    assert card["header"]["title"]["content"].startswith("[CRITICAL] Zhongguancun Service Hall")
    [element] = card["elements"]
    assert element["tag"] == "markdown"
    assert "[Details](https://zw.example.gov.cn/incidents/42)" in element["content"]
    assert "(https://zw.example.gov.cn/ack/42?sig=abc)" in element["content"]


def test_feishu_resolved_card_is_green_and_unsigned_without_secret(feishu: WebhookReceiver) -> None:
    send("feishu", {"url": feishu.url_for("/hook")}, make_notice(kind="resolved", resolved_at=time.time()))
    body = feishu.requests[0].json
    assert "sign" not in body and "timestamp" not in body
    assert body["card"]["header"]["template"] == "green"


def test_feishu_post_and_text_formats(feishu: WebhookReceiver) -> None:
    send("feishu", {"url": feishu.url_for("/hook"), "msg_type": "post"}, make_notice())
    send("feishu", {"url": feishu.url_for("/hook"), "msg_type": "text"}, make_notice())
    post, text = (r.json for r in feishu.requests)
    assert post["msg_type"] == "post"
    zh = post["content"]["post"]["zh_cn"]
    assert zh["title"].startswith("[CRITICAL]")
    tags = [item for row in zh["content"] for item in row]
    assert {"tag": "a", "text": "Details", "href": "https://zw.example.gov.cn/incidents/42"} in tags
    assert all(item["tag"] in ("text", "a", "at") for item in tags)
    assert text["msg_type"] == "text"
    assert "Acknowledge: https://zw.example.gov.cn/ack/42?sig=abc" in text["content"]["text"]


@pytest.mark.parametrize(("reply", "detail", "retryable"), [
    ({"code": 19021, "data": {}, "msg": "sign match fail or timestamp is not within one hour from current time"},
     "code 19021: sign match fail or timestamp is not within one hour from current time", False),
    ({"code": 11232, "data": {}, "msg": "frequency limited psm[lark.oapi.app_platform_runtime]appID[1]"},
     "code 11232: frequency limited psm[lark.oapi.app_platform_runtime]appID[1]", True),
    ({"StatusCode": 9499, "StatusMessage": "Bad Request"}, "code 9499: Bad Request", False),
])
def test_feishu_nonzero_code_is_a_failure_with_msg(feishu: WebhookReceiver, reply: dict, detail: str,
                                                   retryable: bool) -> None:
    feishu.respond(json=reply)
    with pytest.raises(NotifyError) as caught:
        send("feishu", {"url": feishu.url_for("/hook"), "secret": "wrong"}, make_notice())
    assert caught.value.detail == detail
    assert caught.value.retryable is retryable


def test_feishu_older_statuscode_reply_is_success(feishu: WebhookReceiver) -> None:
    feishu.respond(json={"Extra": None, "StatusCode": 0, "StatusMessage": "success"})
    assert send("feishu", {"url": feishu.url_for("/hook")}, make_notice()) == "code 0 (success)"


def test_a_robot_reply_that_is_not_json_is_a_failure(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.respond(status=502, body=b"<html>Bad Gateway</html>")
    with pytest.raises(NotifyError) as caught:
        send("wecom", {"key": "k", "base_url": webhook_receiver.url_for("/send")}, make_notice())
    assert caught.value.detail == "HTTP 502: <html>Bad Gateway</html>" and caught.value.retryable
