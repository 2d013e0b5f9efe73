"""A real MQTT subscriber for tests: records every message it gets, with a persistent session.

Not a mock: a paho client on a real broker, standing where the server will stand.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol import decode


@dataclass
class Received:
    topic: str
    payload: bytes
    retained: bool
    at: float  # time.time() when it arrived

    @property
    def message(self):
        return decode(self.topic, self.payload).message


class Recorder:
    def __init__(self, port: int, topic: str = "zw/v1/#", *, client_id: str | None = None,
                 username: str | None = None, password: str | None = None) -> None:
        self.port, self.topic = port, topic
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"rec-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.reconnect_delay_set(0.1, 0.5)
        if username:
            self.client.username_pw_set(username, password)

    def start(self) -> Recorder:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600  # keep our session (and queued messages) across broker restarts
        self.client.connect("127.0.0.1", self.port, keepalive=5, clean_start=False, properties=props)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("recorder did not subscribe within 10 s")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain), time.time()))
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[Received], bool], timeout: float = 10.0, what: str = "message") -> Received:
        """The first recorded message (old or new) matching predicate, waiting for it if needed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages:
                    if predicate(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {what} within {timeout} s; got {len(self.messages)} messages")
                self._cond.wait(left)

    def wait_until(self, condition: Callable[[list[Received]], bool], timeout: float = 10.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not condition(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"condition {what!r} not met within {timeout} s")
                self._cond.wait(left)

    def reports(self, device_id: str) -> list:
        with self._cond:
            return [m.message for m in self.messages if m.topic.endswith(f"/dev/{device_id}/report")]
