"""The web UI's languages: every string in the code and templates is in each catalog, translated, with the
same placeholders; Accept-Language parsing; durations and times."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from server.web import i18n

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def extracted() -> set:
    found = set()
    for directory in (ROOT / "server" / "web", ROOT / "server" / "auth"):
        method_map = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
        options = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
        for _file, _line, message, _comments, _context in extract_from_dir(directory, method_map, options):
            found.add(message)
    return found


def test_every_string_is_translated_with_the_same_placeholders():
    messages = extracted()
    assert len(messages) > 200 and "Fleet health" in messages
    for lang in i18n.LANGUAGES:
        if lang == i18n.DEFAULT:
            continue
        with (i18n.LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
            catalog = read_po(f, locale=lang)
        missing = [m for m in messages if catalog.get(m) is None or not catalog.get(m).string]
        assert not missing, f"{lang}: not translated: {missing[:10]}"
        for m in messages:
            ids = m if isinstance(m, tuple) else (m,)
            strings = catalog.get(m).string
            strings = strings if isinstance(strings, tuple) else (strings,)
            wanted = set(PLACEHOLDER.findall(" ".join(ids))) - {"%(num)s"}
            for s in strings:
                assert set(PLACEHOLDER.findall(s)) - {"%(num)s"} == wanted, (lang, m, s)


def test_catalogs_compile_in_memory():
    catalogs = i18n.load_catalogs()
    assert set(catalogs) == set(i18n.LANGUAGES)
    assert catalogs["zh_CN"].gettext("Fleet health") == "专区运行总览"
    assert catalogs["zh_CN"].ngettext("%(num)s zone", "%(num)s zones", 5) % {"num": 5} == "5 个专区"


def test_accept_language():
    assert i18n.from_accept_language("zh-CN,zh;q=0.9,en;q=0.8") == "zh_CN"
    assert i18n.from_accept_language("en-US,en;q=0.9,zh-CN;q=0.8") == "en"
    assert i18n.from_accept_language("de, zh;q=0.5") == "zh_CN"
    assert i18n.from_accept_language("zh-TW") is None and i18n.from_accept_language("zh-Hant-HK") is None
    assert i18n.from_accept_language("zh-Hans-CN") == "zh_CN"
    assert i18n.from_accept_language("fr, *;q=0.1") is None and i18n.from_accept_language("") is None
    assert i18n.from_accept_language("en;q=0, zh;q=abc") is None
    assert i18n.from_accept_language("x" * 10_000 + "," * 5000) is None
    assert i18n.normalize("ZH_cn") == "zh_CN" and i18n.normalize("../etc") is None


def test_durations_and_times():
    catalogs = i18n.load_catalogs()
    en, zh = i18n.Words("en", catalogs["en"]), i18n.Words("zh_CN", catalogs["zh_CN"])
    assert [en.duration(s) for s in (0, 45, 60, 3600, 7500, 86400, 90061)] == [
        "0 s", "45 s", "1 min", "1 h", "2 h 5 min", "1 d", "1 d 1 h"]
    assert zh.duration(7500) == "2小时5分钟" and zh.for_(100.0, 100.0 + 7500) == "已持续2小时5分钟"
    assert en.for_(100.0, 100.0 + 7500) == "for 2 h 5 min" and en.duration(-5) == "0 s"
    assert en.status("breach") == "in breach" and zh.status("breach") == "不达标" and zh.status("new") == "new"
    assert zh.condition("media-empty", "out of paper") == "缺纸" and zh.condition("x-new", "odd") == "odd"
    assert zh.rule("zone_breach", "zone A", "A") == "A 不达标"
    assert i18n.local_time(0.0, "Asia/Shanghai") == "1970-01-01 08:00"
    assert i18n.local_time(0.0, "Asia/Urumqi") == "1970-01-01 06:00"
    assert i18n.local_time(None) == "—" and i18n.local_time(1e20, "UTC") == "—"
    assert i18n.local_time(0.0, "Not/AZone").startswith("1970-01-01")
