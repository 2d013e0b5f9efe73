"""Smoke tests for the private PostgreSQL fixtures (tests/peers/postgres.py)."""

from __future__ import annotations

import ipaddress

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.peers.postgres import PostgresCluster

pytestmark = pytest.mark.peer


def test_psycopg_roundtrip(postgres: PostgresCluster) -> None:
    assert postgres.dsn == f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres"
    with psycopg.connect(postgres.dsn) as conn:
        conn.execute("CREATE TEMP TABLE zone (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO zone VALUES (%s, %s), (%s, %s)", (1, "hall", 2, "library"))
        rows = conn.execute("SELECT id, name FROM zone ORDER BY id").fetchall()
        assert rows == [(1, "hall"), (2, "library")]


def test_listens_on_loopback_only(postgres: PostgresCluster) -> None:
    with psycopg.connect(postgres.dsn) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW port").fetchone() == (str(postgres.port),)
        server_addr = conn.execute("SELECT inet_server_addr()").fetchone()
        assert server_addr == (ipaddress.ip_address("127.0.0.1"),)


def test_sqlalchemy_url_is_a_fresh_database(postgres: PostgresCluster, postgres_url: str) -> None:
    url = make_url(postgres_url)
    assert (url.drivername, url.host, url.port) == ("postgresql+psycopg", "127.0.0.1",
                                                    postgres.port)
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            assert conn.scalar(sa.text("SELECT current_database()")) == url.database
            assert conn.scalar(sa.text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            )) == 0
            conn.execute(sa.text("CREATE TABLE device (id text PRIMARY KEY, zone text)"))
            conn.execute(sa.text("INSERT INTO device VALUES ('kiosk-a', 'hall')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id, zone FROM device")).all() == [
                ("kiosk-a", "hall")]
    finally:
        engine.dispose()


def test_drop_database_with_a_client_still_connected(postgres: PostgresCluster) -> None:
    url = make_url(postgres.create_database("t_drop_me"))
    dsn = url.set(drivername="postgresql").render_as_string()
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("t_drop_me",)
        postgres.drop_database("t_drop_me")  # WITH (FORCE) disconnects it
        with psycopg.connect(postgres.dsn) as admin:
            gone = admin.execute("SELECT count(*) FROM pg_database WHERE datname = 't_drop_me'")
            assert gone.fetchone() == (0,)
