"""Database: schema, engine and session set-up, migrations."""

from db.engine import DatabaseBusyError, dispose_engines, get_engine, session_scope

__all__ = ["DatabaseBusyError", "dispose_engines", "get_engine", "session_scope"]
