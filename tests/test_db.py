"""Schema, migrations, WAL set-up and concurrent writers."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from db import DatabaseBusyError, session_scope
from db.connect import create_db_engine
from db.migrate import current_revision, head_revision, upgrade
from db.models import Base, Brand, Image, Review, ReviewAction, Split


def test_migrations_build_the_schema_from_an_empty_database(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"brands", "images", "reviews", "predictions", "model_versions", "rounds", "image_claims"} <= tables
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_upgrade_twice_is_harmless_and_keeps_data(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'keep.db'}")
    upgrade(engine)
    with session_scope(engine, write=True) as session:
        session.add(Brand(name="nike"))
    upgrade(engine)
    with session_scope(engine) as session:
        assert session.scalars(select(Brand.name)).all() == ["nike"]


def test_downgrade_to_base_and_back(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'down.db'}")
    upgrade(engine)
    from alembic import command

    from db.migrate import alembic_config

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert "images" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert "images" in inspect(engine).get_table_names()


def test_sqlite_runs_in_wal_mode_with_busy_timeout(engine) -> None:
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_busy_timeout_can_be_set_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shoelabel.settings import SettingsError

    monkeypatch.setenv("SHOELABEL_BUSY_TIMEOUT", "2.5")
    with create_db_engine(f"sqlite:///{tmp_path / 'a.db'}").connect() as connection:
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 2500
    monkeypatch.setenv("SHOELABEL_BUSY_TIMEOUT", "soon")
    with pytest.raises(SettingsError, match="SHOELABEL_BUSY_TIMEOUT='soon' is not a number of seconds"):
        create_db_engine(f"sqlite:///{tmp_path / 'b.db'}")


def test_enum_columns_reject_unknown_values(engine) -> None:
    with pytest.raises(Exception), session_scope(engine, write=True) as session:  # noqa: B017
        session.execute(
            text(
                "INSERT INTO images (sha256, path, width, height, format, file_size, added_at, split, source)"
                " VALUES ('x', 'p', 1, 1, 'jpeg', 1, '2026-01-01', 'nonsense', '')"
            )
        )


def _write_reviews(url: str, reviewer: str, image_id: int, count: int) -> None:
    from db.connect import create_db_engine

    engine = create_db_engine(url)
    for _ in range(count):
        with session_scope(engine, write=True) as session:
            session.add(Review(image_id=image_id, reviewer=reviewer, action=ReviewAction.SKIP))
            # read-modify-write inside the transaction, as a real action does
            session.scalar(select(Review.id).order_by(Review.id.desc()).limit(1))


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = create_db_engine(url)
    upgrade(engine)
    with session_scope(engine, write=True) as session:
        image = Image(sha256="a" * 64, path="x.jpg", width=10, height=10, format="jpeg", file_size=1, split=Split.POOL)
        session.add(image)
        session.flush()
        image_id = image.id
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_reviews, args=(url, name, image_id, 60)) for name in ("ann", "bob")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    with session_scope(engine) as session:
        reviewers = session.scalars(select(Review.reviewer)).all()
    assert reviewers.count("ann") == 60 and reviewers.count("bob") == 60


def test_locked_database_gives_a_clear_error_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import db.connect as engine_module

    path = tmp_path / "locked.db"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    monkeypatch.setattr(engine_module, "BUSY_TIMEOUT_S", 0.2)
    impatient = engine_module.create_db_engine(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with (
            pytest.raises(DatabaseBusyError, match="locked by another process"),
            session_scope(impatient, write=True) as session,
        ):
            session.add(Brand(name="adidas"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    with session_scope(engine) as session:
        assert session.scalars(select(Brand)).all() == []
