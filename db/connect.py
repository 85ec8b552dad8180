"""Connecting to the database: engines and the busy-database error.

SQLite runs in WAL mode with a busy timeout, so the app and a retrain process can
use one database file at the same time. Write sessions begin with ``BEGIN
IMMEDIATE``: a writer waits for the lock up front instead of failing half-way
when another process committed first.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from shoelabel.errors import BusyError
from shoelabel.settings import SettingsError

BUSY_TIMEOUT_S = 30.0
BUSY_TIMEOUT_ENV = "SHOELABEL_BUSY_TIMEOUT"  # seconds; overrides BUSY_TIMEOUT_S (tests, impatient scripts)


class DatabaseBusyError(BusyError, RuntimeError):
    """Another process held the database lock for longer than the busy timeout."""


def busy_timeout_s() -> float:
    """How long a writer waits for another process's lock: ``SHOELABEL_BUSY_TIMEOUT`` or 30 s."""
    raw = os.environ.get(BUSY_TIMEOUT_ENV, "").strip()
    if not raw:
        return BUSY_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < 86400:
        raise SettingsError(f"{BUSY_TIMEOUT_ENV}={raw!r} is not a number of seconds; set it to e.g. 30, or unset it.")
    return value


def busy_error(engine: Engine, exc: OperationalError) -> DatabaseBusyError | None:
    """The clear error for a database another process kept locked, or None for other failures."""
    if "locked" not in str(exc).lower() and "busy" not in str(exc).lower():
        return None
    return DatabaseBusyError(
        f"The database {engine.url.render_as_string(hide_password=True)} is locked by "
        f"another process (waited {busy_timeout_s():g}s). Nothing was written; "
        "try again once the other process (a retrain round or another app) is done."
    )


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_db_engine(url: str) -> Engine:
    """A new engine for ``url``; SQLite files get WAL, a busy timeout and explicit BEGINs."""
    if not _is_sqlite(url):
        return create_engine(url, pool_pre_ping=True)
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    timeout = busy_timeout_s()
    engine = create_engine(url, connect_args={"timeout": timeout, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
