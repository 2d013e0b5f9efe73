"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import Session, SQLModel, select

from server.db import make_engine, upgrade
from server.db import models as m
from server.db.migrate import current, head


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    return request.getfixturevalue("postgres_url")


def test_migrations_reach_head_and_match_the_models(url):
    engine = make_engine(url)
    upgrade(engine)
    assert current(engine) == head()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    assert diff == [], f"models changed without a migration: run `python -m server.db.migrate revision ...`: {diff}"
    engine.dispose()


def test_upgrading_again_keeps_the_data(url):
    engine = make_engine(url)
    upgrade(engine)
    with Session(engine) as s:
        s.add(m.Zone(code="z1", name="Zone 1"))
        s.commit()
    upgrade(engine)  # a restart runs the migrations again: nothing to do, nothing lost
    with Session(engine) as s:
        assert [z.code for z in s.exec(select(m.Zone))] == ["z1"]
    engine.dispose()
