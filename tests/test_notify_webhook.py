"""The generic webhook against a real local HTTP receiver: documented body, HMAC that verifies."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import aiohttp
import msgspec
import pytest

from server.notify import build_receiver
from server.notify.base import Notice, NotifyError
from tests.peers.webhook import WebhookReceiver
from tests.test_notify_render import make_notice

SECRET = "webhook-secret-for-tests"


def send(receiver_options: dict, notice: Notice) -> str:
    notifier = build_receiver("hook", "webhook", receiver_options).notifier

    async def go() -> str:
        async with aiohttp.ClientSession() as http:
            return await notifier.send(notice, http)

    return asyncio.run(go())


def verify(secret: str, headers, raw_body: bytes, max_age: float = 300) -> bool:
    """What the module docstring tells a receiver to do."""
    ts = headers["X-Zonewatch-Timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-Zonewatch-Signature"]) and abs(time.time() - int(ts)) <= max_age


def test_body_is_the_notice_plus_version_title_and_text(webhook_receiver: WebhookReceiver) -> None:
    notice = make_notice()
    note = send({"url": webhook_receiver.url_for("/hooks/zonewatch")}, notice)
    assert note.startswith("HTTP 200")
    [request] = webhook_receiver.requests
    assert (request.method, request.path) == ("POST", "/hooks/zonewatch")
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    body = request.json
    assert body["v"] == 1
    assert msgspec.convert({k: v for k, v in body.items() if k not in ("v", "title", "text")}, Notice) == notice
    assert set(body) == {"v", "title", "text", *msgspec.structs.asdict(notice)}
    assert body["title"] == "[CRITICAL] Zhongguancun Service Hall — printer HP-Hall-1 on kiosk-1: out of paper"
    assert "Acknowledge: https://zw.example.gov.cn/ack/42?sig=abc" in body["text"]
    assert "X-Zonewatch-Signature" not in request.headers


def test_signature_verifies_the_way_the_docs_say(webhook_receiver: WebhookReceiver) -> None:
    send({"url": webhook_receiver.url_for("/signed"), "secret": SECRET}, make_notice())
    [request] = webhook_receiver.requests
    assert request.headers["X-Zonewatch-Signature"].startswith("sha256=")
    assert verify(SECRET, request.headers, request.body)
    assert not verify("another secret", request.headers, request.body)
    assert not verify(SECRET, request.headers, request.body.replace(b"out of paper", b"all fine"))
    replayed = dict(request.headers, **{"X-Zonewatch-Timestamp": str(int(time.time()) + 1)})
    assert not verify(SECRET, replayed, request.body), "a fresh timestamp must not make an old body valid"


def test_custom_headers_are_sent(webhook_receiver: WebhookReceiver) -> None:
    send({"url": webhook_receiver.url_for("/h"), "headers": ["Authorization: Bearer abc", "X-Team:haidian"]},
         make_notice())
    [request] = webhook_receiver.requests
    assert request.headers["Authorization"] == "Bearer abc"
    assert request.headers["X-Team"] == "haidian"


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True), (404, False),
                                                   (401, False)])
def test_an_error_answer_is_a_failure_with_status_and_body(webhook_receiver: WebhookReceiver, status: int,
                                                           retryable: bool) -> None:
    webhook_receiver.respond(status=status, body=b"receiver says: database is locked\n")
    with pytest.raises(NotifyError) as caught:
        send({"url": webhook_receiver.url_for("/h")}, make_notice())
    assert caught.value.detail == f"HTTP {status}: receiver says: database is locked"
    assert caught.value.retryable is retryable


def test_nobody_listening_is_a_retryable_failure(webhook_receiver: WebhookReceiver) -> None:
    url = webhook_receiver.url_for("/h")
    webhook_receiver.stop()
    with pytest.raises(NotifyError) as caught:
        send({"url": url}, make_notice())
    assert caught.value.detail.startswith(f"cannot connect to 127.0.0.1:{webhook_receiver.port}")
    assert caught.value.retryable
