"""Review queues over a real database: ordering from stored predictions, claims, exclusions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from db import session_scope
from db.models import Image, ImageClaim, Split
from feedback.ingest import ingest_folder
from feedback.queue import next_items, pending_count
from feedback.reviews import record_review, undo_last
from modeling.predict import ModelHandle, store_predictions
from modeling.registry import promote
from tests.app_support import register_brand_model


def fake_model(engine, arch: str, probabilities: dict[int, list[float]]) -> int:
    """A registered current model whose stored predictions are ``probabilities``."""
    with session_scope(engine, write=True) as session:
        version = register_brand_model(session, arch, Path(f"/nowhere/{arch}.keras"))
        promote(session, version)
        handle = ModelHandle.of(version)
    store_predictions(engine, handle, {i: np.array(p) for i, p in probabilities.items()})
    return handle.id


@pytest.fixture
def engine(db_engine):
    """Every test here runs on SQLite and on PostgreSQL (see ``db_engine``)."""
    return db_engine


def test_least_confident_pool_image_comes_first(engine, pool: list[int]) -> None:
    probs = {i: [0.9, 0.05, 0.05] for i in pool}
    probs[pool[5]] = [0.4, 0.35, 0.25]
    probs[pool[2]] = [0.6, 0.3, 0.1]
    fake_model(engine, "inception", probs)
    items = next_items("ann", "tab-1", k=2)
    assert [i.image_id for i in items] == [pool[5], pool[2]]
    shown = items[0].predictions["inception"]
    assert shown.brand == "acme" and shown.confidence == pytest.approx(0.4)
    assert items[0].label.value is None


def test_a_queue_never_repeats_what_the_reviewer_handled(engine, pool: list[int]) -> None:
    for _ in range(len(pool)):
        item = next_items("ann", "tab-1", k=1)[0]
        record_review(item.image_id, "ann", "skip")
    assert next_items("ann", "tab-1") == []
    assert pending_count("ann", "tab-1") == 0
    assert pending_count("bob", "tab-2") == len(pool)  # skips decide nothing for others
    undo_last("ann")
    assert len(next_items("ann", "tab-1", k=5)) == 1  # an undone review no longer counts as handled


def test_two_reviewers_at_once_get_different_images(engine, pool: list[int]) -> None:
    ann = {i.image_id for i in next_items("ann", "tab-a", k=3)}
    bob = {i.image_id for i in next_items("bob", "tab-b", k=3)}
    assert len(ann) == 3 and len(bob) == 3 and not ann & bob
    with session_scope(engine) as session:
        claims = session.execute(select(ImageClaim.image_id, ImageClaim.session_id)).all()
    assert {i for i, s in claims if s == "tab-a"} == ann


def test_labelled_and_not_a_shoe_images_leave_the_unlabelled_queue(engine, pool: list[int]) -> None:
    record_review(pool[0], "ann", "not_a_shoe")
    record_review(pool[1], "ann", "correct", label="bolt")
    left = {i.image_id for i in next_items("bob", "tab-b", k=20)}
    assert left == set(pool[2:])


def test_likely_mislabelled_queue_reads_out_of_fold_predictions(engine, pool: list[int]) -> None:
    from db.labels import labelled_set
    from db.models import ModelVersion, PredictionKind

    version_id = fake_model(engine, "inception", {})
    with session_scope(engine) as session:
        labelled = labelled_set(session).train
        handle = ModelHandle.of(session.get(ModelVersion, version_id))
    names = ["acme", "bolt", "crest"]
    oof = {i.image_id: np.eye(3)[names.index(i.brand)] * 0.9 + 0.0333 for i in labelled}
    suspect = labelled[4]
    oof[suspect.image_id] = np.array([0.05, 0.05, 0.9]) if suspect.brand != "crest" else np.array([0.9, 0.05, 0.05])
    store_predictions(engine, handle, oof, kind=PredictionKind.OUT_OF_FOLD)
    first = next_items("ann", "tab-1", strategy="likely_mislabelled", k=1)[0]
    assert first.image_id == suspect.image_id and first.label.brand == suspect.brand


def test_queue_needs_no_model_file(engine, pool: list[int]) -> None:
    fake_model(engine, "cnn", {i: [0.5, 0.3, 0.2] for i in pool})  # its file does not exist
    assert len(next_items("ann", "tab-1", strategy="disagreement", k=3)) == 3


def test_queue_without_brands_or_models_serves_oldest_first(engine, pool_folder: Path) -> None:
    ingest_folder(pool_folder)
    items = next_items("ann", "tab-1", k=2)
    assert [i.image_id for i in items] == [1, 2] and items[0].predictions == {}


def test_first_keeps_the_preloaded_image_in_front(engine, pool: list[int]) -> None:
    probs = {i: [0.9, 0.05, 0.05] for i in pool}
    probs[pool[3]] = [0.4, 0.35, 0.25]
    fake_model(engine, "inception", probs)
    assert next_items("ann", "tab-1", k=2)[0].image_id == pool[3]
    assert next_items("ann", "tab-1", k=2, first=pool[6])[0].image_id == pool[6]
    record_review(pool[6], "ann", "skip")
    assert next_items("ann", "tab-1", k=2, first=pool[6])[0].image_id == pool[3]  # handled: no longer first


def test_not_a_shoe_photos_leave_the_labelled_queue_until_overruled(engine, pool: list[int]) -> None:
    with session_scope(engine) as session:
        imported = session.scalars(select(Image.id).where(Image.split == Split.TRAIN).order_by(Image.id)).first()
    total = pending_count("bob", "tab-b", scope="labelled")
    record_review(imported, "ann", "not_a_shoe")
    record_review(pool[0], "ann", "not_a_shoe")
    assert pending_count("bob", "tab-b", scope="labelled") == total - 1
    labelled = {i.image_id for i in next_items("bob", "tab-b", strategy="random", scope="labelled", k=100)}
    assert imported not in labelled and pool[0] not in labelled
    record_review(imported, "carol", "correct", label="acme")  # a later answer says it is a shoe after all
    assert pending_count("bob", "tab-b", scope="labelled") == total


@pytest.mark.slow
def test_confirm_means_the_label_is_right_when_there_is_one(engine, pool: list[int]) -> None:
    with session_scope(engine) as session:
        labelled = session.scalars(select(Image.id).where(Image.split == Split.TRAIN).order_by(Image.id)).first()
    fake_model(engine, "inception", {labelled: [0.05, 0.05, 0.9], pool[0]: [0.2, 0.7, 0.1]})
    by_id = {i.image_id: i for i in next_items("ann", "tab-1", strategy="random", scope="unreviewed", k=100)}
    assert by_id[labelled].label.brand == "acme" and by_id[labelled].confirm_target() == "acme"
    assert by_id[pool[0]].confirm_target() == "bolt"  # no label: the model's top brand
    assert by_id[pool[1]].confirm_target() is None  # neither label nor prediction


def test_claims_are_renewed_while_the_photo_is_on_screen(engine, pool: list[int]) -> None:
    from datetime import timedelta

    from db.models import utcnow
    from feedback.queue import renew_claims

    shown = {i.image_id for i in next_items("ann", "tab-a", k=2)}
    with session_scope(engine, write=True) as session:  # time passes: the claims are about to lapse
        for claim in session.scalars(select(ImageClaim)):
            claim.expires_at = utcnow() + timedelta(seconds=1)
    assert renew_claims("tab-a") == 2
    assert renew_claims("tab-other") == 0
    with session_scope(engine) as session:
        assert all(c.expires_at > utcnow() + timedelta(minutes=2) for c in session.scalars(select(ImageClaim)))
    assert not shown & {i.image_id for i in next_items("bob", "tab-b", k=10)}
