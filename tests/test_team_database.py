"""One database shared by a team, on SQLite and on PostgreSQL: processes that open, ingest into,
review on and claim from the same catalogue at the same moment, and background jobs that report
into it from their own process."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from db import get_engine, session_scope
from db.catalog import get_or_create_class
from db.connect import create_db_engine
from db.labels import conflicts
from db.migrate import current_revision, head_revision
from db.models import (
    Image,
    ImportedLabel,
    Job,
    JobStatus,
    LabelClass,
    Prediction,
    QueueEntry,
    QueueStage,
    Review,
    Split,
)

# The processes below import this module afresh: it imports the services they use only where used.
SPAWN = multiprocessing.get_context("spawn")


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def run_at_once(target: Callable[..., None], *args_per_process: tuple) -> None:
    """Run ``target(barrier, *args)`` in one fresh process per argument tuple; they pass the barrier together."""
    barrier = SPAWN.Barrier(len(args_per_process))
    workers = [SPAWN.Process(target=target, args=(barrier, *args)) for args in args_per_process]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(180)
    assert [w.exitcode for w in workers] == [0] * len(workers), "a process failed: see its traceback above"


def _open(barrier: threading.Barrier, url: str) -> None:
    barrier.wait()
    get_engine(url)


@pytest.mark.slow
def test_two_processes_opening_a_new_database_at_once_migrate_it_once(empty_db_url: str) -> None:
    run_at_once(_open, (empty_db_url,), (empty_db_url,))
    engine = create_db_engine(empty_db_url)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM alembic_version")).scalar() == 1
    engine.dispose()


def _ingest(barrier: threading.Barrier, url: str, folder: Path) -> None:
    from feedback.ingest import ingest_folder

    engine = create_db_engine(url)
    barrier.wait()
    ingest_folder(folder, holdout_fraction=0.25, engine=engine)


@pytest.mark.slow
def test_two_processes_ingesting_the_same_folder_at_once_store_each_photo_and_brand_once(
    db_engine: Engine, brand_folder: Path
) -> None:
    run_at_once(_ingest, (url_of(db_engine), brand_folder), (url_of(db_engine), brand_folder))
    with session_scope(db_engine) as session:
        assert session.scalar(select(func.count(Image.id))) == 36
        assert sorted(session.scalars(select(LabelClass.name))) == ["acme", "bolt", "crest"]
        held_out = session.execute(
            select(LabelClass.name, func.count(Image.id))
            .join(ImportedLabel, ImportedLabel.class_id == LabelClass.id)
            .join(Image, Image.id == ImportedLabel.image_id)
            .where(Image.split == Split.HOLDOUT)
            .group_by(LabelClass.name)
        ).all()
        assert sorted(held_out) == [("acme", 3), ("bolt", 3), ("crest", 3)]  # drawn once, not twice
        assert session.scalar(select(func.count()).select_from(QueueEntry)) == 36


def test_a_brand_added_while_another_writer_adds_it_in_other_case_exists_once(db_engine: Engine) -> None:
    """The writers' lock makes look-up and insert one step: the second writer waits, then finds the brand."""
    added = threading.Event()
    names: list[str] = []

    def first() -> None:
        with session_scope(db_engine, write=True) as session:
            names.append(get_or_create_class(session, "Nike").name)
            added.set()
            time.sleep(0.5)  # not committed yet

    def second() -> None:
        added.wait(10)
        with session_scope(db_engine, write=True) as session:
            names.append(get_or_create_class(session, "nike").name)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert names == ["Nike", "Nike"]
    with session_scope(db_engine) as session:
        assert session.scalars(select(LabelClass.name)).all() == ["Nike"]


def _review_all(barrier: threading.Barrier, url: str, reviewer: str, brand: str, image_ids: list[int]) -> None:
    from feedback.reviews import record_review

    engine = create_db_engine(url)
    barrier.wait()
    for image_id in image_ids:
        record_review(image_id, reviewer, "correct", label=brand, engine=engine)


@pytest.mark.slow
def test_two_reviewers_answering_the_same_photos_at_once_lose_no_answer(db_engine: Engine, brand_folder: Path) -> None:
    from feedback.ingest import ingest_folder

    ingest_folder(brand_folder, holdout_fraction=0.0)
    with session_scope(db_engine) as session:
        ids = list(session.scalars(select(Image.id).order_by(Image.id)))
    url = url_of(db_engine)
    run_at_once(_review_all, (url, "ann", "acme", ids), (url, "bob", "bolt", ids[::-1]))
    with session_scope(db_engine) as session:
        answers = session.execute(select(Review.reviewer, func.count(Review.id)).group_by(Review.reviewer)).all()
        assert sorted(answers) == [("ann", 36), ("bob", 36)]
        # ann says acme and bob says bolt everywhere: every photo is in conflict, every photo decided
        assert sorted(c.image_id for c in conflicts(session)) == ids
        stages = session.scalars(select(QueueEntry.stage)).all()
        assert stages == [QueueStage.DECIDED] * 36


# Claims: two reviewers asking for photos at the same moment never get the same one. This tests the claim
# logic of feedback/queue.py (next_items); run it with `pytest tests/test_team_database.py -k claims`.
def test_claims_two_reviewers_asking_at_once_never_get_the_same_photo(
    db_engine: Engine, home: Path, brand_folder: Path, pool_folder: Path
) -> None:
    from feedback.queue import next_items
    from feedback.reviews import record_review
    from tests.app_support import seed_catalogue

    seed_catalogue(db_engine, home, brand_folder, pool_folder)
    handed: dict[str, list[set[int]]] = {"ann": [], "bob": []}
    barrier = threading.Barrier(2)

    def reviewer(name: str) -> None:
        for _ in range(3):
            barrier.wait(30)
            items = next_items(name, f"tab-{name}", k=2, engine=db_engine)
            handed[name].append({item.image_id for item in items})
            barrier.wait(30)  # both hold their claims here: compared below, then answered
            for item in items:
                record_review(item.image_id, name, "skip", engine=db_engine)

    threads = [threading.Thread(target=reviewer, args=(name,)) for name in handed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(len(turns) == 3 for turns in handed.values())
    for ann, bob in zip(handed["ann"], handed["bob"], strict=True):
        assert ann and bob and not ann & bob, handed


@pytest.mark.parametrize("db_engine", ["postgresql"], indirect=True)  # SQLite: tests/test_tour.py, step 6
@pytest.mark.slow
def test_a_background_refresh_reports_into_the_shared_database_from_its_own_process(
    db_engine: Engine, home: Path, brand_folder: Path
) -> None:
    from feedback.ingest import ingest_folder
    from modeling.architectures import build_cnn
    from modeling.background import start_refresh
    from tests.refresh_support import current_cnn

    ingest_folder(brand_folder)
    version_id = current_cnn(db_engine, home, build_cnn(3, input_size=32, widths=(8, 8, 8, 8))).id
    started = start_refresh(all_images=True, engine=db_engine)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with session_scope(db_engine) as session:
            job = session.get(Job, started.job_id)
            if job.status != JobStatus.RUNNING:
                break
        time.sleep(0.5)
    assert job.status == JobStatus.DONE, f"{job.message}\n{Path(job.log_path).read_text()}"
    assert job.pid == started.pid and job.progress == 1.0 and job.finished_at > job.started_at
    with session_scope(db_engine) as session:
        predicted = session.scalar(select(func.count(Prediction.id)).where(Prediction.model_version_id == version_id))
    assert predicted == 36
