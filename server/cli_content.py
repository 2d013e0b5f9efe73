"""``zonewatch content upload FILE``: send a bundle to the server's API with a progress bar.

Talks to a running server over HTTP (an admin's API token), so it works from any machine. The progress bar
uses rich when it is installed, else a plain percentage line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

CHUNK = 256 * 1024


def register(sub) -> None:
    content = sub.add_parser("content", help="content bundles: upload")
    verbs = content.add_subparsers(dest="content", metavar="VERB", required=True)
    up = verbs.add_parser("upload", help="upload a bundle (tar.gz or zip with manifest.json)")
    up.add_argument("file", help="the bundle archive")
    up.add_argument("--server", default=os.environ.get("ZONEWATCH_URL", "http://127.0.0.1:8080"),
                    help="server URL (default $ZONEWATCH_URL or http://127.0.0.1:8080)")
    up.add_argument("--token", default=os.environ.get("ZONEWATCH_TOKEN"),
                    help="an admin's API token (default $ZONEWATCH_TOKEN; make one with `zonewatch user token`)")


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"zonewatch content upload: {path} is not a file", file=sys.stderr)
        return 2
    if not args.token:
        print("zonewatch content upload: give an admin's API token with --token or $ZONEWATCH_TOKEN "
              "(zonewatch user token NAME makes one)", file=sys.stderr)
        return 2
    size = path.stat().st_size
    with _progress(size, path.name) as advance:
        def body():
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    advance(len(chunk))
                    yield chunk

        request = urllib.request.Request(
            args.server.rstrip("/") + "/api/v1/content/bundles", data=body(), method="POST",
            headers={"Authorization": f"Bearer {args.token}", "Content-Type": "application/octet-stream",
                     "Content-Length": str(size)})
        try:
            with urllib.request.urlopen(request, timeout=600) as resp:
                answer = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            try:
                why = json.loads(err.read()).get("error", err.reason)
            except ValueError:
                why = err.reason
            print(f"zonewatch content upload: the server refused the bundle (HTTP {err.code}): {why}",
                  file=sys.stderr)
            return 1
        except (urllib.error.URLError, OSError) as exc:
            print(f"zonewatch content upload: cannot reach {args.server} ({getattr(exc, 'reason', exc)}); check "
                  "--server", file=sys.stderr)
            return 69
    what = "stored" if answer.get("created") else "already stored (same bytes)"
    print(f"bundle {answer['version']} {what}: sha256 {answer['sha256']}, {answer['size']} bytes, "
          f"{answer['files']} files")
    return 0


class _progress:
    """A context manager giving ``advance(n)``: rich's bar when available, else a plain line on stderr."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.done, self._rich = total, label, 0, None

    def __enter__(self):
        try:
            from rich.progress import Progress
        except ImportError:
            return self._plain
        self._rich = Progress(transient=False)
        self._rich.start()
        task = self._rich.add_task(f"uploading {self.label}", total=self.total)
        return lambda n: self._rich.advance(task, n)

    def _plain(self, n: int) -> None:
        self.done += n
        print(f"\ruploading {self.label}: {100 * self.done // max(self.total, 1)} %", end="", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        if self._rich is not None:
            self._rich.stop()
        else:
            print(file=sys.stderr)
