"""Schema migrations (Alembic), applied automatically when a database is opened.

``python -m db.migrate [URL]`` applies them explicitly and prints the revision.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from db.connect import WRITE_LOCK, busy_error, create_db_engine, unavailable_error
from shoelabel import cli
from shoelabel.settings import get_settings

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision``; a no-op when it is there already.

    Runs in one transaction under the writers' lock (see :mod:`db.connect`), so two processes
    opening a new database at once migrate it once: the second finds it at head. A database
    that cannot be opened is a :class:`~db.connect.DatabaseUnavailableError` naming it.
    """
    try:
        at = current_revision(engine)
    except OperationalError as exc:
        raise busy_error(engine, exc) or unavailable_error(engine, exc) from exc
    if revision == "head" and at == head_revision():
        return
    config = alembic_config()
    try:
        with (
            engine.connect() as connection,
            _foreign_keys_off(connection),
            connection.execution_options(**{WRITE_LOCK: True}).begin(),
        ):
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            _check_foreign_keys(connection)
    except OperationalError as exc:
        busy = busy_error(engine, exc)
        if busy is None:
            raise
        raise busy from exc


@contextmanager
def _foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite changes a table by copying it (a new table, the rows, drop, rename); with foreign keys on,
    dropping a table others point at fails. As SQLite's documentation prescribes, migrations run with
    them off (a setting outside the transaction) and are checked before they commit."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _check_foreign_keys(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"The migration would break references: {broken[:5]}; nothing was changed.")


@cli.command
def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    url = args[0] if args else get_settings().db_url
    engine = create_db_engine(url)
    upgrade(engine)
    print(f"{engine.url.render_as_string(hide_password=True)} is at revision {current_revision(engine)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
