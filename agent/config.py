"""The agent's TOML config, validated at start with errors that name the key and the problem.

Each collector documents and validates its own options (``Options`` in its module);
``load_config`` checks the whole file, including every enabled collector's section.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from protocol import DEFAULT_PREFIX, DEVICE_ID_RE
from protocol.errors import explain_validation

from .collectors import REGISTRY, CollectorOptions, collector_class
from .errors import ConfigError

Seconds = Annotated[float, Meta(gt=0, le=86400)]


class AgentSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: This device's id: its MQTT user name and topic level (letters, digits, _ . -).
    device_id: str
    #: Seconds between full reports (a report also goes out at once on any status change).
    interval: Seconds = 30.0
    #: Where the spool, the sequence counter and content bundles are kept.
    data_dir: str = "/var/lib/zonewatch"
    #: debug, info, warning or error.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: text (key=value) or json, one event per line.
    log_format: Literal["text", "json"] = "text"


class MqttSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: mqtt://host:port or mqtts://host:port (TLS).
    url: str = "mqtt://127.0.0.1:1883"
    #: MQTT user name; with a zonewatch broker it is this device's id.
    username: str | None = None
    #: MQTT password. Prefer password_file; a password here makes this file a secret (keep it 0600).
    password: str | None = None
    #: File holding the MQTT password (first line), readable only by the agent user.
    password_file: str | None = None
    #: CA bundle that signed the broker's certificate (mqtts://); system CAs when unset.
    ca_file: str | None = None
    #: Client certificate (PEM) for mutual TLS.
    cert_file: str | None = None
    #: Private key (PEM) of the client certificate; readable only by the agent user.
    key_file: str | None = None
    #: Seconds between keep-alive pings; the broker declares the device gone (Last Will) after
    #: about 1.5 x keepalive of silence.
    keepalive: Annotated[int, Meta(ge=2, le=3600)] = 10
    #: First levels of every topic; must match the server's.
    topic_prefix: str = DEFAULT_PREFIX
    #: Seconds before the first reconnect attempt; doubles per failure, randomised so a whole
    #: fleet does not reconnect at once after a broker restart.
    reconnect_min: Seconds = 1.0
    #: Longest wait in seconds between reconnect attempts.
    reconnect_max: Seconds = 60.0


class SpoolSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Reports kept while the broker is unreachable; the oldest are dropped (and counted) past it.
    max_reports: Annotated[int, Meta(ge=10, le=10_000_000)] = 100_000
    #: Bytes of reports kept at most.
    max_bytes: Annotated[int, Meta(ge=65536)] = 256 * 1024 * 1024
    #: Seconds a report is kept at most (default 14 days).
    max_age: Annotated[float, Meta(gt=0, le=366 * 86400)] = 14 * 86400.0


class ContentSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The zonewatch server bundles are downloaded from (https://zonewatch.example), written by enrolment. The
    #: agent sends its credentials only to URLs under it; unset: content rollouts are refused.
    server_url: str | None = None
    #: The server's content signing public key (base64), written by enrolment (GET /device/content-key shows
    #: it). A bundle not signed by it is refused.
    signing_key: str | None = None
    #: CA bundle that signed an https server_url's certificate; system CAs when unset.
    ca_file: str | None = None
    #: Where bundles are installed (``current`` links to the live one); default: <agent.data_dir>/content.
    #: Keep [collectors.content] dir the same.
    dir: str | None = None
    #: Command run after the switch to make the kiosk show the new content, as a list, e.g.
    #: ["systemctl", "restart", "kiosk-browser"]. Exit status 0 = success; anything else rolls back.
    reload_command: list[str] = msgspec.field(default_factory=list)
    #: Command that tells whether the kiosk works after the reload (exit 0 = yes), e.g.
    #: ["curl", "-fs", "http://127.0.0.1:8000/"]. A failure rolls back.
    health_command: list[str] = msgspec.field(default_factory=list)
    #: Also require the kiosk collector's check (kiosk front end running) to pass after the reload.
    check_kiosk: bool = True
    #: Seconds to wait after the reload before the health check.
    settle: Annotated[float, Meta(ge=0, le=600)] = 3.0
    #: Seconds the reload and health commands may take.
    command_timeout: Seconds = 60.0
    #: Installed versions kept (the live one and earlier ones to roll back to).
    keep_versions: Annotated[int, Meta(ge=2, le=100)] = 3
    #: MiB that must stay free on the content volume beyond the bundle and its unpacked copy.
    min_free_mb: Annotated[int, Meta(ge=0)] = 100
    #: Entries a bundle may hold at most.
    max_files: Annotated[int, Meta(ge=1)] = 20_000
    #: MiB a bundle may unpack to at most (all files).
    max_unpacked_mb: Annotated[int, Meta(ge=1)] = 2048
    #: Seconds one HTTP read may stall before the download is retried (it resumes where it stopped).
    http_timeout: Seconds = 30.0


class AgentConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    agent: AgentSection
    mqtt: MqttSection = msgspec.field(default_factory=MqttSection)
    spool: SpoolSection = msgspec.field(default_factory=SpoolSection)
    #: How content bundles are fetched, checked, installed and rolled back.
    content: ContentSection = msgspec.field(default_factory=ContentSection)
    #: One table per collector, ``[collectors.<name>]``; see each collector's Options.
    collectors: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    #: Validated collector options by name (filled by load_config, not read from the file).
    collector_options: dict[str, CollectorOptions] = msgspec.field(default_factory=dict)


def _config_error(source: str, exc: Exception, prefix: str = "") -> ConfigError:
    path, reason = explain_validation(exc)
    return ConfigError(source, ".".join(p for p in (prefix, path) if p) or None, reason)


def parse_config(text: str | bytes, source: str = "<config>") -> AgentConfig:
    """Validate a whole config; raises :class:`ConfigError` naming the key and the problem."""
    try:
        config = msgspec.toml.decode(text.encode() if isinstance(text, str) else text, type=AgentConfig)
    except msgspec.ValidationError as exc:
        raise _config_error(source, exc) from None
    except msgspec.DecodeError as exc:
        raise ConfigError(source, None, f"not valid TOML: {exc}") from None
    if not DEVICE_ID_RE.fullmatch(config.agent.device_id):
        raise ConfigError(source, "agent.device_id",
                          f"{config.agent.device_id!r} is not a valid device id: use 1-64 letters, digits, "
                          "'_', '.' or '-', starting with a letter or digit")
    if not re.match(r"^mqtts?://[^/\s]+(:\d+)?/?$", config.mqtt.url):
        raise ConfigError(source, "mqtt.url", f"{config.mqtt.url!r} is not mqtt://host[:port] or mqtts://host[:port]")
    if config.mqtt.password and config.mqtt.password_file:
        raise ConfigError(source, "mqtt.password", "set password or password_file, not both")
    if config.mqtt.reconnect_min > config.mqtt.reconnect_max:
        raise ConfigError(source, "mqtt.reconnect_min", "must not be larger than mqtt.reconnect_max")
    url = config.content.server_url
    if url is not None and not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
        raise ConfigError(source, "content.server_url", f"{url!r} is not http(s)://host[:port][/path]")
    unknown = sorted(set(config.collectors) - set(REGISTRY))
    if unknown:
        raise ConfigError(source, f"collectors.{unknown[0]}",
                          f"unknown collector; known collectors are {', '.join(REGISTRY)}")
    for name in REGISTRY:
        section = config.collectors.get(name, {})
        if not section.get("enabled", True):
            config.collector_options[name] = CollectorOptions(enabled=False)
            continue
        try:
            config.collector_options[name] = msgspec.convert(section, collector_class(name).Options)
        except msgspec.ValidationError as exc:
            raise _config_error(source, exc, f"collectors.{name}") from None
        except ValueError as exc:  # an Options.__post_init__ rule
            raise ConfigError(source, f"collectors.{name}", str(exc)) from None
    return config


def load_config(path: str | Path) -> AgentConfig:
    path = Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), None, "file not found; give the agent config with --config FILE") from None
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read it: {exc.strerror}") from None
    return parse_config(text, str(path))
