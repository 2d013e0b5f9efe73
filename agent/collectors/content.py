"""content — the installed content bundle (the kiosk's offline pages, guides and notices).

The bundle installer switches ``<dir>/current`` atomically to a version directory holding a
``.zonewatch-bundle.json`` manifest ({"version", "sha256", "applied_at"}). This collector only
reads that; whether the version is the one the device *should* have is the server's call.
"""

from __future__ import annotations

import json
from pathlib import Path

from protocol import ContentCheck

from .base import Collector, CollectorOptions, Seconds

MANIFEST = ".zonewatch-bundle.json"


class ContentOptions(CollectorOptions, kw_only=True, forbid_unknown_fields=True):
    #: Seconds between runs.
    every: Seconds = 30.0
    #: Where bundles are installed; default: <agent.data_dir>/content.
    dir: str | None = None


class ContentCollector(Collector):
    name = "content"
    Options = ContentOptions

    def root(self) -> Path:
        return Path(self.options.dir) if self.options.dir else self.context.data_dir / "content"

    def collect(self) -> list[ContentCheck]:
        current = self.root() / "current"
        if not current.exists():
            return [ContentCheck(name="content", status="ok", summary="no content bundle installed")]
        try:
            manifest = json.loads((current / MANIFEST).read_text())
            version, sha256 = str(manifest["version"]), str(manifest["sha256"])
            applied = float(manifest.get("applied_at") or 0) or None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return [ContentCheck(name="content", status="critical",
                                 summary=f"installed content has no readable manifest ({current / MANIFEST}): {exc}")]
        return [ContentCheck(name="content", status="ok", version=version, sha256=sha256, applied_at=applied,
                             summary=f"content {version} installed")]

    def failed(self, error: str) -> list[ContentCheck]:
        return [ContentCheck(name="content", status="unknown", summary=error, error=error)]
