"""The agent's MQTT link: presence (birth, Last Will, clean goodbye), QoS 1 publishes whose
broker acknowledgement is reported by ``seq``, and server → device messages in.

paho-mqtt runs its network loop in its own thread; every event is handed to the agent's
asyncio loop with ``call_soon_threadsafe``, so all state lives on one thread. A report is
removed from the spool only when ``on_acked(seq)`` fires for it. After a reconnect the
sender republishes whatever is still spooled; the server stores by ``(device, seq)``, so a
report sent twice is stored once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol import Presence, Topics, encode

from . import __version__
from .config import AgentConfig

log = logging.getLogger("zonewatch.agent.link")
SESSION_EXPIRY = 7 * 86400  # the broker keeps our subscription and queued commands a week


class MqttLink:
    def __init__(self, config: AgentConfig, loop: asyncio.AbstractEventLoop, *,
                 on_up: Callable[[], None], on_down: Callable[[str], None],
                 on_acked: Callable[[int], None], on_message: Callable[[str, bytes, bool], None]) -> None:
        self.config = config
        self.device_id = config.agent.device_id
        self.topics = Topics(config.mqtt.topic_prefix)
        self.loop = loop
        self._on_up, self._on_down, self._on_acked, self._on_message = on_up, on_down, on_acked, on_message
        self.connected = False
        self._stopping = False
        self._failed_attempts = 0
        self._last_fail_log = 0.0
        self._inflight: dict[int, int] = {}  # mid -> seq, touched only on the loop thread
        self._client = self._make_client()

    # -- set-up ---------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        c = self.config.mqtt
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.device_id, protocol=mqtt.MQTTv5)
        if log.isEnabledFor(logging.DEBUG):
            client.enable_logger(logging.getLogger("zonewatch.agent.paho"))
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        if c.username:
            client.username_pw_set(c.username, self._password())
        if c.url.startswith("mqtts://"):
            context = ssl.create_default_context(cafile=c.ca_file)
            if c.cert_file:
                context.load_cert_chain(c.cert_file, c.key_file)
            client.tls_set_context(context)
        will = Presence(device_id=self.device_id, ts=time.time(), online=False, agent_version=__version__,
                        reason="connection lost")
        client.will_set(self.topics.presence(self.device_id), encode(will), qos=1, retain=True)
        client.reconnect_delay_set(c.reconnect_min, c.reconnect_max)
        client.on_connect = self._paho_connect
        client.on_disconnect = self._paho_disconnect
        client.on_connect_fail = self._paho_connect_fail
        client.on_publish = self._paho_publish
        client.on_message = self._paho_message
        return client

    def _password(self) -> str | None:
        c = self.config.mqtt
        if c.password_file:
            return Path(c.password_file).read_text().strip()
        return c.password

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        url = urlsplit(self.config.mqtt.url)
        port = url.port or (8883 if url.scheme == "mqtts" else 1883)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY
        self._client.connect_async(url.hostname, port, keepalive=self.config.mqtt.keepalive,
                                   clean_start=False, properties=props)
        self._client.loop_start()

    def stop(self, reason: str = "agent stopped", timeout: float = 3.0) -> None:
        """Say goodbye (retained offline presence, so no Last Will fires) and disconnect."""
        self._stopping = True
        if self.connected:
            bye = Presence(device_id=self.device_id, ts=time.time(), online=False, agent_version=__version__,
                           reason=reason)
            info = self._client.publish(self.topics.presence(self.device_id), encode(bye), qos=1, retain=True)
            deadline = time.monotonic() + timeout
            while not info.is_published() and time.monotonic() < deadline and self.connected:
                time.sleep(0.02)
        self._client.disconnect()
        self._client.loop_stop()

    # -- publishing (loop thread) ---------------------------------------------------------
    def publish_report(self, seq: int, payload: bytes) -> bool:
        """Publish a spooled report; ``on_acked(seq)`` follows the broker's PUBACK. False if down."""
        if not self.connected:
            return False
        info = self._client.publish(self.topics.report(self.device_id), payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        self._inflight[info.mid] = seq
        return True

    def publish_ack(self, payload: bytes) -> None:
        self._client.publish(self.topics.ack(self.device_id), payload, qos=1)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # -- paho callbacks (paho's thread) → loop thread -------------------------------------
    def _paho_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker %s refused the connection: %s — check mqtt.username and the password "
                      "for this device", self.config.mqtt.url, reason_code)
            self._jitter()
            return
        birth = Presence(device_id=self.device_id, ts=time.time(), online=True, agent_version=__version__,
                         interval_s=self.config.agent.interval)
        client.publish(self.topics.presence(self.device_id), encode(birth), qos=1, retain=True)
        client.subscribe(self.topics.commands_for(self.device_id), qos=1)
        self.loop.call_soon_threadsafe(self._up)

    def _paho_connect_fail(self, client, userdata) -> None:
        self._jitter()
        self.loop.call_soon_threadsafe(self._connect_failed)

    def _paho_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._jitter()
        self.loop.call_soon_threadsafe(self._down, str(reason_code))

    def _paho_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.loop.call_soon_threadsafe(self._acked, mid, reason_code)

    def _paho_message(self, client, userdata, message) -> None:
        self.loop.call_soon_threadsafe(self._on_message, message.topic, bytes(message.payload), bool(message.retain))

    def _jitter(self) -> None:
        """Spread reconnects of a whole fleet after a broker restart: randomise the back-off start."""
        c = self.config.mqtt
        self._client.reconnect_delay_set(round(c.reconnect_min * random.uniform(1.0, 2.0), 3), c.reconnect_max)

    # -- loop thread ----------------------------------------------------------------------
    def _connect_failed(self) -> None:
        """Say so, with the cause, at the first failed attempt and then once a minute, not at every retry."""
        self._failed_attempts += 1
        now = time.monotonic()
        if self._failed_attempts == 1 or now - self._last_fail_log >= 60:
            self._last_fail_log = now
            attempts = self._failed_attempts
            future = self.loop.run_in_executor(None, self._diagnose)
            future.add_done_callback(lambda f: log.warning(
                "cannot reach the broker at %s (attempt %d): %s; retrying with back-off up to %g s, reports stay "
                "spooled", self.config.mqtt.url, attempts, f.result(), self.config.mqtt.reconnect_max))

    def _diagnose(self) -> str:
        """Why a connection fails, found by one plain connection attempt (paho does not say)."""
        url = urlsplit(self.config.mqtt.url)
        tls = url.scheme == "mqtts"
        try:
            with socket.create_connection((url.hostname, url.port or (8883 if tls else 1883)), timeout=5) as sock:
                if tls:
                    context = ssl.create_default_context(cafile=self.config.mqtt.ca_file)
                    with context.wrap_socket(sock, server_hostname=url.hostname):
                        pass
        except ssl.SSLCertVerificationError as exc:
            return (f"the broker's TLS certificate is not trusted ({exc.verify_message}); set mqtt.ca_file to the CA "
                    "that signed it")
        except (OSError, ssl.SSLError) as exc:
            return f"{exc.strerror or exc}" if isinstance(exc, OSError) and exc.strerror else str(exc)
        except Exception as exc:  # a diagnostic must never take the agent down
            return f"{type(exc).__name__}: {exc}"
        return "the connection itself works now (it failed during the MQTT handshake)"

    def _up(self) -> None:
        if self._failed_attempts:
            log.info("broker reachable again after %d failed attempts", self._failed_attempts)
        self._failed_attempts = 0
        self.connected = True
        self._inflight.clear()
        log.info("connected to %s", self.config.mqtt.url)
        self._on_up()

    def _down(self, reason: str) -> None:
        was = self.connected
        self.connected = False
        self._inflight.clear()  # still spooled; republished after the reconnect
        if was and not self._stopping:
            log.warning("lost the broker connection (%s); reports stay spooled until it is back", reason)
        self._on_down(reason)

    def _acked(self, mid: int, reason_code) -> None:
        seq = self._inflight.pop(mid, None)
        if seq is None:
            return
        if getattr(reason_code, "is_failure", False):
            log.error("broker refused report seq %d: %s — it stays spooled; check this device's ACL", seq, reason_code)
            return
        self._on_acked(seq)
