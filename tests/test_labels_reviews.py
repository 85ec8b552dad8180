"""Reviews become labels: latest wins, undo, conflicts kept visible and resolved explicitly
(stored on SQLite and on PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from db import session_scope
from db.catalog import ClassError
from db.labels import NOT_A_SHOE, ReviewRow, conflicts, derive, effective_labels, labelled_set
from db.models import Review, ReviewAction
from feedback.ingest import ingest_folder
from feedback.reviews import ReviewError, record_review, review_history, undo_last
from modeling.answers import ModelAnswer
from tests.app_support import register_brand_model

T0 = datetime(2026, 1, 1, 12, 0, 0)


def row(
    i: int, reviewer: str, action: str, brand: str | None = None, minutes: int = 0, resolves: bool = False
) -> ReviewRow:
    return ReviewRow(i, 1, reviewer, ReviewAction(action), brand, T0 + timedelta(minutes=minutes), resolves)


def test_imported_label_stands_until_reviewed() -> None:
    label = derive(1, "nike", [])
    assert (label.value, label.origin, label.brand) == ("nike", "import", "nike")
    assert derive(1, None, []).brand is None


def test_correction_overrides_import_and_latest_review_wins() -> None:
    label = derive(1, "nike", [row(1, "ann", "correct", "adidas", 0), row(2, "ann", "correct", "converse", 5)])
    assert label.brand == "converse" and label.origin == "review" and not label.conflict


def test_skip_and_unsure_decide_nothing() -> None:
    label = derive(1, "nike", [row(1, "ann", "skip"), row(2, "bob", "unsure")])
    assert label.brand == "nike" and label.origin == "import"


def test_not_a_shoe_removes_the_image_from_training() -> None:
    label = derive(1, "nike", [row(1, "ann", "not_a_shoe")])
    assert label.value == NOT_A_SHOE and label.not_a_shoe and label.brand is None


def test_disagreement_is_a_conflict_with_both_answers_until_a_resolution() -> None:
    reviews = [row(1, "ann", "correct", "adidas", 0), row(2, "bob", "confirm", "nike", 1)]
    label = derive(1, "nike", reviews)
    assert label.conflict and label.brand is None
    assert {r: a.value for r, a in label.answers.items()} == {"ann": "adidas", "bob": "nike"}
    # a later plain review by a third reviewer does not silently settle it
    assert derive(1, "nike", [*reviews, row(3, "cat", "confirm", "nike", 2)]).conflict
    # ann changing her mind does
    assert not derive(1, "nike", [*reviews, row(3, "ann", "correct", "nike", 2)]).conflict
    # an explicit resolution does, and a later disagreement reopens it
    resolved = [*reviews, row(3, "lead", "correct", "adidas", 3, resolves=True)]
    assert derive(1, "nike", resolved).brand == "adidas"
    assert derive(1, "nike", [*resolved, row(4, "bob", "correct", "nike", 4)]).conflict


def test_record_review_undo_and_history(db_engine: Engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder, holdout_fraction=0.0)
    with session_scope(db_engine, write=True) as session:
        version = register_brand_model(session, "cnn", Path("cnn.keras")).id
    shown = ModelAnswer("cnn", version, {"acme": 0.2, "bolt": 0.7, "crest": 0.1})
    first = record_review(1, "Ann", "confirm", shown=shown)
    with session_scope(db_engine) as session:
        review = session.get(Review, first)
        assert review.label_class.name == "bolt" and review.probabilities == shown.probabilities
        assert review.model_version_id == version
    record_review(1, "Ann", "correct", label="CREST")
    assert effective_labels_of(db_engine, 1).brand == "crest"
    undone = undo_last("Ann")
    assert undone is not None and undone.action == ReviewAction.CORRECT
    assert effective_labels_of(db_engine, 1).brand == "bolt"
    history = review_history(1)
    assert [h["action"] for h in history] == ["confirm", "correct"]
    assert history[1]["undone_at"] is not None and history[0]["undone_at"] is None
    with session_scope(db_engine) as session:
        assert session.scalar(select(func.count(Review.id))) == 2  # nothing deleted


def effective_labels_of(engine: Engine, image_id: int):
    with session_scope(engine) as session:
        return effective_labels(session, [image_id])[image_id]


def test_bad_reviews_are_refused_and_nothing_is_written(db_engine: Engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder)
    with pytest.raises(ClassError, match=r"Unknown brand 'reebok'\. Known brand classes: acme, bolt, crest"):
        record_review(1, "ann", "correct", label="reebok")
    with pytest.raises(ReviewError, match="needs the class"):
        record_review(1, "ann", "correct")
    with pytest.raises(ReviewError, match="Nothing to confirm"):
        record_review(1, "ann", "confirm")
    with pytest.raises(ReviewError, match="reviewer name"):
        record_review(1, "  ", "skip")
    with pytest.raises(ReviewError, match="Unknown review action"):
        record_review(1, "ann", "approve")
    with pytest.raises(ReviewError, match="No image with id 999"):
        record_review(999, "ann", "skip")
    with session_scope(db_engine) as session:
        assert session.scalar(select(func.count(Review.id))) == 0


def test_labelled_set_leaves_out_conflicts_and_not_a_shoe(db_engine: Engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder, holdout_fraction=0.25)
    with session_scope(db_engine) as session:
        before = labelled_set(session)
    some_train = before.train[0].image_id
    other_train = before.train[1].image_id
    record_review(some_train, "ann", "correct", label="crest")
    record_review(some_train, "bob", "correct", label="bolt")
    record_review(other_train, "ann", "not_a_shoe")
    with session_scope(db_engine) as session:
        after = labelled_set(session)
        assert [c.image_id for c in conflicts(session)] == [some_train]
    assert len(after.train) == len(before.train) - 2
    assert after.excluded_conflicts == 1 and after.not_a_shoe == 1
    assert len(after.holdout) == len(before.holdout) == 9
