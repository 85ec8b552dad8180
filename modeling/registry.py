"""The model registry: every trained model is a ``.keras`` file and a ``model_versions`` row.

At most one version per architecture and attribute is *current*; a round's candidate replaces
it only when it is not worse on the held-out set (see :mod:`modeling.rounds`).
"""

from __future__ import annotations

import threading
import zipfile
from collections import OrderedDict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import BRAND_ID, ModelStatus, ModelVersion, utcnow
from shoelabel.errors import UserError
from shoelabel.settings import get_settings

if TYPE_CHECKING:
    import keras

ARCHITECTURES = ("inception", "cnn")  # the one order in which models are listed, trained and shown
ARCH_NAMES = {"inception": "InceptionV3", "cnn": "CNN"}
#: How InceptionV3 trains: ``finetune`` (the default) fits the classifier on frozen features, then trains
#: the top blocks, which measured about 5 points better than the classifier alone on the demo photos
#: (README, Figures); ``head`` fits the classifier only (seconds).
INCEPTION_MODES = ("finetune", "head")
DEFAULT_INCEPTION_MODE = "finetune"

MODELS_IN_MEMORY = 4  # the two current models, and room for a round's candidates
_loaded: OrderedDict[str, Any] = OrderedDict()  # least recently used first
_load_lock = threading.Lock()
#: Held while a loaded model runs. Keras on JAX donates a model's weight buffers to each call and puts new
#: ones back after it, so two threads running one model (or two parts of it: InceptionV3's lower and upper
#: networks share its weights) at once fail with "Buffer has been deleted or donated". The app's sessions
#: are threads of one process: they take turns (each call uses every core anyway).
INFERENCE_LOCK = threading.RLock()


class ModelNotFoundError(UserError, LookupError):
    """No model of the asked kind exists yet, or its file is gone."""


class ModelFileError(UserError, ValueError):
    """A model file that is there but cannot be read as a model (cut short, overwritten, damaged)."""


def check_arch(arch: str) -> str:
    if arch not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}.")
    return arch


def current(session: Session, arch: str, attribute_id: int = BRAND_ID) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(
            ModelVersion.arch == check_arch(arch),
            ModelVersion.attribute_id == attribute_id,
            ModelVersion.status == ModelStatus.CURRENT,
        )
    )


def current_versions(session: Session, attribute_id: int = BRAND_ID) -> dict[str, ModelVersion]:
    """The current version of each architecture that has one, for one attribute (default: brand)."""
    rows = session.scalars(
        select(ModelVersion).where(
            ModelVersion.attribute_id == attribute_id, ModelVersion.status == ModelStatus.CURRENT
        )
    )
    return {row.arch: row for row in rows}


def every_current_version(session: Session) -> list[ModelVersion]:
    """The current versions of every architecture and attribute (what a prediction refresh keeps up to date)."""
    return list(
        session.scalars(
            select(ModelVersion)
            .where(ModelVersion.status == ModelStatus.CURRENT)
            .order_by(ModelVersion.attribute_id, ModelVersion.arch)
        )
    )


def require_current(session: Session, arch: str, attribute_id: int = BRAND_ID) -> ModelVersion:
    version = current(session, arch, attribute_id)
    if version is None:
        raise ModelNotFoundError(
            f"No current {arch} model yet. Train one with `python -m modeling.train --arch {arch}` "
            "(or the Retrain button in the app) after ingesting labelled photos."
        )
    return version


def new_model_path(arch: str, when: datetime | None = None) -> Path:
    stamp = (when or utcnow()).strftime("%Y%m%d-%H%M%S-%f")
    folder = get_settings().models_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{arch}-{stamp}.keras"


def register(
    session: Session,
    *,
    arch: str,
    path: Path,
    class_names: list[str],
    input_size: int,
    parent_id: int | None,
    attribute_id: int = BRAND_ID,
    base_weights: str = "",
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> ModelVersion:
    version = ModelVersion(
        arch=check_arch(arch),
        attribute_id=attribute_id,
        path=str(path),
        parent_id=parent_id,
        status=ModelStatus.CANDIDATE,
        class_names=list(class_names),
        input_size=input_size,
        base_weights=base_weights,
        training=training or {},
        metrics=metrics or {},
    )
    session.add(version)
    session.flush()
    return version


def promote(session: Session, version: ModelVersion) -> None:
    """Make ``version`` the current one of its architecture and attribute; the previous one retires."""
    for other in session.scalars(
        select(ModelVersion).where(
            ModelVersion.arch == version.arch,
            ModelVersion.attribute_id == version.attribute_id,
            ModelVersion.status == ModelStatus.CURRENT,
            ModelVersion.id != version.id,
        )
    ):
        other.status = ModelStatus.RETIRED
    version.status = ModelStatus.CURRENT


def reject(version: ModelVersion) -> None:
    version.status = ModelStatus.REJECTED


def load_keras(path: str | Path) -> keras.Model:
    """Load a ``.keras`` file once per process (models are read-only once saved)."""
    key = str(Path(path).resolve())
    with _load_lock:
        if key not in _loaded:
            _keep(key, load_fresh(key))
        _loaded.move_to_end(key)
        return _loaded[key]


def _keep(key: str, model: keras.Model) -> None:
    """Hold ``model``, letting go of the least recently used ones (a long-running app sees many versions)."""
    _loaded[key] = model
    _loaded.move_to_end(key)
    while len(_loaded) > MODELS_IN_MEMORY:
        _loaded.popitem(last=False)


def load_fresh(path: str | Path) -> keras.Model:
    """A private copy of a saved model, for training (the shared copy stays untouched)."""
    import keras

    from modeling.layers import CUSTOM_OBJECTS  # a new process has not registered them yet

    if not Path(path).is_file():
        raise ModelNotFoundError(
            f"Model file missing: {path}. It may have been moved or deleted: restore it, or train a new model "
            "with `python -m modeling.train --arch cnn` (or `--arch inception`)."
        )
    try:
        return keras.saving.load_model(path, compile=False, custom_objects=CUSTOM_OBJECTS)
    except MemoryError:
        raise
    except Exception as exc:  # Keras says "File not found" for a file that is there but not a whole .keras zip
        raise _damaged(Path(path), exc) from exc


def _damaged(path: Path, exc: Exception) -> ModelFileError:
    """The error for a model file that is there but does not load: what is wrong with it, and what to do."""
    whole = zipfile.is_zipfile(path) and not isinstance(exc, zipfile.BadZipFile)
    reason = f"{type(exc).__name__}: {str(exc)[:300]}" if whole else "not a whole .keras zip file"
    return ModelFileError(
        f"Model file damaged: {path} ({path.stat().st_size:,} bytes) cannot be read as a model ({reason}). "
        "It may have been cut short or overwritten: restore it from a backup, or train a new model with "
        "`python -m modeling.train --arch cnn` (or `--arch inception`)."
    )


def remember(path: str | Path, model: keras.Model) -> None:
    """Keep a just-saved model as the loaded copy of its file (saves reading it back)."""
    with _load_lock:
        _keep(str(Path(path).resolve()), model)
