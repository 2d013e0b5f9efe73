"""The generated password and ACL files on a live mosquitto: each device confined to its own topics, revoked and
unknown devices refused, the server account free, and a SIGHUP reload that keeps everyone else connected."""

from __future__ import annotations

import stat
from types import SimpleNamespace

import pytest

from provisioning.broker import (
    BrokerError,
    BrokerFiles,
    acl_text,
    hash_password,
    new_secret,
    password_file_text,
    reload_broker,
    verify_password,
)
from tests.mqtt_probe import Probe

PREFIX = "zw/v1"
SERVER = "zonewatch-server"


@pytest.fixture
def fleet(tmp_path, mosquitto_factory):
    """A broker running on generated files for devices kiosk-a and kiosk-b and the server account."""
    secrets = {"kiosk-a": new_secret(), "kiosk-b": new_secret(), SERVER: new_secret()}
    files = BrokerFiles(tmp_path)
    devices = {d: hash_password(secrets[d]) for d in ("kiosk-a", "kiosk-b")}
    files.write(devices, {SERVER: hash_password(secrets[SERVER])}, PREFIX)
    broker = mosquitto_factory(password_file=files.password_file, acl_file=files.acl_file)
    probes: list[Probe] = []

    def probe(user: str | None, password: str | None = None) -> Probe:
        p = Probe(broker.port, user, secrets.get(user, "") if password is None else password)
        probes.append(p)
        return p

    yield SimpleNamespace(broker=broker, files=files, secrets=secrets, devices=devices, probe=probe)
    for p in probes:
        p.close()


def reload_and_wait(broker) -> None:
    """SIGHUP through the provisioning code, then wait until mosquitto has re-read its files."""
    offset = broker.log_path.stat().st_size
    assert reload_broker(pid=broker.proc.pid) == broker.proc.pid
    from tests.peers._util import wait_for

    wait_for(lambda: broker._logged(b"Reloading config.", offset), 10, "mosquitto reload", broker.proc,
             broker.log_path)


def server_probe(fleet) -> Probe:
    server = fleet.probe(SERVER)
    assert server.connect() == 0
    assert server.subscribe(f"{PREFIX}/dev/#") == [1]
    return server


def test_a_device_cannot_publish_as_another(fleet):
    server = server_probe(fleet)
    a = fleet.probe("kiosk-a")
    assert a.connect() == 0
    a.publish(f"{PREFIX}/dev/kiosk-b/report", b"forged")  # MQTT 3.1.1: denied silently (normal PUBACK)
    a.publish(f"{PREFIX}/dev/kiosk-a/report", b"own")
    got = server.wait_for(f"{PREFIX}/dev/kiosk-a/report")  # in order from one publisher: the forgery came first
    assert got == [(f"{PREFIX}/dev/kiosk-a/report", b"own")], "kiosk-a's forged report reached the server"


def test_a_device_cannot_read_another_devices_commands(fleet):
    server = server_probe(fleet)
    a, b = fleet.probe("kiosk-a"), fleet.probe("kiosk-b")
    assert a.connect() == 0 and b.connect() == 0
    a.subscribe(f"{PREFIX}/cmd/kiosk-b/#")  # granted by mosquitto, but nothing may be delivered
    a.subscribe(f"{PREFIX}/cmd/kiosk-a/#")
    b.subscribe(f"{PREFIX}/cmd/kiosk-b/#")
    server.publish(f"{PREFIX}/cmd/kiosk-b/run", b"for b only")
    server.publish(f"{PREFIX}/cmd/kiosk-a/run", b"for a")
    assert b.wait_for(f"{PREFIX}/cmd/kiosk-b/run") == [(f"{PREFIX}/cmd/kiosk-b/run", b"for b only")]
    assert a.wait_for(f"{PREFIX}/cmd/kiosk-a/run") == [(f"{PREFIX}/cmd/kiosk-a/run", b"for a")], \
        "kiosk-a received kiosk-b's command"


def test_a_device_cannot_write_commands_or_read_reports(fleet):
    server = server_probe(fleet)
    server.subscribe(f"{PREFIX}/cmd/#")
    a, b = fleet.probe("kiosk-a"), fleet.probe("kiosk-b")
    assert a.connect() == 0 and b.connect() == 0
    a.subscribe(f"{PREFIX}/dev/#")
    a.publish(f"{PREFIX}/cmd/kiosk-b/run", b"pushed by a")
    a.publish(f"{PREFIX}/dev/kiosk-a/presence", b"a")
    assert server.wait_for(f"{PREFIX}/dev/kiosk-a/presence") == [(f"{PREFIX}/dev/kiosk-a/presence", b"a")]
    b.publish(f"{PREFIX}/dev/kiosk-b/report", b"b's report")
    server.wait_for(f"{PREFIX}/dev/kiosk-b/report")
    a.subscribe(f"{PREFIX}/cmd/kiosk-a/#")
    a.publish(f"{PREFIX}/dev/kiosk-a/ack", b"a2")
    server.wait_for(f"{PREFIX}/dev/kiosk-a/ack")
    server.publish(f"{PREFIX}/cmd/kiosk-a/run", b"for a")  # after b's report and a's ack went through the broker
    got = a.wait_for(f"{PREFIX}/cmd/kiosk-a/run")
    assert got == [(f"{PREFIX}/cmd/kiosk-a/run", b"for a")], f"kiosk-a read device topics: {got}"


def test_unknown_devices_and_wrong_secrets_cannot_connect(fleet):
    assert fleet.probe("kiosk-zz", new_secret()).connect() != 0
    assert fleet.probe("kiosk-a", fleet.secrets["kiosk-b"]).connect() != 0
    assert fleet.probe(None).connect() != 0  # anonymous


def test_revoking_disconnects_only_that_device_and_keeps_it_out(fleet):
    server = server_probe(fleet)
    a, b = fleet.probe("kiosk-a"), fleet.probe("kiosk-b")
    assert a.connect() == 0 and b.connect() == 0
    remaining = {k: v for k, v in fleet.devices.items() if k != "kiosk-b"}
    fleet.files.write(remaining, {SERVER: hash_password(fleet.secrets[SERVER])}, PREFIX)
    reload_and_wait(fleet.broker)
    assert b.disconnected.wait(10), "the revoked device stayed connected after the reload"
    a.publish(f"{PREFIX}/dev/kiosk-a/report", b"still here")
    assert server.wait_for(f"{PREFIX}/dev/kiosk-a/report")[-1][1] == b"still here"
    assert not a.disconnected.is_set() and not server.disconnected.is_set()
    assert fleet.probe("kiosk-b").connect() != 0, "a revoked device could connect again"


def test_a_new_device_can_connect_after_a_reload(fleet):
    secret = new_secret()
    fleet.files.write({**fleet.devices, "kiosk-c": hash_password(secret)},
                      {SERVER: hash_password(fleet.secrets[SERVER])}, PREFIX)
    reload_and_wait(fleet.broker)
    assert fleet.probe("kiosk-c", secret).connect() == 0


def test_files_are_written_private_and_atomically(fleet):
    for path in (fleet.files.password_file, fleet.files.acl_file):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode in (0o600, 0o640), oct(mode)
    assert not [p for p in fleet.files.directory.iterdir() if p.name.endswith(".tmp")]
    text = fleet.files.password_file.read_text()
    assert fleet.secrets["kiosk-a"] not in text and text.count("$7$101$") == 3


def test_hash_format_matches_mosquitto():
    hashed = hash_password("pw", salt=b"\x00" * 12)
    assert hashed.startswith("$7$101$AAAAAAAAAAAAAAAA$") and verify_password("pw", hashed)
    assert not verify_password("other", hashed) and not verify_password("pw", "$6$garbage")


@pytest.mark.parametrize("user", ["", "a/b", "+", "#", "a:b", "x" * 65, "a b", "-lead", "é"])
def test_bad_user_names_are_refused(user):
    with pytest.raises(BrokerError, match="not allowed"):
        password_file_text({user: hash_password("x")})
    with pytest.raises(BrokerError, match="not allowed"):
        acl_text([user], PREFIX)


def test_a_device_named_like_the_server_is_refused(tmp_path):
    with pytest.raises(BrokerError, match="both a device id and the server"):
        BrokerFiles(tmp_path).write({SERVER: hash_password("x")}, {SERVER: hash_password("y")}, PREFIX)


def test_acl_follows_the_configured_prefix():
    text = acl_text(["srv"], "campus/zw")
    assert "pattern write campus/zw/dev/%u/#" in text and "pattern read campus/zw/cmd/%u/#" in text
    assert "user srv\ntopic readwrite campus/zw/#" in text


def test_reload_refuses_what_is_not_a_running_mosquitto(tmp_path):
    import os

    with pytest.raises(BrokerError, match="does not exist"):
        reload_broker(pid_file=tmp_path / "none.pid")
    (tmp_path / "me.pid").write_text(f"{os.getpid()}\n")
    with pytest.raises(BrokerError, match="not mosquitto"):
        reload_broker(pid_file=tmp_path / "me.pid")
    (tmp_path / "junk.pid").write_text("not a pid")
    with pytest.raises(BrokerError, match="cannot read a pid"):
        reload_broker(pid_file=tmp_path / "junk.pid")
