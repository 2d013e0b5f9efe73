"""Debian's Chromium driven by Playwright: one browser per test module, a fresh context per test.

Never ``playwright install``: the browser is the Debian package ``chromium`` (``/usr/bin/chromium``, or
``$ZW_CHROMIUM``), launched headless with the flags below so that it does not try to reach Google
(background networking, component updates, sync, QUIC). ``launch()`` gives it a fresh temporary
profile (user-data dir) that Playwright deletes when the browser closes. If the package is missing,
the fixture fails and names it: CI installs it (scripts/setup.sh), so a skip would hide a broken setup.

Fixtures:

- ``chromium`` (module): the Playwright ``Browser``; closed (and Playwright stopped) with the module.
- ``browser_context`` (function): a new context (1366×768, English) per test, always closed. Every
  request its pages make is recorded; one to a host other than 127.0.0.1/localhost fails the test
  at teardown (pages must work in an offline hall: no CDN, no web fonts from elsewhere).
- ``web_page`` (function): a page in that context. When the test fails, a screenshot of it and its
  console messages are saved as artifacts.
- ``artifacts`` (function): :class:`Artifacts` — ``artifacts.screenshot(page, "name")`` saves
  ``<dir>/<test>/name.png``, where ``<dir>`` is ``$ZW_TEST_ARTIFACTS`` or ``test-artifacts/`` at the
  repository root (gitignored).

:func:`sign_in` fills in the real /login form as a person would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
VIEWPORT = {"width": 1366, "height": 768}  # the office screen the pages are made for
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
WAIT_MS = 20_000  # how long Playwright waits for an element or a navigation before it gives up
_REPORTS = pytest.StashKey[dict]()


def chromium_path() -> str:
    """The Chromium to drive, or fail the test naming the Debian package that provides it."""
    path = os.environ.get("ZW_CHROMIUM") or CHROMIUM
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"Chromium is not installed at {path}: install the Debian package 'chromium' "
                    "(apt-get install --no-install-recommends chromium), or run scripts/test.sh as root, which "
                    "installs it. Do not run 'playwright install': the tests drive Debian's Chromium.", pytrace=False)
    return path


def artifacts_root() -> Path:
    return Path(os.environ.get("ZW_TEST_ARTIFACTS") or ROOT / "test-artifacts")


class Artifacts:
    """Files a test leaves for people to look at: ``<root>/<test name>/…``."""

    def __init__(self, root: Path, nodeid: str) -> None:
        self.dir = root / re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1])[:150]

    def path(self, name: str) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        return self.dir / name

    def screenshot(self, page, name: str, *, full_page: bool = True) -> Path:
        target = self.path(re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".png")
        page.screenshot(path=str(target), full_page=full_page)
        return target


def sign_in(page, base_url: str, username: str, password: str, next_: str = "/") -> None:
    """Open /login, fill in the form, press the button, and wait until the browser has left /login."""
    page.goto(f"{base_url}/login?next={quote(next_, safe='')}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("form[action='/login'] button")


def _foreign(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOOPBACK_HOSTS


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    item.stash.setdefault(_REPORTS, {})[report.when] = report


def _failed(request) -> bool:
    reports = request.node.stash.get(_REPORTS, {})
    return any(r.failed for r in reports.values())


@pytest.fixture(scope="module")
def chromium() -> Iterator:
    """One browser per test module, stopped with it: Playwright's sync API keeps an asyncio loop running in
    the main thread while it is started, and every later test that calls ``asyncio.run`` would fail with
    "cannot be called from a running event loop" (the whole suite runs in one process)."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the Python package 'playwright' is missing: .venv/bin/pip install -e '.[dev]' "
                    "(never 'playwright install')", pytrace=False)
    driver = sync_playwright().start()
    try:
        browser = driver.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_ARGS))
    except Exception:
        driver.stop()
        raise
    try:
        yield browser
    finally:
        try:
            browser.close()
        finally:
            driver.stop()


@pytest.fixture
def artifacts(request) -> Artifacts:
    return Artifacts(artifacts_root(), request.node.nodeid)


@pytest.fixture
def browser_context(chromium, request) -> Iterator:
    context = chromium.new_context(viewport=VIEWPORT, locale="en-US", timezone_id="Asia/Shanghai")
    context.set_default_timeout(WAIT_MS)
    foreign: list[str] = []
    context.on("request", lambda r: foreign.append(r.url) if _foreign(r.url) else None)
    try:
        yield context
    finally:
        context.close()
    if foreign and not _failed(request):
        pytest.fail(f"the pages asked for {len(foreign)} resource(s) beyond this machine, e.g. {foreign[:3]}: "
                    "everything a page needs must come from the zonewatch server", pytrace=False)


@pytest.fixture
def web_page(browser_context, artifacts, request) -> Iterator:
    page = browser_context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"uncaught: {e}"))
    yield page
    if _failed(request) and not page.is_closed():
        try:
            artifacts.screenshot(page, "at-failure")
            artifacts.path("console.txt").write_text("\n".join(console) + "\n")
        except Exception as exc:  # the page may be what broke; the test's own error matters more
            print(f"could not save the failure screenshot: {exc}")
