"""The generated CA and certificates on a live mosquitto TLS listener, reached through the agent's own link code:
the generated CA verifies the broker, another CA is refused, and mutual TLS needs the device's certificate."""

from __future__ import annotations

import asyncio
import ipaddress
import stat
from types import SimpleNamespace

import pytest
from cryptography import x509

from agent.config import parse_config
from agent.link import MqttLink
from provisioning.broker import BrokerFiles, hash_password, new_secret
from provisioning.broker_conf import BrokerConfig, Listener
from provisioning.ca import CaError, create_ca, issue_device
from tests.peers._util import free_port

SECRET = new_secret()


@pytest.fixture
def pki(tmp_path):
    ca, broker = create_ca(tmp_path / "ca", "zonewatch test CA", ["127.0.0.1", "broker.zonewatch.test"],
                           key_owner=None)
    other, _ = create_ca(tmp_path / "other", "someone else's CA", ["127.0.0.1"], key_owner=None)
    device = issue_device(tmp_path / "ca", "kiosk-tls")
    return SimpleNamespace(ca=ca, broker=broker, other=other, device=device, dir=tmp_path / "ca")


@pytest.fixture
def tls_broker(tmp_path, mosquitto_factory, pki):
    """Plain listener (fixture's), a TLS listener and a mutual-TLS listener, on generated files."""
    files = BrokerFiles(tmp_path)
    files.write({"kiosk-tls": hash_password(SECRET)}, {}, "zw/v1")
    tls, mtls = free_port(), free_port()
    listeners = [Listener(tls, "127.0.0.1", pki.ca.cert, pki.broker.cert, pki.broker.key),
                 Listener(mtls, "127.0.0.1", pki.ca.cert, pki.broker.cert, pki.broker.key, mutual_tls=True)]
    extra = "\n".join(line for listener in listeners for line in listener.lines())
    broker = mosquitto_factory(password_file=files.password_file, acl_file=files.acl_file, extra_conf=extra)
    return SimpleNamespace(broker=broker, tls=tls, mtls=mtls)


def agent_connects(tmp_path, port: int, ca_file, *, cert=None, key=None) -> tuple[bool, str]:
    """Run the agent's MqttLink against the broker until it is up or has failed once: (up, why not)."""
    lines = [f'url = "mqtts://127.0.0.1:{port}"', 'username = "kiosk-tls"', f'password = "{SECRET}"',
             f'ca_file = "{ca_file}"', "reconnect_min = 5", "reconnect_max = 5"]
    if cert:
        lines += [f'cert_file = "{cert}"', f'key_file = "{key}"']
    config = parse_config(f'[agent]\ndevice_id = "kiosk-tls"\ndata_dir = "{tmp_path}"\n[mqtt]\n' + "\n".join(lines))

    async def attempt() -> tuple[bool, str]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def finish(result):
            if not done.done():
                done.set_result(result)

        link = MqttLink(config, loop, on_up=lambda: finish((True, "")), on_down=lambda why: finish((False, why)),
                        on_acked=lambda seq: None, on_message=lambda *a: None)
        original = link._connect_failed

        def failed():
            original()
            finish((False, "connect failed"))

        link._connect_failed = failed
        link.start()
        try:
            return await asyncio.wait_for(done, 15)
        finally:
            await asyncio.to_thread(link.stop)

    return asyncio.run(attempt())


def test_the_generated_ca_verifies_the_broker(tmp_path, pki, tls_broker):
    assert agent_connects(tmp_path, tls_broker.tls, pki.ca.cert) == (True, "")


def test_a_broker_signed_by_another_ca_is_refused(tmp_path, pki, tls_broker):
    up, _ = agent_connects(tmp_path, tls_broker.tls, pki.other.cert)
    assert not up


def test_mutual_tls_with_the_device_certificate(tmp_path, pki, tls_broker):
    assert agent_connects(tmp_path, tls_broker.mtls, pki.ca.cert, cert=pki.device.cert,
                          key=pki.device.key) == (True, "")


def test_mutual_tls_without_a_certificate_is_refused(tmp_path, pki, tls_broker):
    up, _ = agent_connects(tmp_path, tls_broker.mtls, pki.ca.cert)
    assert not up


def test_mutual_tls_with_a_certificate_of_another_ca_is_refused(tmp_path, pki, tls_broker):
    stranger = issue_device(tmp_path / "other", "kiosk-tls")
    up, _ = agent_connects(tmp_path, tls_broker.mtls, pki.ca.cert, cert=stranger.cert, key=stranger.key)
    assert not up


def test_certificates_carry_the_sans_and_keys_are_private(pki):
    cert = x509.load_pem_x509_certificate(pki.broker.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["broker.zonewatch.test"]
    device = x509.load_pem_x509_certificate(pki.device.cert.read_bytes())
    assert device.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "kiosk-tls"
    for key in (pki.ca.key, pki.broker.key, pki.device.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_an_existing_ca_is_not_overwritten_without_force(pki):
    before = pki.ca.cert.read_bytes()
    with pytest.raises(CaError, match="--force"):
        create_ca(pki.dir, "again", ["127.0.0.1"], key_owner=None)
    assert pki.ca.cert.read_bytes() == before
    create_ca(pki.dir, "again", ["127.0.0.1"], key_owner=None, force=True)
    assert pki.ca.cert.read_bytes() != before


@pytest.mark.parametrize("san", ["", "bad name", "a..b", "x" * 300, "-", "ünï.example"])
def test_bad_san_entries_are_refused_before_anything_is_written(tmp_path, san):
    with pytest.raises(CaError):
        create_ca(tmp_path / "ca", "x", [san], key_owner=None)
    assert not (tmp_path / "ca").exists()


def test_generated_mosquitto_conf_runs_with_tls_and_pid_file(tmp_path, pki, generated_broker):
    """The whole generated mosquitto.conf: mosquitto starts on it, the agent connects, the pid file is there."""
    broker = generated_broker
    assert agent_connects(tmp_path, broker.port, pki.ca.cert) == (True, "")
    assert int(broker.config.pid_file.read_text()) == broker.proc.pid


@pytest.fixture
def generated_broker(tmp_path, pki):
    import os
    import subprocess

    from tests.peers._util import require_binary, stop_process, wait_for_port

    files = BrokerFiles(tmp_path)
    files.write({"kiosk-tls": hash_password(SECRET)}, {}, "zw/v1")
    port = free_port()
    (tmp_path / "persistence").mkdir()
    config = BrokerConfig((Listener(port, "127.0.0.1", pki.ca.cert, pki.broker.cert, pki.broker.key),),
                          files.password_file, files.acl_file, tmp_path / "persistence",
                          pid_file=tmp_path / "mosquitto.pid", log_file=tmp_path / "mosquitto.log",
                          user="root" if os.geteuid() == 0 else None)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(config.text())
    proc = subprocess.Popen([require_binary("mosquitto", "mosquitto"), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, 10, "generated mosquitto", proc, tmp_path / "mosquitto.log")
        yield SimpleNamespace(port=port, proc=proc, config=config)
    finally:
        stop_process(proc)
