"""One-shot commands from the server on ``zw/v1/cmd/<id>/run``: checked, run at most once, acked.

A command carries an id, an expiry and an Ed25519 signature by the server's content-signing key (the one
enrolment hands over as ``content.signing_key``) over :func:`statement`. In order, the agent refuses a command
that is unsigned or whose signature does not verify (forged, altered, another server's, or for another
device), one whose id already ran here (a replay or a redelivery), and one past its expiry — each refusal is
acked (``target: command``, ``state: refused``) with the reason. An accepted command's id is written to
``<data_dir>/commands.json`` *before* it runs, so it runs at most once even across restarts; ids are forgotten
a day after their expiry, when the expiry check refuses them anyway.

Actions: ``print_test_page`` (alias ``test_print``; arg ``printer``: a CUPS queue, default: CUPS's default
destination) submits a small text page through pycups; ``reload_kiosk`` runs ``content.reload_command``;
``diagnostics`` sends a full report at once (trigger ``diagnostics``, the latest result of every check) and acks
its ``seq``, worst status and the checks that are not ok.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from protocol import Ack, Command

from .config import AgentConfig

log = logging.getLogger("zonewatch.agent.commands")
PREFIX = b"zonewatch-command-v1\n"
SEEN_FILE = "commands.json"
FORGET_AFTER = 86400.0  # seconds after a command's expiry its id is dropped from the seen list
TEST_PAGE = ("zonewatch test page\n\nDevice: {device}\nCommand: {id}\nPrinted: {when} UTC\n\n"
             "If you can read this, the printer works.\n")


def statement(device_id: str, command_id: str, action: str, expires: float, args: dict) -> bytes:
    """The exact bytes the server signs for a command: device, id, action, expiry and arguments."""
    canonical = json.dumps(args, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return PREFIX + f"{device_id}\n{command_id}\n{action}\n{float(expires)!r}\n{canonical}\n".encode()


class Refused(Exception):
    """The command is not run; the message is the reason acked to the server."""


class ActionFailed(Exception):
    """The command ran and failed; the message says why."""


def verify(public_key_b64: str | None, command: Command) -> None:
    """Raise :class:`Refused` unless ``command`` carries a valid signature by the key."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    from .content.signature import BadSignature, decode_key

    if not command.signature:
        raise Refused("unsigned command refused")
    if not public_key_b64:
        raise Refused("no content.signing_key configured, so no command can be verified; re-enrol")
    try:
        key = decode_key(public_key_b64)
        signature = base64.b64decode(command.signature, validate=True)
        VerifyKey(key).verify(statement(command.device_id, command.id, command.action, command.expires,
                                        command.args), signature)
    except (BadSignature, BadSignatureError, binascii.Error, ValueError):
        raise Refused("signature does not verify against this device's signing key (forged, altered, or signed "
                      "by another server); refused") from None


class SeenIds:
    """Ids of commands accepted here, with their expiry, in a small JSON file replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, command_id: str) -> dict | None:
        with self._lock:
            return self._load().get(command_id)

    def add(self, command: Command, now: float) -> bool:
        """Remember the id; False when it was there already (then nothing changes)."""
        with self._lock:
            seen = self._load()
            if command.id in seen:
                return False
            seen = {k: v for k, v in seen.items() if v.get("expires", 0) + FORGET_AFTER >= now}
            seen[command.id] = {"at": now, "expires": command.expires, "action": command.action}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(seen))
            os.replace(tmp, self.path)
            return True


class CommandHandler:
    def __init__(self, config: AgentConfig, send: Callable[[Ack], None],
                 clock: Callable[[], float] = time.time,
                 diagnose: Callable[[], tuple[str, dict]] | None = None) -> None:
        self.config = config
        self.diagnose = diagnose  # loop thread: writes a report now; (detail, result)
        self.device_id = config.agent.device_id
        self.send = send  # loop thread
        self.clock = clock
        self.seen = SeenIds(Path(config.agent.data_dir) / SEEN_FILE)
        self._tasks: set[asyncio.Task] = set()

    def handle(self, command: Command) -> None:
        """Loop thread: a command arrived; checked and run in a worker thread, acked from the loop."""
        task = asyncio.get_running_loop().create_task(self._handle(command))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, command: Command) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self.admit, command)
        except Refused as exc:
            log.warning("command %s (%s) refused: %s", command.id, command.action, exc)
            self._ack(command, "refused", str(exc))
            return
        self._ack(command, "running", f"{command.action} started")
        try:
            if command.action == "diagnostics":
                if self.diagnose is None:
                    raise ActionFailed("diagnostics are not available in this agent")
                detail, result = self.diagnose()
            else:
                detail, result = await loop.run_in_executor(None, self.run, command)
        except ActionFailed as exc:
            log.error("command %s (%s) failed: %s", command.id, command.action, exc)
            self._ack(command, "failed", str(exc))
            return
        log.info("command %s (%s) done: %s", command.id, command.action, detail)
        self._ack(command, "done", detail, result)

    def admit(self, command: Command) -> None:
        """Worker thread: raise :class:`Refused` with the reason, or remember the id (the command will run)."""
        if command.device_id != self.device_id:
            raise Refused(f"command is addressed to {command.device_id!r}, not this device")
        verify(self.config.content.signing_key, command)
        now = self.clock()
        seen = self.seen.get(command.id)
        if seen is not None:
            raise Refused(f"replayed: command {command.id} already ran here at "
                          f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(seen.get('at', 0)))} UTC")
        if command.expires <= now:
            raise Refused(f"expired {now - command.expires:.0f} s ago (at "
                          f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(command.expires))} UTC)")
        if command.action not in ACTIONS:
            raise Refused(f"unknown action {command.action!r}; this agent runs {', '.join(sorted(ACTIONS))}")
        if not self.seen.add(command, now):
            raise Refused(f"replayed: command {command.id} already ran here")

    def run(self, command: Command) -> tuple[str, dict]:
        """Worker thread: run an admitted command; (detail, result) or :class:`ActionFailed`."""
        return ACTIONS[command.action](self, command)

    def _ack(self, command: Command, state: str, detail: str, result: dict | None = None) -> None:
        self.send(Ack(device_id=self.device_id, ts=time.time(), ref=command.id, target="command", state=state,
                      detail=detail[:1024], result={"action": command.action, **(result or {})}))

    # -- actions (worker thread) -------------------------------------------------------------------------

    def print_test_page(self, command: Command) -> tuple[str, dict]:
        import cups

        printer = str(command.args.get("printer") or "")
        options = self.config.collector_options.get("printer")
        server = getattr(options, "cups_server", None)
        try:
            if server:
                from .collectors.printer import parse_server

                host, port = parse_server(server)
                conn = cups.Connection(host=host, port=port) if port else cups.Connection(host=host)
            else:
                conn = cups.Connection(host=cups.getServer(), port=cups.getPort())
            printer = printer or conn.getDefault() or ""
            if not printer:
                raise ActionFailed("no printer named (args.printer) and CUPS has no default destination")
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as page:
                page.write(TEST_PAGE.format(device=self.device_id, id=command.id, when=when))
            try:
                job = conn.printFile(printer, page.name, f"zonewatch test page {command.id}", {})
            finally:
                os.unlink(page.name)
        except (cups.IPPError, cups.HTTPError, RuntimeError, OSError) as exc:
            raise ActionFailed(f"test page not sent to {printer or 'the default printer'}: {exc}") from None
        return f"test page sent to {printer} as job {job}", {"printer": printer, "job_id": int(job)}

    def reload_kiosk(self, command: Command) -> tuple[str, dict]:
        argv = self.config.content.reload_command
        if not argv:
            raise ActionFailed("no content.reload_command configured on this device")
        try:
            done = subprocess.run(argv, capture_output=True, timeout=self.config.content.command_timeout,
                                  check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ActionFailed(f"reload command {argv[0]!r} could not run ({exc})") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()[-1:] or [""]
            why = f": {tail[0][:300]}" if tail[0] else ""
            raise ActionFailed(f"reload command failed (exit {done.returncode}{why})")
        return "kiosk reloaded", {"exit": 0}


ACTIONS: dict[str, Callable[[CommandHandler, Command], tuple[str, dict]] | None] = {
    "print_test_page": CommandHandler.print_test_page,
    "test_print": CommandHandler.print_test_page,
    "reload_kiosk": CommandHandler.reload_kiosk,
    "diagnostics": None,  # on the loop thread: CommandHandler.diagnose
}
