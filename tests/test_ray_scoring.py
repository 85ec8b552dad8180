"""The refresh on a Ray instance with two workers stores what the refresh in one process stores."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, delete, select

from db import session_scope
from db.models import Image, Prediction
from feedback.ingest import ingest_folder
from modeling.predict import ModelHandle, update_predictions
from tests.conftest import REPO
from tests.refresh_support import stored_probabilities, tiny_cnn

WORKERS = 2


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """One local Ray instance for the module (starting one takes seconds): its address."""
    ray = pytest.importorskip("ray", reason='Ray is not installed: pip install "shoelabel[ray]"')
    ray.init(address="local", num_cpus=WORKERS, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture
def catalogue(engine: Engine, home: Path, brand_folder: Path, pool_folder: Path) -> tuple[ModelHandle, str]:
    """44 photos, one of which no longer decodes, and a current tiny CNN; the broken photo's path."""
    ingest_folder(brand_folder, engine=engine)
    ingest_folder(pool_folder, engine=engine)
    with session_scope(engine) as session:
        broken = session.scalar(select(Image.path).order_by(Image.id.desc()).limit(1))
    Path(broken).write_bytes(b"not a photo any more")
    return tiny_cnn(engine, home), broken


def as_array(stored: dict[int, dict[str, float]], handle: ModelHandle) -> np.ndarray:
    return np.array([[stored[i][name] for name in handle.class_names] for i in sorted(stored)])


@pytest.mark.slow
def test_the_refresh_command_on_ray_workers_stores_what_one_process_stores(
    ray_address: str, engine: Engine, catalogue: tuple[ModelHandle, str], home: Path
) -> None:
    cnn, broken = catalogue
    stored, unreadable = update_predictions(engine, cnn)
    assert stored == 43 and "not an image" in unreadable[broken]
    expected = stored_probabilities(engine, cnn)
    with session_scope(engine, write=True) as session:
        session.execute(delete(Prediction))

    env = {**os.environ, "SHOELABEL_HOME": str(home)}
    env.pop("SHOELABEL_DB", None)
    done = subprocess.run(
        [sys.executable, "-m", "modeling.predict", "--refresh", "--ray", ray_address, "--ray-workers", str(WORKERS)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"stored predictions: {cnn.label} 43" in done.stdout
    assert f"1 photo(s) could not be read, e.g. {broken}: not an image" in done.stdout
    got = stored_probabilities(engine, cnn)
    assert sorted(got) == sorted(expected)
    assert np.allclose(as_array(got, cnn), as_array(expected, cnn), atol=1e-5)


@pytest.mark.parametrize(
    ("address", "message"),
    [("nonsense", "--ray 'nonsense' is not an address"), ("127.0.0.1:1", "Could not reach the Ray cluster at")],
)
@pytest.mark.slow
def test_an_address_without_a_cluster_is_named_before_anything_starts(
    engine: Engine, address: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray", reason='Ray is not installed: pip install "shoelabel[ray]"')
    from modeling.predict import main

    assert main(["--refresh", "--ray", address]) == 2
    assert message in capsys.readouterr().err
