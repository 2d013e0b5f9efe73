"""The words of a notice: short, actionable, the same facts in plain text, Markdown and HTML.

Every message says which zone, what broke, since when (local time in the zone's time zone, and
how long ago), links to the incident page and says how to acknowledge. It stays well under 25
lines so it fits a phone's lock screen and a robot's card. Plain text is for webhooks and the
e-mail's text part, HTML for the e-mail, Markdown for the DingTalk / WeCom / Feishu robots.
"""

from __future__ import annotations

import html
import re
import time
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .base import Notice

_LEAD = {
    "opened": "",
    "reminder": "REMINDER · ",
    "escalated": "ESCALATED · ",
    "flapping": "FLAPPING · ",
    "resolved": "RESOLVED · ",
}
_HEADLINE = {
    "opened": "{what}",
    "reminder": "still open: {what}",
    "escalated": "not acknowledged: {what}",
    "flapping": "keeps failing and recovering: {what}",
    "resolved": "fixed: {what}",
}
_MARK = {"critical": "🔴", "warning": "🟠", "resolved": "✅"}
_MD_SPECIAL = re.compile(r"([\\`*_\[\]])")


def local_time(ts: float, timezone: str) -> str:
    """``2024-05-14 10:02 CST`` in the zone's time zone (UTC when the name is unknown)."""
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M %Z")


def duration(seconds: float) -> str:
    """``40 s``, ``12 min``, ``2 h 5 min``, ``3 d 4 h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(s // 3600, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def what(n: Notice) -> str:
    """``printer HP-Hall-1 on kiosk-1: out of paper``."""
    return f"{n.subject}: {n.summary}" if n.subject else n.summary


def label(n: Notice) -> str:
    """``CRITICAL``, ``REMINDER · WARNING``, ``RESOLVED``, …"""
    return "RESOLVED" if n.kind == "resolved" else f"{_LEAD[n.kind]}{n.severity.upper()}"


def headline(n: Notice) -> str:
    """``still open: printer HP-1 on kiosk-1: out of paper``."""
    return _HEADLINE[n.kind].format(what=what(n))


def title(n: Notice) -> str:
    """One line: ``[CRITICAL] Zhongguancun Hall — printer HP-1 on kiosk-1: out of paper``."""
    return f"[{label(n)}] {n.zone_name} — {headline(n)}"


def facts(n: Notice, now: float | None = None) -> list[tuple[str, str]]:
    """The labelled lines every format shows, in order."""
    now = time.time() if now is None else now
    rows = [("Zone", f"{n.zone_name} ({n.zone_code})"), ("Where", n.region), ("What broke", what(n))]
    if n.kind == "resolved":
        end = n.resolved_at if n.resolved_at is not None else now
        rows.append(("Since", local_time(n.since, n.timezone)))
        rows.append(("Resolved", f"{local_time(end, n.timezone)}, after {duration(end - n.since)}"))
    else:
        rows.append(("Since", f"{local_time(n.since, n.timezone)} ({duration(now - n.since)} ago)"))
    rows.append(("Rule", f"{n.rule}, {n.severity}, incident {n.incident_id}"))
    if n.urgency == "low" and n.kind != "resolved":
        rows.append(("Urgency", "low: outside the zone's opening hours"))
    if n.kind == "escalated":
        rows.append(("Escalation", f"level {n.escalation_level}: nobody acknowledged it in time"))
    if n.kind == "flapping":
        rows.append(("Flapping", "held as one incident until it stays stable"))
    return [(label, value) for label, value in rows if value]


def _ack_hint(n: Notice) -> str | None:
    if n.kind == "resolved":
        return None
    if n.ack_url:
        return n.ack_url
    return "open the incident page and press Acknowledge" if n.url else None


def plain(n: Notice, now: float | None = None) -> str:
    """Plain text: a title line, the facts, the link and how to acknowledge."""
    lines = [title(n), ""]
    lines += [f"{label}: {value}" for label, value in facts(n, now)]
    if n.url:
        lines.append(f"Details: {n.url}")
    if (ack := _ack_hint(n)) is not None:
        lines.append(f"Acknowledge: {ack}")
    return "\n".join(lines)


def md_escape(text: str) -> str:
    """Backslash-escape the characters that would turn a name into Markdown (``kiosk_1``)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def markdown(n: Notice, now: float | None = None, limit: int | None = None, heading: bool = True) -> str:
    """Markdown for the robots: a heading, the facts as a list, links for details and acknowledge.

    With ``limit`` (bytes of UTF-8) the facts are cut to fit, never the links; ``heading=False``
    leaves out the title line (for cards that show the title in their own header).
    """
    mark = _MARK["resolved" if n.kind == "resolved" else n.severity]
    top = f"### {mark} {label(n)} · {md_escape(n.zone_name)} — {md_escape(headline(n))}"
    lines = [top, ""] if heading else []
    lines += [f"- **{label}:** {md_escape(value)}" for label, value in facts(n, now)]
    links = []
    if n.url:
        links.append(f"[Details]({n.url})")
    if n.kind != "resolved" and n.ack_url:
        links.append(f"Acknowledge: [acknowledge in one click]({n.ack_url})")
    elif (ack := _ack_hint(n)) is not None:
        links.append(f"Acknowledge: {ack}")
    head, tail = "\n".join(lines), ("\n\n" + " · ".join(links)) if links else ""
    if limit is not None:
        head = truncate_utf8(head, max(limit - len(tail.encode()), 0))
    return head + tail


def html_body(n: Notice, now: float | None = None) -> str:
    """A small HTML document for the e-mail: heading, a facts table, links."""
    e = html.escape
    colour = "#1a7f37" if n.kind == "resolved" else "#c62828" if n.severity == "critical" else "#ef6c00"
    rows = "".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{e(label)}</th><td>{e(value)}</td></tr>'
        for label, value in facts(n, now)
    )
    links = []
    if n.url:
        links.append(f'<a href="{e(n.url)}">Details</a>')
    if n.kind != "resolved" and n.ack_url:
        links.append(f'Acknowledge: <a href="{e(n.ack_url)}">{e(n.ack_url)}</a>')
    elif (ack := _ack_hint(n)) is not None:
        links.append(f"Acknowledge: {e(ack)}")
    link_html = f"<p>{' · '.join(links)}</p>" if links else ""
    return (
        "<!DOCTYPE html>\n<html><body style=\"font-family:sans-serif\">\n"
        f'<h3 style="color:{colour}">{e(title(n))}</h3>\n'
        f"<table>{rows}</table>\n{link_html}\n</body></html>\n"
    )


def truncate_utf8(text: str, limit: int, marker: str = "\n…") -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character, marked when cut."""
    data = text.encode()
    if len(data) <= limit:
        return text
    room = limit - len(marker.encode())
    return data[: max(room, 0)].decode("utf-8", "ignore") + marker
