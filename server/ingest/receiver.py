"""The broker link in its own process, so receiving MQTT and writing the database use two cores.

paho spends about 75 µs of CPU per QoS 1 message (FACTS.md) under the GIL; beside the writer in
one process that caps ingest near 6,000 reports/s here. The receiver process runs the
:class:`~server.ingest.link.BrokerLink` and passes raw messages to the server in chunks over a
pipe; the server sends back the ids to acknowledge once they are committed. Nothing is decoded
or trusted in the receiver. If it dies, the server starts a new one; whatever was not
acknowledged is redelivered by the broker (persistent session) and stored once by its key.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

import msgspec

from ..settings import Settings
from .writer import Incoming

log = logging.getLogger("zonewatch.mqtt")
FLUSH_EVERY = 0.002  # seconds between chunks sent to the server
CHUNK_MAX = 2000


def receiver_main(settings_raw: dict, pipe: Connection, log_level: str) -> None:
    """Entry point of the receiver process."""
    from .link import BrokerLink

    logging.basicConfig(level=getattr(logging, log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s[receiver]: %(message)s")
    settings = msgspec.convert(settings_raw, Settings)
    buffer: list[tuple] = []
    lock = threading.Lock()
    send_lock = threading.Lock()
    stopping = threading.Event()

    def deliver(item: Incoming) -> None:
        with lock:
            buffer.append((item.mid, item.qos, item.topic, item.payload, item.received_at, item.connection))

    link = BrokerLink(settings, deliver)

    def send(message) -> None:
        with send_lock:
            pipe.send(message)

    def flusher() -> None:
        status = None
        while not stopping.is_set():
            time.sleep(FLUSH_EVERY)
            with lock:
                chunk = buffer[:CHUNK_MAX]
                del buffer[:CHUNK_MAX]
            if chunk:
                send(("messages", chunk))
            now_status = (link.connected, link.last_error, link.connection)
            if now_status != status:
                status = now_status
                send(("status", *now_status))

    link.start()
    threading.Thread(target=flusher, daemon=True, name="receiver-flush").start()
    try:
        while True:
            message = pipe.recv()
            if message[0] == "ack":
                for connection, mid, qos in message[1]:
                    link.ack(Incoming(mid, qos, "", b"", 0.0, connection))
            elif message[0] == "stop":
                break
    except (EOFError, OSError):
        pass  # the server went away: stop; the broker keeps the session
    finally:
        stopping.set()
        link.stop()


class ReceiverProcess:
    """The server-side handle: starts the receiver, feeds the writer, sends acks, restarts it if it dies."""

    def __init__(self, settings: Settings, deliver_many: Callable[[list[Incoming]], None]) -> None:
        self.settings = settings
        self.deliver_many = deliver_many
        self.connected = False
        self.last_error: str | None = "starting"
        self.connection = 0
        self.restarts = 0
        self.where = settings.mqtt.url
        self._stopping = False
        self._send_lock = threading.Lock()
        self._ctx = multiprocessing.get_context("spawn")
        self._pipe: Connection | None = None
        self._proc = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._pipe = parent
        self._proc = self._ctx.Process(
            target=receiver_main, name="zonewatch-receiver", daemon=True,
            args=(msgspec.to_builtins(self.settings), child, self.settings.server.log_level))
        self._proc.start()
        child.close()
        self._reader = threading.Thread(target=self._read, args=(parent,), daemon=True, name="receiver-read")
        self._reader.start()

    def _read(self, pipe: Connection) -> None:
        while True:
            try:
                message = pipe.recv()
            except (EOFError, OSError):
                break
            if message[0] == "messages":
                self.deliver_many([Incoming(*t) for t in message[1]])
            elif message[0] == "status":
                _, self.connected, self.last_error, self.connection = message
        self.connected = False
        if not self._stopping:
            self.restarts += 1
            self.last_error = "the receiver process died; started a new one"
            log.error("%s (restart %d); unacknowledged messages will be redelivered", self.last_error,
                      self.restarts)
            time.sleep(min(30, self.restarts))
            if not self._stopping:
                self.start()

    def ack_many(self, items: list[Incoming]) -> None:
        acks = [(i.connection, i.mid, i.qos) for i in items if i.qos]
        if acks and self._pipe is not None:
            try:
                with self._send_lock:
                    self._pipe.send(("ack", acks))
            except (OSError, ValueError):
                pass  # receiver gone: the broker redelivers, the writer stores once

    def stop(self) -> None:
        self._stopping = True
        if self._pipe is not None:
            try:
                with self._send_lock:
                    self._pipe.send(("stop",))
            except (OSError, ValueError):
                pass
        if self._proc is not None:
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(5)
        self.connected = False
