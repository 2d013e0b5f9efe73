"""Rollouts: which devices get a bundle, the desired state each is sent, progress from acks, cancel.

Plain functions of a database session. Creating or cancelling a rollout commits and returns the retained
``desired`` messages to publish (:mod:`.publisher` sends them); the device converges whenever it is
connected, because the broker keeps the last desired message per device.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from sqlalchemy import update
from sqlmodel import Session, select

from protocol import Ack, Desired, DesiredContent, encode
from server.admin import find_device, find_zone, region_path
from server.db.models import Device, Region, Zone
from server.errors import Conflict, NotFound

from .models import ContentBundle, DeviceDesired, Rollout, RolloutDevice
from .store import find_bundle

#: States a device reports on the ack topic (target "content"), in the order they happen.
ACK_STATES = ("downloading", "applying", "applied", "failed")
DONE = ("applied", "failed", "cancelled", "superseded")


@dataclass(frozen=True)
class Target:
    zones: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()  # "City/District[/Township]"
    devices: tuple[str, ...] = ()

    def as_json(self) -> str:
        return json.dumps({"zones": list(self.zones), "regions": list(self.regions), "devices": list(self.devices)})


@dataclass(frozen=True)
class Outgoing:
    """A retained desired message for one device: ``payload`` b"" clears it."""

    device_id: str
    payload: bytes


def resolve(s: Session, target: Target) -> list[str]:
    """The enrolled, not revoked device ids a target names; :class:`NotFound` for a name that is not there."""
    zone_ids: set[int] = {find_zone(s, code).id for code in target.zones}
    for path in target.regions:
        region = region_path(s, path, create=False)
        if region is None:
            raise NotFound(f"no region {path[:200]!r}; regions are written City/District/Township as in GET "
                           "/api/v1/regions")
        zone_ids |= _zones_below(s, region.id)
    ids = set(s.exec(select(Device.id).where(Device.zone_id.in_(zone_ids), Device.revoked_at.is_(None))).all()) \
        if zone_ids else set()
    for device_id in target.devices:
        device = find_device(s, device_id)
        if device.revoked_at is not None:
            raise Conflict(f"device {device.id!r} is revoked; it cannot take part in a rollout")
        ids.add(device.id)
    return sorted(ids)


def _zones_below(s: Session, region_id: int) -> set[int]:
    regions, frontier = {region_id}, {region_id}
    while frontier:
        frontier = set(s.exec(select(Region.id).where(Region.parent_id.in_(frontier))).all()) - regions
        regions |= frontier
    return set(s.exec(select(Zone.id).where(Zone.region_id.in_(regions))).all())


def desired_for(device_id: str, generation: int, bundle: ContentBundle | None, base_url: str) -> bytes:
    content = None
    if bundle is not None:
        content = DesiredContent(version=bundle.version, url=f"{base_url.rstrip('/')}/device/content/{bundle.sha256}",
                                 sha256=bundle.sha256, size=bundle.size, signature=bundle.signature)
    return encode(Desired(device_id=device_id, ts=time.time(), generation=generation, content=content))


def create(s: Session, bundle_ref: str, target: Target, base_url: str, created_by: str = "") -> \
        tuple[Rollout, list[Outgoing]]:
    """A rollout of a bundle to the target's devices: rows, desired state, the messages to publish."""
    bundle = find_bundle(s, bundle_ref)
    devices = resolve(s, target)
    if not devices:
        raise ValueError("the target names no enrolled device; check the zones, regions and devices given")
    now = time.time()
    rollout = Rollout(bundle_sha256=bundle.sha256, target=target.as_json(), created_at=now,
                      created_by=created_by[:200])
    s.add(rollout)
    s.flush()
    s.execute(update(RolloutDevice).where(RolloutDevice.device_id.in_(devices),
                                          RolloutDevice.state.not_in(DONE))
              .values(state="superseded", detail=f"superseded by rollout {rollout.id}", updated_at=now))
    out = []
    for device_id in devices:
        s.add(RolloutDevice(rollout_id=rollout.id, device_id=device_id, state="pending", updated_at=now))
        out.append(_set_desired(s, device_id, rollout.id, bundle, base_url, now))
    s.commit()
    s.refresh(rollout)
    return rollout, out


def _set_desired(s: Session, device_id: str, rollout_id: int | None, bundle: ContentBundle | None, base_url: str,
                 now: float) -> Outgoing:
    row = s.get(DeviceDesired, device_id)
    generation = (row.generation if row else 0) + 1
    payload = desired_for(device_id, generation, bundle, base_url)
    if row is None:
        row = DeviceDesired(device_id=device_id, generation=generation, payload="", published_at=now)
    row.generation, row.rollout_id, row.payload, row.published_at = generation, rollout_id, payload.decode(), now
    s.add(row)
    return Outgoing(device_id, payload)


def cancel(s: Session, rollout_id: int, base_url: str) -> tuple[Rollout, list[Outgoing]]:
    """Stop a rollout: devices that have not applied it are sent back to the last bundle they applied (or told
    to keep what they have); devices that applied it keep it (roll them back with a rollout of the old version)."""
    rollout = get(s, rollout_id)
    if rollout.status == "cancelled":
        return rollout, []
    now = time.time()
    rollout.status, rollout.cancelled_at = "cancelled", now
    out = []
    for row in s.exec(select(RolloutDevice).where(RolloutDevice.rollout_id == rollout_id,
                                                  RolloutDevice.state != "applied")).all():
        if row.state not in DONE:
            row.state, row.detail, row.updated_at = "cancelled", "rollout cancelled", now
            s.add(row)
        desired = s.get(DeviceDesired, row.device_id)
        if desired is not None and desired.rollout_id == rollout_id:
            previous = _last_applied(s, row.device_id, rollout_id)
            out.append(_set_desired(s, row.device_id, previous.id if previous else None,
                                    s.get(ContentBundle, previous.bundle_sha256) if previous else None, base_url, now))
    s.add(rollout)
    s.commit()
    s.refresh(rollout)
    return rollout, out


def _last_applied(s: Session, device_id: str, not_rollout: int) -> Rollout | None:
    return s.exec(select(Rollout).join(RolloutDevice, RolloutDevice.rollout_id == Rollout.id)
                  .where(RolloutDevice.device_id == device_id, RolloutDevice.state == "applied",
                         Rollout.id != not_rollout).order_by(Rollout.id.desc())).first()


def get(s: Session, rollout_id: int) -> Rollout:
    rollout = s.get(Rollout, rollout_id)
    if rollout is None:
        raise NotFound(f"no rollout {rollout_id}; GET /api/v1/content/rollouts lists them")
    return rollout


def list_rollouts(s: Session, limit: int, offset: int) -> tuple[int, list[tuple[Rollout, ContentBundle]]]:
    total = len(s.exec(select(Rollout.id)).all())
    rows = s.exec(select(Rollout, ContentBundle).join(ContentBundle, ContentBundle.sha256 == Rollout.bundle_sha256)
                  .order_by(Rollout.id.desc()).offset(offset).limit(limit)).all()
    return total, [(r, b) for r, b in rows]


def devices_of(s: Session, rollout_id: int) -> list[RolloutDevice]:
    return list(s.exec(select(RolloutDevice).where(RolloutDevice.rollout_id == rollout_id)
                       .order_by(RolloutDevice.device_id)).all())


def record_ack(s: Session, ack: Ack, received_at: float) -> bool:
    """Fold a device's content ack into its newest active rollout of that bundle; False when none matches."""
    if ack.target != "content" or ack.state not in ACK_STATES:
        return False
    row = s.exec(select(RolloutDevice).join(Rollout, Rollout.id == RolloutDevice.rollout_id)
                 .where(RolloutDevice.device_id == ack.device_id, Rollout.bundle_sha256 == ack.ref,
                        Rollout.status == "active", RolloutDevice.state.not_in(("cancelled", "superseded")))
                 .order_by(Rollout.id.desc())).first()
    if row is None or (row.state == "applied" and ack.state != "failed"):
        return False
    row.state, row.detail, row.updated_at = ack.state, ack.detail[:1024], received_at
    row.progress = ack.progress
    s.add(row)
    return True


def may_download(s: Session, device_id: str, sha256: str) -> bool:
    """Whether some rollout ever sent this bundle to this device (devices fetch only what they were sent)."""
    return s.exec(select(RolloutDevice.device_id).join(Rollout, Rollout.id == RolloutDevice.rollout_id)
                  .where(RolloutDevice.device_id == device_id, Rollout.bundle_sha256 == sha256)).first() is not None


def record_ack_in(conn, ack: Ack, received_at: float) -> None:
    """The ingest writer's hook: fold an ack into rollout progress inside the writer's own transaction."""
    with Session(bind=conn) as s:
        if record_ack(s, ack, received_at):
            s.flush()
