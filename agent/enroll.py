"""``zonewatch-agent enroll``: trade a one-time token for this device's identity, MQTT credentials and the
broker's CA, and write the agent config. Standard library only (urllib): a device never needs aiohttp.

Files written next to the config, each atomically: the config (0600), ``mqtt-password`` (0600),
``broker-ca.pem`` (0644) and, with ``--ca-file`` for an https server, ``server-ca.pem`` (0644: content downloads
verify the server with it), owned by the agent user when one is given or ``zonewatch-agent`` exists and we are root.
Nothing is sent when the config exists already (unless ``force``), so a token is never spent for nothing.
With ``root`` (the install bundle's ``install.sh --root DIR``) the files go under DIR while the paths written
into the config are those the device will see.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from protocol import DEFAULT_PREFIX
from provisioning.files import user_ids, write_atomic

from .config import parse_config

DEFAULT_USER = "zonewatch-agent"
EX_REFUSED, EX_UNAVAILABLE, EX_CANTCREAT = 1, 69, 73


class EnrolFailed(Exception):
    """Why enrolment did not happen, for the technician; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = EX_REFUSED) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Written:
    device_id: str
    zone: str
    config: Path


def server_context(ca_file: str | None) -> ssl.SSLContext:
    """How the server's HTTPS certificate is verified: ``ca_file`` (PEM) or the system's CAs."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else (getattr(exc, "reason", None) or exc)
        raise EnrolFailed(f"cannot use --ca-file {ca_file} ({why}); give the CA certificate (PEM) that signed the "
                          "server's HTTPS certificate, e.g. the ca.crt of `zonewatch provision ca`") from None


def read_server_ca(ca_file: str | None) -> str | None:
    """The text of ``--ca-file``, checked to be a usable CA, kept for the agent's content downloads."""
    if ca_file is None:
        return None
    server_context(ca_file)
    return Path(ca_file).read_text()


def request_enrolment(server: str, token: str, *, ca_file: str | None = None, device_id: str | None = None,
                      name: str | None = None, zone: str | None = None, timeout: float = 30.0) -> dict:
    """POST the token to ``<server>/enroll``; the server's answer, or :class:`EnrolFailed` saying why not."""
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EnrolFailed(f"--server {server!r} is not a URL like https://zonewatch.example")
    url = server.rstrip("/") + "/enroll"
    body = {"token": token.strip(), "name": name if name is not None else socket.gethostname()}
    if device_id:
        body["device_id"] = device_id
    if zone:
        body["zone"] = zone
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    context = server_context(ca_file) if parts.scheme == "https" else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as err:
        try:
            why = json.loads(err.read()).get("error") or err.reason
        except (ValueError, AttributeError):
            why = err.reason
        raise EnrolFailed(f"the server refused the enrolment (HTTP {err.code}): {why}") from None
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            which = f"{ca_file} did not sign it" if ca_file else "no system CA signed it"
            raise EnrolFailed(f"the server's TLS certificate is not trusted ({reason.verify_message}: {which}); give "
                              "the CA that signed it with --ca-file (ask an admin for the ca.crt the server's "
                              "certificate was made with). The token was not sent and still works",
                              EX_UNAVAILABLE) from None
        raise EnrolFailed(f"cannot reach the server at {server} ({reason}); check --server and the network",
                          EX_UNAVAILABLE) from None
    except (OSError, ValueError) as exc:
        hint = " (if it serves HTTPS, give --server https://…)" if parts.scheme == "http" else ""
        raise EnrolFailed(f"no usable answer from {url} ({exc}); is this a zonewatch server{hint}?",
                          EX_UNAVAILABLE) from None
    if not isinstance(answer, dict) or not isinstance(answer.get("mqtt"), dict) or "device_id" not in answer:
        raise EnrolFailed(f"the answer from {url} is not a zonewatch enrolment; is this a zonewatch server?",
                          EX_UNAVAILABLE)
    return answer


def under(root: str | Path | None, path: str | Path) -> Path:
    """``path`` as seen from outside a root directory (``root`` None: the path itself)."""
    path = Path(path)
    if root is None:
        return path
    if not path.is_absolute():
        raise EnrolFailed(f"with --root, give --config and --data-dir as absolute paths on the device ({path})")
    return Path(root) / path.relative_to("/")


def check_target(config_path: str | Path, force: bool, root: str | Path | None = None) -> Path:
    """Refuse (before any token is spent) to replace an existing config unless ``force``."""
    path = under(root, config_path)
    if path.exists() and not force:
        raise EnrolFailed(f"{path} exists already: this device looks enrolled. Give --force to replace it, or "
                          "--config to write elsewhere", EX_CANTCREAT)
    if not path.parent.is_dir():
        raise EnrolFailed(f"directory {path.parent} does not exist; create it (mkdir -p {path.parent})",
                          EX_CANTCREAT)
    return path


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a TOML basic string


def config_text(answer: dict, data_dir: str, password_file: Path, ca_file: Path | None,
                server_ca_file: Path | None = None) -> str:
    m = answer["mqtt"]
    lines = [f"# Written by `zonewatch-agent enroll` on {time.strftime('%Y-%m-%d %H:%M')}: device "
             f"{answer['device_id']} in zone {answer.get('zone', '?')}. Every option: agent.example.toml.",
             "[agent]", f"device_id = {_q(answer['device_id'])}", f"data_dir = {_q(data_dir)}", "",
             "[mqtt]", f"url = {_q(m['url'])}", f"username = {_q(m['username'])}",
             f"password_file = {_q(str(password_file))}"]
    if ca_file is not None:
        lines.append(f"ca_file = {_q(str(ca_file))}")
    if m.get("topic_prefix") and m["topic_prefix"] != DEFAULT_PREFIX:
        lines.append(f"topic_prefix = {_q(m['topic_prefix'])}")
    content = answer.get("content")
    if isinstance(content, dict) and content.get("server_url") and content.get("signing_key"):
        lines += ["", "[content]", f"server_url = {_q(str(content['server_url']))}",
                  f"signing_key = {_q(str(content['signing_key']))}"]
        if server_ca_file is not None and str(content["server_url"]).startswith("https:"):
            lines.append(f"ca_file = {_q(str(server_ca_file))}")
    return "\n".join(lines) + "\n"


def write_agent_files(answer: dict, config_path: Path, *, data_dir: str, user: str | None,
                      root: str | Path | None = None, server_ca_pem: str | None = None) -> Written:
    """The config, the MQTT password and the broker CA, written safely; the config is validated first.
    ``config_path`` and ``data_dir`` are paths on the device, written under ``root`` when it is given."""
    m = answer["mqtt"]
    ids = user_ids(user) if os.geteuid() == 0 and root is None else None
    uid, gid = (ids[0], ids[1]) if ids else (None, None)
    directory = Path(config_path).parent
    password_file = directory / "mqtt-password"
    ca_file = directory / "broker-ca.pem" if m.get("ca_pem") else None
    server_ca = directory / "server-ca.pem" if server_ca_pem else None
    text = config_text(answer, data_dir, password_file, ca_file, server_ca)
    try:
        parse_config(text, str(config_path))
    except Exception as exc:  # what the server sent would make a config the agent refuses
        raise EnrolFailed(f"the server's answer makes no valid agent config ({exc}); tell an admin") from None
    try:
        write_atomic(under(root, password_file), str(m["password"]) + "\n", 0o600, uid=uid, gid=gid)
        if ca_file is not None:
            write_atomic(under(root, ca_file), m["ca_pem"], 0o644)
        if server_ca is not None and f"ca_file = {_q(str(server_ca))}" in text:
            write_atomic(under(root, server_ca), server_ca_pem, 0o644)
        under(root, data_dir).mkdir(parents=True, exist_ok=True, mode=0o750)
        if uid is not None:
            os.chown(under(root, data_dir), uid, gid)
        write_atomic(under(root, config_path), text, 0o600, uid=uid, gid=gid)
    except OSError as exc:
        raise EnrolFailed(f"cannot write {exc.filename or config_path} ({exc.strerror}); run as root or give "
                          "--config in a directory you can write. The token is spent: ask for a new one",
                          EX_CANTCREAT) from None
    return Written(answer["device_id"], str(answer.get("zone", "")), config_path)


def enrol_device(server: str, token: str, config_path: str | Path, *, ca_file: str | None = None,
                 device_id: str | None = None, name: str | None = None, zone: str | None = None,
                 data_dir: str = "/var/lib/zonewatch", user: str | None = DEFAULT_USER,
                 force: bool = False, root: str | Path | None = None) -> Written:
    check_target(config_path, force, root)
    under(root, data_dir)  # an unusable --data-dir is refused before the token is spent
    server_ca_pem = read_server_ca(ca_file)  # so is an unusable --ca-file
    answer = request_enrolment(server, token, ca_file=ca_file, device_id=device_id, name=name, zone=zone)
    return write_agent_files(answer, Path(config_path), data_dir=data_dir, user=user, root=root,
                             server_ca_pem=server_ca_pem)


def read_token_file(path: str) -> str:
    """The first line of ``--token-file`` (so the token never shows in the process list)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise EnrolFailed(f"cannot read the token file {path} ({exc.strerror}); check the path") from None
    if not lines or not lines[0].strip():
        raise EnrolFailed(f"the token file {path} is empty; it should hold one zwe_… token")
    return lines[0].strip()
