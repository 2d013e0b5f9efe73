"""The server's settings: TOML file, then ``ZONEWATCH_<SECTION>_<KEY>`` environment variables, then defaults.

With no file and no environment the server runs on embedded defaults: SQLite under ``data_dir``
and the broker at ``mqtt://127.0.0.1:1883``. Every option is documented next to its field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from protocol import DEFAULT_PREFIX
from protocol.errors import explain_validation

from .errors import ConfigError

Seconds = Annotated[float, Meta(gt=0, le=366 * 86400)]
Days = Annotated[float, Meta(gt=0, le=36500)]
ENV_PREFIX = "ZONEWATCH_"


class ServerSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Address the web UI and API listen on.
    host: str = "127.0.0.1"
    #: HTTP port.
    port: Annotated[int, Meta(ge=0, le=65535)] = 8080
    #: Where the SQLite database and the managed broker's files are kept.
    data_dir: str = "./zonewatch-data"
    #: debug, info, warning or error.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: Certificate chain (PEM) to serve HTTPS directly, e.g. from `zonewatch provision ca` with a SAN for the name
    #: or IP agents use. Empty: plain HTTP. Recommended in production: plain HTTP on 127.0.0.1 behind a reverse
    #: proxy (nginx, Caddy) that terminates TLS and sets X-Forwarded-Proto.
    tls_cert_file: str = ""
    #: Private key (PEM, unencrypted) of tls_cert_file; a secret: readable by the server's user only (chmod 600).
    tls_key_file: str = ""


class DatabaseSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: SQLAlchemy URL: ``sqlite:///path.db`` or ``postgresql+psycopg://user:pw@host/db``.
    #: Empty: ``zonewatch.db`` in ``server.data_dir``.
    url: str = ""
    #: Reports written per transaction at most (ingest batches its writes).
    batch_max: Annotated[int, Meta(ge=1, le=100_000)] = 2000
    #: Milliseconds ingest waits to fill a batch before it commits what it has.
    batch_wait_ms: Annotated[float, Meta(ge=0, le=10_000)] = 20.0


class MqttSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: mqtt://host:port or mqtts://host:port (TLS).
    url: str = "mqtt://127.0.0.1:1883"
    #: MQTT user name of the server.
    username: str | None = None
    #: MQTT password (prefer password_file).
    password: str | None = None
    #: File holding the MQTT password (first line).
    password_file: str | None = None
    #: CA bundle that signed the broker's certificate (mqtts://); system CAs when unset.
    ca_file: str | None = None
    #: Client id of the server's persistent session. Two servers must not share one.
    client_id: str = "zonewatch-server"
    #: First levels of every topic; must match the agents'.
    topic_prefix: str = DEFAULT_PREFIX
    #: Seconds between keep-alive pings.
    keepalive: Annotated[int, Meta(ge=2, le=3600)] = 30
    #: Seconds the broker keeps the server's session (and queues reports for it) while it is down.
    session_expiry: Annotated[int, Meta(ge=0)] = 7 * 86400
    #: Largest payload accepted, in bytes; bigger messages are refused unread and counted.
    max_payload: Annotated[int, Meta(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024


class HealthSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: A device that has not reported for this many report intervals is offline.
    offline_after_intervals: Annotated[float, Meta(ge=1.5, le=100)] = 3.0
    #: Seconds between sweeps for devices that went silent.
    sweep_every: Seconds = 5.0
    #: Report interval assumed for a device that has not said its own.
    default_interval: Seconds = 30.0


class RetentionSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Days raw reports are kept (the latest report of each device is always kept).
    reports_days: Days = 7.0
    #: Days 5-minute metric points are kept.
    metrics_days: Days = 35.0
    #: Days hourly metric points are kept.
    hourly_metrics_days: Days = 400.0
    #: Days the state-change history is kept (availability reports read it).
    history_days: Days = 1100.0


class RuleOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: false: this rule never opens incidents.
    enabled: bool = True
    #: Seconds the condition must last before an incident opens (a blip pages nobody); the rule's default if unset.
    hold: Annotated[float, Meta(ge=0, le=86400)] | None = None
    #: critical or warning; the rule's default if unset.
    severity: Literal["critical", "warning"] | None = None


class RouteSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Matches a zone whose region path (city / district / township) contains this name; any when unset.
    region: str | None = None
    #: Matches one zone code; any when unset.
    zone: str | None = None
    #: Matches critical or warning; any when unset.
    severity: Literal["critical", "warning"] | None = None
    #: Matches one rule (zone_breach, device_offline, printer_media_empty, …); any when unset.
    rule: str | None = None
    #: Receivers told at once.
    receivers: list[str] = msgspec.field(default_factory=list)
    #: Receivers told one after another, each when nobody acknowledged within alerts.escalate_after.
    escalation: list[str] = msgspec.field(default_factory=list)
    #: Receivers for incidents outside the zone's opening hours (alerts.after_hours = "route").
    after_hours: list[str] = msgspec.field(default_factory=list)


class AlertsSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Base URL of this server as on-call staff reach it (links and one-click ack links in notifications).
    public_url: str = "http://127.0.0.1:8080"
    #: File with the secret that signs ack links; created (0600) in server.data_dir when unset.
    secret_file: str | None = None
    #: Seconds an ack link stays valid.
    ack_link_ttl: Seconds = 86400.0
    #: Seconds a condition must stay cleared before its incident resolves (a flicker does not resolve it).
    resolve_hold: Annotated[float, Meta(ge=0, le=86400)] = 30.0
    #: Seconds without an acknowledgement before the route's next receiver is told.
    escalate_after: Seconds = 900.0
    #: Seconds between reminders while an incident stays open and unacknowledged; 0: no reminders.
    renotify_every: Annotated[float, Meta(ge=0, le=7 * 86400)] = 3600.0
    #: Window in seconds for flapping: this many re-activations in it mark an incident as flapping.
    flap_window: Seconds = 600.0
    #: Re-activations within flap_window that make an incident flapping.
    flap_threshold: Annotated[int, Meta(ge=2, le=1000)] = 3
    #: Outside a zone's opening hours: "hold" notifies when the zone opens (if still open), "route" tells
    #: the route's after_hours receivers at once with low urgency.
    after_hours: Literal["hold", "route"] = "hold"
    #: Receivers for incidents no route matches.
    default_receivers: list[str] = msgspec.field(default_factory=list)
    #: Seconds between delivery attempts at first (doubled per failure, with jitter).
    retry_first: Seconds = 2.0
    #: Delivery attempts per notification and receiver.
    retry_attempts: Annotated[int, Meta(ge=1, le=100)] = 6
    #: Per-rule options, ``[alerts.rules.printer_media_low]``: enabled, hold, severity.
    rules: dict[str, RuleOptions] = msgspec.field(default_factory=dict)
    #: Routes in order, ``[[alerts.routes]]``: the first that matches decides the receivers.
    routes: list[RouteSection] = msgspec.field(default_factory=list)


class ProvisioningSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Directory of the broker's password and ACL files (passwd, acl) that enrolment, revocation and rotation
    #: rewrite; empty: the server keeps no broker files (`zonewatch provision broker` writes them on demand).
    broker_dir: str = ""
    #: mosquitto's pid file (pid_file in mosquitto.conf): the broker is reloaded (SIGHUP) after each change.
    #: Empty: the files are rewritten but the broker is not told.
    broker_pid_file: str = ""
    #: Broker URL handed to enrolled devices (mqtts://broker.example:8883); mqtt.url when empty.
    device_broker_url: str = ""
    #: CA certificate (PEM) handed to enrolled devices to verify the broker; mqtt.ca_file when empty.
    device_ca_file: str = ""


class ContentSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Base URL devices download content bundles from (https://zonewatch.example); empty: the address the admin
    #: used to create the rollout. Devices send their credentials only to the server they enrolled with.
    device_url: str = ""
    #: Largest bundle upload accepted, in MiB.
    max_upload_mb: Annotated[int, Meta(ge=1, le=65536)] = 2048


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    server: ServerSection = msgspec.field(default_factory=ServerSection)
    database: DatabaseSection = msgspec.field(default_factory=DatabaseSection)
    mqtt: MqttSection = msgspec.field(default_factory=MqttSection)
    health: HealthSection = msgspec.field(default_factory=HealthSection)
    retention: RetentionSection = msgspec.field(default_factory=RetentionSection)
    alerts: AlertsSection = msgspec.field(default_factory=AlertsSection)
    provisioning: ProvisioningSection = msgspec.field(default_factory=ProvisioningSection)
    content: ContentSection = msgspec.field(default_factory=ContentSection)
    #: Notification receivers by name, ``[receivers.oncall]`` with ``kind = "webhook"`` and the kind's options.
    receivers: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{Path(self.server.data_dir).resolve() / 'zonewatch.db'}"

    def mqtt_password(self) -> str | None:
        if self.mqtt.password_file:
            return Path(self.mqtt.password_file).read_text().splitlines()[0].strip()
        return self.mqtt.password




def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """``ZONEWATCH_DATABASE_URL=…`` → ``{"database": {"url": "…"}}`` (values converted later)."""
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section = next((s for s in msgspec.structs.fields(Settings) if rest.startswith(s.name + "_")), None)
        if section is None:
            continue
        out.setdefault(section.name, {})[rest[len(section.name) + 1:]] = value
    return out


def parse_settings(text: str | bytes = b"", source: str = "<defaults>",
                   environ: Mapping[str, str] | None = None) -> Settings:
    """Validate a settings file plus environment overrides; raises :class:`ConfigError` naming the key."""
    try:
        raw = msgspec.toml.decode(text.encode() if isinstance(text, str) else text) if text else {}
    except msgspec.DecodeError as exc:
        raise ConfigError(source, None, f"not valid TOML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(source, None, "must be a TOML table")
    for section, values in _env_overrides(os.environ if environ is None else environ).items():
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(source, section, "must be a table")
        target.update(values)
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        path, reason = explain_validation(exc)
        raise ConfigError(source, path, reason) from None
    if not re.match(r"^mqtts?://[^/\s]+(:\d+)?/?$", settings.mqtt.url):
        raise ConfigError(source, "mqtt.url", f"{settings.mqtt.url!r} is not mqtt://host[:port] or mqtts://host[:port]")
    device_url = settings.provisioning.device_broker_url
    if device_url and not re.match(r"^mqtts?://[^/\s]+(:\d+)?/?$", device_url):
        raise ConfigError(source, "provisioning.device_broker_url",
                          f"{device_url!r} is not mqtt://host[:port] or mqtts://host[:port]")
    if bool(settings.server.tls_cert_file) != bool(settings.server.tls_key_file):
        key = "server.tls_key_file" if settings.server.tls_cert_file else "server.tls_cert_file"
        raise ConfigError(source, key, "HTTPS needs both tls_cert_file and tls_key_file (or neither for plain HTTP)")
    if settings.mqtt.password and settings.mqtt.password_file:
        raise ConfigError(source, "mqtt.password", "set password or password_file, not both")
    _check_alerts(settings, source)
    if settings.database.url and not re.match(r"^(sqlite|postgresql)(\+\w+)?://", settings.database.url):
        raise ConfigError(source, "database.url",
                          "use sqlite:///path/to/file.db or postgresql+psycopg://user:password@host/dbname")
    return settings


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    if path is None:
        return parse_settings(b"", "<defaults>", environ)
    path = Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), None, "file not found; give the server config with --config FILE "
                          "or leave --config out to run on embedded defaults") from None
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read it: {exc.strerror}") from None
    return parse_settings(text, str(path), environ)


def _check_alerts(settings: Settings, source: str) -> None:
    from .incidents.rules import RULES
    from .notify import parse_receivers

    parse_receivers(settings.receivers, source)  # every receiver's options, errors naming the key
    a = settings.alerts
    for name in a.rules:
        if name not in RULES:
            raise ConfigError(source, f"alerts.rules.{name}", f"unknown rule; rules are {', '.join(RULES)}")
    for i, route in enumerate(a.routes):
        if route.rule is not None and route.rule not in RULES:
            raise ConfigError(source, f"alerts.routes[{i}].rule", f"unknown rule {route.rule!r}; rules are "
                              f"{', '.join(RULES)}")
        for key, names in (("receivers", route.receivers), ("escalation", route.escalation),
                           ("after_hours", route.after_hours)):
            for name in names:
                if name not in settings.receivers:
                    raise ConfigError(source, f"alerts.routes[{i}].{key}",
                                      f"no receiver named {name!r}; define it as [receivers.{name}]")
    for name in a.default_receivers:
        if name not in settings.receivers:
            raise ConfigError(source, "alerts.default_receivers", f"no receiver named {name!r}; define it as "
                              f"[receivers.{name}]")
    if not re.match(r"^https?://", a.public_url):
        raise ConfigError(source, "alerts.public_url", "must start with http:// or https://")
