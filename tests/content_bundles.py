"""Build content archives for tests: good ones, and each kind of malicious one, in memory."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile


def manifest(version: str, files: list[str]) -> bytes:
    return json.dumps({"version": version, "files": files}).encode()


def tar_gz(members: list[tuple[str, str, bytes | str]]) -> bytes:
    """``members``: (kind, name, data) with kind file|dir|symlink|hardlink|fifo|chr (data = link target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for kind, name, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE}[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = data
            tar.addfile(info)
    return buf.getvalue()


def bundle(version: str, files: dict[str, bytes], fmt: str = "tar") -> bytes:
    """A good bundle with a manifest listing ``files``."""
    entries = [("file", "manifest.json", manifest(version, sorted(files)))]
    entries += [("file", name, data) for name, data in files.items()]
    return tar_gz(entries) if fmt == "tar" else zip_bytes([(n, d) for _, n, d in entries])


def zip_bytes(members: list[tuple[str, bytes]], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return buf.getvalue()


def zip_bomb(version: str, size: int) -> bytes:
    """A zip whose one file inflates to ``size`` zero bytes (a few KB packed)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("manifest.json", manifest(version, ["zeros.bin"]))
        with zf.open("zeros.bin", "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(size >> 20):
                f.write(chunk)
    return buf.getvalue()
