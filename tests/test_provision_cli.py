"""``zonewatch provision …`` against a database and a live mosquitto reloaded through its pid file."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from provisioning.broker import BrokerFiles, hash_password, new_secret, verify_password
from server.cli import main as zonewatch
from tests.mqtt_probe import Probe

SERVER_USER = "zonewatch-server"


@pytest.fixture
def setup(tmp_path, mosquitto_factory):
    secret = new_secret()
    (tmp_path / "server.secret").write_text(secret + "\n")
    broker_dir = tmp_path / "broker"
    broker_dir.mkdir()
    files = BrokerFiles(broker_dir)
    files.write({}, {SERVER_USER: hash_password(secret)}, "zw/v1")
    broker = mosquitto_factory(password_file=files.password_file, acl_file=files.acl_file)
    (tmp_path / "mosquitto.pid").write_text(str(broker.proc.pid))
    config = tmp_path / "server.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path}"\n[mqtt]\nusername = "{SERVER_USER}"\n'
                      f'password_file = "{tmp_path / "server.secret"}"\n[provisioning]\nbroker_dir = "{broker_dir}"\n'
                      f'broker_pid_file = "{tmp_path / "mosquitto.pid"}"\n')
    assert zonewatch(["zone", "add", "hall-01", "--name", "Hall 1", "--kind", "library", "--config", str(config)]) == 0
    assert zonewatch(["device", "add", "kiosk-1", "--zone", "hall-01", "--role", "kiosk", "--config",
                      str(config)]) == 0
    probes: list[Probe] = []
    yield SimpleNamespace(config=str(config), broker=broker, files=files, probes=probes)
    for p in probes:
        p.close()


def test_token_is_printed_once_and_listed_without_the_secret(setup, capsys):
    assert zonewatch(["provision", "token", "create", "--zone", "hall-01", "--expires", "2h",
                      "--config", setup.config]) == 0
    out = capsys.readouterr()
    token = out.out.strip()
    assert token.startswith("zwe_") and "zonewatch-agent enroll" in out.err
    assert zonewatch(["provision", "token", "list", "--config", setup.config]) == 0
    listed = capsys.readouterr().out
    assert token[:10] in listed and token not in listed and "valid until" in listed


@pytest.mark.parametrize(("args", "words"), [
    (["token", "create", "--zone", "nowhere"], "does not exist"),
    (["token", "create", "--zone", "hall-01", "--expires", "1y"], "not a duration"),
    (["token", "create", "--zone", "hall-01", "--expires", "0m"], "out of range"),
    (["token", "create", "--zone", "hall-01", "--role", "printer"], "printer"),
    (["revoke", "ghost"], "no device"),
    (["rotate", "ghost"], "no device"),
])
def test_bad_input_is_one_clear_line(setup, capsys, args, words):
    assert zonewatch(["provision", *args, "--config", setup.config]) == 1
    assert words in capsys.readouterr().err


def test_rotate_then_revoke_reach_the_live_broker(setup, capsys):
    assert zonewatch(["provision", "rotate", "kiosk-1", "--config", setup.config]) == 0
    out = capsys.readouterr()
    secret = out.out.strip()
    assert "reloaded" in out.err
    line = next(x for x in setup.files.password_file.read_text().splitlines() if x.startswith("kiosk-1:"))
    assert verify_password(secret, line.split(":", 1)[1])
    device = Probe(setup.broker.port, "kiosk-1", secret)
    setup.probes.append(device)
    assert device.connect() == 0
    assert zonewatch(["provision", "revoke", "kiosk-1", "--config", setup.config]) == 0
    assert "reloaded" in capsys.readouterr().err
    assert device.disconnected.wait(10), "the revoked device stayed connected"
    assert "kiosk-1:" not in setup.files.password_file.read_text()
    assert zonewatch(["provision", "revoke", "kiosk-1", "--config", setup.config]) == 0
    assert "revoked already" in capsys.readouterr().out


def test_broker_command_writes_conf_and_files(setup, tmp_path, capsys):
    assert zonewatch(["provision", "ca", "--dir", str(tmp_path / "ca"), "--name", "CA", "--san", "127.0.0.1",
                      "--key-owner", "nobody-here"]) == 0
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    assert zonewatch(["provision", "broker", "--dir", str(out_dir), "--no-reload", "--conf", "--ca-dir",
                      str(tmp_path / "ca"), "--mutual-tls", "--config", setup.config]) == 0
    conf = (out_dir / "mosquitto.conf").read_text()
    assert "require_certificate true" in conf and "allow_anonymous false" in conf
    assert (out_dir / "passwd").read_text().count("$7$") == 1  # the server; kiosk-1 was added, not enrolled
    assert zonewatch(["provision", "rotate", "kiosk-1", "--config", setup.config]) == 0  # its first secret
    assert zonewatch(["provision", "broker", "--dir", str(out_dir), "--no-reload", "--config", setup.config]) == 0
    assert (out_dir / "passwd").read_text().count("$7$") == 2
    assert zonewatch(["provision", "broker", "--dir", str(out_dir), "--conf", "--config", setup.config]) == 1
    assert "--ca-dir" in capsys.readouterr().err
