"""The content directory on the device and its atomic switch.

    <dir>/current  -> versions/<version>-<sha12>   (a relative symlink, replaced atomically by rename)
    <dir>/versions/<version>-<sha12>/              one unpacked bundle + .zonewatch-bundle.json
    <dir>/staging/<sha256>.part                    a download in progress (resumed across restarts)

The kiosk serves ``<dir>/current``. Switching writes a new link beside it and renames it over ``current``
(rename is atomic), so the kiosk sees the old tree or the new one, never a mix. The last ``keep`` versions
stay for rollback; the live one and the one before are never pruned.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from .archive import Limits, Unpacked, UnsafeArchive, unpack

MARKER = ".zonewatch-bundle.json"  # read by agent/collectors/content.py


class ContentDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions = root / "versions"
        self.staging = root / "staging"
        self.current = root / "current"

    def prepare(self) -> None:
        for d in (self.root, self.versions, self.staging):
            d.mkdir(parents=True, exist_ok=True, mode=0o755)

    @staticmethod
    def name(version: str, sha256: str) -> str:
        return f"{version}-{sha256[:12]}"

    def live(self) -> str | None:
        """The name of the live version directory, or None."""
        try:
            return Path(os.readlink(self.current)).name
        except OSError:
            return None

    def live_marker(self) -> dict | None:
        try:
            return json.loads((self.current / MARKER).read_text())
        except (OSError, ValueError):
            return None

    def install(self, archive: Path, version: str, sha256: str, limits: Limits) -> str:
        """Unpack into a new version directory (kept if present already); returns its name."""
        name = self.name(version, sha256)
        target = self.versions / name
        if (target / MARKER).exists():
            return name
        scratch = self.versions / f".unpack-{name}"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            unpacked: Unpacked = unpack(archive, scratch, limits)
            if unpacked.manifest.version != version:
                raise UnsafeArchive(f"the bundle's manifest says version {unpacked.manifest.version!r} but it was "
                                    f"sent as {version!r}; refused")
            marker = {"version": version, "sha256": sha256, "applied_at": None}
            (scratch / MARKER).write_text(json.dumps(marker))
            shutil.rmtree(target, ignore_errors=True)
            os.replace(scratch, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return name

    def switch(self, name: str | None) -> None:
        """Make ``name`` live atomically (None: no live content)."""
        if name is None:
            self.current.unlink(missing_ok=True)
            return
        marker_path = self.versions / name / MARKER
        marker = json.loads(marker_path.read_text())
        marker["applied_at"] = time.time()
        tmp_marker = marker_path.with_suffix(".tmp")
        tmp_marker.write_text(json.dumps(marker))
        os.replace(tmp_marker, marker_path)
        link = self.root / ".current-new"
        link.unlink(missing_ok=True)
        os.symlink(f"versions/{name}", link)
        os.replace(link, self.current)

    def prune(self, keep: int, protect: set[str]) -> list[str]:
        """Remove all but the ``keep`` newest version directories (never those in ``protect``)."""
        dirs = sorted((d for d in self.versions.iterdir() if d.is_dir() and not d.name.startswith(".")),
                      key=lambda d: d.stat().st_mtime, reverse=True)
        removed = []
        for d in dirs[keep:]:
            if d.name not in protect:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d.name)
        return removed
