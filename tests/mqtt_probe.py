"""A small blocking MQTT 3.1.1 client for security tests: connect as someone, try to publish or subscribe, and
see what the broker did. A real paho client on a real broker, nothing mocked.

MQTT 3.1.1 on purpose: mosquitto answers a denied publish with a normal PUBACK there (under MQTT 5 it
disconnects the client after reason 135), so one probe can try a forbidden topic and then a permitted one.
"""

from __future__ import annotations

import ssl
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

TIMEOUT = 10.0


class Probe:
    def __init__(self, port: int, username: str | None = None, password: str | None = None, *,
                 tls: ssl.SSLContext | None = None, client_id: str | None = None) -> None:
        self.port = port
        self.messages: list[tuple[str, bytes]] = []
        self.connack = threading.Event()
        self.disconnected = threading.Event()
        self.reason: int | None = None
        self._cond = threading.Condition()
        self._acked: set[int] = set()
        self._granted: dict[int, list[int]] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"probe-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311)
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls is not None:
            self.client.tls_set_context(tls)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.disconnected.set()
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def connect(self) -> int:
        """0 when the broker accepted us, else its CONNACK code (5: not authorised). Raises for TLS failures."""
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        if not self.connack.wait(TIMEOUT) and not self.disconnected.is_set():
            raise TimeoutError("no CONNACK within 10 s")
        return self.reason if self.reason is not None else -1

    def publish(self, topic: str, payload: bytes = b"{}") -> None:
        info = self.client.publish(topic, payload, qos=1)
        with self._cond:
            if not self._cond.wait_for(lambda: info.mid in self._acked or self.disconnected.is_set(), TIMEOUT):
                raise TimeoutError(f"no PUBACK for {topic}")

    def subscribe(self, topic: str) -> list[int]:
        """The granted QoS per filter (128: refused)."""
        _, mid = self.client.subscribe(topic, qos=1)
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._granted, TIMEOUT):
                raise TimeoutError(f"no SUBACK for {topic}")
            return self._granted[mid]

    def wait_for(self, topic: str, timeout: float = TIMEOUT) -> list[tuple[str, bytes]]:
        """Every message received up to and including the first on ``topic``."""
        with self._cond:
            if not self._cond.wait_for(lambda: any(t == topic for t, _ in self.messages), timeout):
                raise TimeoutError(f"nothing on {topic} within {timeout:g} s; got {[t for t, _ in self.messages]}")
            end = next(i for i, (t, _) in enumerate(self.messages) if t == topic)
            return self.messages[:end + 1]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho's thread ---------------------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.reason = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
        self.connack.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._cond:
            self._acked.add(mid)
            self._cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._cond:
            self._granted[mid] = [rc.value for rc in reason_codes]
            self._cond.notify_all()

    def _on_message(self, client, userdata, message) -> None:
        with self._cond:
            self.messages.append((message.topic, bytes(message.payload)))
            self._cond.notify_all()
