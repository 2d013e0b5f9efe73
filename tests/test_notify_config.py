"""Receivers from TOML: every kind registered and documented, bad options named by their key."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from server.errors import ConfigError
from server.notify import REGISTRY, build_receiver, notifier_class, parse_receivers, sample
from server.notify.delivery import DeliveryOptions, backoff

DOCS = Path(__file__).resolve().parent.parent / "docs" / "alert-routing.md"

GOOD_TOML = """
[receivers.ops-bridge]
kind = "webhook"
url = "http://127.0.0.1:9/hook"
secret = "s"
headers = ["Authorization: Bearer abc"]

[receivers.oncall-mail]
kind = "email"
host = "127.0.0.1"
port = 2525
security = "none"
sender = "zonewatch <zw@example.gov.cn>"
to = ["a@example.gov.cn", "b@example.gov.cn"]

[receivers.haidian-dingtalk]
kind = "dingtalk"
url = "http://127.0.0.1:9/robot/send?access_token=t"
secret = "SECabc"
at_mobiles = ["13800000000"]

[receivers.haidian-wecom]
kind = "wecom"
key = "k-1"
base_url = "http://127.0.0.1:9/cgi-bin/webhook/send"

[receivers.haidian-feishu]
kind = "feishu"
url = "http://127.0.0.1:9/open-apis/bot/v2/hook/x"
msg_type = "post"
send_resolved = false
timeout = 3
"""


def receivers_from(text: str):
    return parse_receivers(msgspec.toml.decode(text.encode())["receivers"], "zonewatch.toml")


def test_a_config_with_every_kind_builds() -> None:
    receivers = receivers_from(GOOD_TOML)
    assert {name: r.kind for name, r in receivers.items()} == {
        "ops-bridge": "webhook", "oncall-mail": "email", "haidian-dingtalk": "dingtalk",
        "haidian-wecom": "wecom", "haidian-feishu": "feishu"}
    feishu = receivers["haidian-feishu"].notifier.options
    assert (feishu.send_resolved, feishu.timeout, feishu.msg_type) == (False, 3.0, "post")


@pytest.mark.parametrize(("name", "kind", "options", "key", "words"), [
    ("hook", "webhook", {}, "receivers.hook.url", "required key is missing"),
    ("hook", "webhook", {"url": "ftp://x"}, "receivers.hook.url", "'ftp://x' is not an URL like http(s)://"),
    ("hook", "webhook", {"url": "http://x/", "retries": 3}, "receivers.hook.retries", "unknown key"),
    ("hook", "webhook", {"url": "http://x/", "headers": ["no colon"]}, "receivers.hook.headers[0]",
     "'no colon' is not a header line like 'Authorization: Bearer …'"),
    ("hook", "webhook", {"url": "http://x/", "secret": "a", "secret_file": "/x"}, "receivers.hook.secret", "not both"),
    ("hook", "webhook", {"url": "http://x/", "secret_file": "/nonexistent/s"}, "receivers.hook.secret_file",
     "cannot read /nonexistent/s"),
    ("hook", "webhook", {"url": "http://x/", "timeout": 0}, "receivers.hook.timeout", "> 0"),
    ("mail", "email", {"sender": "zw@x.org", "to": []}, "receivers.mail.to", "length >= 1"),
    ("mail", "email", {"sender": "zw@x.org", "to": ["a@b.c"], "port": "twenty"}, "receivers.mail.port",
     "expected int"),
    ("mail", "email", {"sender": "zw@x.org", "to": ["a@b.c"], "security": "tls"}, "receivers.mail.security",
     "use one of 'none', 'ssl', 'starttls'"),
    ("mail", "email", {"sender": "zw@x.org", "to": ["a@b.c"], "host": "smtp.x.org", "security": "none",
                       "username": "u", "password": "p"}, "receivers.mail.security", "password in clear"),
    ("mail", "email", {"sender": "zw@x.org", "to": ["a@b.c"], "password": "p"}, "receivers.mail.username",
     "no username"),
    ("mail", "email", {"sender": "not an address", "to": ["a@b.c"]}, "receivers.mail.sender", "not an address"),
    ("ding", "dingtalk", {"url": "http://x/", "at_mobiles": ["call me"]}, "receivers.ding.at_mobiles[0]",
     "'call me' is not a mobile number"),
    ("mail", "email", {"sender": "zw@x.org", "to": ["Boss <b@x.org>"]}, "receivers.mail.to[0]", "a plain address"),
    ("wecom", "wecom", {"key": "k", "base_url": "http://x/send?key=k"}, "receivers.wecom.base_url", "no ?query"),
    ("wecom", "wecom", {}, "receivers.wecom.key", "required"),
    ("fs", "feishu", {"url": "http://x/", "msg_type": "card"}, "receivers.fs.msg_type", "'interactive'"),
    ("fs", "pager", {}, "receivers.fs.kind", "unknown receiver kind 'pager'; known kinds: dingtalk, email"),
    ("a b", "webhook", {"url": "http://x/"}, "receivers.a b", "receiver name"),
])
def test_bad_options_name_the_key(name: str, kind: str, options: dict, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_receiver(name, kind, options, "zonewatch.toml")
    assert caught.value.key == key
    assert words in caught.value.problem
    assert str(caught.value).startswith(f"zonewatch.toml: {key}: ")


def test_a_receiver_without_kind_is_named() -> None:
    with pytest.raises(ConfigError, match=r"receivers\.x\.kind: required: one of dingtalk, email, feishu"):
        receivers_from('[receivers.x]\nurl = "http://x/"\n')


def test_secret_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("SECfromfile\n")
    receiver = build_receiver("d", "dingtalk", {"url": "http://x/", "secret_file": str(tmp_path / "s")})
    assert receiver.notifier._secret == "SECfromfile"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty; put the secret on its first line"):
        build_receiver("d", "dingtalk", {"url": "http://x/", "secret_file": str(tmp_path / "empty")})


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_every_option_is_documented_and_the_sample_is_valid(kind: str) -> None:
    text = sample(kind, "example")  # raises LookupError for an option without a #: comment
    table = msgspec.toml.decode(text.encode())
    assert table["receivers"]["example"]["kind"] == kind
    if kind != "email":  # the email sample needs no live file; the others are complete as shown
        assert notifier_class(kind).name == kind


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_the_receivers_doc_lists_every_option(kind: str) -> None:
    doc = DOCS.read_text()
    section = doc.split("## Receivers", 1)[1]
    for field in msgspec.structs.fields(notifier_class(kind).Options):
        assert re.search(rf"`{field.name}`", section), f"docs/alert-routing.md does not explain {kind}.{field.name}"


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_the_receivers_doc_has_the_generated_sample(kind: str) -> None:
    assert sample(kind, f"example-{kind}") in DOCS.read_text(), (
        f"docs/alert-routing.md: the [receivers.example-{kind}] sample differs from the code; "
        "regenerate it as the doc says")


def test_the_receivers_doc_lists_every_delivery_option() -> None:
    section = DOCS.read_text().split("### Delivery and retries", 1)[1]
    for field in msgspec.structs.fields(DeliveryOptions):
        assert f"`{field.name}`" in section


def test_backoff_doubles_up_to_the_cap_and_jitter_only_shortens() -> None:
    o = DeliveryOptions(first_delay=2, max_delay=30, jitter=0.5)
    assert [backoff(o, n, rand=lambda: 0.0) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]
    assert [backoff(o, n, rand=lambda: 1.0) for n in range(1, 4)] == [1, 2, 4]
