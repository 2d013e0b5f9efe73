"""The words of a notice: zone, what broke, since when in the zone's local time, link, how to ack."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec
import pytest

from server.notify import render
from server.notify.base import Notice

#: 2024-05-14 10:02:00 in Beijing (UTC+8) = 02:02 UTC.
SINCE = datetime(2024, 5, 14, 10, 2, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
NOW = SINCE + 12 * 60


def make_notice(**changes) -> Notice:
    """A realistic notice: a printer out of paper in a service hall, 12 minutes ago."""
    fields = dict(
        kind="opened", incident_id=42, rule="printer_media_empty", severity="critical", urgency="high",
        zone_code="110108-001", zone_name="Zhongguancun Service Hall",
        region="Haidian District / Zhongguancun Street", subject="printer HP-Hall-1 on kiosk-1",
        summary="out of paper", since=SINCE, timezone="Asia/Shanghai",
        url="https://zw.example.gov.cn/incidents/42", ack_url="https://zw.example.gov.cn/ack/42?sig=abc",
    )
    fields.update(changes)
    return Notice(**fields)


ALL_KINDS = ["opened", "reminder", "escalated", "resolved", "flapping"]


def test_opened_plain_text_says_zone_what_since_link_and_ack() -> None:
    text = render.plain(make_notice(), now=NOW)
    lines = text.splitlines()
    assert lines[0] == "[CRITICAL] Zhongguancun Service Hall — printer HP-Hall-1 on kiosk-1: out of paper"
    assert "Zone: Zhongguancun Service Hall (110108-001)" in lines
    assert "Where: Haidian District / Zhongguancun Street" in lines
    assert "Since: 2024-05-14 10:02 CST (12 min ago)" in lines
    assert "Details: https://zw.example.gov.cn/incidents/42" in lines
    assert lines[-1] == "Acknowledge: https://zw.example.gov.cn/ack/42?sig=abc"


def test_times_are_shown_in_the_zones_own_time_zone() -> None:
    text = render.plain(make_notice(timezone="Asia/Urumqi"), now=NOW)
    assert "Since: 2024-05-14 08:02 +06 (12 min ago)" in text
    assert "Since: 2024-05-14 02:02 UTC" in render.plain(make_notice(timezone="Not/AZone"), now=NOW)


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("fmt", ["plain", "markdown", "html_body"])
def test_every_message_is_short(kind: str, fmt: str) -> None:
    notice = make_notice(kind=kind, resolved_at=NOW if kind == "resolved" else None, escalation_level=1)
    text = getattr(render, fmt)(notice, now=NOW)
    assert len(text.splitlines()) <= 25
    assert "Zhongguancun Service Hall" in text and "out of paper" in text


def test_wordings_per_kind() -> None:
    titles = {k: render.title(make_notice(kind=k)) for k in ALL_KINDS}
    assert titles["reminder"].startswith("[REMINDER · CRITICAL]") and "still open:" in titles["reminder"]
    assert titles["escalated"].startswith("[ESCALATED · CRITICAL]") and "not acknowledged:" in titles["escalated"]
    assert titles["flapping"].startswith("[FLAPPING · CRITICAL]")
    assert titles["resolved"].startswith("[RESOLVED]") and "fixed:" in titles["resolved"]
    escalated = render.plain(make_notice(kind="escalated", escalation_level=2), now=NOW)
    assert "Escalation: level 2: nobody acknowledged it in time" in escalated


def test_resolved_says_when_and_how_long_and_offers_no_ack() -> None:
    text = render.plain(make_notice(kind="resolved", resolved_at=SINCE + 25 * 60), now=NOW)
    assert "Resolved: 2024-05-14 10:27 CST, after 25 min" in text
    assert "Acknowledge" not in text
    assert "Acknowledge" not in render.markdown(make_notice(kind="resolved"), now=NOW)


def test_low_urgency_says_outside_opening_hours() -> None:
    assert "Urgency: low: outside the zone's opening hours" in render.plain(make_notice(urgency="low"), now=NOW)
    assert "Urgency" not in render.plain(make_notice(), now=NOW)


def test_without_an_ack_link_it_says_where_to_acknowledge() -> None:
    text = render.plain(make_notice(ack_url=None), now=NOW)
    assert "Acknowledge: open the incident page and press Acknowledge" in text


def test_markdown_links_and_escapes_names() -> None:
    md = render.markdown(make_notice(zone_name="Hall *2*", subject="printer HP_1 on kiosk_1"), now=NOW)
    assert md.startswith("### 🔴 CRITICAL · Hall \\*2\\* — printer HP\\_1 on kiosk\\_1: out of paper")
    assert "[Details](https://zw.example.gov.cn/incidents/42)" in md
    assert "Acknowledge: [acknowledge in one click](https://zw.example.gov.cn/ack/42?sig=abc)" in md
    assert "- **Since:** 2024-05-14 10:02 CST (12 min ago)" in md


def test_html_escapes_and_links() -> None:
    page = render.html_body(make_notice(zone_name="Hall <A&B>"), now=NOW)
    assert "Hall &lt;A&amp;B&gt;" in page and "<A&B>" not in page
    assert '<a href="https://zw.example.gov.cn/ack/42?sig=abc">' in page


def test_markdown_limit_cuts_facts_but_keeps_links() -> None:
    long = make_notice(summary="纸张用完 " * 400)
    md = render.markdown(long, now=NOW, limit=1000)
    assert len(md.encode()) <= 1000
    assert md.endswith("Acknowledge: [acknowledge in one click](https://zw.example.gov.cn/ack/42?sig=abc)")
    md.encode().decode("utf-8")  # cut between characters, never inside one


@pytest.mark.parametrize("limit", range(0, 12))
def test_truncate_utf8_never_splits_a_character(limit: int) -> None:
    cut = render.truncate_utf8("打印机缺纸abc", limit, marker="")
    assert len(cut.encode()) <= limit and "打印机缺纸abc".startswith(cut)


@pytest.mark.parametrize(("seconds", "text"), [(5, "5 s"), (60, "1 min"), (3600, "1 h"), (3660 + 300, "1 h 6 min"),
                                               (86400 * 2 + 7200, "2 d 2 h")])
def test_duration(seconds: float, text: str) -> None:
    assert render.duration(seconds) == text


def test_notice_round_trips_as_json() -> None:
    notice = make_notice()
    assert msgspec.json.decode(msgspec.json.encode(notice), type=Notice) == notice
