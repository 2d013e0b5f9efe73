"""The one ingest writer: batches messages, stores each report exactly once, updates health, then acks.

Messages arrive from the broker link on a queue. The writer takes up to ``batch_max`` of them
(waiting at most ``batch_wait_ms`` to fill a batch), and in **one transaction** stores the new
reports, applies them and any presence to the fleet's health, writes every change, and runs the
scheduled tasks (sweep, placement reload) that were queued alongside. Only after the commit are
the messages acknowledged to the broker, so a crash at any point loses nothing: the broker
redelivers what was not acknowledged and the ``(device, epoch, seq)`` key makes it a no-op.

A bad message is refused — counted by reason, logged (rate-limited) and acknowledged, since
redelivering it would never make it good. A database error rolls the batch back, reloads the
in-memory state from the database, and retries the same batch with back-off; nothing is acked
meanwhile.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from protocol import STATUS_RANK, Ack, Codec, Presence, ProtocolError, Report

from ..health.fleet import Changes, Fleet
from . import late, metrics, store

log = logging.getLogger("zonewatch.ingest")
Task = Callable[[Any, Changes, float], None]  # (connection, changes, now)


@dataclass(slots=True)
class Incoming:
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: float
    #: Which broker connection it came on: message ids are only meaningful on their own connection.
    connection: int = 0


@dataclass
class IngestStats:
    received: int = 0
    reports_stored: int = 0
    duplicates: int = 0
    late: int = 0
    sequence_restarts: int = 0
    presence: int = 0
    acks: int = 0
    refused: Counter = field(default_factory=Counter)
    recent_refusals: deque = field(default_factory=lambda: deque(maxlen=20))
    batches: int = 0
    last_batch_size: int = 0
    last_commit_ms: float = 0.0
    db_errors: int = 0
    last_db_error: str | None = None
    last_commit_at: float | None = None


class Writer:
    def __init__(self, engine: Engine, fleet: Fleet, codec: Codec, ack_many: Callable[[list[Incoming]], None],
                 batch_max: int = 2000, batch_wait_ms: float = 20.0) -> None:
        self.engine, self.fleet, self.codec, self.ack_many = engine, fleet, codec, ack_many
        self.batch_max, self.batch_wait = batch_max, batch_wait_ms / 1000.0
        self.queue: queue.SimpleQueue[Incoming | Task] = queue.SimpleQueue()
        self.stats = IngestStats()
        self.metrics = metrics.MetricsBuffer()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refusal_log: tuple[int, int] = (0, 0)  # (minute, logged in it)
        #: ``on_commit(devices, zones, now)``: called in the writer thread after each commit with what it touched.
        self.on_commit: Callable[[set[str], set[int], float], None] | None = None
        #: Bumped after each commit that changed a status (check, printer, device, presence, zone) or
        #: added a device; a report that only says "still the same" leaves it. Read caches key on it.
        self.state_version = 0
        #: ``on_ack(conn, ack, received_at)``: called in the writer's transaction for each ack (rollout progress).
        self.on_ack: Callable[[Any, Ack, float], None] | None = None

    # -- life --------------------------------------------------------------------------------

    def start(self) -> None:
        self.recover_metrics()
        self._thread = threading.Thread(target=self._run, name="zonewatch-ingest-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, flush the metrics, and stop."""
        if self._thread is None or not self._thread.is_alive():
            return
        self.queue.put(self._last_task)
        self._thread.join(timeout)
        self._stop.set()

    def _last_task(self, conn, changes: Changes, now: float) -> None:
        store.upsert_metrics(conn, self.metrics.take(now))
        store.set_mark(conn, metrics.WATERMARK, now)
        self._stop.set()

    def submit(self, item: Incoming | Task) -> None:
        self.queue.put(item)

    def submit_many(self, items: list[Incoming]) -> None:
        for item in items:
            self.queue.put(item)

    def recover_metrics(self) -> None:
        """Fold reports received since the last metrics flush back into the buffer (after a crash)."""
        self.metrics = metrics.MetricsBuffer()
        with self.engine.connect() as conn:
            since = store.get_mark(conn, metrics.WATERMARK)
            if since is None:
                return
            for payload, device_id in store.reports_received_since(conn, since):
                self.metrics.add(self._stored_report(device_id, payload))

    def _stored_report(self, device_id: str, payload: bytes) -> Report:
        return self.codec.decode(self.codec.topics.report(device_id), payload).message

    # -- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch()
            delay = 0.5
            while batch and not self._stop.is_set():
                try:
                    self._process(batch)
                    break
                except SQLAlchemyError as exc:
                    self._database_failed(exc)
                    self._stop.wait(delay)
                    delay = min(delay * 2, 30.0)
                except Exception:
                    log.exception("ingest failed on a batch of %d; retrying its messages one by one", len(batch))
                    self._reload()
                    self._isolate(batch)
                    break

    def _isolate(self, batch: list[Incoming | Task]) -> None:
        """Process each message alone, so one that trips a bug is refused and the rest are kept."""
        for item in batch:
            try:
                self._process([item])
            except SQLAlchemyError:
                raise
            except Exception as exc:
                log.exception("could not ingest a message on %s", getattr(item, "topic", "(task)"))
                self._reload()
                if isinstance(item, Incoming):
                    self._refuse(item, ProtocolError(item.topic, None, f"server error ({type(exc).__name__}); "
                                                     "kept out so ingest goes on — please report it"))
                    self.ack_many([item])

    def _take_batch(self) -> list[Incoming | Task]:
        try:
            batch = [self.queue.get(timeout=0.5)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.batch_wait
        while len(batch) < self.batch_max:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(self.queue.get(timeout=left))
                except queue.Empty:
                    break
        return batch

    def _database_failed(self, exc: SQLAlchemyError) -> None:
        self.stats.db_errors += 1
        self.stats.last_db_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        log.error("database write failed; nothing was acknowledged, retrying the batch: %s",
                  self.stats.last_db_error)
        self._reload()

    def _reload(self) -> None:
        """Drop in-memory changes of a failed batch: reload the fleet and the metrics from the database."""
        try:
            with Session(self.engine) as session:
                self.fleet.load(session)
            self.recover_metrics()
        except SQLAlchemyError as again:
            log.error("reloading state from the database failed: %s", str(again).splitlines()[0][:300])

    # -- one batch ---------------------------------------------------------------------------

    def _process(self, batch: list[Incoming | Task]) -> None:
        now = time.time()
        items: list[tuple[Incoming, Any]] = []
        tasks: list[Task] = []
        for item in batch:
            if not isinstance(item, Incoming):
                tasks.append(item)
                continue
            try:
                decoded = self.codec.decode(item.topic, item.payload)
            except ProtocolError as exc:
                items.append((item, None))
                self._refuse(item, exc)
                continue
            if decoded.dropped:
                log.info("message on %s from a newer agent: kept what this server understands, dropped %s",
                         item.topic, ", ".join(decoded.dropped[:10]))
            items.append((item, decoded))
        _sort_reports_per_device(items)
        started = time.perf_counter()
        with self.engine.begin() as conn:
            counts, applied = self._apply(conn, items, now)
            changes = Changes()
            for task in tasks:
                task(conn, changes, now)
            store.write_changes(conn, self.fleet, changes, now)
            if self.metrics.due(now):
                store.upsert_metrics(conn, self.metrics.take(now))
                store.set_mark(conn, metrics.WATERMARK, now)
        if any(c.history or c.new_devices or c.zones or c.printers_gone for c in (applied, changes)):
            self.state_version += 1
        if self.on_commit is not None:
            try:
                self.on_commit(applied.devices | applied.new_devices | changes.devices,
                               applied.zones | changes.zones, now)
            except Exception:
                log.exception("after-commit hook failed (incidents); ingest goes on")
        self.ack_many([item for item, _ in items])
        s = self.stats
        s.received += len(items)
        s.reports_stored += counts["stored"]
        s.duplicates += counts["duplicate"]
        s.late += counts["late"]
        s.batches += 1
        s.last_batch_size = len(batch)
        s.last_commit_ms = (time.perf_counter() - started) * 1000
        s.last_commit_at = time.time()

    def _apply(self, conn, items: list[tuple[Incoming, Any]], now: float) -> tuple[Counter, Changes]:
        counts: Counter = Counter()
        fleet = self.fleet
        lookups = [(m.device_id, fleet.devices[m.device_id].seq_epoch, m.seq) for _, d in items
                   if d is not None and isinstance(m := d.message, Report) and m.device_id in fleet.devices
                   and fleet.devices[m.device_id].last_seq is not None and m.seq <= fleet.devices[m.device_id].last_seq]
        stored = store.stored_seqs(conn, lookups) if lookups else {}
        seen: set[tuple[str, int, int]] = set()
        rows: list[dict] = []
        late_reports: list[tuple[Report, int]] = []
        changes = Changes()
        for item, decoded in items:
            if decoded is None:
                continue
            message = decoded.message
            if isinstance(message, Presence):
                self.stats.presence += 1
                fleet.apply_presence(message.device_id, message.online, message.ts, item.received_at,
                                     message.reason, changes)
                continue
            if not isinstance(message, Report):  # acks: heard from the device; used by the command issue
                self.stats.acks += 1
                device = fleet.device(message.device_id, item.received_at, changes)
                device.last_heard = item.received_at
                changes.devices.add(device.id)
                if self.on_ack is not None and isinstance(message, Ack):
                    self.on_ack(conn, message, item.received_at)
                continue
            device = fleet.device(message.device_id, item.received_at, changes)
            key = (device.id, device.seq_epoch, message.seq)
            is_late = False
            if key in seen:
                counts["duplicate"] += 1
                continue
            if device.last_seq is not None and message.seq <= device.last_seq:
                was = stored.get(key)
                if was is not None and abs(was - message.ts) < 1.0:
                    counts["duplicate"] += 1
                    continue
                if was is not None or message.ts > (device.last_report_at or 0):
                    self._sequence_restarted(device, message)
                    key = (device.id, device.seq_epoch, message.seq)
                else:
                    is_late = True
                    late_reports.append((message, device.seq_epoch))
            seen.add(key)
            rows.append(self._report_row(device.seq_epoch, message, item, decoded.dropped))
            counts["stored"] += 1
            self.metrics.add(message)
            if not is_late:
                fleet.apply_report(message, item.received_at, changes)
        store.insert_reports(conn, rows)
        store.write_changes(conn, fleet, changes, now)
        for message, epoch in late_reports:
            counts["late"] += 1
            device = fleet.devices[message.device_id]
            late.merge_late(conn, message, epoch, device.zone_id, self._stored_report, now)
        return counts, changes

    def _report_row(self, epoch: int, message: Report, item: Incoming, dropped: tuple[str, ...]) -> dict:
        status = max((c.status for c in message.checks), key=STATUS_RANK.__getitem__, default="unknown")
        payload = self.codec.encode(message) if dropped else bytes(item.payload)
        return {"device_id": message.device_id, "epoch": epoch, "seq": message.seq, "ts": message.ts,
                "received_at": item.received_at, "status": status, "trigger": message.trigger[:32],
                "payload": payload}

    def _sequence_restarted(self, device, message: Report) -> None:
        self.stats.sequence_restarts += 1
        log.warning("device %s restarted its report sequence (seq %d after %d; its spool was probably wiped): "
                    "keeping both, as sequence epoch %d", device.id, message.seq, device.last_seq,
                    device.seq_epoch + 1)
        device.seq_epoch += 1
        device.last_seq = None

    def _refuse(self, item: Incoming, exc: ProtocolError) -> None:
        reason = exc.field or "payload"
        self.stats.refused[reason] += 1
        self.stats.recent_refusals.append({"at": item.received_at, "topic": item.topic[:200],
                                           "error": str(exc)[:300]})
        minute, logged = self._refusal_log
        current = int(item.received_at // 60)
        if current != minute:
            minute, logged = current, 0
        if logged < 10:
            log.warning("refused a message: %s", str(exc)[:500])
        elif logged == 10:
            log.warning("refusing more messages this minute; counting them without logging each")
        self._refusal_log = (minute, logged + 1)


def _sort_reports_per_device(items: list[tuple[Incoming, Any]]) -> None:
    """Within a batch, put each device's reports in sequence order, in the slots they arrived in."""
    slots: dict[str, list[int]] = {}
    for i, (_, decoded) in enumerate(items):
        if decoded is not None and isinstance(decoded.message, Report):
            slots.setdefault(decoded.message.device_id, []).append(i)
    for positions in slots.values():
        if len(positions) > 1:
            ordered = sorted((items[i] for i in positions), key=lambda it: it[1].message.seq)
            for i, it in zip(positions, ordered, strict=True):
                items[i] = it

