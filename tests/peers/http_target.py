"""A real HTTP(S) server on 127.0.0.1 whose answers a test sets: the "portal" a kiosk must reach.

Fixtures:

- ``http_target`` (function): a started plain-HTTP :class:`HttpTarget`.
- ``https_target`` (function): the same over TLS, with a self-signed certificate for the
  IP address 127.0.0.1 (``.ca_file`` is the PEM that verifies it).
- ``tls_cert`` (session): ``(cert_file, key_file)`` made once with ``openssl`` (Debian ``openssl``).

``target.set(status=503)``, ``target.set(delay=0.4)`` (seconds before the response headers),
``target.set(status=302, location="/login")``. Every request is counted in ``.requests`` (paths).
A delayed answer wakes up at once when the server stops, so teardown never waits on it.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

import pytest

from tests.peers._util import require_binary

HOST = "127.0.0.1"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        target = self.server.target
        with target.lock:
            status, delay, location, body = target.status, target.delay, target.location, target.body
            target.requests.append(self.path)
        if delay and target.stopping.wait(delay):
            return
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    target: HttpTarget

    def handle_error(self, request, client_address) -> None:  # a probe hanging up early is normal
        pass


class HttpTarget:
    """A stdlib HTTP server in a thread on a free 127.0.0.1 port."""

    def __init__(self, tls: tuple[Path, Path] | None = None) -> None:
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.status, self.delay, self.location, self.body = 200, 0.0, None, b"zonewatch test portal\n"
        self.requests: list[str] = []
        self._server = _Server((HOST, 0), _Handler)
        self._server.target = self
        self.ca_file: Path | None = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.ca_file = tls[0]
        self.scheme = "https" if tls else "http"
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"http-target-{self.port}",
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{HOST}:{self.port}/"

    def set(self, status: int | None = None, delay: float | None = None, location: str | None = None,
            body: bytes | None = None) -> None:
        """Change what the next requests get (only the arguments given)."""
        with self.lock:
            if status is not None:
                self.status = status
            if delay is not None:
                self.delay = delay
            if location is not None:
                self.location = location or None
            if body is not None:
                self.body = body

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __repr__(self) -> str:
        return f"<HttpTarget {self.url}>"


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for IP address 127.0.0.1 and its key (PEM files)."""
    openssl = require_binary("openssl", "openssl")
    workdir = tmp_path_factory.mktemp("tls")
    cert, key = workdir / "portal.crt", workdir / "portal.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=zonewatch test portal",
         "-addext", f"subjectAltName=IP:{HOST}", "-addext", "basicConstraints=critical,CA:TRUE"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def http_target() -> Iterator[HttpTarget]:
    """A plain-HTTP server on 127.0.0.1 answering 200 until a test says otherwise."""
    target = HttpTarget()
    try:
        yield target.start()
    finally:
        target.stop()


@pytest.fixture
def https_target(tls_cert: tuple[Path, Path]) -> Iterator[HttpTarget]:
    """The same over TLS with a self-signed certificate; ``.ca_file`` verifies it."""
    target = HttpTarget(tls=tls_cert)
    try:
        yield target.start()
    finally:
        target.stop()
