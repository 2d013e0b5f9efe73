"""Enrolment tokens and device credentials: plain functions of a database session.

A token (``zwe_…``, 256 random bits) is shown once and stored as its SHA-256 digest; it enrols one device
into the zone it was made for, once, before it expires. Enrolling creates the device (or adopts an
unassigned one that reported before), gives it a random MQTT secret and stores only the secret's mosquitto
hash. Revoking removes the credential and marks the device revoked; rotating replaces the secret.
Every function that changes something commits; the caller then rewrites the broker files (:mod:`.sync`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import Session, select

from server.admin import check_device, find_zone, mark_placement_changed, parse_role
from server.db.models import Device, Zone
from server.errors import Conflict, NotFound

from .broker import hash_password, new_secret
from .models import DeviceCredential, EnrolmentToken

TOKEN_PREFIX = "zwe_"
TOKEN_RE = re.compile(r"zwe_[A-Za-z0-9_-]{43}")
MAX_TTL = 30 * 86400.0
NEW_TOKEN_HINT = "ask an admin for a new one (zonewatch provision token create --zone CODE)"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class EnrolmentRefused(Exception):
    """An enrolment the server refuses, with the HTTP status to answer and words for the technician."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Enrolled:
    device_id: str
    secret: str
    zone_code: str
    role: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def parse_ttl(text: str) -> float:
    """``90m``, ``24h``, ``7d`` (or plain seconds) → seconds, at most 30 days."""
    match = re.fullmatch(r"\s*(\d{1,7}(?:\.\d+)?)\s*([smhdw]?)\s*", text or "")
    if not match:
        raise ValueError(f"expiry {text[:40]!r} is not a duration: use e.g. 30m, 24h or 7d")
    seconds = float(match[1]) * _UNITS[match[2] or "s"]
    if not 60 <= seconds <= MAX_TTL:
        raise ValueError(f"expiry {text.strip()!r} is out of range: between 1 minute (1m) and 30 days (30d)")
    return seconds


def create_token(s: Session, zone_code: str, ttl_s: float, role: str = "kiosk",
                 created_by: str = "") -> tuple[str, EnrolmentToken]:
    """A new token for ``zone_code``; returns the token (shown once) and its row."""
    zone = find_zone(s, zone_code)
    role = parse_role(role)
    if role == "unknown":
        raise ValueError("an enrolled device needs a role: kiosk, desktop or counter_pc")
    if not 60 <= ttl_s <= MAX_TTL:
        raise ValueError("a token lasts between 1 minute and 30 days")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    row = EnrolmentToken(token_hash=digest(token), prefix=token[:10], zone_id=zone.id, role=role, created_at=now,
                         expires_at=now + ttl_s, created_by=created_by[:200])
    s.add(row)
    s.commit()
    s.refresh(row)
    return token, row


def list_tokens(s: Session) -> list[tuple[EnrolmentToken, str]]:
    """Every token, newest first, with its zone's code."""
    rows = s.exec(select(EnrolmentToken, Zone.code).join(Zone, Zone.id == EnrolmentToken.zone_id)
                  .order_by(EnrolmentToken.id.desc())).all()
    return [(t, code) for t, code in rows]


def _device_id_for(zone: Zone) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]", "-", zone.code).strip("-._")[:48] or "device"
    return f"{stem}-{secrets.token_hex(4)}"


def enrol(s: Session, token: str, device_id: str | None = None, name: str = "",
          zone_code: str | None = None) -> Enrolled:
    """Exchange a token for a device in its zone and a fresh MQTT secret, in one transaction."""
    row = s.exec(select(EnrolmentToken).where(EnrolmentToken.token_hash == digest(token))).first() \
        if TOKEN_RE.fullmatch(token) else None
    now = time.time()
    if row is None:
        raise EnrolmentRefused(401, f"this enrolment token is not valid (mistyped, or made by another server); "
                                    f"{NEW_TOKEN_HINT}")
    if row.used_at is not None:
        raise EnrolmentRefused(409, f"this enrolment token was used already (for device {row.device_id}); a token "
                                    f"works once: {NEW_TOKEN_HINT}")
    if row.expires_at <= now:
        when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(row.expires_at))
        raise EnrolmentRefused(410, f"this enrolment token expired at {when}; {NEW_TOKEN_HINT}")
    zone = s.get(Zone, row.zone_id)
    if zone is None:
        raise EnrolmentRefused(409, f"the zone this token was made for no longer exists; {NEW_TOKEN_HINT}")
    if zone_code is not None and zone_code != zone.code:
        raise EnrolmentRefused(403, f"this token enrols into zone {zone.code!r}, not {zone_code[:64]!r}; use the "
                                    "token made for this device's zone, or leave --zone out")
    try:
        device_id = check_device(device_id) if device_id else _device_id_for(zone)
    except ValueError as exc:
        raise EnrolmentRefused(400, f"{exc}; or leave the device id out and the server picks one") from None
    device = s.get(Device, device_id)
    _check_adoptable(s, device, device_id, zone)
    used = s.execute(update(EnrolmentToken).where(EnrolmentToken.id == row.id, EnrolmentToken.used_at.is_(None))
                     .values(used_at=now, device_id=device_id))
    if used.rowcount != 1:  # another request took it a moment ago
        s.rollback()
        raise EnrolmentRefused(409, f"this enrolment token was used already; a token works once: {NEW_TOKEN_HINT}")
    if device is None:
        device = Device(id=device_id, created_at=now)
    device.zone_id, device.role = zone.id, row.role
    device.name = " ".join(name.split())[:200] or device.name
    secret = new_secret()
    s.add(device)
    s.flush()  # the device row first: the credential refers to it
    s.add(DeviceCredential(device_id=device_id, mqtt_hash=hash_password(secret), issued_at=now))
    mark_placement_changed(s)
    s.commit()
    return Enrolled(device_id, secret, zone.code, row.role)


def _check_adoptable(s: Session, device: Device | None, device_id: str, zone: Zone) -> None:
    if device is None:
        return
    if device.revoked_at is not None:
        raise EnrolmentRefused(409, f"device {device_id!r} was revoked; enrol this machine under another device id")
    if s.get(DeviceCredential, device_id) is not None:
        raise EnrolmentRefused(409, f"device {device_id!r} is enrolled already; choose another device id, or have "
                                    f"an admin revoke the old one first (zonewatch provision revoke {device_id})")
    if device.zone_id is not None and device.zone_id != zone.id:
        raise EnrolmentRefused(409, f"device {device_id!r} is registered in another zone; choose another device id "
                                    "or move it first (zonewatch device move)")


def _device(s: Session, device_id: str) -> Device:
    device = s.get(Device, (device_id or "").strip())
    if device is None:
        raise NotFound(f"no device {device_id[:64]!r}; `zonewatch device list` shows the devices")
    return device


def revoke(s: Session, device_id: str) -> tuple[Device, bool]:
    """Take the device's broker login away and mark it revoked; (device, whether it was revoked already)."""
    device = _device(s, device_id)
    already = device.revoked_at is not None
    credential = s.get(DeviceCredential, device.id)
    if credential is not None:
        s.delete(credential)
    if not already:
        device.revoked_at = time.time()
        s.add(device)
    s.commit()
    return device, already


def rotate(s: Session, device_id: str) -> str:
    """A new MQTT secret for the device (the old one stops working at the broker's reload); returns it once."""
    device = _device(s, device_id)
    if device.revoked_at is not None:
        raise Conflict(f"device {device.id!r} is revoked; a revoked device gets no secret (enrol it anew under "
                       "another id)")
    secret = new_secret()
    now = time.time()
    credential = s.get(DeviceCredential, device.id)
    if credential is None:
        credential = DeviceCredential(device_id=device.id, mqtt_hash="", issued_at=now)
    else:
        credential.rotated_at = now
    credential.mqtt_hash = hash_password(secret)
    s.add(credential)
    s.commit()
    return secret


def broker_hashes(s: Session) -> dict[str, str]:
    """``{device id: $7$ hash}`` of every device that may log in to the broker."""
    rows = s.exec(select(DeviceCredential.device_id, DeviceCredential.mqtt_hash).join(
        Device, Device.id == DeviceCredential.device_id).where(Device.revoked_at.is_(None))).all()
    return dict(rows)
