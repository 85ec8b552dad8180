"""A tiny catalogue with a real CNN, for the tests of catalogue refreshes (in one process and on Ray)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from db import session_scope
from db.models import Prediction, PredictionKind
from modeling.predict import ModelHandle
from modeling.registry import promote, register
from tests.app_support import BRANDS

INPUT_SIZE = 32


def tiny_cnn(engine: Engine, home: Path, class_names: list[str] = BRANDS) -> ModelHandle:
    """The product's CNN at test size (untrained, seeded), saved as ``.keras``, registered and current."""
    from modeling.architectures import build_cnn

    model = build_cnn(len(class_names), input_size=INPUT_SIZE, widths=(8, 16), seed=0)
    return current_cnn(engine, home, model, class_names)


def current_cnn(engine: Engine, home: Path, model: Any, class_names: list[str] = BRANDS) -> ModelHandle:
    """``model``, a CNN of input :data:`INPUT_SIZE`, saved as ``models/cnn-tiny.keras``, registered and current."""
    path = home / "models" / "cnn-tiny.keras"
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    with session_scope(engine, write=True) as session:
        version = register(
            session, arch="cnn", path=path, class_names=class_names, input_size=INPUT_SIZE, parent_id=None
        )
        promote(session, version)
        session.flush()
        return ModelHandle.of(version)


def stored_probabilities(engine: Engine, handle: ModelHandle) -> dict[int, dict[str, float]]:
    """The model's stored probabilities, by image id."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(Prediction.image_id, Prediction.probabilities).where(
                Prediction.model_version_id == handle.id, Prediction.kind == PredictionKind.MODEL
            )
        )
        return {image_id: probabilities for image_id, probabilities in rows}
