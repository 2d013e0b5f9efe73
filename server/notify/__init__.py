"""Notifiers: how on-call staff are told. Adding one is one module plus one line in ``REGISTRY``.

Receivers are configured in TOML, each a named table with its ``kind`` and that kind's options
(documented next to each notifier's code, in its ``Options`` Struct)::

    [receivers.oncall-mail]
    kind = "email"
    host = "smtp.example.gov.cn"
    sender = "zonewatch <zonewatch@example.gov.cn>"
    to = ["it-oncall@example.gov.cn"]

    [receivers.haidian-dingtalk]
    kind = "dingtalk"
    url = "https://oapi.dingtalk.com/robot/send?access_token=…"
    secret_file = "/etc/zonewatch/dingtalk.secret"

:func:`parse_receivers` validates such a table (errors name the key:
``receivers.oncall-mail.port: expected int``); the :class:`~server.notify.delivery.Dispatcher`
sends a :class:`Notice` to a list of :class:`Receiver`\\ s. Notifier modules are imported only when a
receiver of their kind is configured.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import msgspec.inspect as mi

from protocol.errors import explain_validation
from server.errors import ConfigError

from .base import Notice, Notifier, NotifyError, OptionError, ReceiverOptions

#: kind -> "module:Class". The kind is the ``kind = "…"`` of a ``[receivers.<name>]`` table.
REGISTRY: dict[str, str] = {
    "webhook": "server.notify.webhook:WebhookNotifier",
    "email": "server.notify.email:EmailNotifier",
    "dingtalk": "server.notify.dingtalk:DingTalkNotifier",
    "wecom": "server.notify.wecom:WeComNotifier",
    "feishu": "server.notify.feishu:FeishuNotifier",
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Receiver:
    """A configured notifier: its name in config (``oncall-mail``) and the notifier that serves it."""

    name: str
    notifier: Notifier

    @property
    def kind(self) -> str:
        return self.notifier.name


def notifier_class(kind: str) -> type[Notifier]:
    """The notifier class for a ``kind``; KeyError naming the known kinds when there is none."""
    if kind not in REGISTRY:
        raise KeyError(f"unknown receiver kind {kind!r}; known kinds: {', '.join(sorted(REGISTRY))}")
    module, _, cls = REGISTRY[kind].partition(":")
    return getattr(importlib.import_module(module), cls)


def build_receiver(name: str, kind: str, options: Mapping[str, Any], source: str = "<config>") -> Receiver:
    """Validate one receiver's options and build it; :class:`ConfigError` names ``receivers.<name>.<key>``."""
    where = f"receivers.{name}"
    if not _NAME.match(name):
        raise ConfigError(source, where, "a receiver name is letters, digits, '_', '.', '-' (at most 64)")
    try:
        cls = notifier_class(kind)
    except KeyError as exc:
        raise ConfigError(source, f"{where}.kind", exc.args[0]) from None
    try:
        opts = msgspec.convert(dict(options), cls.Options, strict=False)
    except msgspec.ValidationError as exc:
        path, reason = explain_validation(exc)
        raise ConfigError(source, f"{where}.{path}" if path else where, _with_choices(cls, path, reason)) from None
    try:
        return Receiver(name, cls(opts))
    except OptionError as exc:
        raise ConfigError(source, f"{where}.{exc.key}", exc.problem) from None


def _with_choices(cls: type[Notifier], path: str | None, reason: str) -> str:
    """msgspec says only "invalid enum value 'x'": add the values that are allowed."""
    if not reason.startswith("invalid enum value") or not path:
        return reason
    field = next((f for f in mi.type_info(cls.Options).fields if f.name == path), None)
    if field is None or not isinstance(field.type, mi.LiteralType):
        return reason
    return f"{reason}; use one of {', '.join(repr(v) for v in field.type.values)}"


def parse_receivers(table: Mapping[str, Any], source: str = "<config>") -> dict[str, Receiver]:
    """The ``[receivers]`` table of a config: ``{name: {"kind": …, **options}}`` → receivers by name."""
    receivers: dict[str, Receiver] = {}
    for name, entry in table.items():
        if not isinstance(entry, Mapping):
            raise ConfigError(source, f"receivers.{name}", "must be a table with kind = \"webhook\" etc.")
        options = dict(entry)
        kind = options.pop("kind", None)
        if not isinstance(kind, str):
            raise ConfigError(source, f"receivers.{name}.kind",
                              f"required: one of {', '.join(sorted(REGISTRY))}")
        receivers[name] = build_receiver(name, kind, options, source)
    return receivers


#: Example values for each kind's sample table; every other option is shown as its default.
EXAMPLES: dict[str, dict[str, Any]] = {
    "webhook": {"url": "https://ops.example.gov.cn/hooks/zonewatch"},
    "email": {"host": "smtp.example.gov.cn", "sender": "zonewatch <zonewatch@example.gov.cn>",
              "to": ["it-oncall@example.gov.cn"]},
    "dingtalk": {"url": "https://oapi.dingtalk.com/robot/send?access_token=…"},
    "wecom": {"key_file": "/etc/zonewatch/wecom.key"},
    "feishu": {"url": "https://open.feishu.cn/open-apis/bot/v2/hook/…"},
}


def sample(kind: str, name: str | None = None) -> str:
    """A documented ``[receivers.<name>]`` table for ``kind``, rendered from its Options' ``#:`` comments."""
    from protocol.tomldoc import struct_lines

    lines = struct_lines(notifier_class(kind).Options, f"[receivers.{name or kind}]", EXAMPLES.get(kind, {}))
    return "\n".join([lines[0], f'kind = "{kind}"', *lines[1:]]) + "\n"


__all__ = [
    "REGISTRY",
    "Notice",
    "Notifier",
    "NotifyError",
    "Receiver",
    "ReceiverOptions",
    "build_receiver",
    "notifier_class",
    "parse_receivers",
    "sample",
]
