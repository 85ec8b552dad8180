"""Predictions right after the app starts: the models are made ready in the background when the first
page is drawn (with their progress on the Predict page), simultaneous uploads on a model just loaded all
get their answers, a photo the catalogue has shows its label, and the first page imports nothing heavy."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import Engine

import ui.predict
from bench.bench_first_page import first_page_modules
from feedback.ingest import ingest_folder
from modeling.app_services import UploadPrediction, WarmModel, Warmup, predict_uploads
from modeling.predict import ModelHandle
from tests.app_support import REPO, assert_clean, new_app, texts, unescaped
from tests.refresh_support import current_cnn


def jpeg(seed: int) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (96, 80), (seed * 37 % 256, 90, 160)).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture
def tiny_cnn(engine: Engine, home: Path, brand_folder: Path) -> ModelHandle:
    """A tiny real CNN, saved and current, never loaded in this process before."""
    from modeling.architectures import build_cnn

    ingest_folder(brand_folder, engine=engine)
    return current_cnn(engine, home, build_cnn(3, input_size=32, widths=(8, 8, 8, 8)))


@pytest.mark.slow
def test_simultaneous_uploads_on_a_model_just_loaded_all_get_predictions(tiny_cnn: ModelHandle) -> None:
    """Eight sessions' uploads at once, as right after a start (each session is a thread of the server)."""
    results: dict[int, list[UploadPrediction]] = {}
    failures: list[BaseException] = []
    go = threading.Barrier(8)

    def upload(n: int) -> None:
        go.wait()
        try:
            results[n] = predict_uploads([(f"shoe_{n}.jpg", jpeg(n))], {"cnn": tiny_cnn})
        except BaseException as exc:  # a thread's failure is the test's finding
            failures.append(exc)

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert failures == []
    assert sorted(results) == list(range(8))
    for (result,) in results.values():
        assert result.error is None and set(result.answers["cnn"].probabilities) == {"acme", "bolt", "crest"}


@pytest.mark.slow
def test_the_models_are_made_ready_once_the_first_page_is_drawn(tiny_cnn: ModelHandle) -> None:
    from modeling import registry

    at = new_app().run()
    assert_clean(at)
    state = ui.predict.warmup()  # the one the first page started
    deadline = time.monotonic() + 240
    while not state.done and time.monotonic() < deadline:
        time.sleep(0.5)
    assert [(m.label, m.state) for m in state.models] == [(f"CNN v{tiny_cnn.id}", "ready")]
    assert str(Path(tiny_cnn.path).resolve()) in registry._loaded  # read once, for every session
    assert ui.predict.warmup() is state  # started once per process and database


@pytest.mark.slow
def test_the_predict_page_shows_which_models_are_ready(catalogue: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    warming = Warmup(catalogue)
    warming.models = [WarmModel("cnn", "CNN v2", "ready", 2.5), WarmModel("inception", "InceptionV3 v1", "loading")]
    monkeypatch.setattr(ui.predict, "warmup", lambda: warming)
    at = new_app().run()
    at.switch_page("ui/pages/predict.py").run()
    assert_clean(at)
    [bar] = at.get("progress")
    assert "CNN v2 ready (2.5 s)" in unescaped(bar.text) and "InceptionV3 v1 loading" in unescaped(bar.text)
    warming.finished = True
    at.run()
    assert not at.get("progress")


@pytest.mark.slow
def test_a_photo_already_in_the_catalogue_shows_its_label(catalogue: Engine, brand_folder: Path) -> None:
    known = sorted((brand_folder / "bolt").iterdir())[0]
    at = new_app().run()
    at.switch_page("ui/pages/predict.py").run()
    at.file_uploader(key="predict_files").set_value(
        [(known.name, known.read_bytes(), "image/jpeg"), ("new.jpg", jpeg(3), "image/jpeg")]
    )
    at.run()
    assert_clean(at)
    shown = [i for i in texts(at.info) if "In the catalogue as photo #" in i]
    assert len(shown) == 1 and "brand: bolt" in shown[0]


@pytest.mark.slow
def test_the_first_page_imports_no_model_or_table_library() -> None:
    """What the first page imports is what the server does before drawing it (a fresh process)."""
    modules = first_page_modules(REPO)
    assert "ui.review" in modules and "ui.predict" in modules
    heavy = ("keras", "jax", "sklearn", "cleanlab", "scipy", "pandas", "altair", "matplotlib")
    code = f"import sys\nimport {', '.join(modules)}\nprint(sorted(m for m in {heavy!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
