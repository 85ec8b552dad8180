"""A catalogue built by the previous release opens in this one with nothing lost.

The previous release builds its database in its own process (see :mod:`tests.release_db`); this
release then opens it (which migrates it) and every row is checked against what the release read:
photos and splits, the brand each arrived with, every review as it was answered, effective labels
and conflicts, model versions, predictions, rounds, jobs, accounts, settings, claims, queue stages
and counters. Then the upgraded catalogue takes a new attribute and answers for it.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import exists, func, inspect, select, text

from db import session_scope
from db.catalog import class_names, get_or_create_attribute, get_or_create_class
from db.connect import create_db_engine
from db.labels import DECISIVE, effective_labels
from db.migrate import current_revision, head_revision, upgrade
from db.models import (
    BRAND_ID,
    Account,
    Attribute,
    EvaluationDraw,
    Image,
    ImportedLabel,
    Job,
    ModelVersion,
    Prediction,
    QueueEntry,
    Review,
    Round,
    Split,
    TeamSetting,
)
from db.queue_entries import catalogue_counts, count_afresh, stage_of_image
from feedback.reviews import record_review
from tests.release_db import build_release_database, release_available

NEW_TABLES = {"attributes", "imported_labels", "class_changes", "evaluation_draws", "sign_in_failures"}


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    reason = release_available()
    if reason:
        pytest.skip(reason)
    return build_release_database(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def upgraded(release: tuple[str, dict[str, Any]]):
    url, _ = release
    engine = create_db_engine(url)
    assert current_revision(engine) == "0004"
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    yield engine
    engine.dispose()


@pytest.mark.slow
def test_every_table_keeps_its_rows(release, upgraded) -> None:
    _, before = release
    tables = set(inspect(upgraded).get_table_names())
    assert tables == (set(before["counts"]) - {"brands"}) | {"classes"} | NEW_TABLES
    with upgraded.connect() as connection:
        after = {t: connection.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one() for t in tables}
    for table, count in before["counts"].items():
        assert after["classes" if table == "brands" else table] == count, table
    imported = sum(1 for image in before["images"].values() if image["source_brand"])
    assert after["imported_labels"] == imported > 0
    assert after["attributes"] == 1 and after["class_changes"] == 0


def test_photos_brands_and_reviews_read_as_before(release, upgraded) -> None:
    _, before = release
    with session_scope(upgraded) as session:
        assert class_names(session) == before["brands"]
        assert session.get(Attribute, BRAND_ID).name == "brand"
        sha = dict(session.execute(select(Image.id, Image.sha256)).all())
        labels = effective_labels(session)
        images = {
            image.sha256: {
                "split": str(image.split),
                "source_brand": labels[image.id].imported,
                "source": image.source,
                "path": image.path,
            }
            for image in session.scalars(select(Image))
        }
        reviews = [
            {
                "sha256": sha[r.image_id],
                "reviewer": r.reviewer,
                "action": str(r.action),
                "brand": r.label_class.name if r.label_class else None,
                "resolves_conflict": r.resolves_conflict,
                "undone": r.undone_at is not None,
                "model_version_id": r.model_version_id,
            }
            for r in session.scalars(select(Review).order_by(Review.id))
        ]
        attributes = set(session.scalars(select(Review.attribute_id))) | set(
            session.scalars(select(Prediction.attribute_id))
        )
        effective = {
            sha[i]: {
                "value": label.value,
                "conflict": label.conflict,
                "answers": {name: answer.value for name, answer in sorted(label.answers.items())},
            }
            for i, label in labels.items()
        }
    assert images == before["images"]
    assert reviews == before["reviews"]
    assert attributes == {BRAND_ID}
    assert effective == before["labels"]
    assert any(label["conflict"] for label in effective.values())


def test_models_rounds_jobs_and_accounts_read_as_before(release, upgraded) -> None:
    _, before = release
    with session_scope(upgraded) as session:
        versions = [
            {
                "id": v.id,
                "arch": v.arch,
                "status": str(v.status),
                "parent_id": v.parent_id,
                "class_names": v.class_names,
            }
            for v in session.scalars(select(ModelVersion).order_by(ModelVersion.id))
        ]
        rounds = [
            {
                "id": r.id,
                "arch": r.arch,
                "trigger": r.trigger,
                "status": str(r.status),
                "candidate": r.candidate_model_id,
            }
            for r in session.scalars(select(Round).order_by(Round.id))
        ]
        jobs = [
            {"kind": str(j.kind), "status": str(j.status), "round": j.round_id, "dismissed": bool(j.dismissed_at)}
            for j in session.scalars(select(Job).order_by(Job.id))
        ]
        accounts = {
            a.name: {
                "role": str(a.role),
                "email": a.email,
                "disabled": a.disabled,
                "failed_attempts": a.failed_attempts,
            }
            for a in session.scalars(select(Account))
        }
        settings = {s.key: s.value for s in session.scalars(select(TeamSetting))}
        per_version = session.execute(
            select(Prediction.model_version_id, func.count()).group_by(Prediction.model_version_id)
        ).all()
    assert versions == before["model_versions"]
    assert rounds == before["rounds"]
    assert jobs == before["jobs"]
    assert accounts == before["accounts"]
    assert settings == before["team_settings"]
    assert {str(k): v for k, v in per_version} == before["predictions_per_version"]


def test_queue_stages_and_counters_hold(upgraded) -> None:
    with session_scope(upgraded) as session:
        assert catalogue_counts(session) == count_afresh(session)
        stored = dict(session.execute(select(QueueEntry.image_id, QueueEntry.stage)).all())
        derived = dict(session.execute(select(Image.id, stage_of_image())).all())
    assert stored == derived


def test_the_upgraded_catalogue_takes_a_new_attribute(upgraded) -> None:
    with session_scope(upgraded, write=True) as session:
        colour = get_or_create_attribute(session, "Colour")
        image_id = session.scalar(select(Image.id).order_by(Image.id).limit(1))
        get_or_create_class(session, "Black", colour.id)
        colour_id = colour.id
    record_review(image_id, "ana", "correct", label="black", attribute_id=colour_id, engine=upgraded)
    with session_scope(upgraded) as session:
        assert effective_labels(session, [image_id], colour_id)[image_id].brand == "Black"
        assert session.scalar(select(func.count()).select_from(ImportedLabel)) > 0


def test_pool_photos_answered_before_the_upgrade_stay_training_photos(upgraded) -> None:
    """They may have been trained on: each gets a draw to training, so a later answer never holds it out."""
    with session_scope(upgraded) as session:
        answered = set(
            session.scalars(
                select(Image.id).where(
                    Image.split == Split.POOL,
                    exists().where(
                        Review.image_id == Image.id, Review.undone_at.is_(None), Review.action.in_(DECISIVE)
                    ),
                )
            )
        )
        draws = dict(session.execute(select(EvaluationDraw.image_id, EvaluationDraw.held_out)).all())
    assert len(answered) >= 5 and draws == dict.fromkeys(answered, False)
    for image_id in answered:
        record_review(image_id, "ana", "correct", label="acme", engine=upgraded)
    with session_scope(upgraded) as session:
        assert session.scalar(select(func.count()).where(Image.id.in_(answered), Image.split != Split.POOL)) == 0
