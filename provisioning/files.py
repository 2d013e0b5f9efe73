"""Writing secret and config files safely: atomically (temp file + rename) with the right owner and mode.

A reader (mosquitto re-reading its password file on SIGHUP, an agent starting) sees either the old
file or the new one, never half of one. Only the standard library: the agent's enrolment uses it too.
"""

from __future__ import annotations

import grp
import os
import pwd
import tempfile
from pathlib import Path


def user_ids(user: str | None) -> tuple[int, int] | None:
    """``(uid, gid)`` of a system user, or None when ``user`` is None or there is no such user."""
    if not user:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def group_id(group: str | None) -> int | None:
    if not group:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return None


def write_atomic(path: str | Path, data: str | bytes, mode: int = 0o600, *, uid: int | None = None,
                 gid: int | None = None) -> Path:
    """Replace ``path`` with ``data`` in one rename, the new file created with ``mode`` (never wider on the way)
    and, when given (and we may), owned by ``uid``/``gid``. Returns the path."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        if uid is not None or gid is not None:
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        with os.fdopen(fd, "wb") as f:
            fd = -1
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def readable_by(user: str) -> tuple[int, int | None, int | None]:
    """Mode, uid and gid for a file that this process and ``user`` (e.g. the ``mosquitto`` service user a
    root-started broker switches to) must read and nobody else: ``0640`` owned by us with the user's group when
    we are root and the user exists, else ``0600`` owned by us (the broker then runs as we do)."""
    ids = user_ids(user)
    if ids is not None and os.geteuid() == 0 and ids[0] != 0:
        return 0o640, None, ids[1]
    return 0o600, None, None
