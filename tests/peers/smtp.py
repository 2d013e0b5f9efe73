"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it accepts.

Fixtures (function scope, each on a free port, stopped after the test):

- ``smtp_server`` — plain SMTP, no login (a relay on localhost).
- ``smtp_starttls_server`` — requires STARTTLS before MAIL and a login (``SmtpServer.USER`` /
  ``SmtpServer.PASSWORD``) after it, with the ``tls_cert`` self-signed certificate for 127.0.0.1
  (``.ca_file`` verifies it).
- ``smtp_ssl_server`` — TLS from the first byte (port-465 style), same certificate and login.

``server.messages`` lists :class:`Received` (envelope sender, recipients, the parsed
``email.message.EmailMessage``, whether the session was TLS, the login used).
``server.reject(reply="451 4.3.0 Try again later", times=1)`` makes the next DATA fail with that reply.
"""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.peers._util import free_port

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    login: str | None


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp, session, envelope) -> str:
        with self.server.lock:
            if self.server.rejections:
                reply, times = self.server.rejections[0]
                if times <= 1:
                    self.server.rejections.pop(0)
                else:
                    self.server.rejections[0] = (reply, times - 1)
                return reply
            message = email.message_from_bytes(envelope.original_content or envelope.content,
                                               policy=email.policy.default)
            login = session.auth_data.login.decode() if session.authenticated and session.auth_data else None
            tls = session.ssl is not None or smtp.transport.get_extra_info("sslcontext") is not None
            self.server.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, tls, login))
        return "250 2.0.0 Message accepted for delivery"


class SmtpServer:
    USER = "zonewatch"
    PASSWORD = "s3cret-for-tests"

    def __init__(self, tls: str | None = None, cert: tuple[Path, Path] | None = None) -> None:
        self.lock = threading.Lock()
        self.messages: list[Received] = []
        self.rejections: list[tuple[str, int]] = []
        self.logins: list[tuple[str, bool]] = []
        self.port = free_port()
        self.ca_file = cert[0] if cert else None
        kwargs: dict = {}
        if tls is not None:
            assert cert is not None
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*cert)
            if tls == "starttls":
                kwargs.update(tls_context=context, require_starttls=True, auth_require_tls=True, auth_required=True)
            else:  # aiosmtpd's auth_require_tls only knows STARTTLS; this connection is TLS throughout
                kwargs.update(ssl_context=context, auth_require_tls=False)
            kwargs.update(authenticator=self._authenticate)
        self._controller = Controller(_Handler(self), hostname=HOST, port=self.port, **kwargs)

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(), auth_data.password.decode()) == (self.USER, self.PASSWORD)
        with self.lock:
            self.logins.append((auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?", ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def reject(self, reply: str = "451 4.3.0 Try again later", times: int = 1) -> None:
        with self.lock:
            self.rejections.append((reply, times))

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __repr__(self) -> str:
        return f"<SmtpServer {HOST}:{self.port}>"


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """Plain SMTP on 127.0.0.1, no login."""
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_starttls_server(tls_cert: tuple[Path, Path]) -> Iterator[SmtpServer]:
    """SMTP that requires STARTTLS and a login; ``.ca_file`` verifies its certificate."""
    server = SmtpServer("starttls", tls_cert).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_ssl_server(tls_cert: tuple[Path, Path]) -> Iterator[SmtpServer]:
    """SMTP over TLS from the start (port-465 style) with a login."""
    server = SmtpServer("ssl", tls_cert).start()
    try:
        yield server
    finally:
        server.stop()
