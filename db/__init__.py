"""Database: schema, engine and session set-up, migrations.

The names below are loaded on first use, so ``python -m db.migrate`` runs its module
once (importing the package does not import the migration module first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["DatabaseBusyError", "dispose_engines", "get_engine", "session_scope"]

if TYPE_CHECKING:
    from db.engine import DatabaseBusyError, dispose_engines, get_engine, session_scope


def __getattr__(name: str) -> Any:
    if name in __all__:
        from db import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'db' has no attribute {name!r}")
