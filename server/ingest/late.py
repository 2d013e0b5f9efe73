"""Late reports (sequence below the newest seen): merged into the check and printer history.

A late report sits between two stored reports, its predecessor P and successor S. The changes
S caused were computed against P; with the late report L in between they become P→L (dated
at L's measured time) and L→S (at S's). Nothing else moves, so merging is O(1) per report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection

from protocol import PrinterCheck, Report

from . import store


def _states(report: Report | None) -> dict[tuple[str, str], tuple[str, str]]:
    """``(subject, name) → (status, summary)`` for a report's checks and printers."""
    if report is None:
        return {}
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for check in report.checks:
        out[("check", check.name)] = (check.status, check.summary)
        if isinstance(check, PrinterCheck):
            out[("printer", check.printer)] = (check.status, check.summary)
    return out


def _diff(before: Report | None, after: Report, zone_id: int | None, epoch: int, now: float) -> list[dict[str, Any]]:
    old, new = _states(before), _states(after)
    rows = []
    for (subject, name), (status, summary) in new.items():
        was = old.get((subject, name), ("unknown", ""))[0]
        if was != status:
            rows.append({"subject": subject, "subject_id": f"{after.device_id}/{name}", "zone_id": zone_id,
                         "device_id": after.device_id, "from_status": was, "to_status": status, "at": after.ts,
                         "why": summary[:1000], "seq": after.seq, "epoch": epoch, "recorded_at": now})
    return rows


def merge_late(conn: Connection, late: Report, epoch: int, zone_id: int | None,
               decode: Callable[[str, bytes], Report], now: float) -> None:
    before_row, after_row = store.neighbours(conn, late.device_id, epoch, late.seq)
    before = decode(late.device_id, before_row.payload) if before_row is not None else None
    rows = _diff(before, late, zone_id, epoch, now)
    if after_row is not None:
        after = decode(late.device_id, after_row.payload)
        store.replace_report_history(conn, late.device_id, epoch, after.seq,
                                     _diff(late, after, zone_id, epoch, now))
    if rows:
        conn.execute(store.HISTORY.insert(), rows)
