"""Schema, migrations, WAL set-up and concurrent writers, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from db import DatabaseBusyError, session_scope
from db.connect import create_db_engine
from db.migrate import current_revision, head_revision, upgrade
from db.models import Base, Image, LabelClass, Review, ReviewAction, Split


def test_migrations_build_the_schema_from_an_empty_database(empty_db_url: str) -> None:
    engine = create_db_engine(empty_db_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {
        "attributes",
        "classes",
        "imported_labels",
        "images",
        "reviews",
        "predictions",
        "model_versions",
        "rounds",
        "image_claims",
    } <= tables
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    if engine.dialect.name == "sqlite":
        diff = _without_descending_index_pairs(diff)
    assert diff == [], f"models and migrations disagree: {diff}"


def _without_descending_index_pairs(diff: list) -> list:
    """SQLite reflects an index without its DESC columns, so Alembic sees each descending index as removed
    and added again under the same name; those pairs (and only those) are no difference."""
    removed = {d[1].name for d in diff if d[0] == "remove_index"}
    added = {
        d[1].name: d[1]
        for d in diff
        if d[0] == "add_index" and any(getattr(e, "modifier", None) is not None for e in d[1].expressions)
    }
    same = removed & set(added)
    return [d for d in diff if not (d[0] in ("remove_index", "add_index") and d[1].name in same)]


def test_upgrade_twice_is_harmless_and_keeps_data(empty_db_url: str) -> None:
    engine = create_db_engine(empty_db_url)
    upgrade(engine)
    with session_scope(engine, write=True) as session:
        session.add(LabelClass(name="nike"))
    upgrade(engine)
    with session_scope(engine) as session:
        assert session.scalars(select(LabelClass.name)).all() == ["nike"]


def test_downgrade_to_base_and_back(empty_db_url: str) -> None:
    engine = create_db_engine(empty_db_url)
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


def test_db_engine_is_the_migrated_engine_every_service_uses(db_engine: Engine, request: pytest.FixtureRequest) -> None:
    from db import get_engine
    from shoelabel.settings import get_settings

    assert db_engine.dialect.name == request.node.callspec.params["db_engine"]
    assert get_engine() is db_engine and get_settings().db_url == db_engine.url.render_as_string(hide_password=False)
    assert current_revision(db_engine) == head_revision()
    with session_scope(db_engine) as session:
        assert session.scalars(select(Image)).all() == [] and session.scalars(select(LabelClass)).all() == []


def test_enum_columns_reject_unknown_values(db_engine: Engine) -> None:
    with pytest.raises(IntegrityError), session_scope(db_engine, write=True) as session:
        session.execute(
            text(
                "INSERT INTO images (sha256, path, width, height, format, file_size, added_at, split, source)"
                " VALUES ('x', 'p', 1, 1, 'jpeg', 1, '2026-01-01', 'nonsense', '')"
            )
        )


def _write_reviews(url: str, reviewer: str, image_id: int, count: int) -> None:
    engine = create_db_engine(url)
    for _ in range(count):
        with session_scope(engine, write=True) as session:
            session.add(Review(image_id=image_id, reviewer=reviewer, action=ReviewAction.SKIP))
            # read-modify-write inside the transaction, as a real action does
            session.scalar(select(Review.id).order_by(Review.id.desc()).limit(1))


@pytest.mark.slow
def test_two_processes_writing_at_once_lose_nothing(db_engine: Engine) -> None:
    url = db_engine.url.render_as_string(hide_password=False)
    with session_scope(db_engine, write=True) as session:
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
    with session_scope(db_engine) as session:
        reviewers = session.scalars(select(Review.reviewer)).all()
    assert reviewers.count("ann") == 60 and reviewers.count("bob") == 60


def test_locked_database_gives_a_clear_error_and_writes_nothing(
    db_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOELABEL_BUSY_TIMEOUT", "0.2")
    impatient = create_db_engine(db_engine.url.render_as_string(hide_password=False))
    with session_scope(db_engine, write=True) as other:  # another process holds the writers' lock
        other.add(LabelClass(name="puma"))
        other.flush()
        started = time.monotonic()
        with (
            pytest.raises(
                DatabaseBusyError, match=r"is locked by another process \(waited 0\.2s\)\. Nothing was written"
            ),
            session_scope(impatient, write=True) as session,
        ):
            session.add(LabelClass(name="adidas"))
        assert time.monotonic() - started < 5
    with session_scope(impatient, write=True) as session:  # the impatient engine works again once it is free
        session.add(LabelClass(name="nike"))
    with session_scope(db_engine) as session:
        assert sorted(session.scalars(select(LabelClass.name))) == ["nike", "puma"]


@pytest.mark.parametrize("db_engine", ["postgresql"], indirect=True)  # SQLite has one writer at a time
@pytest.mark.slow
def test_a_deadlock_between_two_writers_is_a_busy_error_for_one_and_the_other_commits(db_engine: Engine) -> None:
    """Sessions that write without the writers' lock may deadlock on PostgreSQL: the server rolls one back."""
    with session_scope(db_engine, write=True) as session:
        session.add_all([LabelClass(name="a"), LabelClass(name="b")])
    both_hold_one = threading.Barrier(2)
    outcomes: dict[str, BaseException | None] = {}

    def rename(first: str, second: str) -> None:
        try:
            with session_scope(db_engine) as session:
                session.execute(update(LabelClass).where(LabelClass.name == first).values(name=first + "1"))
                both_hold_one.wait(10)
                session.execute(update(LabelClass).where(LabelClass.name == second).values(name=second + "2"))
            outcomes[first] = None
        except Exception as exc:
            outcomes[first] = exc

    threads = [threading.Thread(target=rename, args=pair) for pair in (("a", "b"), ("b", "a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    failed = [exc for exc in outcomes.values() if exc is not None]
    assert len(outcomes) == 2 and len(failed) == 1, outcomes
    assert isinstance(failed[0], DatabaseBusyError) and "collided with another process's write" in str(failed[0])
    with session_scope(db_engine) as session:
        assert sorted(session.scalars(select(LabelClass.name))) in (["a1", "b2"], ["a2", "b1"])


@pytest.mark.slow
def test_a_database_that_cannot_be_opened_is_named_with_the_reason(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SHOELABEL_HOME": str(tmp_path),
        "SHOELABEL_DB": "postgresql+psycopg://ann:secret@127.0.0.1:1/labels",
    }
    done = subprocess.run([sys.executable, "-m", "db.migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: Cannot open the database postgresql+psycopg://ann:***@127.0.0.1:1/labels (")
    assert "Connection refused" in done.stderr and "Check SHOELABEL_DB" in done.stderr
    assert "secret" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("db_engine", ["postgresql"], indirect=True)
def test_timestamps_are_naive_utc_whatever_the_server_s_time_zone(db_engine: Engine) -> None:
    from db.models import utcnow

    with db_engine.connect() as connection:
        connection.execute(text(f"ALTER DATABASE {db_engine.url.database} SET timezone TO 'Pacific/Kiritimati'"))
        connection.commit()
    db_engine.dispose()  # new connections take the database's time zone, 14 hours ahead of UTC
    before = utcnow()
    with session_scope(db_engine, write=True) as session:
        session.add(LabelClass(name="nike"))
    with session_scope(db_engine) as session:
        assert session.scalar(select(text("current_setting('TimeZone')"))) == "Pacific/Kiritimati"
        created = session.scalar(select(LabelClass.created_at))
    assert created.tzinfo is None and before <= created <= utcnow()
