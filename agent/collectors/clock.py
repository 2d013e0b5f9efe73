"""clock — this device's clock against the server's. A wrong clock breaks TLS and history.

The reference is the server's own timestamp on fresh (non-retained) messages it sends, which
the MQTT link records in the agent context; optionally the ``Date`` header of an HTTP server
you trust (the portal, the zonewatch server). Until either has been seen there is no clock
check (rather than an ``unknown`` one that would make every fresh device look unknown); the
server also compares each live report's timestamp with its own clock.
"""

from __future__ import annotations

import http.client
import time
from email.utils import parsedate_to_datetime
from typing import Annotated
from urllib.parse import urlsplit

from msgspec import Meta

from protocol import ClockCheck

from .base import Collector, CollectorOptions, Seconds

Offset = Annotated[float, Meta(gt=0, le=86400)]


class ClockOptions(CollectorOptions, kw_only=True, forbid_unknown_fields=True):
    #: Seconds between runs.
    every: Seconds = 60.0
    #: Offset in seconds (either way) at which the check turns warning.
    warning_s: Offset = 30.0
    #: Offset in seconds at which the check turns critical (TLS certificates start to fail).
    critical_s: Offset = 300.0
    #: Optional http(s) URL whose Date header is a second reference (1 s resolution).
    http_url: str | None = None


class ClockCollector(Collector):
    name = "clock"
    Options = ClockOptions

    def collect(self) -> list[ClockCheck]:
        o: ClockOptions = self.options
        offset, reference = self.context.clock_offset, "server"
        if offset is None and o.http_url:
            offset, reference = _http_offset(o.http_url, o.timeout), "http"
        if offset is None:
            return []
        size = abs(offset)
        status = "critical" if size >= o.critical_s else "warning" if size >= o.warning_s else "ok"
        side = "ahead of" if offset > 0 else "behind"
        return [ClockCheck(name="clock", status=status, offset_s=round(offset, 3), reference=reference,
                           summary=f"clock {size:.1f} s {side} the {reference}")]

    def failed(self, error: str) -> list[ClockCheck]:
        return [ClockCheck(name="clock", status="unknown", summary=error, error=error)]


def _http_offset(url: str, timeout: float) -> float:
    """Local clock minus the server's, from a HEAD request's Date header (midpoint of the request)."""
    parts = urlsplit(url)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname, parts.port, timeout=timeout)
    try:
        before = time.time()
        conn.request("HEAD", parts.path or "/")
        response = conn.getresponse()
        after = time.time()
        date = response.getheader("Date")
    finally:
        conn.close()
    if not date:
        raise ValueError(f"{url} sent no Date header")
    return (before + after) / 2 - parsedate_to_datetime(date).timestamp()
