"""A zone's opening hours and holidays: the compact text people write, and the JSON that is stored.

Opening hours, as text (``zonewatch zone add --hours``, the ``opening_hours`` CSV column)::

    mon-fri 08:30-12:00,13:30-17:30; sat 09:00-12:00

Parts are separated by ``;``. Each part is days, then one or more time ranges (``,`` or spaces
between them) or the word ``closed``. Days: ``mon`` … ``sun`` (or full names), ranges (``mon-fri``,
``sat-mon`` wraps), lists (``sat,sun``), ``daily``, ``weekdays``, ``weekends``. Times are 24-hour
``HH:MM`` (``8:30`` is fine, ``24:00`` ends a day); a range must end after it starts (split a night
across two days). A day named twice gets the ranges of both parts; overlapping ranges are an error;
``closed`` wins over times (``daily 09:00-17:00; sun closed``).
Days not named are closed. Full-width punctuation and en dashes (as spreadsheets and Chinese input
methods write them) are accepted.

Stored: ``{"mon": ["08:30-12:00", "13:30-17:30"], …, "sat": ["09:00-12:00"]}`` — only open days.

Holidays (``--holidays``, the ``holidays`` CSV column): dates ``YYYY-MM-DD`` separated by ``,``,
``;`` or spaces; ``2026-10-01..2026-10-07`` is a range. ``2026/10/1`` (how spreadsheets re-write a
date) is accepted. Stored: a sorted list of ``YYYY-MM-DD`` strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from itertools import pairwise

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
EXAMPLE = "mon-fri 08:30-12:00,13:30-17:30; sat 09:00-12:00"
HOLIDAY_EXAMPLE = "2026-10-01..2026-10-07,2027-01-01"
MAX_HOLIDAY_RANGE = 366

_DAY_NAMES = {
    **{d: d for d in WEEKDAYS},
    "monday": "mon",
    "tues": "tue",
    "tuesday": "tue",
    "wednesday": "wed",
    "thur": "thu",
    "thurs": "thu",
    "thursday": "thu",
    "friday": "fri",
    "saturday": "sat",
    "sunday": "sun",
}
_DAY_GROUPS = {
    "daily": WEEKDAYS,
    "everyday": WEEKDAYS,
    "weekdays": WEEKDAYS[:5],
    "weekends": WEEKDAYS[5:],
    "weekend": WEEKDAYS[5:],
}
_PUNCTUATION = str.maketrans(
    {
        "–": "-",
        "—": "-",
        "－": "-",
        "～": "-",
        "~": "-",
        "，": ",",
        "；": ";",
        "：": ":",
        "　": " ",
        "、": ",",
    }
)
_TIME_RANGE = re.compile(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})")
_PART = re.compile(r"([a-z][a-z ,\-]*?)\s*(\d.*|closed)", re.IGNORECASE)
_DATE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")


def parse_hours(text: str) -> dict[str, list[str]]:
    """``"mon-fri 08:30-17:30; sat 09:00-12:00"`` → ``{"mon": ["08:30-17:30"], …}``; ValueError naming the part."""
    text = text.translate(_PUNCTUATION).strip()
    if not text.strip("; "):
        raise ValueError(f"opening hours are empty. Write them like '{EXAMPLE}'")
    minutes: dict[str, list[tuple[int, int]]] = {}
    closed: set[str] = set()
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        m = _PART.fullmatch(part)
        if not m:
            raise ValueError(
                f"opening hours part {part!r}: give the days, then the times. Write it like "
                "'mon-fri 08:30-17:30' or 'sun closed'"
            )
        days = _parse_days(m.group(1), part)
        if m.group(2).lower() == "closed":
            closed.update(days)
            continue
        ranges = _parse_ranges(m.group(2), part)
        for day in days:
            minutes.setdefault(day, []).extend(ranges)
    return {day: _check_overlaps(day, minutes[day], text) for day in WEEKDAYS if day in minutes and day not in closed}


def _parse_days(spec: str, part: str) -> list[str]:
    days: list[str] = []
    for item in (s.strip() for s in spec.replace(" ", ",").split(",")):
        if not item:
            continue
        if item.lower() in _DAY_GROUPS:
            days.extend(_DAY_GROUPS[item.lower()])
            continue
        ends = item.split("-")
        if len(ends) > 2 or not all(e.lower() in _DAY_NAMES for e in ends):
            raise ValueError(
                f"opening hours part {part!r}: {item!r} is not a day or a range of days. Use "
                "mon, tue, wed, thu, fri, sat, sun, a range like mon-fri, or daily / weekdays / weekends"
            )
        first, last = (WEEKDAYS.index(_DAY_NAMES[e.lower()]) for e in (ends[0], ends[-1]))
        span = (last - first) % 7
        days.extend(WEEKDAYS[(first + i) % 7] for i in range(span + 1))
    if not days:
        raise ValueError(f"opening hours part {part!r}: no days given. Start it with days, like 'mon-fri'")
    return list(dict.fromkeys(days))


def _parse_ranges(spec: str, part: str) -> list[tuple[int, int]]:
    spec = re.sub(r"\s*-\s*", "-", spec)
    ranges = []
    for item in (s for s in re.split(r"[,\s]+", spec) if s):
        m = _TIME_RANGE.fullmatch(item)
        if not m:
            raise ValueError(
                f"opening hours part {part!r}: {item!r} is not a time range. Write it as HH:MM-HH:MM, like 08:30-12:00"
            )
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        for h, mi in ((h1, m1), (h2, m2)):
            if mi > 59 or h > 24 or (h == 24 and mi):
                raise ValueError(
                    f"opening hours part {part!r}: {h}:{mi:02d} in {item!r} is not a time of day. Use 00:00 to 24:00"
                )
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if end <= start:
            raise ValueError(
                f"opening hours part {part!r}: {item!r} ends before it starts. Give start-end "
                "within one day (split hours past midnight across two days)"
            )
        ranges.append((start, end))
    return ranges


def _check_overlaps(day: str, ranges: list[tuple[int, int]], text: str) -> list[str]:
    ranges = sorted(set(ranges))
    for (s1, e1), (s2, e2) in pairwise(ranges):
        if s2 < e1:
            raise ValueError(
                f"opening hours {text!r}: on {day} {_fmt(s1, e1)} and {_fmt(s2, e2)} overlap. Give each time once"
            )
    return [_fmt(s, e) for s, e in ranges]


def _fmt(start: int, end: int) -> str:
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def normalize_hours(value: str | Mapping[str, Iterable[str]] | None) -> dict[str, list[str]]:
    """Text or a stored-style dict → the stored dict, validated (a dict is checked like text)."""
    if value is None:
        return {}
    if isinstance(value, str):
        return parse_hours(value)
    unknown = [k for k in value if k not in WEEKDAYS]
    if unknown:
        raise ValueError(f"opening hours: {unknown[0]!r} is not a weekday key. Use {', '.join(WEEKDAYS)}")
    parts = []
    for day, ranges in value.items():
        if isinstance(ranges, str) or not all(isinstance(r, str) for r in ranges):
            raise ValueError(f"opening hours: {day} needs a list of 'HH:MM-HH:MM' strings, like ['08:30-12:00']")
        if ranges:
            parts.append(f"{day} {','.join(ranges)}")
    return parse_hours("; ".join(parts)) if parts else {}


def format_hours(hours: Mapping[str, list[str]]) -> str:
    """The stored dict → compact text, consecutive days with the same times joined: ``mon-fri 08:30-17:30``."""
    parts: list[str] = []
    i = 0
    while i < len(WEEKDAYS):
        ranges = hours.get(WEEKDAYS[i])
        if not ranges:
            i += 1
            continue
        j = i
        while j + 1 < len(WEEKDAYS) and hours.get(WEEKDAYS[j + 1]) == ranges:
            j += 1
        days = WEEKDAYS[i] if i == j else "daily" if j - i == 6 else f"{WEEKDAYS[i]}-{WEEKDAYS[j]}"
        parts.append(f"{days} {','.join(ranges)}")
        i = j + 1
    return "; ".join(parts)


def parse_holidays(value: str | Iterable[str] | None) -> list[str]:
    """Dates and ``A..B`` ranges → a sorted list of ``YYYY-MM-DD``; ValueError naming the bad item."""
    if value is None:
        return []
    items = re.split(r"[,;\s]+", value.translate(_PUNCTUATION)) if isinstance(value, str) else list(value)
    out: set[date] = set()
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        if ".." in item:
            first_text, _, last_text = item.partition("..")
            first, last = _date(first_text, item), _date(last_text, item)
            if last < first or (last - first).days >= MAX_HOLIDAY_RANGE:
                raise ValueError(
                    f"holidays: range {item!r} must run forwards and span at most "
                    f"{MAX_HOLIDAY_RANGE} days. Write it like 2026-10-01..2026-10-07"
                )
            out.update(first + timedelta(days=n) for n in range((last - first).days + 1))
        else:
            out.add(_date(item, item))
    return [d.isoformat() for d in sorted(out)]


def _date(text: str, item: str) -> date:
    m = _DATE.fullmatch(text.strip())
    try:
        if not m:
            raise ValueError
        return date(*(int(g) for g in m.groups()))
    except ValueError:
        raise ValueError(
            f"holidays: {item!r} is not a date. Write dates as YYYY-MM-DD, separated by commas, "
            f"and ranges with '..', like {HOLIDAY_EXAMPLE}"
        ) from None


def format_holidays(holidays: Iterable[str]) -> str:
    """Sorted dates → compact text, runs of consecutive days as ``A..B``."""
    days = sorted(date.fromisoformat(d) for d in holidays)
    parts: list[str] = []
    i = 0
    while i < len(days):
        j = i
        while j + 1 < len(days) and days[j + 1] - days[j] == timedelta(days=1):
            j += 1
        parts.append(days[i].isoformat() if i == j else f"{days[i].isoformat()}..{days[j].isoformat()}")
        i = j + 1
    return ",".join(parts)


def is_open(hours: Mapping[str, list[str]], holidays: Iterable[str], timezone: str, ts: float) -> bool:
    """Whether a zone with these opening hours is open at ``ts`` (Unix seconds), in its own time zone.

    A zone with no opening hours at all is treated as always open (nothing says otherwise).
    """
    if not hours:
        return True
    from datetime import datetime
    from zoneinfo import ZoneInfo

    try:
        moment = datetime.fromtimestamp(ts, ZoneInfo(timezone))
    except (KeyError, ValueError):
        moment = datetime.fromtimestamp(ts)
    if moment.date().isoformat() in set(holidays):
        return False
    minute = moment.hour * 60 + moment.minute
    for spec in hours.get(WEEKDAYS[moment.weekday()], []):
        start, _, end = spec.partition("-")
        h1, m1 = start.split(":")
        h2, m2 = end.split(":")
        if int(h1) * 60 + int(m1) <= minute < int(h2) * 60 + int(m2):
            return True
    return False
