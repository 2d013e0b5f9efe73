"""Downsampled metrics: network latency, printer supply levels, uptime, CPU and memory per device.

Reports are folded into 5-minute points in memory and merged into ``metric_point`` in the
ingest transaction every ``FLUSH_EVERY`` seconds, together with a watermark. After a crash the
reports received since the watermark are folded in again, so no point is lost or counted twice.
"""

from __future__ import annotations

from collections.abc import Iterator

from protocol import NetworkCheck, PrinterCheck, Report, SystemCheck

RESOLUTION = 300
HOURLY = 3600
FLUSH_EVERY = 300.0
WATERMARK = "metrics_flushed_at"


def series_of(report: Report) -> Iterator[tuple[str, float]]:
    for check in report.checks:
        if isinstance(check, NetworkCheck):
            if check.latency_ms is not None:
                yield f"network.{check.name}.latency_ms", check.latency_ms
            if check.up is not None:
                yield f"network.{check.name}.up", 1.0 if check.up else 0.0
        elif isinstance(check, PrinterCheck):
            for supply in check.supplies:
                if supply.level is not None:
                    yield f"printer.{check.printer}.supply.{supply.name}", supply.level
        elif isinstance(check, SystemCheck):
            for name in ("uptime_s", "cpu_pct", "memory_pct"):
                value = getattr(check, name)
                if value is not None:
                    yield f"system.{name}", value


class MetricsBuffer:
    def __init__(self) -> None:
        self.points: dict[tuple[str, str, int], list[float]] = {}
        self.last_flush: float | None = None

    def add(self, report: Report) -> None:
        bucket = int(report.ts // RESOLUTION * RESOLUTION)
        for series, value in series_of(report):
            key = (report.device_id, series[:200], bucket)
            point = self.points.get(key)
            if point is None:
                self.points[key] = [value, value, value, 1, value, report.ts]
            else:
                point[0] = min(point[0], value)
                point[1] = max(point[1], value)
                point[2] += value
                point[3] += 1
                if report.ts >= point[5]:
                    point[4], point[5] = value, report.ts

    def due(self, now: float) -> bool:
        if self.last_flush is None:
            self.last_flush = now
        return bool(self.points) and now - self.last_flush >= FLUSH_EVERY

    def take(self, now: float) -> list[dict]:
        rows = [{"device_id": d, "series": s, "resolution": RESOLUTION, "bucket": b, "min": p[0], "max": p[1],
                 "sum": p[2], "count": int(p[3]), "last": p[4]} for (d, s, b), p in self.points.items()]
        self.points.clear()
        self.last_flush = now
        return rows
