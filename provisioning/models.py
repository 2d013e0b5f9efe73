"""Enrolment and device-credential tables. No secret is stored: an enrolment token as its SHA-256 digest (a long
random string, so a fast digest is enough), a device's MQTT secret as the mosquitto ``$7$`` PBKDF2 hash the
broker's password file needs, so the file can be rebuilt from the database at any time."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class DeviceCredential(SQLModel, table=True):
    """A device's MQTT login (user name = device id). No row: the device cannot connect to a managed broker."""

    __tablename__ = "device_credential"
    device_id: str = Field(primary_key=True, foreign_key="device.id", max_length=64)
    #: ``$7$<iterations>$<salt>$<PBKDF2-SHA512>`` as in mosquitto's password file.
    mqtt_hash: str = Field(max_length=255)
    issued_at: float
    rotated_at: float | None = None


class EnrolmentToken(SQLModel, table=True):
    """A one-time, expiring token that enrols one device into one zone."""

    __tablename__ = "enrolment_token"
    id: int | None = Field(default=None, primary_key=True)
    #: SHA-256 of the token, hex.
    token_hash: str = Field(max_length=64, unique=True, index=True)
    #: The token's first characters, so a person can tell tokens apart (``zwe_AbCd…``).
    prefix: str = Field(max_length=16)
    zone_id: int = Field(foreign_key="zone.id", index=True)
    #: The role the enrolled device gets: kiosk, desktop or counter_pc.
    role: str = Field(default="kiosk", max_length=16)
    created_at: float
    expires_at: float
    created_by: str = Field(default="", max_length=200)
    #: When it was used, and for which device; a used token never works again.
    used_at: float | None = None
    device_id: str | None = Field(default=None, max_length=64)
