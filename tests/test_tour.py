"""The README's quick tour, each step in its own process, on a small real subset of the demo photos.

Models saved by one command must load in the next, and photos that arrive after
training must be predicted with no further command: the guard for every bug that
only shows when a command runs in a new process.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import REPO, shared_photos, shared_weights

pytestmark = pytest.mark.slow

PER_BRAND = 16  # training photos per brand (15% of them are held out)
POOL = 6  # unlabelled photos that arrive after training
INCEPTION_SIZE = "139"  # the smallest size that keeps the tour quick; the architecture is the real one
CNN_SIZE = "64"


def run(args: list[str], env: dict[str, str], status: int = 0) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in a new process, as a user types it; fails the test, with the output, unless it
    exits with ``status``."""
    done = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == status, f"python {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> dict:
    photos, weights = shared_photos(), shared_weights()
    if not photos.is_dir() or not weights.is_file():
        pytest.skip(f"the tour needs the demo photos ({photos}) and the InceptionV3 weights ({weights})")
    root = tmp_path_factory.mktemp("tour")
    labelled, pool = root / "labelled", root / "pool"
    for brand_dir in sorted(p for p in photos.iterdir() if p.is_dir()):
        files = sorted(brand_dir.iterdir())
        (labelled / brand_dir.name).mkdir(parents=True)
        for f in files[:PER_BRAND]:
            shutil.copy(f, labelled / brand_dir.name / f.name)
        pool.mkdir(exist_ok=True)
        for f in files[PER_BRAND : PER_BRAND + POOL // 3]:
            shutil.copy(f, pool / f"{brand_dir.name}-{f.name}")
    home = root / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHOELABEL_")},
        "SHOELABEL_HOME": str(home),
        "SHOELABEL_INCEPTION_WEIGHTS": str(weights),
    }
    return {"root": root, "labelled": labelled, "pool": pool, "home": home, "env": env}


def db(tour: dict):
    return create_engine(f"sqlite:///{tour['home'] / 'shoelabel.db'}")


def scalar(tour: dict, sql: str, **params: object) -> object:
    engine = db(tour)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


def current_models(tour: dict) -> dict[str, int]:
    engine = db(tour)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT arch, id FROM model_versions WHERE status = 'current'"))
            return {arch: version for arch, version in rows}
    finally:
        engine.dispose()


def unpredicted(tour: dict, version: int) -> int:
    return scalar(
        tour,
        "SELECT COUNT(*) FROM images WHERE id NOT IN "
        "(SELECT image_id FROM predictions WHERE model_version_id = :v AND kind = 'model')",
        v=version,
    )


@pytest.mark.timeout(1800)  # a dozen commands, each starting Keras in a new process: minutes on two shared cores
def test_tour_in_fresh_processes(tour: dict) -> None:
    env, labelled, pool = tour["env"], tour["labelled"], tour["pool"]
    n_labelled = sum(1 for _ in labelled.rglob("*.jpg"))

    # 1. ingest a labelled folder: every photo stored, a held-out share per brand
    run(["-m", "feedback.ingest", str(labelled)], env)
    assert scalar(tour, "SELECT COUNT(*) FROM images") == n_labelled
    assert scalar(tour, "SELECT COUNT(*) FROM images WHERE split = 'holdout'") == 3 * round(PER_BRAND * 0.15)

    # 2. train both models, each in its own process; both become current
    run(["-m", "modeling.train", "--arch", "inception", "--epochs", "1", "--input-size", INCEPTION_SIZE], env)
    run(["-m", "modeling.train", "--arch", "cnn", "--epochs", "2", "--input-size", CNN_SIZE], env)
    models = current_models(tour)
    assert set(models) == {"inception", "cnn"}
    assert unpredicted(tour, models["inception"]) == unpredicted(tour, models["cnn"]) == 0

    # 3. predict files with both models (each loads the model another process saved)
    files = sorted(str(p) for p in (labelled / "nike").iterdir())[:3]
    rows = json.loads(run(["-m", "modeling.predict", *files, "--json"], env).stdout)
    assert {(r["path"], r["model"].split()[0]) for r in rows} == {(f, a) for f in files for a in ("inception", "cnn")}
    assert all(
        r["attribute"] == "brand" and r["class"] in ("adidas", "converse", "nike") and 0 < r["confidence"] <= 1
        for r in rows
    )

    # 4. evaluate both on a labelled folder, as JSON
    report = json.loads(run(["-m", "modeling.evaluate", "--data", str(labelled), "--json"], env).stdout)
    assert set(report) == {"brand"} and set(report["brand"]) == {"inception", "cnn"}
    for metrics in report["brand"].values():
        assert "error" not in metrics
        assert 0.0 <= metrics["accuracy"] <= 1.0
        assert sum(sum(row) for row in metrics["confusion"]) == n_labelled

    # 5. refresh predicts every photo again with both models
    done = run(["-m", "modeling.predict", "--refresh", "--all"], env)
    assert f"inception v{models['inception']} {n_labelled}" in done.stdout
    assert f"cnn v{models['cnn']} {n_labelled}" in done.stdout

    # 6. photos that arrive after training get predictions with no further command:
    #    the CNN at once, InceptionV3 from a background job that starts by itself
    done = run(["-m", "feedback.ingest", str(pool)], env)
    assert scalar(tour, "SELECT COUNT(*) FROM images WHERE split = 'pool'") == POOL
    assert unpredicted(tour, models["cnn"]) == 0
    assert "in the background" in done.stdout
    deadline = time.monotonic() + 300
    while unpredicted(tour, models["inception"]) and time.monotonic() < deadline:
        time.sleep(2)
    assert unpredicted(tour, models["inception"]) == 0
    while scalar(tour, "SELECT COUNT(*) FROM jobs WHERE status = 'running'") and time.monotonic() < deadline:
        time.sleep(1)
    assert scalar(tour, "SELECT status FROM jobs ORDER BY id DESC LIMIT 1") == "done"

    # 7. review the queue's first photos through the service, in another process
    script = (
        "from feedback.queue import next_items\n"
        "from feedback.reviews import record_review\n"
        "items = next_items('ann', 'tour', k=2)\n"
        "assert items and all(item.predictions for item in items), items\n"
        "for item in items:\n"
        "    record_review(item.image_id, 'ann', 'correct', label='nike', shown=item.shown())\n"
        "print(len(items))\n"
    )
    run(["-c", script], env)
    assert scalar(tour, "SELECT COUNT(*) FROM reviews WHERE reviewer = 'ann' AND action = 'correct'") == 2

    # 8. a round per model learns from the reviews; each ends accepted or rejected, never failed
    run(["-m", "modeling.retrain", "--arch", "inception", "--mode", "head"], env)
    run(["-m", "modeling.retrain", "--arch", "cnn"], env)
    engine = db(tour)
    with engine.connect() as connection:
        statuses = [row[0] for row in connection.execute(text("SELECT status FROM rounds ORDER BY id"))]
        trained_on = connection.execute(
            text("SELECT data FROM rounds WHERE trigger = 'cli' ORDER BY id DESC LIMIT 1")
        ).scalar()
    engine.dispose()
    assert len(statuses) == 4 and "failed" not in statuses and "running" not in statuses
    assert json.loads(trained_on)["n_train"] == n_labelled - 3 * round(PER_BRAND * 0.15) + 2
    models = current_models(tour)
    assert unpredicted(tour, models["inception"]) == unpredicted(tour, models["cnn"]) == 0

    # 9. the labels leave as a manifest and come back into an empty catalogue unchanged
    manifest = tour["root"] / "labels.csv"
    run(["-m", "feedback.manifest", "export", str(manifest)], env)
    other = {**env, "SHOELABEL_HOME": str(tour["root"] / "other-home")}
    run(["-m", "feedback.manifest", "import", str(manifest)], other)
    again = tour["root"] / "again.csv"
    run(["-m", "feedback.manifest", "export", str(again)], other)

    def rows(path: Path) -> set[tuple[str, ...]]:  # the origin column says "import" after an import
        with path.open(newline="") as handle:
            return {(r["sha256"], r["path"], r["brand"], r["split"]) for r in csv.DictReader(handle)}

    assert rows(again) == rows(manifest)
    assert len(rows(manifest)) == n_labelled + 2  # the two reviewed pool photos joined the labelled set


def test_broken_model_does_not_block_the_other(tour: dict) -> None:
    """A current model whose file is unreadable is named with its reason; the other still predicts."""
    if not current_models(tour):
        pytest.skip("runs after the tour")
    env, models = tour["env"], current_models(tour)
    engine = db(tour)
    with engine.connect() as connection:
        cnn_path = Path(
            connection.execute(text("SELECT path FROM model_versions WHERE id = :v"), {"v": models["cnn"]}).scalar()
        )
    engine.dispose()
    saved = cnn_path.read_bytes()
    try:
        cnn_path.write_bytes(b"not a keras file")
        done = run(["-m", "modeling.predict", "--refresh", "--all"], env, status=1)
        assert f"cnn v{models['cnn']} could not predict" in done.stderr
        assert f"inception v{models['inception']} " in done.stdout
        files = [str(next((tour["labelled"] / "adidas").iterdir()))]
        done = run(["-m", "modeling.predict", *files, "--json"], env, status=1)
        assert [row["model"] for row in json.loads(done.stdout)] == [f"inception v{models['inception']}"]
        assert f"cnn v{models['cnn']} could not predict" in done.stderr
    finally:
        cnn_path.write_bytes(saved)
