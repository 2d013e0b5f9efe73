"""Smoke tests for the private mosquitto broker fixtures (tests/peers/mosquitto.py)."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.peers.mosquitto import Mosquitto, MosquittoFactory, write_password_file

pytestmark = pytest.mark.peer

TIMEOUT = 10.0


class Peer:
    """A paho client that records connects, disconnects, messages and publish acks.

    It never reconnects by itself: once the broker drops it, it stays disconnected.
    """

    def __init__(self, broker: Mosquitto, client_id: str, *, username: str | None = None,
                 password: str | None = None, protocol: int = mqtt.MQTTv5) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=protocol, reconnect_on_failure=False)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.broker = broker
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.disconnected = threading.Event()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.acks: dict[int, ReasonCode] = {}
        self.acked = threading.Condition()
        self.client.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.client.on_disconnect = lambda c, u, f, rc, p: self.disconnected.set()
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_publish = self._on_publish

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, rc: ReasonCode,
                    props: object) -> None:
        with self.acked:
            self.acks[mid] = rc
            self.acked.notify_all()

    def connect(self) -> ReasonCode:
        """Connect and return the CONNACK reason code; the network loop stops on refusal."""
        self.client.connect(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        rc = self.connack.get(timeout=TIMEOUT)
        if rc.is_failure:
            self.close()
        return rc

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, rcs, p: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(TIMEOUT), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> ReasonCode:
        """Publish at QoS 1 and return the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self.acked:
            assert self.acked.wait_for(lambda: info.mid in self.acks, TIMEOUT), "no PUBACK"
            return self.acks[info.mid]

    def next_message(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=TIMEOUT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    """Every Peer a test appends here is disconnected after it."""
    made: list[Peer] = []
    yield made
    for peer in made:
        peer.close()


def connected(peers: list[Peer], broker: Mosquitto, client_id: str, **kw: object) -> Peer:
    peer = Peer(broker, client_id, **kw)  # type: ignore[arg-type]
    peers.append(peer)
    rc = peer.connect()
    assert not rc.is_failure, f"{client_id} refused: {rc}"
    return peer


def test_qos1_message_reaches_subscriber(mosquitto: Mosquitto, peers: list[Peer]) -> None:
    topic = f"zw/test/{uuid.uuid4().hex}"
    sub = connected(peers, mosquitto, "smoke-sub")
    sub.subscribe(topic)
    pub = connected(peers, mosquitto, "smoke-pub")
    assert not pub.publish(topic, b"hello").is_failure
    msg = sub.next_message()
    assert (msg.topic, msg.payload, msg.qos) == (topic, b"hello", 1)
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"


def test_retained_message_survives_restart(
    mosquitto_factory: MosquittoFactory, peers: list[Peer]
) -> None:
    broker = mosquitto_factory()
    port = broker.port
    pub = connected(peers, broker, "retain-pub")
    pub.publish("zw/v1/dev/kiosk-a/presence", b'{"online": true}', retain=True)
    pub.close()

    broker.restart()
    assert broker.port == port
    assert (broker.persistence_dir / "mosquitto.db").exists()

    sub = connected(peers, broker, "retain-sub")
    sub.subscribe("zw/v1/dev/+/presence")
    msg = sub.next_message()
    assert (msg.topic, msg.payload, msg.retain) == (
        "zw/v1/dev/kiosk-a/presence", b'{"online": true}', True)


ACL = """\
pattern write zw/v1/dev/%u/#
pattern read zw/v1/cmd/%u/#

user server
topic readwrite zw/v1/#
"""


def test_password_file_and_acl(
    mosquitto_factory: MosquittoFactory, peers: list[Peer], tmp_path: Path
) -> None:
    users = {"server": "s3rver", "kiosk-a": "pw-a", "kiosk-b": "pw-b"}
    passwd = write_password_file(tmp_path / "passwd", users)
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    broker = mosquitto_factory(password_file=passwd, acl_file=acl)

    server = connected(peers, broker, "server", username="server", password="s3rver")
    server.subscribe("zw/v1/dev/#")
    kiosk_a = connected(peers, broker, "kiosk-a", username="kiosk-a", password="pw-a",
                        protocol=mqtt.MQTTv311)

    # Its own topic: delivered to the server.
    kiosk_a.publish("zw/v1/dev/kiosk-a/report", b"own")
    msg = server.next_message()
    assert (msg.topic, msg.payload) == ("zw/v1/dev/kiosk-a/report", b"own")

    # Someone else's topic: never delivered. mosquitto 2.0.11 acknowledges a denied PUBLISH
    # (MQTT 3.1.1: plain PUBACK; MQTT 5: reason 135 "Not authorized") and then closes the
    # connection (upstream eclipse-mosquitto/mosquitto#2579). A marker from an allowed
    # client, sent after that PUBACK, proves the forged message was dropped.
    for protocol, expected_rc in ((mqtt.MQTTv311, 0), (mqtt.MQTTv5, 135)):
        forger = connected(peers, broker, f"kiosk-a-forger-{protocol}", username="kiosk-a",
                           password="pw-a", protocol=protocol)
        assert forger.publish("zw/v1/dev/kiosk-b/report", b"forged").value == expected_rc
        assert forger.disconnected.wait(TIMEOUT), "a denied publish no longer disconnects"
        forger.close()
        kiosk_a.publish("zw/v1/dev/kiosk-a/marker", b"marker")
        msg = server.next_message()
        assert (msg.topic, msg.payload) == ("zw/v1/dev/kiosk-a/marker", b"marker")

    # Wrong password and no password are refused at connect.
    for password in ("wrong", None):
        bad = Peer(broker, "kiosk-a-bad", username="kiosk-a", password=password)
        peers.append(bad)
        assert bad.connect().is_failure

    # Removing a user and reloading: its session is dropped and it cannot connect again;
    # the others stay connected.
    kiosk_b = connected(peers, broker, "kiosk-b", username="kiosk-b", password="pw-b")
    write_password_file(passwd, {u: p for u, p in users.items() if u != "kiosk-b"})
    broker.reload()
    assert kiosk_b.disconnected.wait(TIMEOUT), "kiosk-b stayed connected after removal"
    kiosk_b.close()
    again = Peer(broker, "kiosk-b-again", username="kiosk-b", password="pw-b")
    peers.append(again)
    assert again.connect().is_failure
    kiosk_a.publish("zw/v1/dev/kiosk-a/report", b"still here")
    assert server.next_message().payload == b"still here"
    assert not server.disconnected.is_set() and not kiosk_a.disconnected.is_set()
    assert server.messages.empty()
