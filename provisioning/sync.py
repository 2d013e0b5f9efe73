"""Bring the broker in line with the database: rewrite the password and ACL files, then reload mosquitto.

Called after every enrolment, revocation and rotation (by the server and the CLI) and by
``zonewatch provision broker``. The server's own MQTT account comes from its settings (``mqtt.username``
and ``mqtt.password_file``): the broker refuses anonymous clients, so the server needs one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session

from server.settings import Settings

from .broker import BrokerError, BrokerFiles, hash_password, reload_broker
from .enrolment import broker_hashes


@dataclass(frozen=True)
class Synced:
    directory: Path
    devices: int
    reloaded_pid: int | None

    def describe(self) -> str:
        told = f"mosquitto (pid {self.reloaded_pid}) reloaded" if self.reloaded_pid else "broker not reloaded"
        return f"broker files in {self.directory}: {self.devices} device(s) and the server account; {told}"


def server_account(settings: Settings) -> dict[str, str]:
    """``{server user: $7$ hash}`` from the settings, or a clear error when the server has no MQTT account."""
    user = settings.mqtt.username
    try:
        password = settings.mqtt_password()
    except OSError as exc:
        raise BrokerError(f"cannot read mqtt.password_file {settings.mqtt.password_file} ({exc.strerror}); "
                          "check the path and its permissions") from None
    if not user or not password:
        raise BrokerError("the server has no MQTT account: set mqtt.username and mqtt.password_file in the server "
                          "config (the broker refuses anonymous clients, the server included)")
    return {user: hash_password(password)}


def sync_broker(s: Session, settings: Settings, directory: str | Path | None = None, *,
                pid_file: str | Path | None = None, pid: int | None = None, reload: bool = True) -> Synced | None:
    """Rewrite the files in ``directory`` (default ``provisioning.broker_dir``; None when neither is set) and
    SIGHUP the broker named by ``pid``/``pid_file`` (default ``provisioning.broker_pid_file``) if any."""
    p = settings.provisioning
    directory = directory or p.broker_dir
    if not directory:
        return None
    devices = broker_hashes(s)
    BrokerFiles(Path(directory)).write(devices, server_account(settings), settings.mqtt.topic_prefix)
    pid_file = pid_file or p.broker_pid_file or None
    reloaded = reload_broker(pid, pid_file) if reload and (pid or pid_file) else None
    return Synced(Path(directory), len(devices), reloaded)
