"""The server's settings: TOML file, then ``ZONEWATCH_<SECTION>_<KEY>`` environment variables, then defaults.

With no file and no environment the server runs on embedded defaults: SQLite under ``data_dir``
and the broker at ``mqtt://127.0.0.1:1883``. Every option is documented next to its field.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

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


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    server: ServerSection = msgspec.field(default_factory=ServerSection)
    database: DatabaseSection = msgspec.field(default_factory=DatabaseSection)
    mqtt: MqttSection = msgspec.field(default_factory=MqttSection)
    health: HealthSection = msgspec.field(default_factory=HealthSection)
    retention: RetentionSection = msgspec.field(default_factory=RetentionSection)

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
    if settings.mqtt.password and settings.mqtt.password_file:
        raise ConfigError(source, "mqtt.password", "set password or password_file, not both")
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
