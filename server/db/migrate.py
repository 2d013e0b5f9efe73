"""Schema migrations with Alembic, run from code: ``upgrade(engine)`` brings any older schema to head.

New revision after a model change (then read it, and commit it):

    python -m server.db.migrate revision "what changed"
"""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "revision":
        print(__doc__, file=sys.stderr)
        return 2
    from .engine import make_engine

    engine = make_engine("sqlite:///" + str(Path("/tmp/zonewatch-revision.db")))
    Path("/tmp/zonewatch-revision.db").unlink(missing_ok=True)
    upgrade(engine)
    with engine.begin() as connection:
        command.revision(alembic_config(connection), message=argv[1], autogenerate=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
