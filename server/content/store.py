"""The bundle store: an uploaded archive is checked with the device's own unpacking rules, stored once under
``<data_dir>/content/bundles/<sha256>`` (content-addressed), signed, and recorded in ``content_bundle``.

Uploading the same bytes again answers the stored bundle; a version already taken by other bytes is refused
(a version names exactly one bundle, so "which devices run 2026-11-23.1" has one answer).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, select

from agent.content.archive import Limits, UnsafeArchive, unpack
from server.errors import Conflict, NotFound

from .models import ContentBundle
from .signing import SigningKey

CHUNK = 1024 * 1024


class BundleRefused(Exception):
    """The upload is not an acceptable bundle; the message says why and what to do."""


@dataclass(frozen=True)
class Stored:
    bundle: ContentBundle
    created: bool  # False: these bytes were uploaded before


class BundleStore:
    def __init__(self, data_dir: str | Path, key: SigningKey, limits: Limits | None = None) -> None:
        self.root = Path(data_dir) / "content"
        self.bundles = self.root / "bundles"
        self.incoming = self.root / "incoming"
        self.key = key
        self.limits = limits or Limits()

    def path(self, sha256: str) -> Path:
        return self.bundles / sha256

    def new_upload(self) -> tuple[int, Path]:
        """An open file descriptor and path for an upload in progress (same volume as the store)."""
        self.incoming.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.incoming, prefix="upload-")
        return fd, Path(name)

    def add(self, s: Session, upload: Path, uploaded_by: str = "") -> Stored:
        """Check, store and sign the uploaded archive at ``upload`` (moved into the store or removed)."""
        try:
            sha256, size = _digest(upload)
            existing = s.get(ContentBundle, sha256)
            if existing is not None:
                return Stored(existing, False)
            with tempfile.TemporaryDirectory(dir=self.incoming, prefix="check-") as scratch:
                try:
                    unpacked = unpack(upload, Path(scratch) / "b", self.limits)
                except UnsafeArchive as exc:
                    raise BundleRefused(f"bundle refused: {exc}") from None
            manifest = unpacked.manifest
            taken = s.exec(select(ContentBundle).where(ContentBundle.version == manifest.version)).first()
            if taken is not None:
                raise Conflict(f"version {manifest.version!r} was uploaded already with other content (sha256 "
                               f"{taken.sha256[:12]}…); give the new bundle a new version in manifest.json")
            self.bundles.mkdir(parents=True, exist_ok=True)
            os.chmod(upload, 0o644)
            os.replace(upload, self.path(sha256))
            bundle = ContentBundle(sha256=sha256, version=manifest.version, size=size,
                                   signature=self.key.sign(manifest.version, sha256, size), files=unpacked.files,
                                   unpacked_bytes=unpacked.bytes, description=manifest.description,
                                   uploaded_at=time.time(), uploaded_by=uploaded_by[:200])
            s.add(bundle)
            s.commit()
            s.refresh(bundle)
            return Stored(bundle, True)
        finally:
            upload.unlink(missing_ok=True)

    def clean_incoming(self) -> None:
        """Remove uploads a crash left behind."""
        if self.incoming.is_dir():
            shutil.rmtree(self.incoming, ignore_errors=True)


def find_bundle(s: Session, ref: str) -> ContentBundle:
    """A bundle by version or sha256; :class:`NotFound` naming what was asked."""
    bundle = s.get(ContentBundle, ref) or s.exec(select(ContentBundle).where(ContentBundle.version == ref)).first()
    if bundle is None:
        raise NotFound(f"no content bundle {ref[:64]!r}; GET /api/v1/content/bundles lists them (by version)")
    return bundle


def list_bundles(s: Session) -> list[ContentBundle]:
    return list(s.exec(select(ContentBundle).order_by(ContentBundle.uploaded_at.desc())).all())


def _digest(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size
