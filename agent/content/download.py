"""Download a bundle to a staging file, resuming with HTTP Range where an earlier attempt stopped.

Standard library only (urllib). The device authenticates with HTTP Basic (device id + MQTT secret) and sends
those credentials only to a URL under the configured ``content.server_url``. Never more than the expected size
is written; the caller checks size, sha256 and signature afterwards.
"""

from __future__ import annotations

import base64
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CHUNK = 256 * 1024


class DownloadFailed(Exception):
    """The bundle could not be fetched; the message says why and what to check."""


@dataclass(frozen=True)
class Source:
    url: str
    username: str
    password: str
    server_url: str
    ca_file: str | None = None
    timeout: float = 30.0


def check_url(url: str, server_url: str) -> None:
    """Credentials go only to the server the device enrolled with."""
    base = server_url.rstrip("/") + "/"
    if not url.startswith(base):
        raise DownloadFailed(f"the bundle URL {url[:200]!r} is not on this device's server ({server_url}); "
                             "refused (credentials are sent only there). Set content.server_url if the server moved")


def fetch(source: Source, dest: Path, size: int, progress: Callable[[int], None] | None = None) -> int:
    """Fetch into ``dest`` (resuming from its current length); returns the bytes now in it."""
    check_url(source.url, source.server_url)
    have = dest.stat().st_size if dest.exists() else 0
    if have > size:
        dest.unlink()
        have = 0
    if have == size:
        return have
    token = base64.b64encode(f"{source.username}:{source.password}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Accept": "application/octet-stream"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(source.url, headers=headers)
    context = ssl.create_default_context(cafile=source.ca_file) if source.url.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=source.timeout, context=context) as response:
            if have and response.status == 200:  # the server ignored the Range: start over
                have = 0
            mode = "ab" if have else "wb"
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if have else os.O_TRUNC),
                         0o600)
            with os.fdopen(fd, mode) as out:
                while chunk := response.read(CHUNK):
                    if have + len(chunk) > size:
                        raise DownloadFailed(f"the server sent more than the announced {size} bytes; refused")
                    out.write(chunk)
                    have += len(chunk)
                    if progress is not None:
                        progress(have)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have == size:
            return have
        hint = {401: "the server did not accept this device's credentials (revoked or rotated?); re-enrol",
                403: "the server says this bundle was not rolled out to this device",
                404: "the server has no such bundle"}.get(err.code, "try again later")
        raise DownloadFailed(f"download of {source.url[:200]} failed: HTTP {err.code}; {hint}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadFailed(f"download of {source.url[:200]} stopped at {have} of {size} bytes ({reason}); it "
                             "resumes at the next attempt") from None
    return have
