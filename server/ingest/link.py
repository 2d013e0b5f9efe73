"""The server's MQTT link: a persistent session, manual acknowledgement, reconnects.

paho-mqtt (MQTT 5) with ``manual_ack=True``: a message is acknowledged only when the writer
has committed it (FACTS.md: aiomqtt has no manual ack). ``clean_start=False`` with a session
expiry keeps the subscription and the unacknowledged messages at the broker while the server
is down, so they are delivered when it comes back.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol import Topics

from ..settings import Settings
from .writer import Incoming

log = logging.getLogger("zonewatch.mqtt")
KINDS = ("report", "presence", "ack")


class BrokerLink:
    def __init__(self, settings: Settings, deliver: Callable[[Incoming], None], receive_maximum: int = 8000) -> None:
        self.settings = settings
        self.deliver = deliver
        self.receive_maximum = receive_maximum
        self.topics = Topics(settings.mqtt.topic_prefix)
        self.connected = False
        self.last_error: str | None = None
        self.connected_since: float | None = None
        self.connection = 0
        url = urlsplit(settings.mqtt.url)
        self.host, self.port, self.tls = url.hostname or "127.0.0.1", url.port, url.scheme == "mqtts"
        self.port = self.port or (8883 if self.tls else 1883)
        self.client = self._client()

    def _client(self) -> mqtt.Client:
        m = self.settings.mqtt
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=m.client_id, protocol=mqtt.MQTTv5,
                             manual_ack=True)
        if m.username:
            client.username_pw_set(m.username, self.settings.mqtt_password())
        if self.tls:
            client.tls_set(ca_certs=m.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(1, 30)
        client.max_inflight_messages_set(100)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    @property
    def where(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.mqtt.session_expiry
        props.ReceiveMaximum = self.receive_maximum
        self.client.connect_async(self.host, self.port, keepalive=self.settings.mqtt.keepalive,
                                  clean_start=False, properties=props)
        self.client.loop_start()
        log.info("connecting to the broker at %s as %r", self.where, self.settings.mqtt.client_id)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.connected = False

    def ack(self, item: Incoming) -> None:
        """Acknowledge a committed message, unless it came on an earlier connection.

        Message ids are per connection: after a reconnect the broker redelivers what was not
        acknowledged (and the writer stores it once), while an id from the old connection may now
        belong to another message — acknowledging it would lose that one.
        """
        if item.qos and item.connection == self.connection:
            self.client.ack(item.mid, item.qos)

    # -- paho callbacks (its thread) -------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            self.last_error = f"broker at {self.where} refused the connection: {reason}"
            log.error("%s; check mqtt.username / mqtt.password in the server config", self.last_error)
            return
        self.connected, self.connected_since, self.last_error = True, time.time(), None
        self.connection += 1
        log.info("connected to the broker at %s (session %s)", self.where,
                 "resumed" if flags.session_present else "new")
        client.subscribe([(self.topics.all_devices(kind), 1) for kind in KINDS])

    def _on_subscribe(self, client, userdata, mid, reasons, properties) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            self.last_error = f"broker refused the subscriptions: {', '.join(failed)}"
            log.error("%s; the server's broker user needs read access to %s", self.last_error,
                      self.topics.all_devices("#"))

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        self.connected = False
        if reason != 0 and not (hasattr(reason, "is_failure") and not reason.is_failure and reason.value == 0):
            self.last_error = f"lost the broker at {self.where}: {reason}"
            log.warning("%s; reconnecting", self.last_error)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        self.deliver(Incoming(message.mid, message.qos, message.topic, message.payload, time.time(),
                              self.connection))
