"""Safe unpacking of content archives (tar.gz or zip), with the same rules on the server and the device.

Every entry is checked before anything is written: no absolute paths, no ``..``, no backslashes or drive
letters, no duplicate names, no entry below a symlink, no hard links, no device files or fifos, symlinks only
relative and staying inside the bundle, and limits on file count, per-file and total size. A zip's declared
sizes can lie (a zip bomb), so bytes are also counted as they are written and unpacking stops at the limit.
Anything refused raises :class:`UnsafeArchive` naming the entry and the rule.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .manifest import MANIFEST_NAME, Manifest, ManifestError, check_files, parse_manifest

CHUNK = 1024 * 1024
Kind = Literal["file", "dir", "symlink"]


class UnsafeArchive(Exception):
    """The archive is refused; the message says which entry broke which rule."""


@dataclass(frozen=True)
class Limits:
    #: Entries (files, directories, links) at most.
    max_files: int = 20_000
    #: Unpacked bytes at most, all files together.
    max_bytes: int = 2 * 1024**3
    #: Unpacked bytes of one file at most.
    max_file_bytes: int = 1024**3
    #: Directory levels at most.
    max_depth: int = 32


@dataclass(frozen=True)
class Entry:
    name: str  # normalised, relative, no trailing '/'
    kind: Kind
    size: int = 0
    target: str = ""  # symlinks only


@dataclass(frozen=True)
class Unpacked:
    manifest: Manifest
    files: int
    bytes: int


_DRIVE = re.compile(r"^[A-Za-z]:")


def archive_format(path: Path) -> Literal["tar", "zip"]:
    """``tar`` (plain or gzip-compressed) or ``zip``, by content; :class:`UnsafeArchive` for anything else."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x1f\x8b") or tarfile.is_tarfile(path):
        return "tar"
    raise UnsafeArchive("not a tar.gz or zip archive; pack the bundle with `tar czf bundle.tar.gz -C DIR .` "
                        "or `zip -r bundle.zip .` inside DIR")


def normalise(raw: str, limits: Limits) -> str:
    """A safe relative entry name, or :class:`UnsafeArchive` saying why it is not one."""
    shown = raw[:200]
    if not raw or "\x00" in raw:
        raise UnsafeArchive(f"entry {shown!r} has an empty name or a NUL byte")
    if "\\" in raw or _DRIVE.match(raw):
        raise UnsafeArchive(f"entry {shown!r} uses a backslash or a drive letter; use '/' and relative paths")
    if raw.startswith("/"):
        raise UnsafeArchive(f"entry {shown!r} is an absolute path; archive paths must be relative to the bundle root")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"entry {shown!r} contains '..' (path traversal); refused")
    if len(parts) > limits.max_depth or len(raw) > 1024:
        raise UnsafeArchive(f"entry {shown!r} is deeper than {limits.max_depth} levels or longer than 1024 "
                            "characters")
    return "/".join(parts)


def check_entries(entries: list[Entry], limits: Limits) -> None:
    """Rules that need the whole list: duplicates, entries below links or files, link targets, totals."""
    if len(entries) > limits.max_files:
        raise UnsafeArchive(f"the archive has more than {limits.max_files} entries (limit); split the bundle")
    kinds: dict[str, Kind] = {}
    total = 0
    for e in entries:
        if e.name in kinds and not (e.kind == "dir" and kinds[e.name] == "dir"):
            raise UnsafeArchive(f"entry {e.name!r} appears twice; each path may appear once")
        kinds[e.name] = e.kind
        if e.size > limits.max_file_bytes:
            raise UnsafeArchive(f"file {e.name!r} is {e.size} bytes unpacked, over the per-file limit of "
                                f"{limits.max_file_bytes}")
        total += e.size
        if total > limits.max_bytes:
            raise UnsafeArchive(f"the archive unpacks to more than {limits.max_bytes} bytes (limit); refused "
                                "(a zip bomb, or a bundle too large for a kiosk)")
    for e in entries:
        parent = posixpath.dirname(e.name)
        while parent:
            if kinds.get(parent, "dir") != "dir":
                raise UnsafeArchive(f"entry {e.name!r} lies below {parent!r}, which is a {kinds[parent]}, not a "
                                    "directory; writing through a link is refused")
            parent = posixpath.dirname(parent)
        if e.kind == "symlink":
            _check_link(e, kinds)


def _check_link(e: Entry, kinds: dict[str, Kind]) -> None:
    target = e.target
    if not target or "\x00" in target or target.startswith("/") or "\\" in target or _DRIVE.match(target):
        raise UnsafeArchive(f"symlink {e.name!r} points to {target[:200]!r}; only relative links inside the bundle "
                            "are allowed")
    resolved: list[str] = e.name.split("/")[:-1]
    parts = [p for p in target.split("/") if p not in ("", ".")]
    for i, part in enumerate(parts):
        if part == "..":
            if not resolved:
                raise UnsafeArchive(f"symlink {e.name!r} -> {target[:200]!r} escapes the bundle root; refused")
            resolved.pop()
            continue
        resolved.append(part)
        if i < len(parts) - 1 and kinds.get("/".join(resolved)) == "symlink":
            raise UnsafeArchive(f"symlink {e.name!r} -> {target[:200]!r} passes through another link; refused")


# -- reading the entry list ------------------------------------------------------------------------------


def _tar_entries(tar: tarfile.TarFile, limits: Limits) -> tuple[list[Entry], list[tarfile.TarInfo]]:
    entries, members = [], []
    for member in tar:
        if len(entries) >= limits.max_files:
            raise UnsafeArchive(f"the archive has more than {limits.max_files} entries (limit); split the bundle")
        name = normalise(member.name, limits)
        if not name:  # the root itself ("./")
            continue
        if member.isreg():
            entry = Entry(name, "file", member.size)
        elif member.isdir():
            entry = Entry(name, "dir")
        elif member.issym():
            entry = Entry(name, "symlink", target=member.linkname)
        elif member.islnk():
            raise UnsafeArchive(f"entry {name!r} is a hard link; hard links are refused (copy the file instead)")
        else:
            raise UnsafeArchive(f"entry {name!r} is a device file, fifo or other special file; refused")
        member.name = name  # extract under the checked name ("a/./b" and "a/b/" become "a/b")
        entries.append(entry)
        members.append(member)
    return entries, members


def _zip_entries(zf: zipfile.ZipFile, limits: Limits) -> tuple[list[Entry], list[zipfile.ZipInfo]]:
    infos = zf.infolist()
    if len(infos) > limits.max_files:
        raise UnsafeArchive(f"the archive has more than {limits.max_files} entries (limit); split the bundle")
    entries, kept = [], []
    for info in infos:
        name = normalise(info.filename, limits)
        if not name:
            continue
        mode = info.external_attr >> 16
        if info.is_dir() or stat.S_ISDIR(mode):
            entry = Entry(name, "dir")
        elif stat.S_ISLNK(mode):
            if info.file_size > 1024:
                raise UnsafeArchive(f"symlink {name!r} has a target longer than 1024 bytes; refused")
            entry = Entry(name, "symlink", target=zf.read(info).decode("utf-8", "replace"))
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            raise UnsafeArchive(f"entry {name!r} is a device file, fifo or other special file; refused")
        else:
            entry = Entry(name, "file", info.file_size)
        entries.append(entry)
        kept.append(info)
    return entries, kept


# -- unpacking --------------------------------------------------------------------------------------------


def unpack(archive: Path, dest: Path, limits: Limits = Limits()) -> Unpacked:
    """Check every entry, unpack into ``dest`` (created; must not exist), check the manifest and the links."""
    fmt = archive_format(archive)
    dest.mkdir(mode=0o755)
    try:
        entries = _unpack_tar(archive, dest, limits) if fmt == "tar" else _unpack_zip(archive, dest, limits)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, UnicodeError, zlib.error) as exc:
        raise UnsafeArchive(f"the archive is damaged or truncated ({type(exc).__name__}: {exc})") from None
    files = {e.name for e in entries if e.kind == "file"}
    if MANIFEST_NAME not in files:
        raise UnsafeArchive(f"the archive has no {MANIFEST_NAME} at its root; add one naming version and files")
    manifest_path = dest / MANIFEST_NAME
    try:
        manifest = parse_manifest(manifest_path.read_bytes())
        check_files(manifest, files - {MANIFEST_NAME})
    except ManifestError as exc:
        raise UnsafeArchive(str(exc)) from None
    _check_links_on_disk(dest, entries)
    return Unpacked(manifest, len(files), sum(e.size for e in entries))


def _unpack_tar(archive: Path, dest: Path, limits: Limits) -> list[Entry]:
    with tarfile.open(archive, "r:*") as tar:
        entries, members = _tar_entries(tar, limits)
        check_entries(entries, limits)
        tar.extractall(dest, members=members, filter="data")
    return entries


def _unpack_zip(archive: Path, dest: Path, limits: Limits) -> list[Entry]:
    with zipfile.ZipFile(archive) as zf:
        entries, infos = _zip_entries(zf, limits)
        check_entries(entries, limits)
        written = 0
        for entry, info in zip(entries, infos, strict=True):
            path = dest / entry.name
            if entry.kind == "dir":
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if entry.kind == "symlink":
                os.symlink(entry.target, path)
                continue
            written = _copy_counted(zf, info, path, written, limits)
    return entries


def _copy_counted(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, written: int, limits: Limits) -> int:
    """Copy one member, counting real bytes: a header that understates the size stops at the limit."""
    own = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with zf.open(info) as src, os.fdopen(fd, "wb") as out:
        while chunk := src.read(CHUNK):
            own += len(chunk)
            written += len(chunk)
            if own > limits.max_file_bytes or own > info.file_size:
                raise UnsafeArchive(f"file {info.filename[:200]!r} unpacks to more bytes than its header says "
                                    f"({info.file_size}); refused (zip bomb)")
            if written > limits.max_bytes:
                raise UnsafeArchive(f"the archive unpacks to more than {limits.max_bytes} bytes (limit); refused "
                                    "(a zip bomb, or a bundle too large for a kiosk)")
            out.write(chunk)
    return written


def _check_links_on_disk(dest: Path, entries: list[Entry]) -> None:
    """Defence in depth: every link, resolved on disk, stays inside ``dest``."""
    root = os.path.realpath(dest)
    for e in entries:
        if e.kind == "symlink":
            real = os.path.realpath(dest / e.name)
            if real != root and not real.startswith(root + os.sep):
                raise UnsafeArchive(f"symlink {e.name!r} resolves outside the bundle; refused")
