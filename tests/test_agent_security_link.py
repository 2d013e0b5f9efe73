"""The agent's link with credentials and TLS against a real mosquitto; secrets never logged."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from agent.spool import Spool
from tests.agent_process import AgentProcess, Kiosk
from tests.mqtt_recorder import Recorder
from tests.peers._util import free_port
from tests.peers.mosquitto import write_password_file

SECRET = "s3cret-Hall3-" + "x" * 8


@pytest.fixture
def secured(tmp_path, mosquitto_factory, tls_cert):
    cert, key = tls_cert
    tls_port = free_port()
    passwords = write_password_file(tmp_path / "passwd", {"kiosk-sec": SECRET, "server": "server-pw"})
    acl = tmp_path / "acl"
    acl.write_text("user server\ntopic readwrite zw/v1/#\n\n"
                   "pattern write zw/v1/dev/%u/#\npattern read zw/v1/cmd/%u/#\n")
    broker = mosquitto_factory(password_file=passwords, acl_file=acl, extra_conf=(
        f"listener {tls_port} 127.0.0.1\ncafile {cert}\ncertfile {cert}\nkeyfile {key}\n"))
    kiosk = Kiosk(tmp_path)
    kiosk.start()
    recorder = Recorder(broker.port, username="server", password="server-pw").start()
    secret_file = tmp_path / "mqtt.secret"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    yield SimpleNamespace(broker=broker, tls_port=tls_port, cert=cert, kiosk=kiosk, recorder=recorder,
                          secret_file=secret_file)
    recorder.stop()
    kiosk.kill()


def tls_agent(tmp_path, s, *, tls: bool = True, ca: bool = True) -> AgentProcess:
    mqtt = f'username = "kiosk-sec"\npassword_file = "{s.secret_file}"'
    if ca:
        mqtt += f'\nca_file = "{s.cert}"'
    url = f"mqtts://127.0.0.1:{s.tls_port}" if tls else None
    return AgentProcess(tmp_path, s.broker.port, s.kiosk, device_id="kiosk-sec", url=url, mqtt=mqtt)


def wait_in_log(agent: AgentProcess, text: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while text not in agent.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    return agent.log.read_text()


def test_agent_reports_over_tls_with_password(tmp_path, secured):
    agent = tls_agent(tmp_path, secured)
    agent.start()
    try:
        got = secured.recorder.wait_for(lambda m: m.topic == "zw/v1/dev/kiosk-sec/report", 15, "report over TLS")
        assert got.message.device_id == "kiosk-sec"
    finally:
        agent.stop()
    assert SECRET not in agent.log.read_text(), "the MQTT password must never be logged, even at debug level"


def test_wrong_password_is_logged_clearly_and_nothing_is_lost(tmp_path, secured):
    secured.secret_file.write_text("wrong-password\n")
    agent = tls_agent(tmp_path, secured, tls=False, ca=False)
    agent.start()
    try:
        log = wait_in_log(agent, "refused the connection")
        assert "refused the connection" in log and "check mqtt.username and the password" in log
        assert agent.proc.poll() is None, "a refused login must not stop the agent"
        wait_for_spooled(tmp_path / "data" / "spool.db")  # the first report may still be on its way under load
    finally:
        agent.stop()
    spool = Spool(tmp_path / "data" / "spool.db")  # what was measured while refused is kept, not lost
    assert spool.backlog >= 1 and spool.dropped == 0
    spool.close()


def wait_for_spooled(path, timeout: float = 20.0) -> None:
    import sqlite3
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
                tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
                if any(db.execute(f"select count(*) from {t}").fetchone()[0] for t in tables if "report" in t):
                    return
        except sqlite3.Error:
            pass
        time.sleep(0.1)


def test_untrusted_broker_certificate_is_refused(tmp_path, secured):
    agent = tls_agent(tmp_path, secured, ca=False)
    agent.start()
    try:
        log = wait_in_log(agent, "not trusted")
        assert "TLS certificate is not trusted" in log and "set mqtt.ca_file" in log
        assert agent.proc.poll() is None
        assert not [m for m in secured.recorder.messages if m.topic.startswith("zw/v1/dev/kiosk-sec/")], \
            "an agent must not talk to a broker whose certificate it cannot verify"
    finally:
        agent.stop()
