"""The evaluation part that follows the data: a seeded, stratified share of the review pool's answered photos
is held out, frozen once drawn, and rounds are judged per source of held-out photos (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, select

from db import session_scope
from db.catalog import get_or_create_class
from db.evaluation_part import IMPORTED, REVIEWED
from db.labels import labelled_set
from db.models import EvaluationDraw, Image, Split
from feedback.ingest import ingest_folder
from feedback.reviews import record_review, undo_last
from modeling.metrics import compute_metrics
from modeling.promotion import MIN_SOURCE_PHOTOS, decide, source_scores


@pytest.fixture
def engine(db_engine: Engine) -> Engine:
    return db_engine


def add_pool(engine: Engine, n: int, classes: dict[str, int] | None = None) -> list[int]:
    """``n`` pool photos (rows only: the draw never reads pixels), and the brand classes named."""
    with session_scope(engine, write=True) as session:
        for name in classes or {}:
            get_or_create_class(session, name)
        images = [
            Image(
                sha256=f"{i:064x}",
                path=f"/pool/{i}.jpg",
                width=9,
                height=9,
                format="JPEG",
                file_size=1,
                split=Split.POOL,
            )
            for i in range(n)
        ]
        session.add_all(images)
        session.flush()
        return [image.id for image in images]


def parts(engine: Engine) -> dict[int, bool]:
    with session_scope(engine) as session:
        return dict(session.execute(select(EvaluationDraw.image_id, EvaluationDraw.held_out)).all())


def answer_all(ids: list[int], brands: list[str], reviewer: str = "ann") -> None:
    for image_id, brand in zip(ids, brands, strict=True):
        record_review(image_id, reviewer, "correct", label=brand)


@pytest.mark.slow
def test_a_seeded_stratified_share_of_answered_pool_photos_is_held_out(engine: Engine) -> None:
    ids = add_pool(engine, 160, {"acme": 0, "bolt": 0})
    brands = ["acme"] * 120 + ["bolt"] * 40
    answer_all(ids, brands)
    drawn = parts(engine)
    assert set(drawn) == set(ids)  # every answered pool photo is drawn, once
    for brand, n in (("acme", 120), ("bolt", 40)):
        held = sum(drawn[i] for i, b in zip(ids, brands, strict=True) if b == brand)
        assert math.floor(0.15 * n) <= held <= math.ceil(0.15 * n), (brand, held)  # its share, per class
    with session_scope(engine) as session:
        splits = dict(session.execute(select(Image.id, Image.split)).all())
        labelled = labelled_set(session)
    assert all((splits[i] == Split.HOLDOUT) == drawn[i] for i in ids)
    assert {i.image_id for i in labelled.holdout} == {i for i in ids if drawn[i]}
    assert {i.source for i in labelled.holdout} == {REVIEWED}
    assert len(labelled.train) == 160 - len(labelled.holdout)

    # The draw is seeded: the same answers in the same order on another catalogue hold out the same photos.
    with session_scope(engine, write=True) as session:
        session.execute(EvaluationDraw.__table__.delete())
        session.execute(Image.__table__.update().values(split=Split.POOL))
    answer_all(ids, brands, reviewer="bob")
    assert parts(engine) == drawn


@pytest.mark.slow
def test_a_photo_keeps_its_part_whatever_later_answers_say(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOELABEL_REVIEW_HOLDOUT", "0.5")
    ids = add_pool(engine, 40, {"acme": 0, "bolt": 0})
    answer_all(ids, ["acme"] * 40)
    before = parts(engine)
    held = [i for i in ids if before[i]]
    trained = [i for i in ids if not before[i]]
    assert len(held) == 20
    undo_last("ann")  # the last photo answered loses its answer ...
    record_review(ids[-1], "ann", "correct", label="bolt")  # ... and gets another one
    record_review(held[0], "ann", "correct", label="bolt")  # a later answer changes the label, not the part
    record_review(trained[0], "ann", "correct", label="bolt")
    record_review(trained[1], "bob", "not_a_shoe")
    assert parts(engine) == before
    with session_scope(engine) as session:
        labelled = labelled_set(session)
    assert next(i for i in labelled.holdout if i.image_id == held[0]).brand == "bolt"
    assert trained[0] in {i.image_id for i in labelled.train}


@pytest.mark.slow
def test_imported_photos_skips_and_a_zero_share_hold_nothing_out_of_the_pool(
    engine: Engine, brand_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_folder(brand_folder, holdout_fraction=0.25)
    with session_scope(engine) as session:
        imported = list(session.scalars(select(Image.id).order_by(Image.id)))
    for image_id in imported[:5]:
        record_review(image_id, "ann", "correct", label="bolt")
    ids = add_pool(engine, 10)
    for image_id in ids[:5]:
        record_review(image_id, "ann", "skip")
        record_review(image_id, "ann", "unsure")
    assert parts(engine) == {}  # photos that arrived with a brand, and answers that decide nothing, draw nothing
    monkeypatch.setenv("SHOELABEL_REVIEW_HOLDOUT", "0")
    answer_all(ids, ["acme"] * 10)
    assert parts(engine) == dict.fromkeys(ids, False)  # drawn to training, so turning the share on later moves none
    with session_scope(engine) as session:
        labelled = labelled_set(session)
    assert {i.source for i in labelled.holdout} == {IMPORTED} and len(labelled.holdout) == 9


def test_the_share_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from shoelabel.settings import SettingsError, get_settings

    monkeypatch.setenv("SHOELABEL_REVIEW_HOLDOUT", "15%")
    with pytest.raises(SettingsError, match=r"SHOELABEL_REVIEW_HOLDOUT='15%'.*0\.15"):
        get_settings()
    monkeypatch.setenv("SHOELABEL_REVIEW_HOLDOUT", "0.2")
    assert get_settings().review_holdout == 0.2


# --------------------------------------------------------------------------- promotion per source


def scored(truth: list[int], predicted: list[int], sources: list[str]):
    metrics = compute_metrics(np.array(truth), np.array(predicted), ["a", "b"])
    metrics.truth, metrics.predicted, metrics.sources = truth, predicted, sources
    metrics.by_source = source_scores(np.array(truth), np.array(predicted), sources, ["a", "b"])
    return metrics


def flip(labels: list[int], rows: range) -> list[int]:
    return [1 - y if i in rows else y for i, y in enumerate(labels)]


def test_a_candidate_worse_beyond_noise_on_reviewed_photos_is_rejected_though_better_overall() -> None:
    truth = [0, 1] * 100  # 200 imported photos, then 40 reviewed ones
    truth = truth + [0, 1] * 20
    sources = [IMPORTED] * 200 + [REVIEWED] * 40
    current = scored(truth, flip(truth, range(0, 40)), sources)  # 40 imported mistakes, none on reviewed photos
    candidate = scored(truth, flip(truth, range(200, 212)), sources)  # 12 mistakes, all on reviewed photos
    assert candidate.macro_f1 > current.macro_f1
    assert candidate.by_source[REVIEWED] == {"n": 40, "accuracy": 0.7, "macro_f1": pytest.approx(0.7, abs=0.01)}
    accepted, message = decide(candidate, current, has_current=True, force=False)
    assert not accepted
    assert "worse beyond noise on the reviewed held-out photos" in message
    assert "reviewed held-out photos (n=40): accuracy 70.0% vs 100.0%" in message
    assert decide(candidate, current, has_current=True, force=True)[0]


def test_a_small_loss_within_noise_or_on_too_few_photos_does_not_block() -> None:
    truth = [0, 1] * 100 + [0, 1] * 20
    sources = [IMPORTED] * 200 + [REVIEWED] * 40
    current = scored(truth, flip(truth, range(0, 40)), sources)
    candidate = scored(truth, flip(truth, range(200, 203)), sources)  # 3 of 40 reviewed: within noise
    accepted, message = decide(candidate, current, has_current=True, force=False)
    assert accepted and "reviewed held-out photos (n=40)" in message and "not worse" in message

    few = MIN_SOURCE_PHOTOS - 1
    truth = [0, 1] * 100 + [0] * few
    sources = [IMPORTED] * 200 + [REVIEWED] * few
    current = scored(truth, flip(truth, range(0, 40)), sources)
    candidate = scored(truth, flip(truth, range(200, 200 + few)), sources)  # every reviewed photo wrong
    accepted, message = decide(candidate, current, has_current=True, force=False)
    assert accepted and f"(n={few})" in message and "too few to judge" in message
