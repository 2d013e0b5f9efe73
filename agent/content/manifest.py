"""The bundle manifest: ``manifest.json`` at the root of every content archive.

    {"version": "2026-11-23.1", "files": ["index.html", "guides/tax.pdf"], "description": "..."}

``version`` names the bundle (it becomes a directory name on the kiosk, so it is restricted to letters,
digits, ``. _ -``); ``files`` lists every regular file in the archive besides the manifest itself. The
archive must hold exactly those files: a file listed but missing, or present but not listed, is refused.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 1024 * 1024
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

BundleVersion = Annotated[str, Meta(pattern=VERSION_PATTERN)]
FilePath = Annotated[str, Meta(min_length=1, max_length=1024)]


class ManifestError(ValueError):
    """The manifest is missing or wrong; the message names the field and what to do."""


class Manifest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The bundle's version, e.g. "2026-11-23.1": letters, digits, '.', '_', '-'; at most 64.
    version: BundleVersion
    #: Every regular file in the archive (paths relative to its root), besides manifest.json.
    files: Annotated[list[FilePath], Meta(max_length=1_000_000)]
    #: Free text for people: what changed.
    description: Annotated[str, Meta(max_length=1024)] = ""


def parse_manifest(data: bytes) -> Manifest:
    """Decode and validate ``manifest.json``; :class:`ManifestError` says which field is wrong."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{MANIFEST_NAME} is {len(data)} bytes, over the limit of {MAX_MANIFEST_BYTES}")
    try:
        manifest = msgspec.json.decode(data, type=Manifest)
    except msgspec.ValidationError as exc:
        raise ManifestError(f"{MANIFEST_NAME}: {exc}; it needs {{\"version\": \"1.0\", \"files\": [...]}}") from None
    except msgspec.DecodeError as exc:
        raise ManifestError(f"{MANIFEST_NAME} is not valid JSON ({exc})") from None
    normalised = [_normal(p) for p in manifest.files]
    if len(set(normalised)) != len(normalised):
        raise ManifestError(f"{MANIFEST_NAME}: files lists a path twice")
    manifest.files = normalised
    return manifest


def _normal(path: str) -> str:
    while path.startswith("./"):
        path = path[2:]
    return path


def check_files(manifest: Manifest, present: set[str]) -> None:
    """The archive's regular files must be exactly those the manifest lists."""
    listed = set(manifest.files)
    missing = sorted(listed - present)
    extra = sorted(present - listed)
    if missing:
        raise ManifestError(f"{MANIFEST_NAME} lists {missing[0]!r} but the archive has no such file"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if extra:
        raise ManifestError(f"the archive holds {extra[0]!r}, which {MANIFEST_NAME} does not list; list every file"
                            + (f" ({len(extra) - 1} more unlisted)" if len(extra) > 1 else ""))
