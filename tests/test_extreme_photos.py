"""Photos of extreme shape (a strip 32 px wide and 6,000 tall) through the real commands, each in a
fresh process: ingest takes them and the CNN predicts them with the rest at its real input size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import Engine

from db import session_scope
from modeling.predict import ModelHandle
from modeling.registry import promote, register
from tests.app_support import BRANDS
from tests.conftest import REPO, make_brand_photo
from tests.refresh_support import stored_probabilities

CNN_SIZE = 128  # the product CNN's input size: the strip is 0.7 px wide once fitted into it


def _cnn(engine: Engine, home: Path) -> ModelHandle:
    """An untrained, seeded CNN at the product's input size (narrow, so it loads fast), current."""
    from modeling.architectures import build_cnn

    path = home / "models" / "cnn-128.keras"
    path.parent.mkdir(parents=True, exist_ok=True)
    build_cnn(len(BRANDS), input_size=CNN_SIZE, widths=(4, 8), seed=0).save(path)
    with session_scope(engine, write=True) as session:
        version = register(session, arch="cnn", path=path, class_names=BRANDS, input_size=CNN_SIZE, parent_id=None)
        promote(session, version)
        session.flush()
        return ModelHandle.of(version)


def _command(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOELABEL_HOME": str(home)}
    env.pop("SHOELABEL_DB", None)
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_strip_shaped_photo_is_ingested_and_predicted_with_the_rest(
    engine: Engine, home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "pool"
    for i in range(4):
        make_brand_photo(folder / f"shoe{i}.jpg", i, seed=i)
    Image.new("RGB", (32, 6000), (200, 30, 30)).save(folder / "tall.jpg", quality=90)
    Image.new("RGB", (6000, 32), (30, 30, 200)).save(folder / "wide.png")
    ingested = _command(home, "feedback.ingest", str(folder))
    assert ingested.returncode == 0, ingested.stderr
    assert "Images added: 6" in ingested.stdout
    handle = _cnn(engine, home)
    refreshed = _command(home, "modeling.predict", "--refresh", "--model", "cnn")
    assert refreshed.returncode == 0, refreshed.stderr
    assert "Traceback" not in refreshed.stderr
    assert f"stored predictions: {handle.label} 6" in refreshed.stdout
    assert len(stored_probabilities(engine, handle)) == 6
