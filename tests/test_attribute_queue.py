"""A new attribute from zero labels: typical photos first (TypiClust), a first model once each class has a
few answers, then the photos that model is least sure of; and models per attribute end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

import feedback.attribute_queue as attribute_queue
from db import session_scope
from db.catalog import require_attribute
from db.models import Image, ModelStatus, ModelVersion, Prediction, RoundStatus, Split
from feedback.attribute_queue import first_model_due, next_attribute_items, pending_attribute_count
from feedback.classes import add_attribute, add_classes
from feedback.ingest import ingest_folder
from feedback.reviews import record_review
from modeling.fitting import CnnConfig
from modeling.registry import promote, register
from modeling.rounds import run_round
from modeling.typiclust import typical_picks, typicality

TINY_CNN = CnnConfig(input_size=32, epochs=6, round_epochs=2, batch_size=12, learning_rate=3e-3)


def blobs(sizes: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.eye(len(sizes), 8) * 10
    features = np.concatenate([centres[i] + rng.normal(0, 1, (n, 8)) for i, n in enumerate(sizes)])
    return features, np.repeat(np.arange(len(sizes)), sizes)


def test_typiclust_takes_the_densest_photo_of_each_cluster_largest_first() -> None:
    features, cluster = blobs([40, 25, 10])
    picks = typical_picks(features, 3)
    assert [int(cluster[p]) for p in picks] == [0, 1, 2]
    for p in picks:  # the pick sits near its cluster's centre, not on its edge
        members = np.flatnonzero(cluster == cluster[p])
        distance = np.linalg.norm(features[members] - features[members].mean(axis=0), axis=1)
        assert np.linalg.norm(features[p] - features[members].mean(axis=0)) <= np.percentile(distance, 50)
    dense = typicality(np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0]]), neighbours=2)
    assert np.argmin(dense) == 3


@pytest.fixture
def colours(engine, brand_folder: Path, pool_folder: Path) -> int:
    ingest_folder(brand_folder, holdout_fraction=0.25)
    ingest_folder(pool_folder)
    add_attribute("colour")
    add_classes("colour", ["Red", "Green", "Blue"])
    with session_scope(engine) as session:
        return require_attribute(session, "colour").id


class FakeCache:
    """Pooled features for some photos, as the InceptionV3 activation cache gives them."""

    def __init__(self, features: dict[str, np.ndarray]) -> None:
        self.features = features

    def has(self, sha256: str, views: int = 1) -> bool:
        return sha256 in self.features

    def pooled(self, shas: list[str]) -> np.ndarray:
        return np.stack([self.features[s] for s in shas])


@pytest.mark.slow
def test_cold_start_offers_typical_photos_then_trains_a_first_model(
    engine, colours: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope(engine, write=True) as session:
        rows = session.execute(select(Image.id, Image.sha256).order_by(Image.id)).all()
        held_out = set(session.scalars(select(Image.id).where(Image.split == Split.HOLDOUT)))
        version = register(
            session, arch="inception", path=Path("i.keras"), class_names=["acme"], input_size=75, parent_id=None
        )
        promote(session, version)
    features, cluster = blobs([20, 14, 10], seed=1)
    by_sha = {sha: features[n] for n, (_, sha) in enumerate(rows)}
    cluster_of = {image_id: int(cluster[n]) for n, (image_id, _) in enumerate(rows)}
    monkeypatch.setattr(attribute_queue, "inception_activation_cache", lambda *args: FakeCache(by_sha))
    monkeypatch.setattr(attribute_queue, "COLD_START_PICKS", 3)  # as many clusters as photos to ask for first
    attribute_queue._typical.clear()

    offered = [item.image_id for item in next_attribute_items("ann", "tab", "colour", k=3, engine=engine)]
    assert sorted(cluster_of[i] for i in offered) == [0, 1, 2]  # one typical photo of each cluster
    assert pending_attribute_count("colour", "ann", "tab", engine=engine) == 44  # its own claims stay its own
    assert pending_attribute_count("colour", "bob", "other", engine=engine) == 44 - 3  # on ann's screen

    colour_of = {0: "Red", 1: "Green", 2: "Blue"}
    answers: Counter[str] = Counter()
    while not first_model_due("colour", engine=engine):
        assert sum(1 for n in answers.values() if n >= 3) < 2  # due once two classes have three to train on
        item = next_attribute_items("ann", "tab", "colour", k=1, engine=engine)[0]
        colour = colour_of[cluster_of[item.image_id]]
        record_review(item.image_id, "ann", "correct", label=colour, attribute_id=colours)
        answers[colour] += item.image_id not in held_out  # a held-out photo is evaluated on, never trained on
    assert sum(1 for n in answers.values() if n >= 3) == 2

    result = run_round("cnn", attribute_id=colours, cnn_config=TINY_CNN, engine=engine)
    assert result.attribute == "colour" and result.status == RoundStatus.ACCEPTED
    with session_scope(engine) as session:
        evaluated_on = len(_answered(session, colours) & held_out)  # the held-out photos with a colour answer
    assert (result.candidate.n if result.candidate else 0) == evaluated_on
    with session_scope(engine) as session:
        version = session.get(ModelVersion, result.candidate_id)
        assert version.attribute_id == colours and version.status == ModelStatus.CURRENT
        predictions = session.scalars(select(Prediction).where(Prediction.model_version_id == version.id)).all()
        assert len(predictions) == 44 and {p.attribute_id for p in predictions} == {colours}
        least_sure = sorted(
            (p.confidence, p.image_id) for p in predictions if p.image_id not in _answered(session, colours)
        )
    assert not first_model_due("colour", engine=engine)
    following = next_attribute_items("bob", "other", "colour", k=2, engine=engine)
    assert [i.image_id for i in following] == [i for _, i in least_sure[:2]]
    assert set(following[0].predictions) == {"cnn"} and following[0].predictions["cnn"].brand in {
        "Red",
        "Green",
        "Blue",
    }


def _answered(session, attribute_id: int) -> set[int]:
    from db.models import Review

    return set(session.scalars(select(Review.image_id).where(Review.attribute_id == attribute_id)))


def test_not_a_shoe_and_brand_answers_stay_out_of_an_attributes_queue(engine, colours: int) -> None:
    photo = next_attribute_items("ann", "tab", "colour", k=1, engine=engine, claim=False)[0].image_id
    record_review(photo, "ann", "not_a_shoe", attribute_id=colours)  # about the photo: stored on brand
    offered = {i.image_id for i in next_attribute_items("bob", "t2", "colour", k=50, engine=engine, claim=False)}
    assert photo not in offered and len(offered) == 43
    with session_scope(engine) as session:
        pool_photo = session.scalar(select(Image.id).where(Image.split == Split.POOL).order_by(Image.id.desc()))
    record_review(pool_photo, "bob", "correct", label="acme")  # a brand answer leaves its colour open
    offered = {i.image_id for i in next_attribute_items("bob", "t2", "colour", k=50, engine=engine, claim=False)}
    assert pool_photo in offered


@pytest.mark.slow
def test_commands_train_and_evaluate_per_attribute(
    engine, home: Path, brand_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "labels.csv"
    lines = ["file,brand,colour"]
    for path in sorted(brand_folder.rglob("*.jpg")):
        lines.append(f"{path},{path.parent.name},{'Dark' if path.parent.name == 'crest' else 'Light'}")
    manifest.write_text("\n".join(lines) + "\n")
    env = {**os.environ, "SHOELABEL_HOME": str(home)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True, timeout=600)

    assert run("feedback.manifest", "import", str(manifest)).returncode == 0
    trained = run("modeling.train", "--arch", "cnn", "--epochs", "4", "--input-size", "32")
    assert trained.returncode == 0, trained.stderr
    assert "Round 1: cnn, accepted" in trained.stdout and "Round 2: cnn colour, accepted" in trained.stdout
    predicted = run("modeling.predict", str(next(brand_folder.rglob("*.jpg"))), "--json")  # a new process loads both
    assert {r["attribute"] for r in json.loads(predicted.stdout)} == {"brand", "colour"}

    from modeling.evaluate import main as evaluate  # the same command, in this process: one JAX start less

    assert evaluate(["--model", "cnn", "--data", str(manifest), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"brand", "colour"}
    assert report["brand"]["cnn"]["n"] == report["colour"]["cnn"]["n"] == 36
    assert set(report["colour"]["cnn"]["per_class"]) == {"Dark", "Light"}
    assert evaluate(["--attribute", "colour", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"colour"}


def test_evaluate_reads_a_manifests_columns_as_import_names_them(tmp_path: Path) -> None:
    from modeling.evaluate import read_manifest_labels

    manifest = tmp_path / "labels.csv"
    manifest.write_text("file, Colour ,GENDER\na.jpg,Black,Men\nb.jpg,,Women\nc.jpg,White,\n")
    files, labels = read_manifest_labels(manifest)
    assert files == [tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.jpg"]
    assert labels == {"colour": ["Black", "", "White"], "gender": ["Men", "Women", ""]}
