"""Load and browser measurements for bench/pages.py: wrk (Debian) for latency under concurrent clients,
Debian's Chromium through Playwright for the page load as a person sees it."""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
#: Set in every page before its scripts run: when #live-status first says "connected" (the live updates run).
LIVE_OBSERVER = """
window.__zwLive = null;
new MutationObserver((_, observer) => {
  const el = document.getElementById('live-status');
  if (el && el.dataset.state === 'connected') { window.__zwLive = performance.now(); observer.disconnect(); }
}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ['data-state']});
"""
NAVIGATION = """() => { const n = performance.getEntriesByType('navigation')[0];
  return {ttfb: n.responseStart - n.requestStart, html: n.responseEnd, dcl: n.domContentLoadedEventEnd,
          load: n.loadEventEnd, bytes: n.transferSize, status: n.responseStatus || 0}; }"""


@dataclass
class WrkResult:
    path: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    bad: int  # non-2xx/3xx answers and socket errors

    def row(self) -> str:
        return (f"{self.path:<44} {self.p50_ms:8.1f} {self.p90_ms:8.1f} {self.p99_ms:8.1f} {self.rps:9.0f}"
                f" {self.requests:9d}{'  (' + str(self.bad) + ' bad answers!)' if self.bad else ''}")


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("this benchmark needs wrk: apt-get install --no-install-recommends wrk")
    return path


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()
    return float(number) * UNITS[unit]


def parse_wrk(path: str, output: str) -> WrkResult:
    """The figures of ``wrk --latency`` output (fails loudly if wrk printed something else)."""
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", output, re.M))
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+),", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if len(pct) != 4 or done is None or rps is None:
        raise RuntimeError(f"could not read wrk's output for {path}:\n{output}")
    bad = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    bad += sum(int(n) for n in errors.groups()) if errors else 0
    return WrkResult(path, int(done.group(1)), _ms(done.group(2) + done.group(3)) / 1000, float(rps.group(1)),
                     *(_ms(pct[p]) for p in ("50", "75", "90", "99")), bad)


#: wrk script for --vary: every request's path is the pattern with a random number in place of %d.
VARY_LUA = """
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  return wrk.format(nil, string.format(%r, math.random(1, %d)))
end
"""


def wrk(base_url: str, path: str, headers: dict[str, str], *, connections: int, threads: int,
        seconds: float, vary: str | None = None, vary_upto: int = 1_000_000_000) -> WrkResult:
    """``connections`` concurrent clients (keep-alive) for ``seconds`` against one path; with ``vary``
    (a path with ``%d``, filled with 1..``vary_upto``), every request asks for a different path, so no
    answer can be shared."""
    cmd = [wrk_binary(), f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if vary is not None:
            script.write(VARY_LUA % (vary, vary_upto))
            script.flush()
            cmd += ["-s", script.name]
        done = subprocess.run([*cmd, base_url + path], capture_output=True, text=True, timeout=seconds + 60,
                              check=True)
    return parse_wrk(vary or path, done.stdout)


@dataclass
class PageTiming:
    path: str
    runs: int
    cold: dict[str, float]  # the first load, empty cache
    median: dict[str, float]  # the later loads (cache warm, as for someone who keeps the page open)
    live: bool  # whether the page has #live-status

    def row(self, what: str) -> str:
        m = self.median
        live = f"{m['live']:8.0f}" if self.live else "     n/a"
        return (f"{self.path:<22} {what:<5} {m['ttfb']:8.1f} {m['dcl']:8.0f} {m['load']:8.0f} {live}"
                f" {m['bytes'] / 1024:8.0f}")


def browser_timings(base_url: str, username: str, password: str, paths: list[str], runs: int,
                    chromium: str = "/usr/bin/chromium") -> list[PageTiming]:
    """Sign in through /login like a person, then load each path ``runs`` times (a fresh tab each time)."""
    from playwright.sync_api import sync_playwright

    from tests.peers.browser import CHROMIUM_ARGS, VIEWPORT, sign_in

    results = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, headless=True, args=list(CHROMIUM_ARGS))
        try:
            context = browser.new_context(viewport=VIEWPORT, locale="en-US")
            context.add_init_script(LIVE_OBSERVER)
            page = context.new_page()
            sign_in(page, base_url, username, password)
            page.close()
            for path in paths:
                samples = []
                live = False
                for _ in range(runs):
                    page = context.new_page()
                    page.goto(base_url + path, wait_until="load")
                    page.wait_for_function("performance.getEntriesByType('navigation')[0].loadEventEnd > 0")
                    sample = page.evaluate(NAVIGATION)
                    if sample["status"] and sample["status"] != 200:
                        raise RuntimeError(f"{path} answered {sample['status']} in Chromium")
                    live = page.locator("#live-status").count() > 0
                    if live:
                        page.wait_for_function("window.__zwLive !== null", timeout=30_000)
                        sample["live"] = page.evaluate("window.__zwLive")
                    samples.append(sample)
                    page.close()
                later = samples[1:] or samples
                median = {k: statistics.median(s[k] for s in later) for k in later[0]}
                results.append(PageTiming(path, runs, samples[0], median, live))
            context.close()
        finally:
            browser.close()
    return results
