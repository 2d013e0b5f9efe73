"""The server against a real mosquitto and real databases (SQLite and PostgreSQL).

Agents are stood in for by protocol messages published over MQTT (``Fleetpub``); the server is
the real ``python -m server.run`` process. What is asserted is what is committed in the database.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select
from sqlmodel import Session

from server.db import make_engine, upgrade
from server.db.models import Device, History, MetricPoint, Printer, Report, Zone
from server.ingest.store import set_mark
from server.service import PLACEMENT_MARK
from tests.server_process import Fleetpub, ServerProcess, report, wait_until

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fleet.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def zone_hall(engine) -> int:
    """Zone hall-1 with kiosk-1 (which also hosts the printer HP-Hall-1) and kiosk-2 (no printer)."""
    with Session(engine) as s:
        zone = Zone(code="hall-1", name="Service hall 1", kind="service_hall")
        s.add(zone)
        s.commit()
        s.add(Device(id="kiosk-1", name="Kiosk 1", role="kiosk", zone_id=zone.id))
        s.add(Device(id="kiosk-2", name="Kiosk 2", role="kiosk", zone_id=zone.id))
        zone_id = zone.id
        s.commit()
    with engine.begin() as conn:  # as the admin commands do: a running server reloads placement
        set_mark(conn, PLACEMENT_MARK, time.time())
    return zone_id


@pytest.fixture
def server(tmp_path, mosquitto, database_url, engine):
    proc = ServerProcess(tmp_path / "server", mosquitto.port, database_url)
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def pub(mosquitto):
    p = Fleetpub(mosquitto.port)
    yield p
    p.close()


def zone_state(engine, code="hall-1"):
    with Session(engine) as s:
        z = s.exec(select(Zone).where(Zone.code == code)).scalars().one()
        return z.status, list(z.reasons)


def history(engine, subject: str, subject_id: str):
    with Session(engine) as s:
        rows = s.exec(select(History).where(History.subject == subject, History.subject_id == subject_id)
                      .order_by(History.at, History.id)).scalars().all()
        return [(r.from_status, r.to_status, r.at) for r in rows]


def device_status(engine, device_id: str) -> str:
    with Session(engine) as s:
        return s.get(Device, device_id).status


def stored_seqs(engine, device_id: str) -> list[int]:
    with Session(engine) as s:
        return list(s.exec(select(Report.seq).where(Report.device_id == device_id).order_by(Report.seq)).scalars())


def test_zone_goes_meets_degraded_breach_meets_with_reasons_and_history(zone_hall, server, pub, engine):
    t0 = time.time() - 100
    pub.send(report("kiosk-1", 1, t0))
    pub.send(report("kiosk-2", 1, t0, printer_name=None))
    wait_until(lambda: zone_state(engine)[0] == "meets", what="zone meets the rule")

    pub.send(report("kiosk-1", 2, t0 + 10, condition="toner-low", printer="warning"))
    _, reasons = wait_until(lambda: (s := zone_state(engine))[0] == "degraded" and s, what="degraded")
    assert any("HP-Hall-1 toner low" in r for r in reasons), reasons

    pub.send(report("kiosk-1", 3, t0 + 20, condition="media-empty", printer="critical"))
    _, reasons = wait_until(lambda: (s := zone_state(engine))[0] == "breach" and s, what="breach")
    assert any(r.startswith("no working printer: HP-Hall-1 out of paper since") for r in reasons), reasons

    pub.send(report("kiosk-1", 4, t0 + 30))
    wait_until(lambda: zone_state(engine)[0] == "meets", what="meets again")

    zone = history(engine, "zone", "hall-1")
    assert [(f, t) for f, t, _ in zone] == [("unknown", "meets"), ("meets", "degraded"), ("degraded", "breach"),
                                            ("breach", "meets")]
    assert [at for *_, at in zone][1:] == [t0 + 10, t0 + 20, t0 + 30]  # dated when the agent measured
    printer = history(engine, "printer", "kiosk-1/HP-Hall-1")
    assert [(f, t) for f, t, _ in printer] == [("unknown", "ok"), ("ok", "warning"), ("warning", "critical"),
                                               ("critical", "ok")]
    with Session(engine) as s:
        p = s.exec(select(Printer).where(Printer.device_id == "kiosk-1")).scalars().one()
        assert p.status == "ok" and p.conditions == []


def test_breach_when_no_query_device_works_and_when_network_down(zone_hall, server, pub, engine):
    t0 = time.time() - 100
    pub.send(report("kiosk-1", 1, t0))
    pub.send(report("kiosk-2", 1, t0, printer_name=None))
    wait_until(lambda: zone_state(engine)[0] == "meets", what="meets")
    pub.send(report("kiosk-2", 2, t0 + 5, kiosk="critical", printer_name=None))
    _, reasons = wait_until(lambda: (s := zone_state(engine))[0] == "degraded" and s, what="one kiosk down")
    assert any("Kiosk 2 kiosk: kiosk-ui not running" in r for r in reasons), reasons
    pub.send(report("kiosk-1", 2, t0 + 6, kiosk="critical"))
    _, reasons = wait_until(lambda: (s := zone_state(engine))[0] == "breach" and s, what="no query device")
    assert any(r.startswith("no working query device") for r in reasons), reasons
    pub.send(report("kiosk-1", 3, t0 + 7, network="critical"))
    pub.send(report("kiosk-2", 3, t0 + 7, network="critical", printer_name=None))
    wait_until(lambda: (s := zone_state(engine))[0] == "breach"
                                 and any(r.startswith("network down") for r in s[1]) and s, what="network down")


def test_unknown_device_is_recorded_as_unassigned(server, pub, engine):
    pub.send(report("stray-kiosk", 1))
    wait_until(lambda: stored_seqs(engine, "stray-kiosk") == [1], what="stored")
    with Session(engine) as s:
        d = s.get(Device, "stray-kiosk")
        assert d.zone_id is None and d.role == "unknown" and d.status == "ok" and d.first_seen


def test_exactly_once_duplicates_out_of_order_and_backlog(zone_hall, server, pub, engine):
    t0 = time.time() - 1000
    pub.send(report("kiosk-1", 1, t0))
    pub.send(report("kiosk-1", 1, t0))  # the same report twice
    pub.send(report("kiosk-1", 3, t0 + 60, network="critical"))
    pub.send(report("kiosk-1", 2, t0 + 30, network="critical"))  # out of order: the outage began at seq 2
    wait_until(lambda: stored_seqs(engine, "kiosk-1") == [1, 2, 3], what="1, 2, 3 stored once each")
    # a backlog after an outage: sent in one go, measured 10 s apart
    for seq in range(4, 14):
        pub.send(report("kiosk-1", seq, t0 + 60 + 10 * (seq - 3), network="critical" if seq < 9 else "ok"))
    for seq in (5, 9, 13):  # redelivered duplicates
        pub.send(report("kiosk-1", seq, t0 + 60 + 10 * (seq - 3), network="critical" if seq < 9 else "ok"))
    wait_until(lambda: stored_seqs(engine, "kiosk-1") == list(range(1, 14)), what="1..13 once each")
    time.sleep(0.3)
    assert stored_seqs(engine, "kiosk-1") == list(range(1, 14))
    check = history(engine, "check", "kiosk-1/portal")
    # the outage's real start (seq 2, measured t0+30) and end (seq 9) in measured order
    assert [(f, t, at) for f, t, at in check] == [("unknown", "ok", t0), ("ok", "critical", t0 + 30),
                                                  ("critical", "ok", t0 + 120)]
    assert server.get("/healthz")[0] == 200


def test_bad_messages_are_counted_logged_and_ingest_continues(server, pub, engine, mosquitto):
    topic = "zw/v1/dev/kiosk-9/report"
    good = report("kiosk-9", 1)
    bad = [
        (topic, b"{not json"),
        (topic, b'{"v":1,"device_id":"kiosk-9","ts":"yesterday","seq":1,"interval_s":30,"checks":[]}'),
        (topic, b"x" * (70 * 1024)),
        ("zw/v1/dev/kiosk-8/report", pub.codec.encode(good)),  # topic says kiosk-8, payload kiosk-9
        (topic, b'{"v":1,"device_id":"kiosk-9","ts":1,"seq":-5,"interval_s":30,"checks":[]}'),
        ("zw/v1/dev/bad id!/report", b"{}"),
        (topic, b"[" * 100000),
    ]
    for t, payload in bad:
        pub.raw(t, payload)
    future = (b'{"v":7,"device_id":"kiosk-9","ts":%d,"seq":2,"interval_s":30,"hologram":true,'
              b'"checks":[{"kind":"teleporter","name":"t","status":"ok"},'
              b'{"kind":"system","name":"system","status":"ok","quantum":1}]}' % int(time.time()))
    pub.send(good)
    pub.raw(topic, future)
    wait_until(lambda: stored_seqs(engine, "kiosk-9") == [1, 2], what="good and future-version reports stored")
    log = server.log_text()
    assert "refused a message" in log and "is not valid JSON" in log
    assert "dropped" in log  # the future version's unknown parts are named


def test_kill_9_while_agents_publish_loses_nothing_and_duplicates_nothing(tmp_path, mosquitto, database_url,
                                                                          engine, pub):
    server = ServerProcess(tmp_path / "server", mosquitto.port, database_url, client_id="zw-crash")
    server.start()
    devices = [f"crash-{i}" for i in range(5)]
    sent = 0
    try:
        for seq in range(1, 41):
            for d in devices:
                pub.send(report(d, seq))
                sent += 1
            if seq == 15:
                server.kill()  # messages keep coming while the server is dead
        server.start()
        wait_until(lambda: all(stored_seqs(engine, d) == list(range(1, 41)) for d in devices), 60,
                   what="every report of every device stored once")
    finally:
        server.stop()
    with Session(engine) as s:
        assert s.exec(select(Report)).scalars().all().__len__() == sent
        assert all(d.last_seq == 40 for d in s.exec(select(Device)).scalars())


def test_presence_and_silence_make_a_device_offline(tmp_path, mosquitto, database_url, engine, zone_hall, pub):
    from protocol import Presence

    server = ServerProcess(tmp_path / "srv", mosquitto.port, database_url,
                           extra="offline_after_intervals = 2\ndefault_interval = 1\n")
    server.start()
    try:
        pub.send(report("kiosk-1", 1, interval_s=1.0))
        pub.send(report("kiosk-2", 1, interval_s=30.0, printer_name=None))
        wait_until(lambda: zone_state(engine)[0] == "meets", what="meets")
        # kiosk-1 goes silent: offline after 2 × 1 s
        wait_until(lambda: device_status(engine, "kiosk-1") == "offline", 10, what="silent → offline")
        status, reasons = zone_state(engine)
        assert status == "breach" and any("no working printer" in r for r in reasons), reasons
        pub.send(Presence(device_id="kiosk-2", ts=time.time(), online=False, reason="Last Will"))
        wait_until(lambda: device_status(engine, "kiosk-2") == "offline", what="will → offline")
        assert any(r.startswith("network down: no device in the zone heard") for r in zone_state(engine)[1])
        presence = history(engine, "presence", "kiosk-1")
        assert [(f, t) for f, t, _ in presence] == [("unknown", "online"), ("online", "offline")]
    finally:
        server.stop()


def test_metrics_are_downsampled_and_survive_a_crash_exactly(server, pub, engine):
    t0 = (time.time() // 300) * 300 - 600
    for seq, latency in enumerate([10.0, 30.0, 20.0], start=1):
        pub.send(report("kiosk-m", seq, t0 + seq, latency_ms=latency))
    wait_until(lambda: stored_seqs(engine, "kiosk-m") == [1, 2, 3], what="stored")
    server.stop()  # a clean stop flushes the 5-minute points

    def point():
        with Session(engine) as s:
            return s.get(MetricPoint, ("kiosk-m", "network.portal.latency_ms", 300, int(t0)))

    p = point()
    assert (p.min, p.max, p.sum, p.count, p.last) == (10.0, 30.0, 60.0, 3, 20.0)
    server.start()
    pub.send(report("kiosk-m", 4, t0 + 4, latency_ms=50.0))
    pub.send(report("kiosk-m", 5, t0 + 5, latency_ms=5.0))
    wait_until(lambda: stored_seqs(engine, "kiosk-m") == [1, 2, 3, 4, 5], what="stored")
    server.kill()  # not flushed: a restart folds the reports received since the last flush in again
    server.start()
    server.stop()
    p = point()
    assert (p.min, p.max, p.sum, p.count, p.last) == (5.0, 50.0, 115.0, 5, 5.0)


def test_a_dead_receiver_process_is_replaced_and_nothing_is_lost(server, pub, engine):
    import psutil

    receiver = wait_until(lambda: [p for p in psutil.Process(server.proc.pid).children()
                                   if "spawn_main" in " ".join(p.cmdline())], what="receiver process")[0]
    for seq in range(1, 6):
        pub.send(report("kiosk-r", seq))
    receiver.kill()
    for seq in range(6, 11):
        pub.send(report("kiosk-r", seq))
    wait_until(lambda: stored_seqs(engine, "kiosk-r") == list(range(1, 11)), 60, what="all ten stored once")
    assert "receiver process died" in server.log_text()
    assert server.get("/healthz")[0] == 200


def test_a_removed_printer_and_check_leave_with_a_history_row(zone_hall, server, pub, engine):
    pub.send(report("kiosk-1", 1))
    pub.send(report("kiosk-2", 1, printer_name=None))
    wait_until(lambda: zone_state(engine)[0] == "meets", what="meets")
    gone = report("kiosk-1", 2, printer_name=None)
    gone.checks = [c for c in gone.checks if c.name != "portal"]
    pub.send(gone)
    _, reasons = wait_until(lambda: (s := zone_state(engine))[0] == "breach" and s, what="no printer left")
    assert any(r.startswith("no working printer") for r in reasons), reasons
    with Session(engine) as s:
        assert s.exec(select(Printer).where(Printer.device_id == "kiosk-1")).scalars().all() == []
    assert [(f, t) for f, t, _ in history(engine, "printer", "kiosk-1/HP-Hall-1")][-1] == ("ok", "gone")
    assert [(f, t) for f, t, _ in history(engine, "check", "kiosk-1/portal")][-1] == ("ok", "gone")
