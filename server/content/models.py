"""Content tables: bundles (content-addressed), rollouts, each targeted device's progress, and what each
device should run (the retained desired state last published for it)."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class ContentBundle(SQLModel, table=True):
    """One uploaded bundle, stored once under ``<data_dir>/content/<sha256>``."""

    __tablename__ = "content_bundle"
    sha256: str = Field(primary_key=True, max_length=64)
    version: str = Field(max_length=64, unique=True, index=True)
    size: int
    #: Ed25519 signature (base64) of the bundle statement; see agent/content/signature.py.
    signature: str = Field(max_length=128)
    files: int
    unpacked_bytes: int
    description: str = Field(default="", max_length=1024)
    uploaded_at: float
    uploaded_by: str = Field(default="", max_length=200)


class Rollout(SQLModel, table=True):
    """Publishing a bundle as desired state to a set of devices."""

    __tablename__ = "rollout"
    id: int | None = Field(default=None, primary_key=True)
    bundle_sha256: str = Field(foreign_key="content_bundle.sha256", max_length=64, index=True)
    #: What was asked for, as JSON: {"zones": [...], "devices": [...]}.
    target: str = Field(max_length=16384)
    #: active or cancelled.
    status: str = Field(default="active", max_length=16)
    created_at: float
    created_by: str = Field(default="", max_length=200)
    cancelled_at: float | None = None


class RolloutDevice(SQLModel, table=True):
    """One device's progress in one rollout: pending, downloading, applied, failed, cancelled."""

    __tablename__ = "rollout_device"
    rollout_id: int = Field(foreign_key="rollout.id", primary_key=True)
    device_id: str = Field(primary_key=True, max_length=64, index=True)
    state: str = Field(default="pending", max_length=16)
    detail: str = Field(default="", max_length=1024)
    progress: float | None = None
    updated_at: float


class DeviceDesired(SQLModel, table=True):
    """The desired state last published (retained) for a device, and its generation counter."""

    __tablename__ = "device_desired"
    device_id: str = Field(primary_key=True, max_length=64)
    generation: int
    rollout_id: int | None = Field(default=None, foreign_key="rollout.id")
    #: The JSON payload published on zw/v1/cmd/<id>/desired ("" once cleared).
    payload: str = Field(max_length=16384)
    published_at: float


class DeviceCommand(SQLModel, table=True):
    """A one-shot command sent to a device, and its latest ack (sent, running, done, failed or refused)."""

    __tablename__ = "device_command"
    id: str = Field(primary_key=True, max_length=64)
    device_id: str = Field(max_length=64, index=True)
    action: str = Field(max_length=64)
    #: The command's arguments, as JSON.
    args: str = Field(default="{}", max_length=16384)
    expires: float
    created_at: float
    created_by: str = Field(default="", max_length=200)
    state: str = Field(default="sent", max_length=16)
    detail: str = Field(default="", max_length=1024)
    #: The result the device acked, as JSON ("" until then).
    result: str = Field(default="", max_length=16384)
    updated_at: float
