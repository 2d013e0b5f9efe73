"""email — an e-mail over SMTP to a list of addresses: plain text and HTML in one message.

    [receivers.oncall-mail]
    kind = "email"
    host = "smtp.example.gov.cn"
    security = "starttls"                 # or "ssl" (port 465), or "none" (a relay on localhost)
    username = "zonewatch@example.gov.cn"
    password_file = "/etc/zonewatch/smtp.password"
    sender = "zonewatch <zonewatch@example.gov.cn>"
    to = ["it-oncall@example.gov.cn", "hall-manager@example.gov.cn"]

Each notice is one ``multipart/alternative`` message (text/plain + text/html) with the subject
``<subject_prefix> <title>``; critical notices in opening hours carry ``Importance: high``.
All notices of one incident reference the same thread id, so mail clients show them as one
conversation. Headers ``X-Zonewatch-Incident`` and ``X-Zonewatch-Kind`` let mail rules sort them.

The stdlib ``smtplib`` runs in a worker thread (``asyncio.to_thread``) with the attempt's timeout
as its socket timeout. Certificates are always verified (``ca_file`` for a private CA).
A refused login or a 5xx reply is not retried; a 4xx reply, a refused or dropped connection is.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from typing import Annotated, Literal

import aiohttp
from msgspec import Meta

from . import render
from .base import Notice, Notifier, NotifyError, OptionError, ReceiverOptions, check_each, excerpt, secret_value

Port = Annotated[int, Meta(ge=1, le=65535)]
MAILBOX = r"[^@\s<>,]+@[^@\s<>,]+"
#: Socket timeout when neither the receiver nor the dispatcher gave one.
DEFAULT_TIMEOUT = 30.0
_DEFAULT_PORT = {"starttls": 587, "ssl": 465, "none": 25}
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class EmailOptions(ReceiverOptions, kw_only=True, forbid_unknown_fields=True):
    #: SMTP server (submission server or relay).
    host: str = "localhost"
    #: SMTP port; unset: 587 for starttls, 465 for ssl, 25 for none.
    port: Port | None = None
    #: starttls (upgrade a plain connection), ssl (TLS from the start) or none (a relay on localhost).
    security: Literal["starttls", "ssl", "none"] = "starttls"
    #: Login name; unset: no login.
    username: str | None = None
    #: Login password (prefer password_file).
    password: str | None = None
    #: File holding the login password (its first line).
    password_file: str | None = None
    #: The From: address, optionally with a display name: "zonewatch <zonewatch@example.gov.cn>".
    sender: str
    #: Recipients (To:).
    to: Annotated[list[str], Meta(min_length=1)]
    #: Put in front of every subject.
    subject_prefix: str = "[zonewatch]"
    #: CA bundle that signed the server's certificate; system CAs when unset.
    ca_file: str | None = None


class EmailNotifier(Notifier):
    name = "email"
    Options = EmailOptions

    def __init__(self, options: EmailOptions) -> None:
        super().__init__(options)
        self._password = secret_value(options.password, options.password_file, "password")
        if self._password and not options.username:
            raise OptionError("username", "a password is set but no username to log in with")
        if options.username and options.security == "none" and options.host not in _LOOPBACK:
            raise OptionError("security", f"logging in to {options.host} without TLS would send the password in "
                              "clear; use starttls or ssl (none is for a relay on localhost)")
        check_each(options.to, MAILBOX, "to", "a plain address like it-oncall@example.gov.cn")
        parsed = getaddresses([options.sender])
        if len(parsed) != 1 or "@" not in parsed[0][1]:
            raise OptionError("sender", f"{options.sender!r} is not an address like 'zonewatch <zw@example.org>'")
        self._sender_name, self._sender_addr = parsed[0]
        self._port = options.port or _DEFAULT_PORT[options.security]
        self._tls: ssl.SSLContext | None = None
        if options.security != "none":
            try:
                self._tls = ssl.create_default_context(cafile=options.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise OptionError("ca_file", f"cannot load {options.ca_file}: {exc}") from None

    def message(self, notice: Notice) -> EmailMessage:
        o: EmailOptions = self.options
        domain = self._sender_addr.rpartition("@")[2]
        msg = EmailMessage()
        msg["Subject"] = f"{o.subject_prefix} {render.title(notice)}".strip()
        local, _, dom = self._sender_addr.rpartition("@")
        msg["From"] = Address(self._sender_name, local, dom)
        msg["To"] = ", ".join(o.to)
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid("zonewatch", domain=domain)
        thread = f"<incident-{notice.incident_id}.{notice.zone_code}@zonewatch.{domain}>"
        msg["References"] = thread
        msg["In-Reply-To"] = thread
        msg["X-Zonewatch-Incident"] = str(notice.incident_id)
        msg["X-Zonewatch-Kind"] = notice.kind
        if notice.kind != "resolved" and notice.severity == "critical" and notice.urgency == "high":
            msg["Importance"] = "high"
            msg["X-Priority"] = "1"
        msg.set_content(render.plain(notice) + "\n")
        msg.add_alternative(render.html_body(notice), subtype="html")
        return msg

    async def send(self, notice: Notice, http: aiohttp.ClientSession) -> str:
        return await asyncio.to_thread(self._deliver, self.message(notice))

    def _deliver(self, msg: EmailMessage) -> str:
        o: EmailOptions = self.options
        timeout = o.timeout or DEFAULT_TIMEOUT
        where = f"{o.host}:{self._port}"
        try:
            if o.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(o.host, self._port, timeout=timeout, context=self._tls)
            else:
                smtp = smtplib.SMTP(o.host, self._port, timeout=timeout)
            with smtp:
                smtp.ehlo()
                if o.security == "starttls":
                    if not smtp.has_extn("starttls"):
                        raise NotifyError(f"{where} does not offer STARTTLS; set security = \"ssl\" or "
                                          "\"none\" to match the server", retryable=False)
                    smtp.starttls(context=self._tls)
                    smtp.ehlo()
                if o.username:
                    smtp.login(o.username, self._password or "")
                refused = smtp.send_message(msg, from_addr=self._sender_addr, to_addrs=list(o.to))
        except NotifyError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise NotifyError(f"{where} refused the login of {o.username}: {_reply(exc)}", retryable=False) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise NotifyError(f"{where}: {exc}; check security and whether this server takes logins",
                              retryable=False) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{rcpt}: {code} {_text(text)}" for rcpt, (code, text) in exc.recipients.items())
            raise NotifyError(f"{where} refused every recipient: {detail}",
                              retryable=any(400 <= c < 500 for c in codes)) from None
        except smtplib.SMTPResponseException as exc:
            raise NotifyError(f"{where} answered {_reply(exc)}", retryable=exc.smtp_code < 500) from None
        except ssl.SSLCertVerificationError as exc:
            raise NotifyError(f"{where}: certificate not trusted ({exc.verify_message}); give the CA that signed "
                              "it as ca_file", retryable=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise NotifyError(f"{where}: {type(exc).__name__}: {exc}") from None
        note = f"accepted by {where} for {len(o.to) - len(refused)} of {len(o.to)} recipients"
        if refused:
            note += "; refused " + ", ".join(f"{r} ({c} {_text(t)})" for r, (c, t) in refused.items())
        return note


def _text(text: bytes | str) -> str:
    return excerpt(text, 120)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}"


__all__ = ["EmailNotifier", "EmailOptions"]
