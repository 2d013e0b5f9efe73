"""Topic builders and parser."""

from __future__ import annotations

import pytest

from protocol import ProtocolError, TopicInfo, Topics, check_device_id


def test_builders_and_parser_agree():
    t = Topics()
    assert t.report("kiosk-1") == "zw/v1/dev/kiosk-1/report"
    assert t.run("kiosk-1") == "zw/v1/cmd/kiosk-1/run"
    assert t.parse("zw/v1/dev/kiosk-1/report") == TopicInfo("dev", "kiosk-1", "report")
    assert t.parse(t.desired("a.b_c-9")) == TopicInfo("cmd", "a.b_c-9", "desired")
    assert t.all_devices("presence") == "zw/v1/dev/+/presence"
    assert t.commands_for("kiosk-1") == "zw/v1/cmd/kiosk-1/#"


def test_configurable_prefix():
    t = Topics("city/zw")
    assert t.ack("k") == "city/zw/dev/k/ack"
    assert t.parse("city/zw/dev/k/ack").kind == "ack"
    with pytest.raises(ProtocolError, match="not under the prefix"):
        t.parse("zw/v1/dev/k/ack")


@pytest.mark.parametrize("prefix", ["", "/zw", "zw/", "zw//v1", "zw/+", "zw/#"])
def test_bad_prefix_refused(prefix):
    with pytest.raises(ProtocolError, match="prefix"):
        Topics(prefix)


@pytest.mark.parametrize("device_id", ["", "-lead", ".x", "a/b", "a+b", "a#", "a b", "é", "x" * 65, None, 5])
def test_unsafe_device_ids_refused(device_id):
    with pytest.raises(ProtocolError) as info:
        check_device_id(device_id)
    assert info.value.field == "device_id"
    with pytest.raises(ProtocolError):
        Topics().report(device_id)  # type: ignore[arg-type]


@pytest.mark.parametrize("topic,words", [
    ("zw/v1/dev/k1", "expected"),
    ("zw/v1/dev/k1/report/extra", "expected"),
    ("zw/v1/xyz/k1/report", "unknown direction"),
    ("zw/v1/dev/k1/desired", "unknown dev message kind"),
    ("zw/v1/cmd/k1/report", "unknown cmd message kind"),
    ("zw/v1/dev/+/report", "device id"),
    ("other/dev/k1/report", "prefix"),
])
def test_bad_topics_refused_with_reason(topic, words):
    with pytest.raises(ProtocolError, match=words) as info:
        Topics().parse(topic)
    assert info.value.topic == topic
