"""Connecting to the database: engines, the writers' lock and the busy-database error.

Writers take one database-wide lock at the start of their transaction, on every backend,
so a write session reads and writes as if it were alone: a get-or-create, a check then an
insert, never race another process. Readers never wait for it.

* SQLite runs in WAL mode with a busy timeout, so the app and a retrain process can use one
  database file at the same time; a write session begins with ``BEGIN IMMEDIATE``.
* PostgreSQL: a write session's first statement takes a transaction-level advisory lock
  (``pg_advisory_xact_lock``), released at commit or rollback. ``lock_timeout`` bounds the
  wait for it, and for any row or table lock, by the same busy timeout.

A writer that waited longer than the busy timeout gets :class:`DatabaseBusyError`, and so does
one the server rolled back for a deadlock or a serialisation failure: nothing was written, and
trying again works.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from shoelabel.errors import BusyError, UserError
from shoelabel.settings import number_setting

BUSY_TIMEOUT_S = 30.0
BUSY_TIMEOUT_ENV = "SHOELABEL_BUSY_TIMEOUT"  # seconds; overrides BUSY_TIMEOUT_S (tests, impatient scripts)

WRITE_LOCK = "shoelabel_write_lock"  # execution option: this connection's transactions take the writers' lock
WRITERS_LOCK_KEY = 0x73686F656C6162  # PostgreSQL advisory lock key of the writers' lock ("shoelab")

# PostgreSQL error codes of a writer that should simply try again
LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout ran out
RETRY_CODES = {"40001", "40P01"}  # serialization_failure, deadlock_detected


class DatabaseBusyError(BusyError, RuntimeError):
    """Another process held the database lock for longer than the busy timeout."""


class DatabaseUnavailableError(UserError, RuntimeError):
    """The configured database cannot be opened: no server, no such database or role, no access."""


def busy_timeout_s() -> float:
    """How long a writer waits for another process's lock: ``SHOELABEL_BUSY_TIMEOUT`` or 30 s."""
    return number_setting(
        BUSY_TIMEOUT_ENV,
        BUSY_TIMEOUT_S,
        lambda v: 0 <= v < 86400,
        " is not a number of seconds; set it to e.g. 30, or unset it.",
    )


def busy_error(engine: Engine, exc: OperationalError) -> DatabaseBusyError | None:
    """The clear error for a database another process kept locked, or None for other failures."""
    where = engine.url.render_as_string(hide_password=True)
    code = getattr(exc.orig, "sqlstate", None)  # PostgreSQL's error code; SQLite has none, only its message
    if code in RETRY_CODES:
        return DatabaseBusyError(
            f"The database {where} rolled this write back because it collided with another process's write "
            "at the same moment. Nothing was written; try again."
        )
    message = str(exc.orig if exc.orig is not None else exc).lower()  # the driver's message, without the SQL
    locked = (code == LOCK_NOT_AVAILABLE) if code else ("locked" in message or "busy" in message)
    if not locked:
        return None
    return DatabaseBusyError(
        f"The database {where} is locked by "
        f"another process (waited {busy_timeout_s():g}s). Nothing was written; "
        "try again once the other process (a retrain round or another app) is done."
    )


def unavailable_error(engine: Engine, exc: OperationalError) -> DatabaseUnavailableError:
    reason = " ".join(str(exc.orig or exc).split())
    if engine.dialect.name == "sqlite":
        advice = (
            "The file and its folder must be writable (SQLite writes beside the file even to read) on a disk that "
            "is not full; or set SHOELABEL_HOME (or SHOELABEL_DB) to another place."
        )
    else:
        advice = (
            "Check SHOELABEL_DB: for PostgreSQL the server must be running and the role and database must exist "
            "(see Team server in the README)."
        )
    return DatabaseUnavailableError(
        f"Cannot open the database {engine.url.render_as_string(hide_password=True)} ({reason}). {advice}"
    )


def create_db_engine(url: str) -> Engine:
    """A new engine for ``url``, with the busy timeout and the writers' lock (see the module docstring);
    :class:`DatabaseUnavailableError` for a URL that is malformed or names a database shoelabel cannot use."""
    try:
        parsed = make_url(url)
        backend, _port = parsed.get_backend_name(), parsed.port
        parsed.get_dialect().import_dbapi()  # the driver it names is installed
    except (ArgumentError, ValueError, ImportError) as exc:  # a parse error, a bad port, an unknown dialect
        raise DatabaseUnavailableError(
            f"SHOELABEL_DB={_without_password(url)!r} is not a database URL shoelabel can use ({exc}). Give "
            "sqlite:////absolute/path/shoelabel.db, or postgresql+psycopg://USER@HOST/DATABASE for a team server "
            "(see Team server in the README)."
        ) from exc
    if backend == "sqlite":
        return _sqlite_engine(url)
    engine = create_engine(url, pool_pre_ping=True)
    if backend == "postgresql":
        _set_up_postgresql(engine)
    return engine


def _without_password(url: str) -> str:
    """``url`` with whatever stands between ``user:`` and ``@`` hidden (it may be a password)."""
    return re.sub(r"(//[^/@:]*:)[^/]*@", r"\1***@", url)


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    timeout = busy_timeout_s()
    engine = create_engine(url, connect_args={"timeout": timeout, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        _use_wal(cursor, timeout)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE_LOCK, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _use_wal(cursor: sqlite3.Cursor, timeout: float) -> None:
    """Switch a database file to WAL (kept in the file: a no-op once done). The switch needs the file to
    itself and SQLite does not wait for it, so a process opening a new database while another migrates it
    tries again until the busy timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _set_up_postgresql(engine: Engine) -> None:
    # lock_timeout 0 would mean "wait for ever": a zero busy timeout waits one millisecond
    timeout_ms = max(1, int(busy_timeout_s() * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = {timeout_ms}")
            cursor.execute("SET jit = off")  # compiling a plan costs more than the short queries it would speed up
        dbapi_connection.commit()  # a SET inside a rolled-back transaction would be undone

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(WRITE_LOCK, False):
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITERS_LOCK_KEY})")
