"""The running fleet service: database, health state, ingest writer, broker link, scheduled jobs.

``FleetService(settings)`` owns everything that lives as long as the server; the app factory
opens it on startup and closes it on shutdown. Scheduled jobs (APScheduler) do not touch the
database themselves: they queue a task for the one ingest writer, which runs it in its next
transaction, so every write to the fleet's state has one author.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import and_, delete, func, select
from sqlmodel import Session

from protocol import Codec

from .content.commands import record_any_ack_in
from .db import make_engine, session_factory, upgrade
from .db.engine import describe
from .db.models import History, Incident, MetricPoint, Report
from .events import EventBus
from .health.fleet import Changes, Fleet
from .incidents import acklink
from .incidents.conditions import ConditionTracker
from .incidents.engine import IncidentEngine
from .incidents.store import IncidentStore
from .ingest import store
from .ingest.receiver import ReceiverProcess
from .ingest.writer import Writer
from .microcache import MicroCache
from .notify import parse_receivers
from .settings import Settings

log = logging.getLogger("zonewatch.server")
PLACEMENT_MARK = "placement_changed_at"
REPORT2 = Report.__table__.alias("newer")


class FleetService:
    def __init__(self, settings: Settings, *, with_broker: bool = True) -> None:
        self.settings = settings
        self.with_broker = with_broker
        self.engine = make_engine(settings.database_url)
        self.new_session = session_factory(self.engine)
        h = settings.health
        self.fleet = Fleet(h.default_interval, h.offline_after_intervals)
        self.codec = Codec(settings.mqtt.topic_prefix, settings.mqtt.max_payload)
        self.writer: Writer | None = None
        self.link: ReceiverProcess | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self._placement_seen: float | None = None
        self.tracker = ConditionTracker()
        self._reasons_hour = int(time.time() // 3600)
        self.incidents: IncidentEngine | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started_at = time.time()
        #: What changed (zone status, incidents), for live pages; see :mod:`server.events`.
        self.events = EventBus()
        #: Reads of the fleet's state that are the same for every user (fleet page, zone list, counts),
        #: shared by concurrent requests and for a second; used on the event loop only.
        self.views: MicroCache = MicroCache(ttl=1.0)

    # -- life --------------------------------------------------------------------------------

    def open(self) -> None:
        """Migrate the schema, load the fleet, start the writer and the broker link (blocking; call in a thread)."""
        log.info("database: %s", describe(self.engine))
        upgrade(self.engine)
        with Session(self.engine) as session:
            self.fleet.load(session)
        with self.engine.connect() as conn:
            self._placement_seen = store.get_mark(conn, PLACEMENT_MARK)
        d = self.settings.database
        self.tracker.update(self.fleet, set(self.fleet.devices), set(self.fleet.zones), time.time())
        self.writer = Writer(self.engine, self.fleet, self.codec, self._ack_many, d.batch_max, d.batch_wait_ms)
        self.writer.on_commit = self._committed
        self.writer.on_ack = record_any_ack_in
        self.writer.start()
        if self.with_broker:
            self.link = ReceiverProcess(self.settings, self.writer.submit_many)
            self.link.start()

    @property
    def fleet_version(self) -> int:
        """Changes whenever a status in the fleet changed (the writer's ``state_version``): ``views`` keys on it."""
        return self.writer.state_version if self.writer is not None else 0

    def _committed(self, devices: set[str], zones: set[int], now: float) -> None:
        """Writer thread, after a commit: which conditions began or ended → the incident engine."""
        signals = self.tracker.update(self.fleet, devices, zones, now)
        if signals and self.incidents is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.incidents.handle, signals)
        if zones and self.events.wanted:
            self._publish_zones(zones)

    def _publish_zones(self, zone_ids: set[int]) -> None:
        """Writer thread: each changed zone as it stands now, then the fleet's zone counts."""
        for zone_id in sorted(zone_ids):
            zone = self.fleet.zones.get(zone_id)
            if zone is not None:
                self.events.publish("zone", {"id": zone.id, "code": zone.code, "name": zone.name,
                                             "status": zone.status, "since": zone.status_since,
                                             "reasons": list(zone.reasons)})
        counts = {"meets": 0, "degraded": 0, "breach": 0, "unknown": 0}
        for zone in self.fleet.zones.values():
            counts[zone.status if zone.status in counts else "unknown"] += 1
        self.events.publish("counts", counts)

    async def start_incidents(self) -> None:
        """Start the incident engine on the running loop (after open())."""
        self.loop = asyncio.get_running_loop()
        self.events.attach(self.loop)
        a = self.settings.alerts
        secret_path = Path(a.secret_file) if a.secret_file else Path(self.settings.server.data_dir) / "alert-secret"
        self.incidents = IncidentEngine(self.settings, PublishingIncidentStore(self.new_session, self.events),
                                        parse_receivers(self.settings.receivers, "settings"),
                                        acklink.load_secret(secret_path))
        await self.incidents.start(self.tracker.all_held())

    def start_jobs(self) -> None:
        """Schedule the sweep, incident timers and retention (needs the running asyncio loop)."""
        self.scheduler = AsyncIOScheduler()
        if self.incidents is not None:
            self.scheduler.add_job(self.incidents.tick, "interval", seconds=self.settings.health.sweep_every,
                                   id="incidents", max_instances=1, coalesce=True)
        self.scheduler.add_job(self.queue_sweep, "interval", seconds=self.settings.health.sweep_every,
                               id="sweep", max_instances=1, coalesce=True)
        self.scheduler.add_job(lambda: self.writer.submit(self.retention_task), "interval", hours=1,
                               id="retention", max_instances=1, coalesce=True)
        self.scheduler.start()

    async def close_incidents(self) -> None:
        if self.incidents is not None:
            await self.incidents.close()

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self.link is not None:
            self.link.stop()
        if self.writer is not None:
            self.writer.stop()
        self.engine.dispose()

    def _ack_many(self, items) -> None:
        if self.link is not None:
            self.link.ack_many(items)

    # -- tasks run by the writer -------------------------------------------------------------

    def queue_sweep(self) -> None:
        if self.writer is not None:
            self.writer.submit(self.sweep_task)

    def sweep_task(self, conn, changes: Changes, now: float) -> None:
        mark = store.get_mark(conn, PLACEMENT_MARK)
        if mark is not None and mark != self._placement_seen:
            self._placement_seen = mark
            with Session(bind=conn) as session:
                self.fleet.reload_placement(session, changes, now)
        self.fleet.sweep(now, changes)
        hour = int(now // 3600)
        if hour != self._reasons_hour:  # reasons say "since 10:02" on the day itself: re-word them hourly
            self._reasons_hour = hour
            for zone_id in list(self.fleet.zones):
                self.fleet.evaluate(zone_id, now, changes)

    def retention_task(self, conn, changes: Changes, now: float) -> None:
        r = self.settings.retention
        newer = select(func.max(REPORT2.c.seq)).where(and_(
            REPORT2.c.device_id == Report.device_id, REPORT2.c.epoch == Report.epoch)).scalar_subquery()
        gone = conn.execute(delete(Report).where(and_(
            Report.received_at < now - r.reports_days * 86400, Report.seq < newer))).rowcount
        conn.execute(delete(MetricPoint).where(and_(MetricPoint.resolution == 300,
                                                    MetricPoint.bucket < now - r.metrics_days * 86400)))
        conn.execute(delete(MetricPoint).where(MetricPoint.bucket < now - r.hourly_metrics_days * 86400))
        conn.execute(delete(History).where(History.at < now - r.history_days * 86400))
        if gone:
            log.info("retention: removed %d reports older than %.0f days", gone, r.reports_days)

    # -- health of the server itself ---------------------------------------------------------

    def health(self) -> dict:
        database = {"ok": True}
        try:
            with self.engine.connect() as conn:
                conn.execute(select(1))
        except Exception as exc:
            database = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        if self.writer is not None and self.writer.stats.last_db_error and self.writer.stats.db_errors:
            database.setdefault("last_write_error", self.writer.stats.last_db_error)
        if self.link is None:
            broker = {"ok": False, "error": "no broker link (started without one)"}
        else:
            broker = {"ok": self.link.connected, "url": self.link.where}
            if not self.link.connected:
                broker["error"] = self.link.last_error or "connecting"
        return {"database": database, "broker": broker}


class PublishingIncidentStore(IncidentStore):
    """The incident store that also tells the event bus when an incident is opened or changes."""

    def __init__(self, new_session, events: EventBus) -> None:
        super().__init__(new_session)
        self.events = events

    def add(self, incident: Incident, event: str, detail: str = "") -> Incident:
        stored = super().add(incident, event, detail)
        self._publish(stored, event)
        return stored

    def save(self, incident: Incident, event: str | None = None, detail: str = "", **kw) -> Incident:
        stored = super().save(incident, event, detail, **kw)
        if event in ("acknowledged", "resolved", "reactivated", "flapping", "opened"):
            self._publish(stored, event)
        return stored

    def _publish(self, incident: Incident, event: str) -> None:
        self.events.publish("incident", {"id": incident.id, "event": event, "status": incident.status,
                                         "rule": incident.rule, "severity": incident.severity,
                                         "zone_id": incident.zone_id, "device_id": incident.device_id,
                                         "label": incident.label})
