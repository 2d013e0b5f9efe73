"""The SQL of ingest: reports stored once, devices, checks, printers, zones and history written per batch.

Everything here runs inside the writer's one transaction per batch, with executemany, and
works on SQLite and PostgreSQL alike (``INSERT … ON CONFLICT``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ..db.models import CheckState, Device, History, IngestMark, MetricPoint, Printer, Report, Zone
from ..health.fleet import Changes, Fleet

REPORT = Report.__table__
DEVICE = Device.__table__
PRINTER = Printer.__table__
CHECK = CheckState.__table__
HISTORY = History.__table__
ZONE = Zone.__table__
METRIC = MetricPoint.__table__
MARK = IngestMark.__table__


def _insert(conn: Connection, table):
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def stored_seqs(conn: Connection, keys: Iterable[tuple[str, int, int]]) -> dict[tuple[str, int, int], float]:
    """Which of these ``(device_id, epoch, seq)`` are already stored, with their measured time."""
    keys = list(keys)
    found: dict[tuple[str, int, int], float] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        rows = conn.execute(select(REPORT.c.device_id, REPORT.c.epoch, REPORT.c.seq, REPORT.c.ts).where(
            tuple_(REPORT.c.device_id, REPORT.c.epoch, REPORT.c.seq).in_(chunk)))
        found.update({(r[0], r[1], r[2]): r[3] for r in rows})
    return found


REPORT_COLUMNS = ("device_id", "epoch", "seq", "ts", "received_at", "status", "trigger", "payload")
DEVICE_COLUMNS = ("status", "status_since", "status_reason", "measured", "measured_since", "online", "online_since",
                  "last_heard", "last_report_at", "last_seq", "seq_epoch", "reported_interval_s", "agent_version",
                  "first_seen")


def _placeholder(conn: Connection) -> str:
    return "%s" if conn.dialect.name == "postgresql" else "?"


def insert_reports(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """The hot path: plain DBAPI executemany (SQLAlchemy's per-row parameter handling costs more than the insert)."""
    if rows:
        p = _placeholder(conn)
        conn.exec_driver_sql(
            f"INSERT INTO report ({', '.join(REPORT_COLUMNS)}) VALUES ({', '.join([p] * len(REPORT_COLUMNS))}) "
            "ON CONFLICT DO NOTHING", [tuple(r[c] for c in REPORT_COLUMNS) for r in rows])


def write_changes(conn: Connection, fleet: Fleet, changes: Changes, now: float) -> None:
    if changes.new_devices:
        conn.execute(_insert(conn, DEVICE).on_conflict_do_nothing(),
                     [{"id": d, "created_at": now, "role": "unknown", "name": "", "seq_epoch": 0, "status": "unknown",
                       "status_reason": "", "measured": "unknown"} for d in sorted(changes.new_devices)])
    if changes.devices:
        p = _placeholder(conn)
        rows = []
        for d in sorted(changes.devices):
            v = fleet.devices[d]
            rows.append((v.status, v.status_since, v.status_reason[:1000], v.measured, v.measured_since, v.online,
                         v.online_since, v.last_heard, v.last_report_at, v.last_seq, v.seq_epoch,
                         v.reported_interval_s, v.agent_version, v.first_seen, d))
        conn.exec_driver_sql(f"UPDATE device SET {', '.join(f'{c} = {p}' for c in DEVICE_COLUMNS)} WHERE id = {p}",
                             rows)
    if changes.checks:
        gone = [k for k, v in changes.checks.items() if v is None]
        for device_id, name in gone:
            conn.execute(delete(CHECK).where(and_(CHECK.c.device_id == device_id, CHECK.c.name == name)))
        upserts = [{"device_id": d, "name": n, "kind": v.kind, "status": v.status, "summary": v.summary[:1000],
                    "since": v.since} for (d, n), v in changes.checks.items() if v is not None]
        if upserts:
            stmt = _insert(conn, CHECK)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["device_id", "name"],
                set_={c: stmt.excluded[c] for c in ("kind", "status", "summary", "since")}), upserts)
    if changes.printers:
        stmt = _insert(conn, PRINTER)
        cols = [c for c in next(iter(changes.printers.values())) if c not in ("device_id", "name")]
        conn.execute(stmt.on_conflict_do_update(index_elements=["device_id", "name"],
                                                set_={c: stmt.excluded[c] for c in cols}),
                     list(changes.printers.values()))
    for device_id, name in sorted(changes.printers_gone):
        conn.execute(delete(PRINTER).where(and_(PRINTER.c.device_id == device_id, PRINTER.c.name == name)))
    if changes.zones:
        conn.execute(update(ZONE).where(ZONE.c.id == bindparam("b_id")), [
            {"b_id": z, "status": fleet.zones[z].status, "status_since": fleet.zones[z].status_since,
             "reasons": fleet.zones[z].reasons} for z in sorted(changes.zones) if z in fleet.zones])
    if changes.history:
        for row in changes.history:
            row["recorded_at"] = now
        conn.execute(HISTORY.insert(), changes.history)


def neighbours(conn: Connection, device_id: str, epoch: int, seq: int) -> tuple[Any, Any]:
    """The stored reports just before and just after ``seq`` (payload rows or None)."""
    base = select(REPORT.c.seq, REPORT.c.ts, REPORT.c.payload).where(
        and_(REPORT.c.device_id == device_id, REPORT.c.epoch == epoch))
    before = conn.execute(base.where(REPORT.c.seq < seq).order_by(REPORT.c.seq.desc()).limit(1)).first()
    after = conn.execute(base.where(REPORT.c.seq > seq).order_by(REPORT.c.seq).limit(1)).first()
    return before, after


def replace_report_history(conn: Connection, device_id: str, epoch: int, seq: int, rows: list[dict]) -> None:
    """Swap the check/printer changes derived from report ``seq`` for ``rows``."""
    conn.execute(delete(HISTORY).where(and_(
        HISTORY.c.device_id == device_id, HISTORY.c.seq == seq, HISTORY.c.epoch == epoch,
        or_(HISTORY.c.subject == "check", HISTORY.c.subject == "printer"))))
    if rows:
        conn.execute(HISTORY.insert(), rows)


def upsert_metrics(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Merge partial aggregates into stored points (min of mins, sum of sums, …)."""
    if not rows:
        return
    stmt = _insert(conn, METRIC)
    ex = stmt.excluded
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["device_id", "series", "resolution", "bucket"],
        set_={"min": func.min(METRIC.c.min, ex.min) if conn.dialect.name == "sqlite" else func.least(METRIC.c.min,
                                                                                                     ex.min),
              "max": func.max(METRIC.c.max, ex.max) if conn.dialect.name == "sqlite" else func.greatest(METRIC.c.max,
                                                                                                        ex.max),
              "sum": METRIC.c.sum + ex.sum, "count": METRIC.c.count + ex.count, "last": ex.last}), rows)


def set_mark(conn: Connection, name: str, value: float) -> None:
    stmt = _insert(conn, MARK)
    conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_={"value": stmt.excluded.value}),
                 [{"name": name, "value": value}])


def get_mark(conn: Connection, name: str) -> float | None:
    return conn.execute(select(MARK.c.value).where(MARK.c.name == name)).scalar()


def reports_received_since(conn: Connection, since: float):
    return conn.execute(select(REPORT.c.payload, REPORT.c.device_id).where(REPORT.c.received_at >= since)
                        .order_by(REPORT.c.received_at))

