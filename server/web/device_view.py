"""The device page's reads: the device as the API sees it, its zone's time zone, its history, metric series."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlmodel import Session, select

from ..admin import DEFAULT_TIMEZONE
from ..api import schemas as S
from ..api.fleet_queries import device_by_id, device_detail
from ..content.models import DeviceCommand
from ..db.models import History, MetricPoint, Zone
from ..ingest.metrics import RESOLUTION

HISTORY_ROWS = 100
COMMAND_ROWS = 20
#: A printer check's history repeats its printer item's (the same change in the same words): pages show
#: the printer item's only.
NOT_PRINTER_CHECK = ~((History.subject == "check") & History.subject_id.like("%/printer:%"))


@dataclass
class DeviceView:
    detail: S.DeviceDetail
    timezone: str
    checks: list[dict]
    history: list[History]
    latency: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    supplies: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    start: float = 0.0
    end: float = 0.0
    commands: list = field(default_factory=list)  # DeviceCommand rows, newest first


def device_view(session: Session, device_id: str, codec, days: int, now: float | None = None) -> DeviceView | None:
    if device_by_id(session, device_id) is None:
        return None
    detail = device_detail(session, device_id, codec)
    tz = DEFAULT_TIMEZONE
    if detail.zone is not None:
        tz = session.exec(select(Zone.timezone).where(Zone.code == detail.zone.code)).first() or tz
    now = time.time() if now is None else now
    start = now - days * 86400
    checks = [c.model_dump() for c in detail.latest_report.checks] if detail.latest_report else []
    history = session.exec(select(History).where(History.device_id == device_id, NOT_PRINTER_CHECK)
                           .order_by(History.at.desc(), History.id.desc()).limit(HISTORY_ROWS)).all()
    view = DeviceView(detail, tz, checks, list(history), start=start, end=now)
    view.commands = list(session.exec(select(DeviceCommand).where(DeviceCommand.device_id == device_id)
                                      .order_by(DeviceCommand.created_at.desc()).limit(COMMAND_ROWS)).all())
    points = session.exec(select(MetricPoint).where(MetricPoint.device_id == device_id,
                                                    MetricPoint.resolution == RESOLUTION,
                                                    MetricPoint.bucket >= start)
                          .order_by(MetricPoint.series, MetricPoint.bucket)).all()
    for p in points:
        middle = p.bucket + RESOLUTION / 2
        if p.series.startswith("network.") and p.series.endswith(".latency_ms") and p.count:
            view.latency.setdefault(p.series[len("network."):-len(".latency_ms")], []).append((middle, p.sum / p.count))
        elif p.series.startswith("printer.") and ".supply." in p.series:
            printer, _, supply = p.series[len("printer."):].partition(".supply.")
            view.supplies.setdefault(f"{printer}: {supply}", []).append((middle, p.last))
    return view
