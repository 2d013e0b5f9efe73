"""Availability during opening hours: opening intervals in the zone's time zone, state segments, the share."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from server.web.availability import availability, opening_intervals, state_segments

SH = ZoneInfo("Asia/Shanghai")
WEEKDAYS = {d: ["08:30-12:00", "13:30-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")}


def ts(text: str, tz=SH) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def test_opening_intervals_follow_weekdays_holidays_and_the_zones_time_zone():
    # Mon 2026-05-04 .. Sun 2026-05-10, Tuesday a holiday
    start, end = ts("2026-05-04 00:00"), ts("2026-05-11 00:00")
    opens = opening_intervals(WEEKDAYS, ["2026-05-05"], "Asia/Shanghai", start, end)
    assert len(opens) == 8  # four open days, two spans each
    assert opens[0] == (ts("2026-05-04 08:30"), ts("2026-05-04 12:00"))
    assert sum(b - a for a, b in opens) == 4 * 7.5 * 3600
    # the same hours in Urumqi are two hours later in absolute time
    urumqi = opening_intervals(WEEKDAYS, [], "Asia/Urumqi", start, end)
    assert urumqi[0][0] - ts("2026-05-04 08:30") == 2 * 3600
    # clipped to the window; 24:00 ends the day; no hours means always open
    assert opening_intervals(WEEKDAYS, [], "Asia/Shanghai", ts("2026-05-04 09:00"), ts("2026-05-04 10:00")) == [
        (ts("2026-05-04 09:00"), ts("2026-05-04 10:00"))]
    assert opening_intervals({"mon": ["20:00-24:00"]}, [], "Asia/Shanghai", start, end) == [
        (ts("2026-05-04 20:00"), ts("2026-05-05 00:00"))]
    assert opening_intervals({}, [], "Asia/Shanghai", start, end) == [(start, end)]
    assert opening_intervals(WEEKDAYS, [], "Not/AZone", start, start) == []


def test_state_segments_cover_the_window():
    assert state_segments("meets", [(5.0, "breach"), (8.0, "meets")], 0.0, 10.0) == [
        (0.0, 5.0, "meets"), (5.0, 8.0, "breach"), (8.0, 10.0, "meets")]
    assert state_segments(None, [], 0.0, 10.0) == [(0.0, 10.0, "unknown")]
    assert state_segments("breach", [(-1.0, "meets"), (12.0, "breach")], 0.0, 10.0) == [(0.0, 10.0, "meets")]
    assert state_segments("meets", [(0.0, "breach")], 0.0, 10.0) == [(0.0, 10.0, "breach")]


def test_a_breach_at_night_does_not_count_a_breach_at_ten_does():
    start, end = ts("2026-05-04 00:00"), ts("2026-05-05 00:00")  # one Monday
    changes = [(ts("2026-05-04 02:00"), "breach"), (ts("2026-05-04 06:00"), "meets"),  # at night
               (ts("2026-05-04 10:00"), "breach"), (ts("2026-05-04 10:30"), "degraded")]  # at ten
    a = availability(WEEKDAYS, [], "Asia/Shanghai", "meets", changes, start, end)
    assert a.open_seconds == 7.5 * 3600
    assert a.breach_seconds == 1800
    assert a.seconds["meets"] == 1.5 * 3600 and a.seconds["degraded"] == 5.5 * 3600
    assert a.ratio == pytest.approx(7 / 7.5)


def test_unknown_time_is_left_out_of_the_share_and_no_known_time_gives_none():
    start, end = ts("2026-05-04 00:00"), ts("2026-05-05 00:00")
    a = availability(WEEKDAYS, [], "Asia/Shanghai", None, [(ts("2026-05-04 13:30"), "meets")], start, end)
    assert a.seconds["unknown"] == 3.5 * 3600 and a.seconds["meets"] == 4 * 3600 and a.ratio == 1.0
    closed = availability(WEEKDAYS, [], "Asia/Shanghai", "breach", [], ts("2026-05-09 00:00"), ts("2026-05-10 00:00"))
    assert closed.open_seconds == 0 and closed.ratio is None  # a Saturday: closed, nothing to count
    assert availability({}, [], "UTC", "breach", [], 0.0, 100.0).ratio == 0.0
