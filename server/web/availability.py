"""How long a zone met the rule during its opening hours: from its state history, clipped to opening hours.

Pure functions of plain data, so the figure a page shows has an exact, tested answer:

- :func:`opening_intervals` — the ``[start, end)`` Unix-time intervals a zone is open within a window, in
  its own time zone, holidays closed; a zone without opening hours is open all the time (as
  :func:`server.opening_hours.is_open` treats it);
- :func:`state_segments` — the zone's status as ``(start, end, status)`` pieces covering the window,
  from the status before the window and the changes within it;
- :func:`availability` — both together: seconds per status during opening hours, and the share of the
  known open time the zone was not in breach.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..opening_hours import WEEKDAYS

#: Statuses in which the zone served the public (it met the rule, perhaps degraded).
SERVING = ("meets", "degraded")


@dataclass(frozen=True)
class Availability:
    start: float
    end: float
    open_seconds: float
    seconds: dict[str, float]  # status → seconds within opening hours

    @property
    def known_seconds(self) -> float:
        return sum(v for k, v in self.seconds.items() if k != "unknown")

    @property
    def serving_seconds(self) -> float:
        return sum(self.seconds.get(s, 0.0) for s in SERVING)

    @property
    def breach_seconds(self) -> float:
        return self.seconds.get("breach", 0.0)

    @property
    def ratio(self) -> float | None:
        """Share of the open time with a known status in which the zone served the public; None if none."""
        known = self.known_seconds
        return self.serving_seconds / known if known > 0 else None


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _minutes(spec: str) -> tuple[int, int]:
    start, _, end = spec.partition("-")
    h1, m1 = start.split(":")
    h2, m2 = end.split(":")
    return int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)


def opening_intervals(hours: Mapping[str, list[str]], holidays: Iterable[str], tz: str, start: float,
                      end: float) -> list[tuple[float, float]]:
    """Open ``[a, b)`` intervals within ``[start, end)``, sorted and not overlapping."""
    if end <= start:
        return []
    if not hours:
        return [(start, end)]
    zone, closed = _zone(tz), set(holidays)
    day = datetime.fromtimestamp(start, zone).date() - timedelta(days=1)
    last = datetime.fromtimestamp(end, zone).date()
    out: list[tuple[float, float]] = []
    while day <= last:
        if day.isoformat() not in closed:
            for spec in hours.get(WEEKDAYS[day.weekday()], []):
                a_min, b_min = _minutes(spec)
                a = _at(day, a_min, zone)
                b = _at(day, b_min, zone)
                a, b = max(a, start), min(b, end)
                if a < b:
                    out.append((a, b))
        day += timedelta(days=1)
    return sorted(out)


def _at(day: date, minute: int, zone: ZoneInfo) -> float:
    # wall-clock arithmetic in the zone's time zone; 24:00 is the next midnight
    return (datetime.combine(day, time(0, 0), zone) + timedelta(minutes=minute)).timestamp()


def state_segments(before: str | None, changes: Iterable[tuple[float, str]], start: float,
                   end: float) -> list[tuple[float, float, str]]:
    """``(a, b, status)`` covering ``[start, end)``: ``before`` (unknown if None) until the first change."""
    status = before or "unknown"
    cursor = start
    out: list[tuple[float, float, str]] = []
    for at, to in sorted(changes, key=lambda c: c[0]):
        if at >= end:
            break
        if at > cursor:
            out.append((cursor, at, status))
            cursor = at
        status = to
    if cursor < end:
        out.append((cursor, end, status))
    return out


def availability(hours: Mapping[str, list[str]], holidays: Iterable[str], tz: str, before: str | None,
                 changes: Iterable[tuple[float, str]], start: float, end: float) -> Availability:
    opens = opening_intervals(hours, holidays, tz, start, end)
    seconds: Counter = Counter()
    segments = state_segments(before, changes, start, end)
    i = 0
    for a, b in opens:  # both sorted: walk them together
        while i < len(segments) and segments[i][1] <= a:
            i += 1
        j = i
        while j < len(segments) and segments[j][0] < b:
            s_a, s_b, status = segments[j]
            overlap = min(b, s_b) - max(a, s_a)
            if overlap > 0:
                seconds[status] += overlap
            j += 1
    return Availability(start, end, sum(b - a for a, b in opens), dict(seconds))
