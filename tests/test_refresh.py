"""Refreshing the catalogue's predictions: streamed in bounded chunks, committed as it goes, resumable."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, delete, event, func, select

from db import session_scope
from db.models import Image, Prediction
from feedback.ingest import ingest_folder
from modeling.predict import ModelHandle
from tests.conftest import REPO
from tests.refresh_support import INPUT_SIZE, stored_probabilities, tiny_cnn


@pytest.fixture
def cnn(engine: Engine, home: Path, brand_folder: Path, pool_folder: Path) -> ModelHandle:
    """44 photos (36 labelled, 8 in the pool) and a current tiny CNN that has predicted none of them."""
    ingest_folder(brand_folder, engine=engine)
    ingest_folder(pool_folder, engine=engine)
    return tiny_cnn(engine, home)


def image_paths(engine: Engine) -> dict[int, str]:
    with session_scope(engine) as session:
        return {image_id: path for image_id, path in session.execute(select(Image.id, Image.path))}


@pytest.mark.slow
def test_refresh_asks_for_one_chunk_at_a_time_and_stores_the_models_answers(
    engine: Engine, cnn: ModelHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modeling.predict as predict
    from shoelabel.images import load_batch

    listings: list[str] = []

    def record(_conn, _cursor, statement: str, *_args) -> None:
        if "images.path" in statement:
            listings.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    pages: list[int] = []
    real_pages = predict.catalogue_pages

    def counted(*args, **kwargs):
        for page in real_pages(*args, **kwargs):
            pages.append(len(page))
            yield page

    monkeypatch.setattr(predict, "catalogue_pages", counted)
    try:
        stored, unreadable = predict.update_predictions(engine, cnn, chunk=10)
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert (stored, unreadable) == (44, {})
    assert pages == [10, 10, 10, 10, 4]
    # one bounded query per chunk, and one more that finds nothing left: never the whole list at once
    assert len(listings) == math.ceil(44 / 10) + 1 and all("LIMIT" in statement for statement in listings)

    paths = image_paths(engine)
    ids = sorted(paths)
    expected = np.asarray(cnn.model().predict_on_batch(load_batch([paths[i] for i in ids], INPUT_SIZE)))
    stored_probs = stored_probabilities(engine, cnn)
    assert sorted(stored_probs) == ids
    got = np.array([[stored_probs[i][name] for name in cnn.class_names] for i in ids])
    assert np.allclose(got, expected, atol=1e-5)


@pytest.mark.slow
def test_a_killed_refresh_keeps_its_committed_chunks_and_a_rerun_does_the_rest(
    engine: Engine, cnn: ModelHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modeling.predict import CatalogueScorer, update_predictions

    real_call, calls = CatalogueScorer.__call__, []

    def killed_in_the_third_chunk(self, images, progress=None):
        calls.append(len(images))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_call(self, images)

    monkeypatch.setattr(CatalogueScorer, "__call__", killed_in_the_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        update_predictions(engine, cnn, chunk=10)
    assert len(stored_probabilities(engine, cnn)) == 20  # two chunks committed, the third lost
    monkeypatch.setattr(CatalogueScorer, "__call__", real_call)

    assert update_predictions(engine, cnn, chunk=10) == (24, {})  # only what was missing
    with session_scope(engine) as session:
        per_image = session.execute(select(Prediction.image_id, func.count()).group_by(Prediction.image_id)).all()
    assert len(per_image) == 44 and {n for _, n in per_image} == {1}


@pytest.mark.slow
def test_one_broken_model_never_stops_the_other(engine: Engine, cnn: ModelHandle, home: Path) -> None:
    from modeling.predict import refresh_predictions
    from tests.app_support import fake_models

    broken = fake_models(engine, home, archs=("inception",))["inception"]  # its model file does not exist
    with session_scope(engine, write=True) as session:
        session.execute(delete(Prediction))  # the predictions it came with
    report = refresh_predictions(engine)
    assert report.stored == {cnn.label: 44}
    assert "Model file missing" in report.failed[broken.label]


def refresh(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOELABEL_HOME": str(home)}
    env.pop("SHOELABEL_DB", None)
    return subprocess.run(
        [sys.executable, "-m", "modeling.predict", "--refresh", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_the_refresh_command_predicts_what_is_missing_with_its_rate(
    engine: Engine, cnn: ModelHandle, home: Path
) -> None:
    from modeling.predict import update_predictions

    update_predictions(engine, cnn)
    with session_scope(engine, write=True) as session:
        session.execute(delete(Prediction).where(Prediction.image_id.in_(sorted(image_paths(engine))[:5])))
    done = refresh(home)
    assert done.returncode == 0, done.stderr
    assert f"stored predictions: {cnn.label} 5" in done.stdout
    assert "photos/s" in done.stderr  # the progress bar shows the rate
    assert len(stored_probabilities(engine, cnn)) == 44


def test_ray_without_ray_installed_says_how_to_install_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from modeling.predict import main

    monkeypatch.setitem(sys.modules, "ray", None)  # importing it fails, as where it is not installed
    assert main(["--refresh", "--ray", "auto"]) == 2
    assert 'pip install "shoelabel[ray]"' in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--refresh", "--ray", "auto", "--ray-workers", "0"], "argument --ray-workers: 0 is not above 0"),
        (["--refresh", "--ray", "auto", "--ray-gpus-per-worker", "-1"], "-1 is not 0 or more"),
        (["--refresh", "--batch-size", "many"], "'many' is not a number"),
        (["--ray", "auto"], "--ray runs a refresh: add --refresh"),
    ],
)
def test_bad_refresh_options_are_named(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from modeling.predict import main

    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
