"""The incidents' tables: small synchronous reads and writes, run off the event loop by the engine."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_
from sqlmodel import select

from ..db.models import Incident, IncidentEvent, Region, Silence, Zone


@dataclass
class ZoneFacts:
    id: int | None
    code: str
    name: str
    region: str  # "Demo City / Haidian District / Zhongguancun"
    region_names: set[str] = field(default_factory=set)
    timezone: str = "Asia/Shanghai"
    opening_hours: dict[str, list[str]] = field(default_factory=dict)
    holidays: list[str] = field(default_factory=list)


UNASSIGNED = ZoneFacts(None, "", "(no zone)", "")


class IncidentStore:
    def __init__(self, new_session) -> None:
        self.new_session = new_session

    def open_incidents(self) -> list[Incident]:
        with self.new_session() as s:
            return list(s.exec(select(Incident).where(Incident.status != "resolved")))

    def add(self, incident: Incident, event: str, detail: str = "") -> Incident:
        with self.new_session() as s:
            s.add(incident)
            s.flush()
            s.add(IncidentEvent(incident_id=incident.id, at=time.time(), kind=event, detail=detail[:2000]))
            s.commit()
            s.refresh(incident)
            return incident

    def save(self, incident: Incident, event: str | None = None, detail: str = "", *, actor: str | None = None,
             receiver: str | None = None) -> Incident:
        with self.new_session() as s:
            merged = s.merge(incident)
            if event:
                s.add(IncidentEvent(incident_id=incident.id, at=time.time(), kind=event, actor=actor,
                                    receiver=receiver, detail=detail[:2000]))
            s.commit()
            s.refresh(merged)
            return merged

    def event(self, incident_id: int, kind: str, detail: str = "", *, receiver: str | None = None,
              actor: str | None = None) -> None:
        with self.new_session() as s:
            s.add(IncidentEvent(incident_id=incident_id, at=time.time(), kind=kind, receiver=receiver, actor=actor,
                                detail=detail[:2000]))
            s.commit()

    def get(self, incident_id: int) -> Incident | None:
        with self.new_session() as s:
            return s.get(Incident, incident_id)

    def zone(self, zone_id: int | None) -> ZoneFacts:
        if zone_id is None:
            return UNASSIGNED
        with self.new_session() as s:
            zone = s.get(Zone, zone_id)
            if zone is None:
                return UNASSIGNED
            names, region_id = [], zone.region_id
            while region_id is not None:
                region = s.get(Region, region_id)
                if region is None:
                    break
                names.append(region.name)
                region_id = region.parent_id
            names.reverse()
            return ZoneFacts(zone.id, zone.code, zone.name, " / ".join(names), set(names), zone.timezone,
                             dict(zone.opening_hours), list(zone.holidays))

    def active_silence(self, zone_code: str, device_id: str | None, rule: str, now: float) -> Silence | None:
        with self.new_session() as s:
            candidates = s.exec(select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now,
                                                      or_(Silence.rule.is_(None), Silence.rule == rule)))
            for silence in candidates:
                if silence.zone_code and silence.zone_code != zone_code:
                    continue
                if silence.device_id and silence.device_id != device_id:
                    continue
                return silence
        return None

    def timeline(self, incident_id: int) -> list[dict[str, Any]]:
        with self.new_session() as s:
            rows = s.exec(select(IncidentEvent).where(IncidentEvent.incident_id == incident_id)
                          .order_by(IncidentEvent.at, IncidentEvent.id))
            return [{"at": e.at, "kind": e.kind, "actor": e.actor, "receiver": e.receiver, "detail": e.detail}
                    for e in rows]

    # -- silences (written by the API; read by the pipeline through active_silence) ------------

    def add_silence(self, silence: Silence) -> Silence:
        with self.new_session() as s:
            s.add(silence)
            s.commit()
            s.refresh(silence)
            return silence

    def end_silence(self, silence_id: int, now: float) -> Silence | None:
        """End a silence now, keeping its record (who silenced what is audit data); None if there is none.

        A silence that has ended already is returned unchanged. A scheduled one ends before it began.
        """
        with self.new_session() as s:
            silence = s.get(Silence, silence_id)
            if silence is None:
                return None
            if silence.ends_at > now:
                silence.ends_at = now
                s.add(silence)
                s.commit()
                s.refresh(silence)
            return silence
