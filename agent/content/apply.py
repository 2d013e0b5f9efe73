"""Apply one desired content bundle: signature, disk space, download (resumed), size and sha256, safe unpack,
atomic switch, reload hook, health check — and automatic rollback when the hook or the check fails.

Blocking (run it in a worker thread). Progress goes to ``report(state, detail, progress)``: ``downloading``,
``applying``, then ``applied`` or ``failed`` with the reason. Whatever fails, the live content is the one
that was live before.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from protocol import DesiredContent

from ..config import ContentSection
from .archive import Limits, UnsafeArchive
from .download import DownloadFailed, Source, fetch
from .install import ContentDir
from .signature import BadSignature, verify

Report = Callable[[str, str, "float | None"], None]
MiB = 1024 * 1024


class ApplyFailed(Exception):
    """Applying the bundle failed; live content is unchanged (or rolled back). The message is the reason."""


class TryLater(ApplyFailed):
    """A failure that may pass by itself (disk space); the handler retries with back-off."""


@dataclass(frozen=True)
class Outcome:
    state: str  # applied | failed
    detail: str
    retry: bool = False  # worth trying again later (network, disk space), not a verdict on the bundle


@dataclass
class Applier:
    options: ContentSection
    root: Path
    username: str
    password: Callable[[], str]
    #: () -> None when the kiosk is fine, else why not (the kiosk collector's verdict).
    kiosk_problem: Callable[[], str | None] | None = None

    def __post_init__(self) -> None:
        self.dir = ContentDir(self.root)

    def limits(self) -> Limits:
        o = self.options
        return Limits(max_files=o.max_files, max_bytes=o.max_unpacked_mb * MiB,
                      max_file_bytes=min(o.max_unpacked_mb * MiB, Limits().max_file_bytes))

    def already_live(self, want: DesiredContent) -> bool:
        marker = self.dir.live_marker()
        return bool(marker) and marker.get("sha256") == want.sha256

    def apply(self, want: DesiredContent, report: Report) -> Outcome:
        try:
            self._apply(want, report)
        except (TryLater, DownloadFailed) as exc:
            return Outcome("failed", str(exc)[:1024], retry=True)
        except (ApplyFailed, UnsafeArchive, BadSignature) as exc:
            return Outcome("failed", str(exc)[:1024])
        except OSError as exc:
            return Outcome("failed", f"file system error: {exc}"[:1024])
        return Outcome("applied", f"content {want.version} live")

    def _apply(self, want: DesiredContent, report: Report) -> None:
        o = self.options
        if not o.server_url or not o.signing_key:
            raise ApplyFailed("content.server_url and content.signing_key are not configured on this device; "
                              "re-enrol it or copy them from the server (GET /device/content-key)")
        verify(o.signing_key, want.version, want.sha256, want.size, want.signature)
        self.dir.prepare()
        part = self.dir.staging / f"{want.sha256}.part"
        self._check_space(want.size - (part.stat().st_size if part.exists() else 0) + want.size)
        report("downloading", f"fetching {want.version} ({want.size} bytes)", 0.0)
        source = Source(want.url, self.username, self.password(), o.server_url, o.ca_file, o.http_timeout)
        step = max(want.size // 10, 1)
        marks = {"next": step}

        def progress(have: int) -> None:
            if have >= marks["next"]:
                marks["next"] = have + step
                report("downloading", f"{have} of {want.size} bytes", round(have / max(want.size, 1), 3))

        got = fetch(source, part, want.size, progress)
        if got != want.size:
            raise ApplyFailed(f"downloaded {got} bytes but the bundle has {want.size}; it resumes next time")
        actual = _sha256(part)
        if actual != want.sha256:
            part.unlink(missing_ok=True)
            raise ApplyFailed(f"sha256 mismatch: the download hashes to {actual[:16]}…, the server announced "
                              f"{want.sha256[:16]}…; refused and deleted (it is fetched afresh next time)")
        report("applying", f"unpacking {want.version}", None)
        try:
            name = self.dir.install(part, want.version, want.sha256, self.limits())
        except UnsafeArchive as exc:
            part.unlink(missing_ok=True)
            raise ApplyFailed(f"bundle refused: {exc}") from None
        part.unlink(missing_ok=True)
        previous = self.dir.live()
        self.dir.switch(name)
        problem = self._reload_and_check()
        if problem is not None:
            self.dir.switch(previous)
            again = self._run(o.reload_command, "reload") if o.reload_command else None
            back = f"rolled back to {previous}" if previous else "rolled back to no content"
            raise ApplyFailed(f"{problem}; {back}" + (f" (and the reload after rollback failed too: {again})"
                                                      if again else ""))
        self.dir.prune(o.keep_versions, {name} | ({previous} if previous else set()))

    def _reload_and_check(self) -> str | None:
        o = self.options
        if o.reload_command and (why := self._run(o.reload_command, "reload")):
            return why
        if o.settle:
            time.sleep(o.settle)
        if o.health_command and (why := self._run(o.health_command, "health check")):
            return why
        if o.check_kiosk and self.kiosk_problem is not None and (why := self.kiosk_problem()):
            return f"kiosk health check failed after the reload: {why}"
        return None

    def _run(self, argv: list[str], what: str) -> str | None:
        try:
            done = subprocess.run(argv, capture_output=True, timeout=self.options.command_timeout, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"{what} command {argv[0]!r} could not run ({exc})"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()[-1:] or [""]
            return f"{what} command failed (exit {done.returncode}{': ' + tail[0][:300] if tail[0] else ''})"
        return None

    def _check_space(self, need: int) -> None:
        free = shutil.disk_usage(self.root).free
        want = need + self.options.min_free_mb * MiB
        if free < want:
            raise TryLater(f"not enough disk space for the bundle: {free // MiB} MiB free on {self.root}, "
                              f"{want // MiB + 1} MiB needed (download + unpacked + content.min_free_mb); free space "
                              "or lower keep_versions")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            h.update(chunk)
    return h.hexdigest()
