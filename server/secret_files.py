"""Where the server's secrets come from, checked before it starts: files only its own user (and group) may read,
or the environment (``ZONEWATCH_MQTT_PASSWORD=…``, ``ZONEWATCH_DATABASE_URL=…``).

- A secret file (``server.tls_key_file``, ``mqtt.password_file``, ``alerts.secret_file``, a receiver's ``*_file``)
  that every user on the machine may read is refused: the server does not start, and says ``chmod 600 FILE``.
- A secret file readable by a group the server does not belong to is warned about.
- A config file that holds secrets inline (``mqtt.password``, a password in ``database.url``, a receiver's
  ``secret``/``password``/``token``, a robot's URL with its access token) and that other users may read is
  warned about, naming the keys, with what to do: chmod 600, or move them to a ``*_file`` or the environment.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError
from .settings import Settings

SECRET_KEYS = ("password", "secret", "token")
#: Receivers whose URL itself is the credential (anyone with it may post to the group).
URL_IS_SECRET = ("dingtalk", "wecom", "feishu")


def secret_files(settings: Settings) -> list[tuple[str, str]]:
    """``(key, path)`` of every file that holds a secret the server reads."""
    found = []
    if settings.server.tls_key_file:
        found.append(("server.tls_key_file", settings.server.tls_key_file))
    if settings.mqtt.password_file:
        found.append(("mqtt.password_file", settings.mqtt.password_file))
    if settings.alerts.secret_file:
        found.append(("alerts.secret_file", settings.alerts.secret_file))
    for name, options in settings.receivers.items():
        for key, value in options.items():
            if key.endswith("_file") and key[:-5] in SECRET_KEYS and isinstance(value, str) and value:
                found.append((f"receivers.{name}.{key}", value))
    return found


def inline_secrets(settings: Settings) -> list[str]:
    """The keys of secrets written into the config itself."""
    keys = []
    if settings.mqtt.password:
        keys.append("mqtt.password")
    if settings.database.url and urlsplit(settings.database.url).password:
        keys.append("database.url")
    for name, options in settings.receivers.items():
        for key, value in options.items():
            if key in SECRET_KEYS and value:
                keys.append(f"receivers.{name}.{key}")
        if options.get("kind") in URL_IS_SECRET and options.get("url"):
            keys.append(f"receivers.{name}.url")
    return keys


def _ours(gid: int) -> bool:
    return gid == os.getegid() or gid in os.getgroups()


def check_secret_files(settings: Settings, config: str | Path | None,
                       environ_keys: frozenset[str] = frozenset()) -> list[str]:
    """Raise :class:`ConfigError` for a secret every user may read; return warnings for the rest."""
    warnings = []
    for key, path in secret_files(settings):
        try:
            st = os.stat(path)
        except OSError:
            continue  # a missing file is reported where it is read, with its own message
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o004:
            raise ConfigError(path, key, f"holds a secret but every user on this machine may read it (mode "
                              f"{mode:04o}); run: chmod 600 {path} (or chmod 640 and chgrp to the server's group)")
        if mode & 0o040 and not _ours(st.st_gid):
            warnings.append(f"{path} ({key}) holds a secret and members of group {st.st_gid} may read it (mode "
                            f"{mode:04o}); chmod 600 {path} unless that group is meant to")
    keys = [k for k in inline_secrets(settings) if k not in environ_keys]
    if keys and config is not None:
        try:
            st = os.stat(config)
        except OSError:
            return warnings
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o004 or (mode & 0o040 and not _ours(st.st_gid)):
            warnings.append(f"{config} holds secrets ({', '.join(keys)}) and other users may read it (mode "
                            f"{mode:04o}); chmod 600 {config}, or move them to files (mqtt.password_file, "
                            "a receiver's secret_file/password_file) or to ZONEWATCH_… environment variables")
    return warnings


def environment_keys(environ: os._Environ | dict) -> frozenset[str]:
    """Inline-secret keys given by the environment rather than the file (``ZONEWATCH_MQTT_PASSWORD``)."""
    out = set()
    if environ.get("ZONEWATCH_MQTT_PASSWORD"):
        out.add("mqtt.password")
    if environ.get("ZONEWATCH_DATABASE_URL"):
        out.add("database.url")
    return frozenset(out)
