"""The fleet's live health, kept in memory by the one ingest writer and mirrored to the database.

Every input — a report (in sequence order), a presence message, a silent-device sweep — updates
the views and records what changed in a :class:`Changes`, which the writer commits in the same
transaction as the reports that caused it. Check and printer changes are dated at the time the
agent measured them; presence at the time the server learnt it; device and zone changes at the
event's time, never earlier than the state they replace (so each history reads in order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from protocol import STATUS_RANK, PrinterCheck, Report
from protocol.checks import kind_of

from ..db.models import CheckState, Device, Printer, Zone
from .rules import CheckView, DeviceView, PrinterView, ZoneView, device_status, evaluate_zone

#: Seconds after which an unchanged printer row is rewritten anyway (its ``updated_at``, job age).
PRINTER_REFRESH = 300.0


@dataclass
class Changes:
    """What one batch changed, for the writer to commit."""

    history: list[dict[str, Any]] = field(default_factory=list)
    checks: dict[tuple[str, str], CheckView | None] = field(default_factory=dict)
    printers: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    printers_gone: set[tuple[str, str]] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)
    new_devices: set[str] = field(default_factory=set)
    zones: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.history or self.checks or self.printers or self.printers_gone or self.devices
                    or self.zones)


class Fleet:
    def __init__(self, default_interval: float = 30.0, offline_after_intervals: float = 3.0) -> None:
        self.default_interval = default_interval
        self.offline_after_intervals = offline_after_intervals
        self.devices: dict[str, DeviceView] = {}
        self.zones: dict[int, ZoneView] = {}

    # -- loading -----------------------------------------------------------------------------

    def load(self, session: Session) -> Fleet:
        self.zones = {z.id: ZoneView(z.id, z.code, z.name, z.timezone, z.status, z.status_since, list(z.reasons))
                      for z in session.exec(select(Zone))}
        self.devices = {}
        for d in session.exec(select(Device)):
            view = DeviceView(**{k: getattr(d, k) for k in DeviceView.__slots__ if k not in ("checks", "printers")})
            self.devices[d.id] = view
            if d.zone_id in self.zones:
                self.zones[d.zone_id].devices.add(d.id)
        for c in session.exec(select(CheckState)):
            if c.device_id in self.devices:
                self.devices[c.device_id].checks[c.name] = CheckView(c.kind, c.status, c.summary, c.since)
        for p in session.exec(select(Printer)):
            if p.device_id in self.devices:
                self.devices[p.device_id].printers[p.name] = PrinterView(
                    p.name, p.status, p.status_since, p.summary,
                    {c["code"]: (c["severity"], c["text"], c.get("since") or 0.0) for c in p.conditions})
        return self

    def reload_placement(self, session: Session, changes: Changes, now: float) -> None:
        """Pick up zones and device placement changed by admins (CLI, API) and re-evaluate."""
        fresh = Fleet(self.default_interval, self.offline_after_intervals).load(session)
        for zid, zone in fresh.zones.items():
            if zid not in self.zones:
                self.zones[zid] = zone
            else:
                old = self.zones[zid]
                old.code, old.name, old.timezone = zone.code, zone.name, zone.timezone
        for zid in [z for z in self.zones if z not in fresh.zones]:
            del self.zones[zid]
        for z in self.zones.values():
            z.devices.clear()
        for did, d in fresh.devices.items():
            mine = self.devices.setdefault(did, d)
            mine.name, mine.role, mine.zone_id, mine.interval_s = d.name, d.role, d.zone_id, d.interval_s
            if mine.zone_id in self.zones:
                self.zones[mine.zone_id].devices.add(did)
        for zid in self.zones:
            self.evaluate(zid, now, changes, "placement changed")

    # -- inputs ------------------------------------------------------------------------------

    def device(self, device_id: str, now: float, changes: Changes) -> DeviceView:
        device = self.devices.get(device_id)
        if device is None:  # reported but not yet placed by an admin: kept as unassigned
            device = self.devices[device_id] = DeviceView(device_id, first_seen=now)
            changes.new_devices.add(device_id)
        if device.first_seen is None:
            device.first_seen = now
        return device

    def apply_report(self, report: Report, received_at: float, changes: Changes) -> None:
        """A report newer than any seen from its device (sequence order)."""
        device = self.device(report.device_id, received_at, changes)
        at = report.ts
        seen = set()
        changed = device.online is not True or device.last_seq is None
        for check in report.checks:
            seen.add(check.name)
            old = device.checks.get(check.name)
            if old is None or old.status != check.status or old.summary != check.summary:
                changed = True
                if old is None or old.status != check.status:
                    self._history(changes, "check", f"{device.id}/{check.name}", device, old.status if old else
                                  "unknown", check.status, at, check.summary, report.seq)
                    since = at
                else:
                    since = old.since
                view = device.checks[check.name] = CheckView(kind_of(check), check.status, check.summary, since)
                changes.checks[(device.id, check.name)] = view
            if isinstance(check, PrinterCheck):
                self._apply_printer(device, check, at, report.seq, changes)
        if len(seen) != len(device.checks):
            changed = True
            for gone in [n for n in device.checks if n not in seen]:
                self._history(changes, "check", f"{device.id}/{gone}", device, device.checks.pop(gone).status,
                              "gone", at, "no longer reported (collector or target removed from the config)",
                              report.seq)
                changes.checks[(device.id, gone)] = None
            reported = {c.printer for c in report.checks if isinstance(c, PrinterCheck)}
            for gone in [p for p in device.printers if p not in reported]:  # a queue removed or renamed
                self._history(changes, "printer", f"{device.id}/{gone}", device, device.printers.pop(gone).status,
                              "gone", at, "no longer reported by its host", report.seq)
                changes.printers_gone.add((device.id, gone))
        if changed:
            measured = max((c.status for c in device.checks.values()), key=_rank, default="unknown")
            if measured != device.measured:
                device.measured, device.measured_since = measured, at
        device.last_seq, device.last_report_at, device.last_heard = report.seq, report.ts, received_at
        device.reported_interval_s = report.interval_s
        device.agent_version = report.agent_version or device.agent_version
        changes.devices.add(device.id)
        if device.online is not True:
            self._presence(device, True, received_at, "reporting", changes)
        if changed:  # most reports change nothing: then the device and its zone stand as they are
            self._settle(device, at, changes, why=None)

    def apply_presence(self, device_id: str, online: bool, ts: float, received_at: float, reason: str | None,
                       changes: Changes) -> None:
        device = self.device(device_id, received_at, changes)
        device.last_heard = received_at
        changes.devices.add(device.id)
        if online != device.online:
            why = reason or ("birth message" if online else "Last Will or shutdown")
            self._presence(device, online, received_at, why, changes)
            self._settle(device, received_at, changes, why=why)

    def sweep(self, now: float, changes: Changes) -> None:
        """Mark devices that went silent for ``offline_after_intervals`` × their interval as offline."""
        for device in self.devices.values():
            if device.online is False or device.last_heard is None:
                continue
            limit = self.offline_after_intervals * device.expected_interval(self.default_interval)
            if now - device.last_heard > limit:
                why = f"no report for {now - device.last_heard:.0f} s (limit {limit:.0f} s)"
                self._presence(device, False, now, why, changes)
                changes.devices.add(device.id)
                self._settle(device, now, changes, why=why)

    # -- derived state -----------------------------------------------------------------------

    def evaluate(self, zone_id: int | None, at: float, changes: Changes, why: str | None = None) -> None:
        zone = self.zones.get(zone_id) if zone_id is not None else None
        if zone is None:
            return
        status, reasons = evaluate_zone(zone, [self.devices[d] for d in sorted(zone.devices)])
        if status != zone.status:
            at = max(at, zone.status_since or at)
            self._history(changes, "zone", zone.code, None, zone.status, status, at,
                          "; ".join(reasons) or why or "", None, zone_id=zone.id)
            zone.status, zone.status_since = status, at
            changes.zones.add(zone.id)
        if reasons != zone.reasons:
            zone.reasons = reasons
            changes.zones.add(zone.id)

    def _settle(self, device: DeviceView, at: float, changes: Changes, why: str | None) -> None:
        status, reason = device_status(device)
        if status != device.status:
            at = max(at, device.status_since or at)
            self._history(changes, "device", device.id, device, device.status, status, at, why or reason, None)
            device.status, device.status_since = status, at
        device.status_reason = reason
        self.evaluate(device.zone_id, at, changes)

    def _presence(self, device: DeviceView, online: bool, at: float, why: str, changes: Changes) -> None:
        before = {True: "online", False: "offline", None: "unknown"}[device.online]
        self._history(changes, "presence", device.id, device, before, "online" if online else "offline", at, why,
                      None)
        device.online, device.online_since = online, at

    def _apply_printer(self, device: DeviceView, check: PrinterCheck, at: float, seq: int,
                       changes: Changes) -> None:
        printer = device.printers.get(check.printer) or PrinterView(check.printer)
        device.printers[check.printer] = printer
        old_status = printer.status
        conditions = {c.code: (c.severity, c.text, printer.conditions.get(c.code, (None, None, at))[2])
                      for c in check.conditions}
        if check.status != old_status:
            self._history(changes, "printer", f"{device.id}/{check.printer}", device, old_status, check.status, at,
                          check.summary, seq)
            printer.since = at
        printer.status, printer.summary, printer.conditions = check.status, check.summary, conditions
        signature = (check.status, check.summary, check.state, check.accepting, check.jobs_queued,
                     tuple(conditions), tuple((x.name, x.level, x.state) for x in check.supplies))
        if signature != printer.signature or at - printer.written_at >= PRINTER_REFRESH:
            printer.signature, printer.written_at = signature, at
            changes.printers[(device.id, check.printer)] = printer_row(device.id, printer, check, at)

    def _history(self, changes: Changes, subject: str, subject_id: str, device: DeviceView | None, from_status: str,
                 to_status: str, at: float, why: str, seq: int | None, zone_id: int | None = None) -> None:
        changes.history.append({
            "subject": subject, "subject_id": subject_id, "device_id": device.id if device else None,
            "zone_id": zone_id if zone_id is not None else (device.zone_id if device else None),
            "from_status": from_status, "to_status": to_status, "at": at, "why": why[:1000], "seq": seq,
            "epoch": device.seq_epoch if device is not None and seq is not None else None,
        })


def _rank(status: str) -> int:
    return STATUS_RANK[status]


def printer_row(device_id: str, printer: PrinterView, check: PrinterCheck, at: float) -> dict[str, Any]:
    return {
        "device_id": device_id, "name": printer.name, "status": printer.status, "status_since": printer.since,
        "summary": printer.summary, "state": check.state, "accepting": check.accepting,
        "conditions": [{"code": code, "severity": sev, "text": text, "since": since}
                       for code, (sev, text, since) in printer.conditions.items()],
        "supplies": [{"name": s.name, "type": s.type, "color": s.color, "level": s.level, "state": s.state}
                     for s in check.supplies],
        "jobs_queued": check.jobs_queued, "oldest_job_age_s": check.oldest_job_age_s,
        "make_model": check.make_model, "updated_at": at,
    }
