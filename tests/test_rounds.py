"""Rounds end to end on a small catalogue: train, evaluate on the frozen held-out set,
promote or reject, refresh predictions; and the command-line tools around them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from db import session_scope
from db.models import EvaluationDraw, Image, ModelStatus, ModelVersion, Prediction, PredictionKind, Round, RoundStatus
from feedback.ingest import ingest_folder
from modeling.fitting import CnnConfig, InceptionConfig
from modeling.jobs import JobBusyError, JobLock
from modeling.metrics import compute_metrics
from modeling.rounds import decide, run_round

TINY_CNN = CnnConfig(input_size=32, epochs=10, round_epochs=2, batch_size=12, learning_rate=3e-3)
TINY_INCEPTION = InceptionConfig(input_size=75, finetune_epochs=1, round_finetune_epochs=1, batch_size=12)


def metrics(f1_like_accuracy: float):
    n = 20
    right = int(n * f1_like_accuracy)
    y_true = np.array([0, 1] * (n // 2))
    y_pred = y_true.copy()
    y_pred[: n - right] = 1 - y_pred[: n - right]
    return compute_metrics(y_true, y_pred, ["a", "b"])


def test_promotion_rule() -> None:
    good, worse = metrics(0.9), metrics(0.7)
    assert decide(good, None, has_current=False, force=False)[0]
    assert decide(good, worse, has_current=True, force=False)[0]
    assert decide(good, good, has_current=True, force=False)[0]  # not worse is enough
    accepted, message = decide(worse, good, has_current=True, force=False)
    assert not accepted and "Rejected" in message and "--force" in message
    assert decide(worse, good, has_current=True, force=True)[0]


@pytest.fixture
def catalogue(engine, brand_folder: Path):
    ingest_folder(brand_folder, holdout_fraction=0.25)
    return engine


@pytest.mark.slow
def test_cnn_round_trains_evaluates_promotes_and_predicts(catalogue, home: Path) -> None:
    result = run_round("cnn", cnn_config=TINY_CNN, engine=catalogue)
    assert result.status == RoundStatus.ACCEPTED and "First model" in result.message
    assert result.candidate is not None and result.candidate.n == 9
    assert result.candidate.accuracy >= 0.6
    assert Path(result.confusion_png).is_file()
    with session_scope(catalogue) as session:
        version = session.get(ModelVersion, result.candidate_id)
        assert version.status == ModelStatus.CURRENT and Path(version.path).is_file()
        assert version.class_names == ["acme", "bolt", "crest"]
        round_row = session.get(Round, result.round_id)
        assert round_row.status == RoundStatus.ACCEPTED and round_row.duration_s > 0
        assert round_row.data["train_counts"] == {"acme": 9, "bolt": 9, "crest": 9}
        assert round_row.confusion["matrix"] == result.candidate.confusion
        predicted = session.scalar(select(func.count(Prediction.id)).where(Prediction.model_version_id == version.id))
        assert predicted == session.scalar(select(func.count(Image.id))) == 36


@pytest.mark.slow
def test_worse_candidate_is_rejected_and_current_model_stays(catalogue, monkeypatch: pytest.MonkeyPatch) -> None:
    first = run_round("cnn", cnn_config=TINY_CNN, engine=catalogue)
    import modeling.rounds as rounds
    from modeling.architectures import build_cnn
    from modeling.fitting import TrainOutcome

    def untrained(engine, labelled, parent, config, attribute_id, progress):
        model = build_cnn(3, input_size=32)
        for layer in model.layers:  # a model that always says "crest"
            if layer.name == "brand":
                kernel, _ = layer.get_weights()
                layer.set_weights([kernel * 0, np.array([-5.0, -5.0, 5.0])])
        return TrainOutcome(model, ["acme", "bolt", "crest"], 32, {}), ""

    monkeypatch.setattr(rounds, "_train_cnn", untrained)
    second = run_round("cnn", engine=catalogue)
    assert second.status == RoundStatus.REJECTED and "Rejected" in second.message
    with session_scope(catalogue) as session:
        assert session.get(ModelVersion, first.candidate_id).status == ModelStatus.CURRENT
        assert session.get(ModelVersion, second.candidate_id).status == ModelStatus.REJECTED
    forced = run_round("cnn", engine=catalogue, force=True)
    assert forced.status == RoundStatus.ACCEPTED and "--force" in forced.message


@pytest.mark.slow
def test_inception_round_uses_cached_activations_and_stores_out_of_fold(catalogue, weights_path: Path) -> None:
    first = run_round("inception", inception_config=TINY_INCEPTION, engine=catalogue)
    assert first.status == RoundStatus.ACCEPTED
    assert first.data["n_train"] == 27
    second = run_round("inception", mode="head", inception_config=TINY_INCEPTION, engine=catalogue)
    with session_scope(catalogue) as session:
        row = session.get(ModelVersion, second.candidate_id)
        assert row.parent_id == first.candidate_id
        assert row.training["activations_computed"] == 0
        oof = session.scalar(
            select(func.count(Prediction.id)).where(
                Prediction.kind == PredictionKind.OUT_OF_FOLD, Prediction.model_version_id == first.candidate_id
            )
        )
        assert oof == 36  # every labelled image, held-out ones included


def test_a_failed_round_is_recorded_with_its_reason(engine, tmp_path: Path) -> None:
    from modeling.rounds import RoundError

    with pytest.raises(RoundError, match="No labelled photos"):
        run_round("cnn", engine=engine)
    with session_scope(engine) as session:
        row = session.scalar(select(Round))
        assert row.status == RoundStatus.FAILED and "No labelled photos" in row.message


def test_only_one_job_at_a_time(home: Path) -> None:
    with JobLock.acquire(), pytest.raises(JobBusyError, match="Another training round"):
        JobLock.acquire()
    with JobLock.acquire():
        pass  # released again


def test_retrain_cli_refuses_while_a_round_runs(catalogue, capsys) -> None:
    from modeling.retrain import main

    with JobLock.acquire():
        assert main(["--arch", "cnn"]) == 3
    assert "Another training round" in capsys.readouterr().err
    with session_scope(catalogue) as session:
        assert session.scalar(select(func.count(Round.id))) == 0


@pytest.mark.slow
def test_train_retrain_evaluate_predict_commands(catalogue, brand_folder: Path, tmp_path: Path, capsys) -> None:
    from modeling.evaluate import main as evaluate
    from modeling.predict import main as predict
    from modeling.retrain import main as retrain
    from modeling.train import main as train

    assert train(["--arch", "cnn", "--epochs", "8", "--input-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "Round 1: cnn, accepted" in out and "held-out metric" in out
    assert retrain(["--arch", "cnn"]) == 0
    assert "Round 2: cnn" in capsys.readouterr().out

    assert evaluate(["--model", "cnn", "--data", str(brand_folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["brand"]["cnn"]
    assert report["n"] == 36 and set(report["per_class"]) == {"acme", "bolt", "crest"}
    assert Path(report["confusion_png"]).is_file()

    other = tmp_path / "other"
    (other / "zeta").mkdir(parents=True)
    (brand_folder / "acme" / "acme_0.jpg").rename(other / "zeta" / "z.jpg")
    assert evaluate(["--model", "cnn", "--data", str(other)]) == 2
    assert "not trained on: zeta" in capsys.readouterr().err

    (brand_folder / "bolt" / "broken.jpg").write_text("not an image")
    assert predict(["--model", "cnn", "--csv", str(brand_folder / "bolt")]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith("path,model,attribute,class,confidence,p_acme,p_bolt,p_crest")
    assert len(lines) == 1 + 12
    assert "broken.jpg: not an image" in captured.err


def test_predict_without_a_model_says_how_to_train(engine, brand_folder: Path, capsys) -> None:
    from modeling.predict import main as predict

    assert predict([str(brand_folder)]) == 2
    assert "python -m modeling.train" in capsys.readouterr().err


@pytest.mark.slow
def test_both_models_train_end_to_end_on_real_photos(
    engine, photos_dir: Path, weights_path: Path, tmp_path: Path, capsys
) -> None:
    """A small run of the real pipeline on real shoe photos: ingest, train both models, predict."""
    import shutil

    from modeling.predict import main as predict
    from modeling.train import main as train

    subset = tmp_path / "real"
    for brand in ("adidas", "converse", "nike"):
        (subset / brand).mkdir(parents=True)
        for photo in sorted((photos_dir / brand).iterdir())[:10]:
            shutil.copy(photo, subset / brand / photo.name)
    ingest_folder(subset, holdout_fraction=0.2)
    assert train(["--arch", "cnn", "--epochs", "3", "--input-size", "64"]) == 0
    assert train(["--arch", "inception", "--epochs", "1", "--input-size", "75"]) == 0
    out = capsys.readouterr().out
    assert "cnn, accepted" in out and "inception, accepted" in out
    with session_scope(engine) as session:
        current = {
            v.arch: v for v in session.scalars(select(ModelVersion).where(ModelVersion.status == ModelStatus.CURRENT))
        }
        assert set(current) == {"cnn", "inception"}
        assert current["inception"].input_size == 75 and current["inception"].base_weights == "md5-1de645f043e7"
        assert current["inception"].metrics["n"] == 6  # 2 held-out photos per brand
    photo = next((photos_dir / "nike").iterdir())
    assert predict([str(photo), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["model"].split()[0] for r in rows} == {"cnn", "inception"}
    assert all(abs(sum(v for k, v in r.items() if k.startswith("p_")) - 1) < 1e-3 for r in rows)


@pytest.mark.slow
def test_current_model_is_rescored_only_when_the_held_out_set_changes(catalogue) -> None:
    from db.labels import labelled_set
    from feedback.reviews import record_review
    from modeling.rounds import holdout_fingerprint, stored_metrics

    first = run_round("cnn", cnn_config=TINY_CNN, engine=catalogue)
    with session_scope(catalogue) as session:
        holdout = labelled_set(session).holdout
        recorded = dict(session.get(ModelVersion, first.candidate_id).metrics)
    fingerprint = holdout_fingerprint(holdout)
    assert recorded["holdout"] == fingerprint
    reused = stored_metrics(recorded, fingerprint, ["acme", "bolt", "crest"])
    assert reused is not None and reused.macro_f1 == first.candidate.macro_f1
    assert stored_metrics(recorded, fingerprint, ["acme", "bolt", "crest", "delta"]) is None
    other = "crest" if holdout[0].brand != "crest" else "acme"
    record_review(holdout[0].image_id, "ann", "correct", label=other)  # a held-out label is corrected
    with session_scope(catalogue) as session:
        assert holdout_fingerprint(labelled_set(session).holdout) != fingerprint


@pytest.mark.slow
def test_a_thin_new_brand_and_a_brand_left_only_in_the_holdout_do_not_block_a_round(catalogue, tmp_path: Path) -> None:
    from db.labels import labelled_set
    from feedback.reviews import record_review
    from tests.conftest import make_brand_photo

    make_brand_photo(tmp_path / "new" / "delta" / "d.jpg", 3, seed=31)
    ingest_folder(tmp_path / "new", engine=catalogue)  # one photo: too few to learn the brand from
    with session_scope(catalogue) as session:
        crest = [i.image_id for i in labelled_set(session).train if i.brand == "crest"]
    for image_id in crest:  # every training photo of crest turns out to be bolt; its held-out photos remain
        record_review(image_id, "ann", "correct", label="bolt", engine=catalogue)
    result = run_round("cnn", cnn_config=TINY_CNN, engine=catalogue)
    assert result.status == RoundStatus.ACCEPTED
    assert result.data["left_out_brands"] == {"delta": 1} and "delta (1)" in result.message
    assert result.candidate.class_names == ["acme", "bolt", "crest"]  # crest's held-out photos count as missed
    assert result.candidate.per_class["crest"]["recall"] == 0.0
    with session_scope(catalogue) as session:
        assert session.get(ModelVersion, result.candidate_id).class_names == ["acme", "bolt"]


def test_a_round_left_running_by_a_dead_process_is_not_shown_as_running(engine) -> None:
    import socket
    import subprocess
    import sys

    from modeling.background import job_state

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with session_scope(engine, write=True) as session:
        row = Round(arch="cnn", trigger="app", mode="train", status=RoundStatus.RUNNING)
        row.pid, row.host = int(gone.stdout), socket.gethostname()
        session.add(row)
    with JobLock.acquire():  # another job (a prediction refresh) runs meanwhile
        state = job_state(engine)
        assert state.running and state.round is None
    state = job_state(engine)  # nothing runs any more: the round is marked as failed
    assert not state.running and state.round is None
    with session_scope(engine) as session:
        failed = session.scalar(select(Round))
        assert failed.status == RoundStatus.FAILED and "ended before it finished" in failed.message


def test_a_dead_rounds_candidate_is_rejected_and_partial_model_files_are_deleted(engine, home: Path) -> None:
    import zipfile

    from modeling.rounds import mark_abandoned_rounds
    from shoelabel.settings import get_settings

    models = get_settings().models_dir
    models.mkdir(parents=True)

    def keras_file(name: str) -> Path:  # a complete .keras file is a zip archive
        with zipfile.ZipFile(models / name, "w") as archive:
            archive.writestr("config.json", "{}")
        return models / name

    current_file, candidate_file, own_file = (
        keras_file("cnn-1.keras"),
        keras_file("cnn-2.keras"),
        keras_file("mine.keras"),
    )
    empty, temporary, cut = models / "cnn-3.keras", models / "cnn-4.tmp-999.keras", models / "cnn-5.keras"
    empty.write_bytes(b"")  # killed while saving, before the fix
    temporary.write_bytes(b"PK\x03\x04partial")  # killed while saving under the temporary name
    cut.write_bytes(b"PK\x03\x04cut short")  # not a whole zip archive
    with session_scope(engine, write=True) as session:

        def version(path: Path, status: ModelStatus) -> ModelVersion:
            row = ModelVersion(arch="cnn", path=str(path), status=status, class_names=["a", "b"], input_size=32)
            session.add(row)
            session.flush()
            return row

        current = version(current_file, ModelStatus.CURRENT)
        candidate = version(candidate_file, ModelStatus.CANDIDATE)
        session.add(
            Round(
                arch="cnn",
                trigger="app",
                mode="train",
                status=RoundStatus.RUNNING,
                parent_model_id=current.id,
                candidate_model_id=candidate.id,
            )
        )
    with JobLock.acquire():
        assert mark_abandoned_rounds(engine) == 1
    with session_scope(engine) as session:
        statuses = {v.id: v.status for v in session.scalars(select(ModelVersion))}
        dead = session.scalar(select(Round))
    assert statuses == {current.id: ModelStatus.CURRENT, candidate.id: ModelStatus.REJECTED}
    assert dead.status == RoundStatus.FAILED and f"candidate model v{candidate.id} was discarded" in dead.message
    assert sorted(p.name for p in models.iterdir()) == ["cnn-1.keras", "mine.keras"]  # the current model; a user's
    assert own_file.is_file() and current_file.is_file()
    with JobLock.acquire():
        assert mark_abandoned_rounds(engine) == 0  # nothing more to do


def test_a_model_is_saved_under_its_name_only_once_complete(tmp_path: Path) -> None:
    from modeling.rounds import save_model

    class Model:
        def __init__(self, fail: bool) -> None:
            self.fail = fail

        def save(self, path: Path) -> None:
            assert path.suffix == ".keras" and path.parent == tmp_path and path.name != "m.keras"
            path.write_bytes(b"PK\x03\x04 half")
            if self.fail:
                raise KeyboardInterrupt("killed while saving")
            path.write_bytes(b"PK\x03\x04 whole")

    target = tmp_path / "m.keras"
    with pytest.raises(KeyboardInterrupt):
        save_model(Model(fail=True), target)
    assert list(tmp_path.iterdir()) == []  # no partial file, under either name
    save_model(Model(fail=False), target)
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"] and target.read_bytes() == b"PK\x03\x04 whole"


def test_a_round_that_fails_after_registering_its_candidate_discards_it(
    catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modeling.rounds as rounds
    from modeling.fitting import TrainOutcome
    from modeling.rounds import RoundError

    class Model:
        def save(self, path: Path) -> None:
            path.write_bytes(b"PK\x03\x04 model")

    monkeypatch.setattr(
        rounds, "_train_cnn", lambda *args: (TrainOutcome(Model(), ["acme", "bolt", "crest"], 32, {}), "")
    )

    def unreadable(*args, **kwargs):
        raise RoundError("3 held-out image(s) could not be read")

    monkeypatch.setattr(rounds, "evaluate_handle", unreadable)
    with pytest.raises(RoundError, match="could not be read"):
        run_round("cnn", engine=catalogue)
    with session_scope(catalogue) as session:
        version = session.scalar(select(ModelVersion))
        row = session.scalar(select(Round))
    assert version.status == ModelStatus.REJECTED and not Path(version.path).exists()
    assert row.status == RoundStatus.FAILED and row.candidate_model_id == version.id
    assert f"candidate model v{version.id} was discarded" in row.message


@pytest.mark.slow
def test_a_round_scores_each_source_of_held_out_photos(
    catalogue, pool_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feedback.reviews import record_review
    from modeling.app_services import comparison_frame, metric_history

    monkeypatch.setenv("SHOELABEL_REVIEW_HOLDOUT", "0.5")
    ingest_folder(pool_folder)
    with session_scope(catalogue) as session:
        pool = list(session.scalars(select(Image).where(Image.path.contains("new_")).order_by(Image.path)))
    for image in pool:  # new_i shows brand i % 3
        record_review(image.id, "ann", "correct", label=["acme", "bolt", "crest"][int(Path(image.path).stem[4:]) % 3])
    with session_scope(catalogue) as session:
        reviewed = session.scalar(select(func.count()).where(EvaluationDraw.held_out))
    assert 3 <= reviewed <= 5  # half of each brand's 2-3 answered photos, as far as the numbers allow
    result = run_round("cnn", cnn_config=TINY_CNN, engine=catalogue)
    assert result.data["holdout_sources"] == {"imported": 9, "reviewed": reviewed}
    assert {s: v["n"] for s, v in result.candidate.by_source.items()} == {"imported": 9, "reviewed": reviewed}
    assert result.candidate.n == 9 + reviewed and len(result.candidate.predicted) == 9 + reviewed
    with session_scope(catalogue) as session:
        row = session.get(Round, result.round_id)
        session.expunge(row)
    assert "predicted" not in row.metrics["candidate"]  # the round keeps the figures, not the photo lists
    history = metric_history([row])
    accuracy = history[history["metric"] == "accuracy"].set_index("held-out photos")
    assert list(accuracy.index) == ["all", "imported", "reviewed"]
    assert accuracy.loc["reviewed", "n"] == reviewed
    assert accuracy.loc["reviewed", "value"] == result.candidate.by_source["reviewed"]["accuracy"]
    frame = comparison_frame(row).set_index("held-out metric")  # the first model: nothing to compare with
    assert f"accuracy, reviewed (n={reviewed})" in frame.index and "accuracy, imported (n=9)" in frame.index
    assert frame.loc["accuracy, imported (n=9)", "candidate"] == result.candidate.by_source["imported"]["accuracy"]


@pytest.mark.slow
def test_not_a_shoe_answers_teach_the_brand_models_to_reject_such_photos(catalogue, tmp_path: Path) -> None:
    from PIL import Image as PILImage

    from db.catalog import ClassError, class_names, clean_class_name
    from db.labels import effective_labels
    from db.models import NOT_A_SHOE, Review
    from feedback.reviews import record_review
    from modeling.answers import stored_answers
    from modeling.registry import current_versions
    from modeling.rounds import MIN_NOT_A_SHOE

    rng = np.random.default_rng(7)
    folder = tmp_path / "clutter"
    for i in range(MIN_NOT_A_SHOE + 6):  # dark checkerboards: nothing like the brands' colours and stripes
        board = np.kron((np.indices((4, 4)).sum(axis=0) % 2) * 60, np.ones((16, 16)))
        pixels = np.clip(board[..., None] + rng.normal(0, 10, (64, 64, 3)), 0, 255).astype(np.uint8)
        folder.mkdir(exist_ok=True)
        PILImage.fromarray(pixels).save(folder / f"clutter_{i}.jpg", quality=90)
    ingest_folder(folder)
    with session_scope(catalogue) as session:
        clutter = list(session.scalars(select(Image.id).where(Image.path.contains("clutter_")).order_by(Image.id)))
    for image_id in clutter:
        record_review(image_id, "ann", "not_a_shoe")
    config = CnnConfig(input_size=32, epochs=30, batch_size=12, learning_rate=3e-3)
    result = run_round("cnn", cnn_config=config, engine=catalogue, force=True)
    learnt = result.data["not_a_shoe_learnt"]
    assert learnt["train"] + learnt["holdout"] == len(clutter) and learnt["train"] >= MIN_NOT_A_SHOE
    with session_scope(catalogue) as session:
        version = current_versions(session)["cnn"]
        assert NOT_A_SHOE in version.class_names
        answers = stored_answers(session, {"cnn": version}, clutter)
        assert class_names(session) == ["acme", "bolt", "crest"]  # never a class to answer or filter by
    rejected = sum(answers[i]["cnn"].brand == NOT_A_SHOE for i in clutter)
    assert rejected >= len(clutter) * 0.75, [(a["cnn"].brand, a["cnn"].confidence) for a in answers.values()]
    with pytest.raises(ClassError, match="not a class name"):
        clean_class_name("(Not a shoe)")

    # Confirming (Enter) or picking the models' "not a shoe" records a "not a shoe" answer.
    confirmed, picked = [i for i in clutter if answers[i]["cnn"].brand == NOT_A_SHOE][:2]
    record_review(confirmed, "bob", "confirm", shown=answers[confirmed]["cnn"])
    record_review(picked, "bob", "correct", label=NOT_A_SHOE)
    with session_scope(catalogue) as session:
        actions = [
            r.action for r in session.scalars(select(Review).where(Review.reviewer == "bob").order_by(Review.id))
        ]
        labels = effective_labels(session, [confirmed, picked])
    assert actions == ["not_a_shoe", "not_a_shoe"] and all(label.not_a_shoe for label in labels.values())
