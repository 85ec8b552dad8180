"""Helpers shared by the app tests: a catalogue with fake current models and their predictions.

No Keras model is built or loaded: the model versions are registry rows whose files do
not exist, which is all the review queue and the app's pages need to show predictions.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from db import session_scope
from db.models import BRAND_ID, Image, ModelVersion, Split
from feedback.ingest import ingest_folder
from modeling.predict import ModelHandle, store_predictions
from modeling.registry import promote, register

BRANDS = ["acme", "bolt", "crest"]
REPO = Path(__file__).resolve().parent.parent


def fake_metrics(accuracy: float, class_names: list[str] = BRANDS) -> dict:
    n = len(class_names)
    confusion = [[8 if i == j else 1 for j in range(n)] for i in range(n)]
    return {
        "class_names": class_names,
        "accuracy": accuracy,
        "macro_precision": accuracy,
        "macro_recall": accuracy,
        "macro_f1": accuracy - 0.02,
        "per_class": {b: {"precision": 0.8, "recall": 0.8, "f1": 0.8, "support": 10} for b in class_names},
        "confusion": confusion,
        "n": 10 * n,
    }


def add_round(engine: Engine, **values: object) -> None:
    """A ``rounds`` row as a finished app round leaves it; ``values`` override the defaults."""
    from db.models import Round, RoundStatus

    defaults: dict[str, object] = {"arch": "inception", "trigger": "app", "mode": "finetune"}
    defaults["status"] = RoundStatus.ACCEPTED
    with session_scope(engine, write=True) as session:
        session.add(Round(**{**defaults, **values}))


def add_round_history(engine: Engine, message: str = "Promoted.", duration_s: float = 12.0) -> None:
    """Three accepted rounds (InceptionV3, CNN, InceptionV3), each better than the one before."""
    for n, arch in enumerate(["inception", "cnn", "inception"]):
        add_round(
            engine,
            arch=arch,
            data={"n_train": 30, **({"reviews_since_last_round": n} if n else {})},
            metrics={"candidate": fake_metrics(0.7 + 0.05 * n), "current": fake_metrics(0.7) if n else None},
            message=message,
            duration_s=duration_s,
        )


def pool_probabilities(position: int, arch: str, n_classes: int = 3) -> np.ndarray:
    """Distinct, deterministic probabilities: the first pool photo is the least confident, and
    the models always put the second brand (``bolt``) on top, so Confirm means ``bolt``."""
    top = 0.40 + 0.05 * position + (0.02 if arch == "cnn" else 0.0)
    rest = np.linspace(1.2, 0.8, n_classes - 1)
    rest = rest / rest.sum() * (1.0 - top)
    return np.insert(rest, 1, top)


Probabilities = Callable[[int, str, int], np.ndarray]  # (pool position, arch, number of brands)


def register_brand_model(session: Session, arch: str, path: Path) -> ModelVersion:
    """A model of the three test brands (input 64, no parent) registered, not made current."""
    return register(session, arch=arch, path=path, class_names=BRANDS, input_size=64, parent_id=None)


def current_fakes(
    engine: Engine,
    home: Path,
    file_name: str,
    class_names: list[str],
    accuracies: dict[str, float],
    archs: tuple[str, ...] = ("inception", "cnn"),
    attribute_id: int = BRAND_ID,
) -> dict[str, ModelHandle]:
    """Register and promote a fake InceptionV3 (input 299) and CNN (input 160) of the attribute, those in
    ``archs``, each in the models folder as ``file_name`` (``{arch}`` filled in) with its fake accuracy; their
    handles by architecture."""
    handles: dict[str, ModelHandle] = {}
    with session_scope(engine, write=True) as session:
        for arch, size in (("inception", 299), ("cnn", 160)):
            if arch not in archs:
                continue
            version = register(
                session,
                arch=arch,
                path=home / "models" / file_name.format(arch=arch),
                class_names=class_names,
                input_size=size,
                parent_id=None,
                attribute_id=attribute_id,
                metrics=fake_metrics(accuracies[arch], class_names),
            )
            promote(session, version)
            session.flush()
            handles[arch] = ModelHandle.of(version)
    return handles


def fake_models(
    engine: Engine,
    home: Path,
    class_names: list[str] = BRANDS,
    pool: Probabilities = pool_probabilities,
    archs: tuple[str, ...] = ("inception", "cnn"),
) -> dict[str, ModelHandle]:
    """Register and promote one fake model per architecture in ``archs`` and store predictions for every photo."""
    accuracies = {"inception": 0.85, "cnn": 0.7}
    handles = current_fakes(engine, home, "{arch}-fake.keras", class_names, accuracies, archs)
    with session_scope(engine) as session:
        pooled = list(session.scalars(select(Image.id).where(Image.split == Split.POOL).order_by(Image.id)))
        labelled = list(session.scalars(select(Image.id).where(Image.split != Split.POOL).order_by(Image.id)))
    n = len(class_names)
    for arch, handle in handles.items():
        probabilities = {image_id: pool(i, arch, n) for i, image_id in enumerate(pooled)}
        sure = np.full(n, 0.2 / (n - 1))
        sure[0] = 0.8
        probabilities.update({image_id: sure for image_id in labelled})
        store_predictions(engine, handle, probabilities)
    return handles


def seed_catalogue(engine: Engine, home: Path, brand_folder: Path, pool_folder: Path) -> dict[str, ModelHandle]:
    """Ingest the labelled and the pool fixtures, then add fake current models with predictions."""
    ingest_folder(brand_folder, engine=engine)
    ingest_folder(pool_folder, engine=engine)
    return fake_models(engine, home)


def pool_ids(engine: Engine) -> list[int]:
    with session_scope(engine) as session:
        return list(session.scalars(select(Image.id).where(Image.split == Split.POOL).order_by(Image.id)))


def unescaped(text: str) -> str:
    """Markdown as a reader sees it: the backslashes that escape names from users taken out."""
    return re.sub(r"\\(.)", r"\1", text)


def texts(elements: object) -> list[str]:
    return [unescaped(e.value) for e in elements]


def new_app(timeout: float = 60) -> AppTest:
    """The app's script, for AppTest (the repository root is on ``sys.path`` in every test)."""
    return AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=timeout)


def open_page(page: str) -> AppTest:
    """The app on ``ui/pages/<page>.py``, drawn without a stack trace."""
    at = new_app().run()
    at.switch_page(f"ui/pages/{page}.py").run()
    assert_clean(at)
    return at


def submit_sign_in(at: AppTest, name: str, password: str) -> AppTest:
    """``at`` after its sign-in form is sent with ``name`` and ``password``."""
    at.text_input(key="sign_in_name").input(name)
    at.text_input(key="sign_in_password").input(password)
    at.button(key="FormSubmitter:sign_in-Sign in").click().run()
    return at


def reviewing_as_ann() -> AppTest:
    """The app with "ann" entered as the reviewer (no sign-in configured), drawn without a stack trace."""
    at = new_app().run()
    at.text_input(key="reviewer_name").input("ann")
    at.button(key="FormSubmitter:reviewer_form-Start").click().run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    """No stack trace on the page."""
    assert not at.exception, [e.value for e in at.exception]


class AppServerError(RuntimeError):
    """The app server did not come up."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(
    home: Path, log: Path | None = None, start_timeout_s: float = 90.0, env: dict[str, str] | None = None
) -> Iterator[str]:
    """The real app (``streamlit run streamlit_app.py``) on a free local port, on ``home`` (and ``env`` added to
    its environment); yields its URL."""
    port = free_port()
    output = log.open("wb") if log else subprocess.DEVNULL
    command = [
        sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, "SHOELABEL_HOME": str(home), **(env or {})},
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if process.poll() is not None:
                tail = log.read_text()[-2000:] if log else ""
                raise AppServerError(f"the app server exited: {tail}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AppServerError(f"the app server did not start within {start_timeout_s:.0f}s")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            output.close()
