"""The process-wide engine of the configured database, migrated on first use, and sessions.

Write sessions take the writers' lock when their transaction begins (``BEGIN IMMEDIATE``
on SQLite, an advisory lock on PostgreSQL; see :mod:`db.connect`): a writer waits for the
lock up front instead of failing half-way when another process committed first, and reads
what it then writes without another writer in between.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

import db.queue_entries  # noqa: F401  (keeps each photo's queue entry in step with every flush)
from db.connect import WRITE_LOCK, DatabaseBusyError, busy_error, create_db_engine
from db.migrate import upgrade
from shoelabel.settings import get_settings

__all__ = ["DatabaseBusyError", "dispose_engines", "get_engine", "session_scope"]

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for ``url`` (default: the configured database), migrated to head."""
    url = url or get_settings().db_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_db_engine(url)
            upgrade(engine)
            _engines[url] = engine
    return engine


def dispose_engines() -> None:
    """Close every cached engine (tests and forked processes)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_scope(engine: Engine | None = None, *, write: bool = False, row_locks: bool = False) -> Iterator[Session]:
    """A session that commits on success and rolls back on error.

    ``write=True`` takes the writers' lock at BEGIN (and again after a commit inside the
    block), so concurrent writers queue up behind the busy timeout rather than failing with
    a stale snapshot or racing a check-then-insert. ``row_locks=True`` says the writes rely on
    the rows they lock themselves (``SELECT ... FOR UPDATE SKIP LOCKED``): on PostgreSQL such a
    session skips the writers' lock, so reviewers claiming photos never wait for each other;
    SQLite has only its database lock.
    A lock held by another process for longer than the timeout becomes a
    :class:`DatabaseBusyError` naming the database; nothing is half-written.
    """
    engine = engine or get_engine()
    exclusive = write and (engine.dialect.name == "sqlite" or not row_locks)
    bind = engine.execution_options(**{WRITE_LOCK: True}) if exclusive else engine
    session = sessionmaker(bind=bind, expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except OperationalError as exc:
        session.rollback()
        busy = busy_error(engine, exc)
        if busy is None:
            raise
        raise busy from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
