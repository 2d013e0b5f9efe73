"""Publishes retained desired-state messages: one short MQTT connection per batch, QoS 1, every PUBACK awaited.

The ingest link lives in its own process and only receives; desired state is rare (a rollout, a cancel), so
a connection of its own per batch is simpler than a channel into that process, and a failure is reported to
the admin who asked instead of being queued out of sight. An empty payload clears a device's retained
message. Blocking: call it in a worker thread.
"""

from __future__ import annotations

import ssl
import threading
import uuid
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol import Topics

from ..settings import Settings
from .rollouts import Outgoing


class PublishFailed(Exception):
    """The broker could not be reached or refused; the message says what to check."""


def publish_desired(settings: Settings, messages: list[Outgoing], timeout: float = 30.0, *,
                    kind: str = "desired") -> None:
    """Publish on each device's ``desired`` topic (retained), or with ``kind="run"`` its command topic (not
    retained: a one-shot command must not reach a device again when it reconnects)."""
    if not messages:
        return
    m = settings.mqtt
    url = urlsplit(m.url)
    tls = url.scheme == "mqtts"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{m.client_id}-desired-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    if m.username:
        client.username_pw_set(m.username, settings.mqtt_password())
    if tls:
        client.tls_set_context(ssl.create_default_context(cafile=m.ca_file))
    done = threading.Condition()
    state: dict = {"connected": None, "acked": set(), "refused": []}

    def on_connect(client, userdata, flags, reason, properties):
        with done:
            state["connected"] = not reason.is_failure
            state["why"] = str(reason)
            done.notify_all()

    def on_publish(client, userdata, mid, reason, properties):
        with done:
            state["acked"].add(mid)
            if getattr(reason, "is_failure", False):
                state["refused"].append(str(reason))
            done.notify_all()

    client.on_connect, client.on_publish = on_connect, on_publish
    where = f"{url.scheme}://{url.hostname}:{url.port or (8883 if tls else 1883)}"
    try:
        client.connect(url.hostname or "127.0.0.1", url.port or (8883 if tls else 1883), keepalive=30)
    except OSError as exc:
        raise PublishFailed(f"cannot reach the broker at {where} ({exc}); the rollout is saved: cancel it or "
                            "create it again when the broker is back") from None
    client.loop_start()
    try:
        with done:
            if not done.wait_for(lambda: state["connected"] is not None, timeout) or not state["connected"]:
                raise PublishFailed(f"the broker at {where} refused the server's connection "
                                    f"({state.get('why', 'no answer')}); check [mqtt] username/password")
        topics = Topics(m.topic_prefix)
        mids = [client.publish(topics.command(o.device_id, kind), o.payload, qos=1, retain=kind == "desired").mid
                for o in messages]
        with done:
            if not done.wait_for(lambda: all(mid in state["acked"] for mid in mids), timeout):
                raise PublishFailed(f"the broker at {where} did not confirm every desired-state message within "
                                    f"{timeout:g} s")
        if state["refused"]:
            raise PublishFailed(f"the broker refused {len(state['refused'])} desired-state messages "
                                f"({state['refused'][0]}); the server's broker user needs write access to "
                                f"{m.topic_prefix}/cmd/#")
    finally:
        client.disconnect()
        client.loop_stop()
