"""A private DNS server (dnsmasq) on 127.0.0.1 for the network collector's dns probes.

Fixture:

- ``dns_resolver`` (session): a started :class:`Dnsmasq` serving the names in ``RECORDS``,
  with ``.port``, ``.address`` (``"127.0.0.1:PORT"``, what a target's ``resolver`` takes) and
  ``.names`` ({name: address}). Any other name gets NXDOMAIN at once: there is no upstream
  (``--no-resolv``) and ``--address=/#/`` makes every unknown domain non-existent.

Seen running dnsmasq 2.90: ``--address=/name/IPv4`` answers NXDOMAIN (not NODATA) to an AAAA
query for that name, while ``--host-record`` answers NODATA; both styles are served here, so
the collector is tested against both. Started as root, dnsmasq drops to ``nobody`` after binding
and writing its pid file; it logs to stderr (``--log-facility=-``), which goes to ``dnsmasq.log``.
"""

from __future__ import annotations

import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest

from tests.peers._util import free_port, require_binary, stop_process, wait_for

HOST = "127.0.0.1"
START_TIMEOUT = 10.0

#: Names served and how: ("address", ...) via --address=/name/ip, ("host", ...) via --host-record.
RECORDS: dict[str, tuple[str, str]] = {
    "portal.zonewatch.test": ("address", "127.0.0.1"),
    "printer.zonewatch.test": ("host", "127.0.0.2"),
    "moved.zonewatch.test": ("host", "127.0.0.9"),
}


def _udp_free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (dnsmasq binds both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for both TCP and UDP on 127.0.0.1")


def _answers(port: int, name: str = "portal.zonewatch.test") -> bool:
    """Whether a DNS server on the port answers an A query (a raw UDP query, no dnspython)."""
    query = struct.pack("!6H", 0x5A57, 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack("!2H", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.sendto(query, (HOST, port))
        try:
            reply = s.recv(512)
        except TimeoutError:
            return False
    return reply[:2] == query[:2]


class Dnsmasq:
    """One private dnsmasq on 127.0.0.1 with fixed records and no upstream."""

    host = HOST

    def __init__(self, workdir: Path, records: dict[str, tuple[str, str]] | None = None) -> None:
        self.binary = require_binary("dnsmasq", "dnsmasq-base")
        self.workdir = Path(workdir)
        self.records = dict(RECORDS if records is None else records)
        self.port = _udp_free_port()
        self.log_path = self.workdir / "dnsmasq.log"
        self.pid_path = self.workdir / "dnsmasq.pid"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def names(self) -> dict[str, str]:
        """name -> the IPv4 address it resolves to."""
        return {name: address for name, (_, address) in self.records.items()}

    def command(self) -> list[str]:
        args = [
            self.binary, "--keep-in-foreground", f"--port={self.port}", f"--listen-address={self.host}",
            "--bind-interfaces", "--no-resolv", "--no-hosts", "--no-poll", "--conf-file=/dev/null",
            f"--pid-file={self.pid_path}", "--log-facility=-", "--log-queries",
        ]
        for name, (style, address) in self.records.items():
            args.append(f"--address=/{name}/{address}" if style == "address" else f"--host-record={name},{address}")
        args.append("--address=/#/")  # every other name: NXDOMAIN
        return args

    def start(self) -> Self:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=self.workdir)
        try:
            wait_for(lambda: _answers(self.port), START_TIMEOUT, f"dnsmasq on {self.address}", self.proc,
                     self.log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __repr__(self) -> str:
        state = "running" if self.proc is not None and self.proc.poll() is None else "stopped"
        return f"<Dnsmasq {self.address} {state}>"


@pytest.fixture(scope="session")
def dns_resolver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dnsmasq]:
    """A private dnsmasq on 127.0.0.1 serving ``RECORDS``; NXDOMAIN for everything else."""
    server = Dnsmasq(tmp_path_factory.mktemp("dnsmasq"))
    try:
        yield server.start()
    finally:
        server.stop()
