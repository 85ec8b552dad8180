"""The CNN taught by InceptionV3: soft targets from the teacher's stored answers over the labelled
photos and the pool (never held-out photos), and a distillation round run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from db import session_scope
from db.labels import labelled_set
from db.models import Image, ModelVersion, Round, Split
from modeling.distillation import in_class_order, targets, teacher_for
from tests.conftest import REPO


def test_a_labelled_target_mixes_the_smoothed_label_with_the_teachers_answer() -> None:
    teacher = np.array([[0.6, 0.4, 0.0], [0.0, 0.0, 0.0]])  # the second photo: no answer from the teacher
    mixed = targets(np.array([0, 2]), teacher, 3, smoothing=0.3, label_weight=0.5)
    assert np.allclose(mixed[0], 0.5 * np.array([0.8, 0.1, 0.1]) + 0.5 * teacher[0])
    assert np.allclose(mixed[1], [0.1, 0.1, 0.8])
    assert np.allclose(mixed.sum(axis=1), 1.0)


def test_a_stored_answer_is_read_in_the_students_class_order() -> None:
    row = in_class_order({"bolt": 0.2, "acme": 0.5, "zeta": 0.3}, ["acme", "bolt", "crest"])
    assert np.allclose(row, [0.5 / 0.7, 0.2 / 0.7, 0.0])  # a class the student lacks is dropped
    assert not in_class_order({"zeta": 1.0}, ["acme", "bolt"]).any()


def test_the_teacher_answers_for_the_labelled_photos_and_the_newest_pool_photos(catalogue) -> None:
    with session_scope(catalogue) as session:
        labelled = labelled_set(session)
        names = sorted({i.brand for i in labelled.train})
        teacher = teacher_for(session, 1, labelled, names)
        limited = teacher_for(session, 1, labelled, names, limit=3)
        pool = list(session.scalars(select(Image.path).where(Image.split == Split.POOL).order_by(Image.id.desc())))
        held_out = set(session.scalars(select(Image.path).where(Image.split == Split.HOLDOUT)))
    assert teacher is not None and teacher.labelled.shape == (len(labelled.train), len(names))
    assert np.allclose(teacher.labelled.sum(axis=1), 1.0)
    assert teacher.pool_paths == pool and not held_out & set(teacher.pool_paths)
    assert limited.pool_paths == pool[:3]


def test_no_teacher_without_a_current_inception_model(engine, brand_folder: Path) -> None:
    from feedback.ingest import ingest_folder

    ingest_folder(brand_folder)
    with session_scope(engine) as session:
        labelled = labelled_set(session)
        assert teacher_for(session, 1, labelled, ["acme", "bolt", "crest"]) is None


@pytest.fixture
def taught(engine, home: Path, brand_folder: Path, pool_folder: Path):
    """Labelled and pool photos, and a current InceptionV3 (its answers stored), without a CNN."""
    from feedback.ingest import ingest_folder
    from tests.app_support import fake_models

    ingest_folder(brand_folder, engine=engine)
    ingest_folder(pool_folder, engine=engine)
    fake_models(engine, home, archs=("inception",))
    return engine


@pytest.mark.slow
def test_a_cnn_round_in_a_new_process_learns_from_the_pool_and_leaves_calibrated(taught, home: Path) -> None:
    env = {**os.environ, "SHOELABEL_HOME": str(home), "SHOELABEL_DISTILL_POOL": "5"}
    done = subprocess.run(
        [sys.executable, "-m", "modeling.train", "--arch", "cnn", "--epochs", "3", "--input-size", "32"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with session_scope(taught) as session:
        teacher = session.scalar(select(ModelVersion).where(ModelVersion.arch == "inception"))
        cnn = session.scalar(select(ModelVersion).where(ModelVersion.arch == "cnn"))
        training = session.scalar(select(Round).where(Round.arch == "cnn")).data["training"]
    assert training["teacher_version"] == teacher.id and training["pool_photos"] == 5
    assert training["taught_labelled"] == training["n_train"] + training["calibration"]["n"]
    assert cnn.training["calibration"]["temperature"] > 0
