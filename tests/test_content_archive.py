"""The bundle unpacker's rules (shared by the server's upload check and the agent): good bundles unpack;
every malicious shape is refused naming the entry and the rule, and nothing lands outside the target."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.content.archive import Limits, UnsafeArchive, normalise, unpack
from agent.content.manifest import ManifestError, parse_manifest
from tests.content_bundles import bundle, manifest, tar_gz, zip_bomb, zip_bytes


def _unpack(tmp_path: Path, data: bytes, limits: Limits | None = None):
    """Unpack ``data`` into a fresh directory below ``tmp_path``."""
    where = tmp_path / f"case{len(list(tmp_path.iterdir()))}"
    where.mkdir()
    archive = where / "bundle.bin"
    archive.write_bytes(data)
    return unpack(archive, where / "out", limits or Limits())


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_a_good_bundle_unpacks_with_its_manifest(tmp_path, fmt):
    done = _unpack(tmp_path, bundle("2026.1", {"index.html": b"<h1>hi</h1>", "guides/tax.txt": b"tax"}, fmt))
    assert done.manifest.version == "2026.1" and done.files == 3
    assert (tmp_path / "case0/out/guides/tax.txt").read_bytes() == b"tax"


BAD_TARS = {
    "absolute path": ([("file", "/etc/evil", b"x")], "absolute path"),
    "dot-dot": ([("file", "../evil", b"x")], "'..'"),
    "dot-dot inside": ([("file", "a/../../evil", b"x")], "'..'"),
    "symlink escaping": ([("symlink", "up", "../../etc")], "escapes the bundle root"),
    "absolute symlink": ([("symlink", "pw", "/etc/passwd")], "only relative links"),
    "file through a symlink": ([("symlink", "d", "."), ("file", "d/x", b"x")], "writing through a link"),
    "hard link": ([("hardlink", "h", "manifest.json")], "hard link"),
    "fifo": ([("fifo", "p", "")], "special file"),
    "device": ([("chr", "dev", "")], "special file"),
    "duplicate": ([("file", "a", b"1"), ("file", "a", b"2")], "appears twice"),
    "backslash": ([("file", "..\\evil", b"x")], "backslash"),
}


@pytest.mark.parametrize("case", sorted(BAD_TARS))
def test_malicious_tar_entries_are_refused(tmp_path, case):
    members, reason = BAD_TARS[case]
    data = tar_gz([("file", "manifest.json", manifest("1", [])), *members])
    with pytest.raises(UnsafeArchive, match=re.escape(reason)):
        _unpack(tmp_path, data)
    assert not (tmp_path.parent / "evil").exists() and not (tmp_path / "evil").exists()


def test_a_link_through_another_link_is_refused(tmp_path):
    data = tar_gz([("file", "manifest.json", manifest("1", [])), ("symlink", "b", "."),
                   ("symlink", "a", "b/../x")])
    with pytest.raises(UnsafeArchive, match="another link"):
        _unpack(tmp_path, data)


def test_a_link_inside_the_bundle_is_kept(tmp_path):
    data = tar_gz([("file", "manifest.json", manifest("1", ["real.html"])), ("file", "real.html", b"r"),
                   ("symlink", "index.html", "real.html")])
    _unpack(tmp_path, data)
    assert (tmp_path / "case0/out/index.html").read_bytes() == b"r"


def test_zip_symlink_escaping_and_traversal_are_refused(tmp_path):
    with pytest.raises(UnsafeArchive, match="escapes"):
        _unpack(tmp_path, zip_bytes([("manifest.json", manifest("1", []))], symlinks={"up": "../../etc"}))
    with pytest.raises(UnsafeArchive, match=r"'\.\.'"):
        _unpack(tmp_path,
                zip_bytes([("manifest.json", manifest("1", [])), ("../evil", b"x")]))


def test_a_zip_bomb_past_the_limits_is_refused(tmp_path):
    data = zip_bomb("1", 64 << 20)
    assert len(data) < 200_000
    with pytest.raises(UnsafeArchive, match=r"per-file limit|more than"):
        _unpack(tmp_path, data, Limits(max_bytes=16 << 20, max_file_bytes=16 << 20))


def test_too_many_files_is_refused(tmp_path):
    files = {f"f{i}.txt": b"x" for i in range(30)}
    with pytest.raises(UnsafeArchive, match="more than 10 entries"):
        _unpack(tmp_path, bundle("1", files), Limits(max_files=10))


def test_the_manifest_must_list_exactly_the_files(tmp_path):
    data = tar_gz([("file", "manifest.json", manifest("1", ["a.html", "b.html"])), ("file", "a.html", b"a")])
    with pytest.raises(UnsafeArchive, match=re.escape("lists 'b.html' but the archive has no such file")):
        _unpack(tmp_path, data)
    data = tar_gz([("file", "manifest.json", manifest("1", [])), ("file", "a.html", b"a")])
    with pytest.raises(UnsafeArchive, match="does not list"):
        _unpack(tmp_path, data)


def test_no_manifest_and_not_an_archive_are_refused(tmp_path):
    with pytest.raises(UnsafeArchive, match=re.escape("no manifest.json")):
        _unpack(tmp_path, tar_gz([("file", "a.html", b"a")]))
    with pytest.raises(UnsafeArchive, match=re.escape("not a tar.gz or zip")):
        _unpack(tmp_path, b"hello, not an archive")


# -- properties ------------------------------------------------------------------------------------------


@given(st.binary(max_size=2048))
@settings(max_examples=200, deadline=None)
def test_the_manifest_parser_never_raises_anything_but_its_error(data):
    try:
        m = parse_manifest(data)
    except ManifestError:
        return
    assert m.version and isinstance(m.files, list)


@given(st.text(max_size=300))
@settings(max_examples=500, deadline=None)
def test_an_accepted_name_is_relative_and_never_climbs(name):
    try:
        clean = normalise(name, Limits())
    except UnsafeArchive:
        return
    assert not clean.startswith("/") and ".." not in clean.split("/") and "\\" not in clean


names = st.text(alphabet="ab./\\", min_size=1, max_size=12)
members = st.lists(st.tuples(st.sampled_from(["file", "dir", "symlink"]), names, names), max_size=6)


@given(members)
@settings(max_examples=150, deadline=None)
def test_whatever_tar_is_accepted_stays_inside_the_target(tmp_path_factory, entries):
    tmp = tmp_path_factory.mktemp("prop")
    built = [("file", "manifest.json", json.dumps({"version": "1", "files": []}).encode())]
    built += [(k, n, (t if k == "symlink" else t.encode())) for k, n, t in entries]
    try:
        archive = tmp / "a.tgz"
        archive.write_bytes(tar_gz(built))
        unpack(archive, tmp / "out")
    except (UnsafeArchive, ValueError):
        pass
    root = os.path.realpath(tmp / "out")
    for path in tmp.rglob("*"):
        if path.is_symlink():
            real = os.path.realpath(path)
            assert real == root or real.startswith(root + os.sep), (path, real)
    assert sorted(p.name for p in tmp.iterdir()) in (["a.tgz"], ["a.tgz", "out"])
