"""Desired state on the device: the newest retained ``desired`` message wins; one bundle is applied at a time,
in a worker thread; progress and the result go out on the ack topic (``target: content``, ``ref``: the
bundle's sha256); the outcome is remembered per generation in ``<dir>/state.json``.

After a (re)connect the broker hands the retained desired message over again: a bundle already live is
acknowledged as applied at once, a bundle that failed for this generation is reported failed again without a
retry (the admin starts a new rollout), and a transient failure (network, disk space) is retried with
back-off.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from protocol import Ack, Desired, DesiredContent

from .apply import Applier, Outcome

log = logging.getLogger("zonewatch.agent.content")
STATE_FILE = "state.json"
RETRY_MIN, RETRY_MAX = 10.0, 600.0


class ContentHandler:
    def __init__(self, applier: Applier, device_id: str, send: Callable[[Ack], None],
                 on_applied: Callable[[], None]) -> None:
        self.applier = applier
        self.device_id = device_id
        self.send = send  # loop thread
        self.on_applied = on_applied
        self.state_path = applier.root / STATE_FILE
        self._latest: Desired | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._retry_delay = RETRY_MIN

    def start(self) -> None:
        self._task = asyncio.create_task(self._worker(), name="content")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def desired(self, message: Desired) -> None:
        """Loop thread: a desired message arrived (retained on connect, or new)."""
        if self._latest is not None and message.generation < self._latest.generation:
            log.info("ignored desired generation %d (have %d)", message.generation, self._latest.generation)
            return
        self._latest = message
        self._retry_delay = RETRY_MIN
        self._wake.set()

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            desired = self._latest
            if desired is None or desired.content is None:
                continue
            want = desired.content
            remembered = self._remembered(desired.generation, want.sha256)
            if await loop.run_in_executor(None, self.applier.already_live, want):
                self._ack(want, desired.generation, "applied", f"content {want.version} live")
                self._remember(desired.generation, want.sha256, "applied", "")
                continue
            if remembered is not None and remembered["state"] == "failed":
                self._ack(want, desired.generation, "failed", remembered["detail"])
                continue
            log.info("applying content %s (%s, generation %d)", want.version, want.sha256[:12], desired.generation)

            def report(state: str, detail: str, progress: float | None, want=want, gen=desired.generation) -> None:
                loop.call_soon_threadsafe(self._ack, want, gen, state, detail, progress)

            outcome: Outcome = await loop.run_in_executor(None, self.applier.apply, want, report)
            self._ack(want, desired.generation, outcome.state, outcome.detail)
            if outcome.state == "applied":
                log.info("content %s applied", want.version)
                self._remember(desired.generation, want.sha256, "applied", "")
                self.on_applied()
            elif outcome.retry:
                log.warning("content %s not applied (%s); retrying in %.0f s", want.version, outcome.detail,
                            self._retry_delay)
                loop.call_later(self._retry_delay, self._wake.set)
                self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)
            else:
                log.error("content %s refused: %s", want.version, outcome.detail)
                self._remember(desired.generation, want.sha256, "failed", outcome.detail)
                self.on_applied()

    def _ack(self, want: DesiredContent, generation: int, state: str, detail: str,
             progress: float | None = None) -> None:
        self.send(Ack(device_id=self.device_id, ts=time.time(), ref=want.sha256, target="content", state=state,
                      detail=detail[:1024], progress=progress,
                      result={"version": want.version, "sha256": want.sha256, "generation": generation}))

    def desired_version(self) -> str | None:
        latest = self._latest
        return latest.content.version if latest is not None and latest.content is not None else None

    # -- what happened to each generation, across restarts -------------------------------------------------

    def _remembered(self, generation: int, sha256: str) -> dict | None:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None
        if state.get("generation") == generation and state.get("sha256") == sha256:
            return state
        return None

    def _remember(self, generation: int, sha256: str, state: str, detail: str) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"generation": generation, "sha256": sha256, "state": state, "detail": detail}))
        os.replace(tmp, self.state_path)


def content_root(content_dir: str | None, data_dir: Path) -> Path:
    return Path(content_dir) if content_dir else data_dir / "content"
