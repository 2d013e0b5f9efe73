"""What bench/alert_latency.py runs: a webhook receiver that stamps arrivals, a portal that can be
switched off and on again on the same port, and the zonewatch side — zones in a fresh database, the
real server and real agents — all with their default settings unless said otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from sqlmodel import Session, select

from tests.peers._util import free_port
from tests.peers.webhook import WebhookReceiver

ROOT = Path(__file__).resolve().parent.parent


def find_binary(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/usr/bin", "/sbin") if (p := Path(d) / name).exists()), None
    )


# -- the receiver ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    at: float  # time.monotonic() when the request's headers were in
    path: str
    json: Any


class TimedReceiver(WebhookReceiver):
    """tests/peers/webhook.py's receiver, also stamping each request's arrival (monotonic clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[Arrival] = []

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        at = time.monotonic()
        body = await request.read()  # aiohttp keeps the body: the recorder reads it again
        try:
            parsed = msgspec.json.decode(body) if body else None
        except msgspec.DecodeError:
            parsed = None
        with self._lock:
            self.arrivals.append(Arrival(at, request.path, parsed))
        return await super()._handle(request)

    def arrivals_since(self, index: int, path: str) -> list[Arrival]:
        with self._lock:
            return [a for a in self.arrivals[index:] if a.path == path]


# -- the portal ------------------------------------------------------------------------------


class _Quiet(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"portal\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class PortalTarget:
    """An HTTP server on a fixed 127.0.0.1 port; ``stop()`` closes the port (refused), ``start()`` reopens it."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _Quiet)  # allow_reuse_address: rebinding is fine
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self._server = None


# -- the zonewatch side ------------------------------------------------------------------------


def server_config(port: int, work: Path, database_url: str, broker_port: int, receiver_url: str,
                  resolve_hold: float | None) -> str:
    """Defaults everywhere but where things are, and one route to the webhook receiver."""
    hold = "" if resolve_hold is None else f"resolve_hold = {resolve_hold}\n"
    return f"""\
[server]
port = {port}
data_dir = "{work / "data"}"

[database]
url = "{database_url}"

[mqtt]
url = "mqtt://127.0.0.1:{broker_port}"
client_id = "bench-alert-server"

[alerts]
public_url = "http://127.0.0.1:{port}"
{hold}
[[alerts.routes]]
receivers = ["oncall"]

[receivers.oncall]
kind = "webhook"
url = "{receiver_url}"
"""


class Agent:
    """``python -m agent.cli run`` with a config that sets only where things are: every interval,
    keepalive and reconnect delay at its default unless ``options`` (``SECTION.KEY=VALUE``, VALUE in
    TOML, e.g. ``collectors.network.every=1``) change one."""

    def __init__(self, work: Path, device_id: str, broker_port: int, kiosk_process: str, cups_server: str,
                 printers: list[str], portal_url: str, options: Sequence[str] = ()) -> None:
        self.device_id = device_id
        self.dir = work / device_id
        self.dir.mkdir(parents=True)
        self.config = self.dir / "agent.toml"
        self.log = self.dir / "agent.log"
        printer_list = ", ".join(f'"{p}"' for p in printers)
        sections = {
            "agent": [f'device_id = "{device_id}"', f'data_dir = "{self.dir / "data"}"'],
            "mqtt": [f'url = "mqtt://127.0.0.1:{broker_port}"'],
            "collectors.kiosk": [f'process = "{kiosk_process}"'],
            "collectors.printer": [f'cups_server = "{cups_server}"', f"printers = [{printer_list}]"],
            "collectors.network": [],
        }
        for option in options:
            path, sep, value = option.partition("=")
            section, dot, key = path.strip().rpartition(".")
            if not (sep and dot and key and value.strip()):
                raise SystemExit(f"alert_latency: --agent-option {option!r} is not SECTION.KEY=VALUE")
            sections.setdefault(section, []).append(f"{key} = {value.strip()}")
        text = "".join(f"[{name}]\n" + "".join(line + "\n" for line in lines) + "\n"
                       for name, lines in sections.items())
        self.config.write_text(text + f'[[collectors.network.targets]]\nname = "portal"\nprobe = "http"\n'
                                      f'url = "{portal_url}"\n')
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUPS_")}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(self.config)],
                                         cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)

    def signal(self, sig: int) -> float:
        """Send ``sig``; the monotonic time just before it was sent."""
        at = time.monotonic()
        os.kill(self.proc.pid, sig)
        return at

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


def add_zones(database_url: str, zones: dict[str, str]) -> None:
    """A fresh database with one zone per ``{zone code: kiosk device id}``, always open."""
    from server.admin import add_device, add_zone
    from server.db import make_engine, upgrade

    engine = make_engine(database_url)
    upgrade(engine)
    with Session(engine) as session:
        for code, device in zones.items():
            add_zone(session, code, f"Bench {code}", "service_hall", region="Bench City / Bench District")
            add_device(session, device, code, "kiosk", name=device)
    engine.dispose()


class FleetView:
    """Reads the server's database: is a zone quiet (meets the rule, no incident open)?"""

    def __init__(self, database_url: str) -> None:
        from server.db import make_engine

        self.engine = make_engine(database_url)

    def quiet(self, zone_code: str) -> bool:
        from server.db.models import Incident, Zone

        with Session(self.engine) as session:
            zone = session.exec(select(Zone).where(Zone.code == zone_code)).one()
            busy = session.exec(select(Incident.id).where(Incident.zone_id == zone.id,
                                                          Incident.status != "resolved")).first()
            return zone.status == "meets" and busy is None

    def close(self) -> None:
        self.engine.dispose()
