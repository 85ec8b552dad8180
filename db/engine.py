"""The process-wide engine of the configured database, migrated on first use, and sessions.

Write sessions begin with ``BEGIN IMMEDIATE`` on SQLite (see :mod:`db.connect`): a
writer waits for the lock up front instead of failing half-way when another
process committed first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db.connect import DatabaseBusyError, busy_error, create_db_engine
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
def session_scope(engine: Engine | None = None, *, write: bool = False) -> Iterator[Session]:
    """A session that commits on success and rolls back on error.

    ``write=True`` takes the write lock at BEGIN (SQLite), so concurrent writers
    queue up behind the busy timeout rather than failing with a stale snapshot.
    A lock held by another process for longer than the timeout becomes a
    :class:`DatabaseBusyError` naming the database; nothing is half-written.
    """
    engine = engine or get_engine()
    bind = engine.execution_options(sqlite_immediate=True) if write else engine
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
