"""Signed one-click acknowledge links: on-call staff ack from their phone without signing in.

``/ack/<incident>.<expires>.<nonce>.<signature>`` — HMAC-SHA256 with the server's secret over the
first three parts. The nonce is stored on the incident and cleared when the link is used, so a
link works once; a forged signature or an expired link is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path


class AckLinkError(ValueError):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def load_secret(path: Path) -> bytes:
    """The signing secret, created (0600) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip().encode()


def _sign(secret: bytes, body: str) -> str:
    return hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:40]


def make_token(secret: bytes, incident_id: int, nonce: str, expires: float) -> str:
    body = f"{incident_id}.{int(expires)}.{nonce}"
    return f"{body}.{_sign(secret, body)}"


def check_token(secret: bytes, token: str, now: float) -> tuple[int, str]:
    """``(incident_id, nonce)`` of a well-signed, unexpired token; AckLinkError otherwise."""
    parts = token.split(".")
    if len(parts) != 4 or not parts[0].isdigit() or not parts[1].isdigit():
        raise AckLinkError(400, "this acknowledge link is malformed; open the incident in zonewatch instead")
    body = ".".join(parts[:3])
    if not hmac.compare_digest(_sign(secret, body), parts[3]):
        raise AckLinkError(403, "this acknowledge link is not valid (its signature does not match)")
    if int(parts[1]) < now:
        raise AckLinkError(410, "this acknowledge link has expired; acknowledge the incident in zonewatch")
    return int(parts[0]), parts[2]
