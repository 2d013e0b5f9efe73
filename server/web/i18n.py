"""Languages of the web UI: English and Simplified Chinese, from gettext catalogs.

The language of a request is, in order: ``?lang=`` (which also sets the ``zw_lang`` cookie), the
``zw_lang`` cookie, the best match of ``Accept-Language``, English. Catalogs are the ``.po`` files
under ``locale/<lang>/LC_MESSAGES/messages.po``, compiled in memory when the app starts (no build
step, nothing binary in the repository). English is the source language: its catalog is empty.

Also here: what a person reads that is not a template string — status words, durations ("for 2 h
5 min"), times in a zone's own time zone.
"""

from __future__ import annotations

import gettext
import io
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import pass_context
from markupsafe import Markup

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = {"en": "English", "zh_CN": "简体中文"}
DEFAULT = "en"
COOKIE = "zw_lang"
_ALIASES = {"en": "en", "zh": "zh_CN", "zh_cn": "zh_CN", "zh_hans": "zh_CN", "zh_sg": "zh_CN"}
REQUEST_LANG = web.RequestKey("zonewatch_lang", str)


def load_catalogs(directory: Path = LOCALE_DIR) -> dict[str, gettext.NullTranslations]:
    """Every language's translations; a ``.po`` file is compiled here (Babel), in memory."""
    out: dict[str, gettext.NullTranslations] = {"en": gettext.NullTranslations()}
    for lang in LANGUAGES:
        po = directory / lang / "LC_MESSAGES" / "messages.po"
        if lang == DEFAULT or not po.exists():
            continue
        with po.open("rb") as f:
            catalog = read_po(f, locale=lang)
        buf = io.BytesIO()
        write_mo(buf, catalog)
        buf.seek(0)
        out[lang] = gettext.GNUTranslations(buf)
    return out


def normalize(code: str | None) -> str | None:
    """``zh-CN`` / ``zh_cn`` / ``zh-Hans`` → ``zh_CN``; ``en-GB`` → ``en``; anything else None."""
    if not code:
        return None
    code = code.strip().replace("-", "_").lower()[:20]
    if code in _ALIASES:
        return _ALIASES[code]
    base = code.split("_")[0]
    if base == "zh" and not code.startswith(("zh_tw", "zh_hk", "zh_hant", "zh_mo")):
        return "zh_CN"
    return "en" if base == "en" else None


def from_accept_language(header: str) -> str | None:
    """The best language we have for an ``Accept-Language`` header (q-values honoured)."""
    choices = []
    for n, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = normalize(tag)
        if lang is not None and q > 0:
            choices.append((-q, n, lang))
    return min(choices)[2] if choices else None


def language(request: web.Request) -> str:
    """The request's language (cached on the request)."""
    chosen = request.get(REQUEST_LANG)
    if chosen is None:
        chosen = (normalize(request.query.get("lang")) or normalize(request.cookies.get(COOKIE))
                  or from_accept_language(request.headers.get("Accept-Language", "")) or DEFAULT)
        request[REQUEST_LANG] = chosen
    return chosen


@web.middleware
async def language_middleware(request: web.Request, handler) -> web.StreamResponse:
    """``?lang=zh_CN`` switches the language and remembers it in a cookie."""
    response = await handler(request)
    asked = normalize(request.query.get("lang"))
    if asked is not None and isinstance(response, web.Response | web.HTTPException):
        response.set_cookie(COOKIE, asked, max_age=365 * 86400, path="/", samesite="Lax", httponly=True)
    return response


# -- text a person reads ----------------------------------------------------------------------


@dataclass(frozen=True)
class Words:
    """The translations of one language, with the formatting helpers pages use."""

    lang: str
    t: gettext.NullTranslations

    def gettext(self, text: str, **values) -> str:
        out = self.t.gettext(text)
        return out % values if values else out

    def ngettext(self, one: str, many: str, n: int, **values) -> str:
        return self.t.ngettext(one, many, n) % {"num": n, **values}

    def status(self, status: str | None) -> str:
        _ = self.t.gettext
        return {
            "meets": _("meets the rule"), "degraded": _("degraded"), "breach": _("in breach"),
            "unknown": _("unknown"), "ok": _("ok"), "warning": _("warning"), "critical": _("critical"),
            "offline": _("offline"), "online": _("online"), "gone": _("gone"), "open": _("open"),
            "acknowledged": _("acknowledged"), "resolved": _("resolved"), "high": _("high"), "low": _("low"),
        }.get(status or "unknown", status or _("unknown"))

    def kind(self, kind: str) -> str:
        _ = self.t.gettext
        return {"service_hall": _("service hall"), "convenience_centre": _("convenience centre"),
                "archive": _("archive"), "library": _("library"), "kiosk": _("kiosk"), "desktop": _("desktop PC"),
                "counter_pc": _("counter PC"), "unknown": _("unknown"), "city": _("city"),
                "district": _("district"), "township": _("township"), "viewer": _("viewer"),
                "oncall": _("oncall"), "admin": _("admin")}.get(kind, kind)

    def role(self, role: str) -> str:
        _ = self.t.gettext
        return {"viewer": _("viewer"), "oncall": _("oncall"), "admin": _("admin")}.get(role, role)

    def weekday(self, day: str) -> str:
        _ = self.t.gettext
        return {"mon": _("Monday"), "tue": _("Tuesday"), "wed": _("Wednesday"), "thu": _("Thursday"),
                "fri": _("Friday"), "sat": _("Saturday"), "sun": _("Sunday")}.get(day, day)

    def condition(self, code: str, text: str) -> str:
        """A printer condition in plain words: ours for the codes we know, else the agent's own text."""
        _ = self.t.gettext
        known = {
            "media-empty": _("out of paper"), "media-low": _("paper low"), "media-jam": _("paper jam"),
            "door-open": _("door or cover open"), "toner-low": _("toner low"), "toner-empty": _("out of toner"),
            "marker-supply-low": _("ink or toner low"), "marker-supply-empty": _("out of ink or toner"),
            "marker-waste-full": _("waste toner container full"), "offline": _("printer offline"),
            "connecting-to-device": _("cannot reach the printer"), "paused": _("queue paused"),
            "stopped": _("printer stopped"), "not-accepting": _("not accepting jobs"),
            "stuck-queue": _("jobs stuck in the queue"), "cups-unreachable": _("print system (CUPS) not answering"),
            "missing": _("print queue missing"),
        }
        return known.get(code, text or code)

    def rule(self, rule: str, subject: str, zone: str) -> str:
        """An incident's title in this language."""
        _ = self.t.gettext
        titles = {
            "zone_breach": _("%(zone)s breaks the rule"), "device_offline": _("%(subject)s is offline"),
            "printer_media_empty": _("%(subject)s is out of paper"),
            "printer_media_jam": _("%(subject)s has a paper jam"),
            "printer_door_open": _("%(subject)s has a door or cover open"),
            "printer_toner_empty": _("%(subject)s is out of toner or ink"),
            "printer_stuck_queue": _("%(subject)s has jobs stuck in its queue"),
            "printer_media_low": _("%(subject)s is low on paper"),
            "printer_toner_low": _("%(subject)s is low on toner or ink"),
            "network_slow": _("%(subject)s: slow or lossy network"),
        }
        title = titles.get(rule)
        return title % {"subject": subject, "zone": zone} if title else subject

    def event(self, kind: str) -> str:
        """A step of an incident's timeline."""
        _ = self.t.gettext
        return {
            "opened": _("opened"), "routed": _("routed"), "notified": _("notified"), "delivered": _("delivered"),
            "delivery_failed": _("delivery failed"), "closed": _("held: zone closed"), "silenced": _("silenced"),
            "inhibited": _("held: the zone is in breach"), "no-receivers": _("nobody to tell"),
            "acknowledged": _("acknowledged"), "comment": _("comment"), "escalated": _("escalated"),
            "reactivated": _("came back"), "flapping": _("flapping"), "resolved": _("resolved"),
        }.get(kind, kind)

    def duration(self, seconds: float | None) -> str:
        """``2 h 5 min``, ``3 d 4 h``, ``45 s`` (two units at most)."""
        if seconds is None:
            return ""
        _ = self.t.gettext
        s = max(0, int(seconds))
        d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
        if d:
            return _("%(d)d d %(h)d h") % {"d": d, "h": h} if h else _("%(d)d d") % {"d": d}
        if h:
            return _("%(h)d h %(m)d min") % {"h": h, "m": m} if m else _("%(h)d h") % {"h": h}
        if m:
            return _("%(m)d min") % {"m": m}
        return _("%(s)d s") % {"s": s}

    def for_(self, since: float | None, now: float | None = None) -> str:
        """``for 2 h 5 min`` since ``since``."""
        if since is None:
            return ""
        return self.t.gettext("for %(duration)s") % {"duration": self.duration((now or time.time()) - since)}


def local_time(ts: float | None, tz: str | None = None, *, seconds: bool = False) -> str:
    """``2026-05-04 10:02`` in the zone's time zone (the server's when the zone has none or a bad one)."""
    if ts is None:
        return "—"
    zone = None
    if tz:
        try:
            zone = ZoneInfo(tz)
        except (KeyError, ValueError):
            zone = None
    try:
        moment = datetime.fromtimestamp(ts, zone)
    except (OverflowError, OSError, ValueError):
        return "—"
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def iso_utc(ts: float | None) -> str:
    if ts is None:
        return ""
    try:
        return datetime.fromtimestamp(ts, ZoneInfo("UTC")).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return ""


def template_callables(words: Words) -> dict:
    """``gettext``/``ngettext``/``_`` for the jinja2 i18n extension (new style: values escaped, ``%(x)s``)."""

    @pass_context
    def _gettext(context, text: str, **values):
        out = words.t.gettext(text)
        if context.eval_ctx.autoescape:
            out = Markup(out)
        return out % values

    @pass_context
    def _ngettext(context, one: str, many: str, num: int, **values):
        out = words.t.ngettext(one, many, num)
        if context.eval_ctx.autoescape:
            out = Markup(out)
        return out % {"num": num, **values}

    return {"gettext": _gettext, "ngettext": _ngettext, "_": _gettext}
