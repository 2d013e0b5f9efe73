"""E-mail against a real local SMTP server (aiosmtpd): plain, STARTTLS with login, implicit TLS."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from server.notify import build_receiver
from server.notify.base import Notice, NotifyError
from tests.peers.smtp import SmtpServer
from tests.test_notify_render import make_notice

TO = ["it-oncall@example.gov.cn", "hall-manager@example.gov.cn"]


def options(server: SmtpServer, **extra) -> dict:
    return {"host": "127.0.0.1", "port": server.port, "security": "none",
            "sender": "zonewatch <zonewatch@example.gov.cn>", "to": TO, **extra}


def send(opts: dict, notice: Notice) -> str:
    notifier = build_receiver("oncall-mail", "email", opts).notifier

    async def go() -> str:
        async with aiohttp.ClientSession() as http:
            return await notifier.send(notice, http)

    return asyncio.run(go())


def test_message_has_plain_and_html_parts_and_the_right_headers(smtp_server: SmtpServer) -> None:
    note = send(options(smtp_server), make_notice())
    assert note == f"accepted by 127.0.0.1:{smtp_server.port} for 2 of 2 recipients"
    [received] = smtp_server.messages
    assert received.mail_from == "zonewatch@example.gov.cn"
    assert received.rcpt_tos == TO
    msg = received.message
    assert msg["Subject"] == ("[zonewatch] [CRITICAL] Zhongguancun Service Hall — "
                              "printer HP-Hall-1 on kiosk-1: out of paper")
    assert msg["From"] == "zonewatch <zonewatch@example.gov.cn>"
    assert [a.addr_spec for a in msg["To"].addresses] == TO
    assert msg["Date"] and msg["Message-ID"]
    assert msg["X-Zonewatch-Incident"] == "42" and msg["X-Zonewatch-Kind"] == "opened"
    assert msg["Importance"] == "high"
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Acknowledge: https://zw.example.gov.cn/ack/42?sig=abc" in plain
    assert "Where: Haidian District / Zhongguancun Street" in plain
    assert '<a href="https://zw.example.gov.cn/ack/42?sig=abc">' in html
    assert not received.tls and received.login is None


def test_all_notices_of_an_incident_share_a_thread(smtp_server: SmtpServer) -> None:
    send(options(smtp_server), make_notice())
    send(options(smtp_server, subject_prefix="[ZW]"), make_notice(kind="resolved", resolved_at=make_notice().since))
    opened, resolved = (r.message for r in smtp_server.messages)
    assert opened["References"] == resolved["References"]
    assert opened["Message-ID"] != resolved["Message-ID"]
    assert resolved["Subject"].startswith("[ZW] [RESOLVED]")
    assert resolved["Importance"] is None


def test_starttls_with_login(smtp_starttls_server: SmtpServer) -> None:
    opts = options(smtp_starttls_server, security="starttls", ca_file=str(smtp_starttls_server.ca_file),
                   username=SmtpServer.USER, password=SmtpServer.PASSWORD)
    send(opts, make_notice())
    [received] = smtp_starttls_server.messages
    assert received.tls and received.login == SmtpServer.USER


def test_implicit_tls_with_login(smtp_ssl_server: SmtpServer) -> None:
    opts = options(smtp_ssl_server, security="ssl", ca_file=str(smtp_ssl_server.ca_file),
                   username=SmtpServer.USER, password=SmtpServer.PASSWORD)
    send(opts, make_notice())
    [received] = smtp_ssl_server.messages
    assert received.tls and received.login == SmtpServer.USER


def test_a_wrong_password_is_not_retried(smtp_starttls_server: SmtpServer) -> None:
    opts = options(smtp_starttls_server, security="starttls", ca_file=str(smtp_starttls_server.ca_file),
                   username=SmtpServer.USER, password="wrong")
    with pytest.raises(NotifyError) as caught:
        send(opts, make_notice())
    assert f"refused the login of {SmtpServer.USER}: 535" in caught.value.detail
    assert not caught.value.retryable
    assert smtp_starttls_server.messages == []


def test_an_untrusted_certificate_is_refused(smtp_starttls_server: SmtpServer) -> None:
    opts = options(smtp_starttls_server, security="starttls", username=SmtpServer.USER,
                   password=SmtpServer.PASSWORD)
    with pytest.raises(NotifyError) as caught:
        send(opts, make_notice())
    assert "certificate not trusted" in caught.value.detail and "ca_file" in caught.value.detail
    assert not caught.value.retryable


def test_starttls_against_a_server_without_it_says_what_to_change(smtp_server: SmtpServer) -> None:
    with pytest.raises(NotifyError, match='does not offer STARTTLS; set security = "ssl" or "none"'):
        send(options(smtp_server, security="starttls"), make_notice())


@pytest.mark.parametrize(("reply", "retryable"), [("451 4.3.0 Try again later", True),
                                                  ("554 5.7.1 Message rejected as spam", False)])
def test_a_refused_message_carries_the_smtp_reply(smtp_server: SmtpServer, reply: str, retryable: bool) -> None:
    smtp_server.reject(reply)
    with pytest.raises(NotifyError) as caught:
        send(options(smtp_server), make_notice())
    assert caught.value.detail == f"127.0.0.1:{smtp_server.port} answered {reply}"
    assert caught.value.retryable is retryable
