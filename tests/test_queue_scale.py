"""Queues whose cost does not grow with the catalogue: each photo's queue entry follows what is stored,
scores are computed when predictions are stored, a queue is an index range, slice strategies stay bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import event, func, select, text

from db import session_scope
from db.models import EvaluationDraw, Image, QueueEntry, QueueStage, Split
from feedback.queue import next_items, pending_count
from feedback.reviews import record_review, undo_last
from modeling.predict import ModelHandle, store_predictions
from modeling.queue_scores import ensure_scored, scores_are_current
from modeling.registry import promote
from tests.app_support import register_brand_model
from tests.test_queue import fake_model


@pytest.fixture
def engine(db_engine):
    """Every test here runs on SQLite and on PostgreSQL (see ``db_engine``)."""
    return db_engine


def entries(engine) -> dict[int, QueueEntry]:
    with session_scope(engine) as session:
        return {e.image_id: e for e in session.scalars(select(QueueEntry))}


def test_every_photo_has_an_entry_whose_stage_follows_its_answers(engine, pool: list[int]) -> None:
    with session_scope(engine) as session:
        images = {i.id: i.split for i in session.scalars(select(Image))}
    stages = {i: e.stage for i, e in entries(engine).items()}
    assert set(stages) == set(images)
    assert all(stages[i] == (QueueStage.OPEN if s == Split.POOL else QueueStage.IMPORTED) for i, s in images.items())

    record_review(pool[0], "ann", "correct", label="bolt")
    record_review(pool[1], "ann", "not_a_shoe")
    record_review(pool[2], "ann", "skip")  # decides nothing
    stages = {i: e.stage for i, e in entries(engine).items()}
    assert (stages[pool[0]], stages[pool[1]], stages[pool[2]]) == (
        QueueStage.DECIDED,
        QueueStage.NOT_A_SHOE,
        QueueStage.OPEN,
    )
    undo_last("ann")  # the skip
    undo_last("ann")  # not a shoe: open again
    assert entries(engine)[pool[1]].stage == QueueStage.OPEN
    record_review(pool[0], "bob", "not_a_shoe")
    record_review(pool[0], "carol", "correct", label="acme")  # the latest answer says it is a shoe
    assert entries(engine)[pool[0]].stage == QueueStage.DECIDED


def test_scores_are_stored_with_a_current_models_predictions(engine, pool: list[int]) -> None:
    probs = {i: [0.9, 0.05, 0.05] for i in pool}
    probs[pool[3]] = [0.4, 0.35, 0.25]
    fake_model(engine, "inception", probs)
    stored = entries(engine)
    assert stored[pool[3]].least_confidence == pytest.approx(0.6)
    assert stored[pool[0]].least_confidence == pytest.approx(0.1)
    assert stored[pool[3]].margin == pytest.approx(-0.05)

    cnn = {i: [0.9, 0.05, 0.05] for i in pool}
    cnn[pool[0]] = [0.05, 0.9, 0.05]  # the committee splits on pool[0]
    fake_model(engine, "cnn", cnn)
    stored = entries(engine)
    assert stored[pool[0]].disagreement > 10 > stored[pool[1]].disagreement - 0.5
    assert stored[pool[0]].least_confidence == pytest.approx(1 - 0.475)  # from the two models' mean
    assert next_items("ann", "tab", strategy="disagreement", k=1)[0].image_id == pool[0]


def test_a_new_current_model_rescores_every_photo(engine, pool: list[int]) -> None:
    fake_model(engine, "inception", {i: [0.9, 0.05, 0.05] for i in pool})
    ensure_scored(engine)
    with session_scope(engine, write=True) as session:  # a candidate's predictions leave the scores alone
        version = register_brand_model(session, "inception", Path("/nowhere/v2.keras"))
        handle = ModelHandle.of(version)
    flat = {i: np.array([0.34, 0.33, 0.33]) if i == pool[6] else np.ones(3) / 3 for i in pool}
    store_predictions(engine, handle, flat)
    assert entries(engine)[pool[6]].least_confidence == pytest.approx(0.1)
    with session_scope(engine, write=True) as session:
        promote(session, session.merge(session.get(type(version), handle.id)))
    with session_scope(engine) as session:
        assert not scores_are_current(session)
    assert next_items("ann", "tab", k=1)[0].image_id != pool[6]  # the queue rescored first: every photo ties
    assert entries(engine)[pool[6]].least_confidence == pytest.approx(0.66)
    with session_scope(engine) as session:
        assert scores_are_current(session)


def test_a_queue_is_an_index_range_not_a_scan(engine, pool: list[int]) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the plan is read with SQLite's EXPLAIN QUERY PLAN; bench/bench_scale.py times PostgreSQL")
    fake_model(engine, "inception", {i: [0.5, 0.3, 0.2] for i in pool})
    ensure_scored(engine)
    statements: list[str] = []

    def remember(_conn, _cursor, statement, _parameters, _context, _many) -> None:
        if "queue_entries" in statement and "ORDER BY" in statement:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", remember)
    try:
        next_items("ann", "tab", k=2)
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert statements
    with engine.connect() as conn:
        for statement in statements:
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", _qmarks(statement))
            plan = " | ".join(row[-1] for row in rows)
            assert "ix_queue_least_confidence" in plan, plan
            assert "TEMP B-TREE FOR ORDER BY" not in plan, plan


def _qmarks(statement: str) -> tuple[object, ...]:
    """Placeholder values for a statement's ``?`` parameters (the plan does not depend on them)."""
    return tuple(0 for _ in range(statement.count("?")))


@pytest.mark.slow
def test_slice_strategies_rank_a_bounded_slice_once(engine, pool: list[int], monkeypatch) -> None:
    import feedback.queue as queue

    fake_model(engine, "inception", {i: [0.5 - 0.01 * n, 0.3, 0.2 + 0.01 * n] for n, i in enumerate(pool)})
    sizes: list[int] = []
    build = queue.build_candidates

    def counting(session, image_ids, **kwargs):
        sizes.append(len(image_ids))
        return build(session, image_ids, **kwargs)

    monkeypatch.setattr(queue, "SLICE", 5)
    monkeypatch.setattr(queue, "SLICE_PICKS", 3)
    monkeypatch.setattr(queue, "build_candidates", counting)
    items = next_items("ann", "tab", strategy="diverse", k=1)
    record_review(items[0].image_id, "ann", "skip")
    items = next_items("ann", "tab", strategy="diverse", k=1)
    assert sizes == [5]  # ranked once, from at most SLICE photos
    seen = set()
    for _ in range(len(pool)):
        items = next_items("ann", "tab", strategy="diverse", k=1)
        if not items:
            break
        seen.add(items[0].image_id)
        record_review(items[0].image_id, "ann", "skip")
    assert all(size <= 5 for size in sizes) and len(seen) >= len(pool) - 2
    assert pending_count("ann", "tab") == 0


def test_migration_gives_existing_photos_their_entries(empty_db_url: str) -> None:
    from db.connect import create_db_engine
    from db.migrate import upgrade

    old = create_db_engine(empty_db_url)
    upgrade(old, "0003")
    now = "2026-01-01 00:00:00"
    with old.begin() as conn:
        conn.execute(text("INSERT INTO brands (id, name, created_at) VALUES (1, 'acme', :t)"), {"t": now})
        for image_id, split, brand in ((1, "train", 1), (2, "pool", None), (3, "pool", None), (4, "pool", None)):
            conn.execute(
                text(
                    "INSERT INTO images (id, sha256, path, width, height, format, file_size, added_at, split, "
                    "source_brand_id, source) VALUES (:i, :s, '/p', 9, 9, 'JPEG', 1, :t, :split, :b, '')"
                ),
                {"i": image_id, "s": f"{image_id:064d}", "t": now, "split": split, "b": brand},
            )
        rows = [
            (1, 2, "correct", 1, "2026-01-01 00:00:01", None),
            (2, 3, "correct", 1, "2026-01-01 00:00:01", None),
            (3, 3, "not_a_shoe", None, "2026-01-01 00:00:02", None),
            (4, 4, "correct", 1, "2026-01-01 00:00:01", "2026-01-01 00:00:05"),  # undone
        ]
        for rid, iid, action, brand, at, undone in rows:
            conn.execute(
                text(
                    "INSERT INTO reviews (id, image_id, reviewer, action, brand_id, resolves_conflict, created_at, "
                    "undone_at) VALUES (:r, :i, 'ann', :a, :b, false, :at, :undone)"
                ),
                {"r": rid, "i": iid, "a": action, "b": brand, "at": at, "undone": undone},
            )
    upgrade(old)
    with old.connect() as conn:
        stages = dict(conn.execute(text("SELECT image_id, stage FROM queue_entries")).all())
    old.dispose()
    assert stages == {1: QueueStage.IMPORTED, 2: QueueStage.DECIDED, 3: QueueStage.NOT_A_SHOE, 4: QueueStage.OPEN}


def test_counters_follow_every_write(engine, pool: list[int]) -> None:
    from db.queue_entries import catalogue_counts, count_afresh

    def check() -> dict[str, int]:
        with session_scope(engine) as session:
            kept, scanned = catalogue_counts(session), count_afresh(session)
        assert kept == scanned
        return kept

    counts = check()
    assert counts["split:pool"] == len(pool) and counts["stage:0"] == len(pool)
    record_review(pool[0], "ann", "correct", label="bolt")
    record_review(pool[1], "ann", "not_a_shoe")
    record_review(pool[2], "ann", "skip")
    counts = check()
    assert (counts["stage:0"], counts["stage:2"], counts["stage:3"]) == (len(pool) - 2, 1, 1)
    undo_last("ann")
    undo_last("ann")
    assert check()["stage:0"] == len(pool) - 1
    with session_scope(engine, write=True) as session:  # a raw write outside the services counts too
        session.execute(text("UPDATE images SET split = 'holdout' WHERE id = :i"), {"i": pool[3]})
    with session_scope(engine) as session:  # the first answers drew their part: one may be held out
        drawn_out = session.scalar(select(func.count()).where(EvaluationDraw.held_out))
    assert check()["split:pool"] == len(pool) - 1 - drawn_out
    assert pending_count("bob", "tab-b") == len(pool) - 1
