"""What the app asks of the models: predictions for uploaded photos, and tables of rounds and
metrics ready to chart. Nothing here imports Keras until a model is actually needed."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine, select

from db import get_engine, session_scope
from db.catalog import attributes
from db.labels import effective_labels
from db.models import BRAND_ID, NOT_A_SHOE, ClassChange, Image, LabelClass, Round, RoundStatus
from modeling.answers import ModelAnswer
from modeling.predict import ModelHandle, predict_sources, store_predictions
from modeling.predict import current_handles as every_current_handle
from modeling.registry import ARCH_NAMES, ARCHITECTURES, current_versions, load_keras
from shoelabel.images import ImageError, inspect_upload

if TYPE_CHECKING:
    import pandas as pd  # imported where a table is made: the Review page needs none (a second at start-up)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- predictions for uploads


@dataclass
class UploadPrediction:
    name: str
    answers: dict[str, ModelAnswer] = field(default_factory=dict)  # by architecture
    error: str | None = None  # why the photo could not be used


def current_handles(engine: Engine | None = None) -> dict[str, ModelHandle]:
    """The current model of each architecture for every attribute, brand first and InceptionV3 first, keyed
    ``inception`` for brand and ``inception · colour`` for another attribute."""
    engine = engine or get_engine()
    with session_scope(engine) as session:
        names = {a.id: a.name for a in attributes(session)}
    return {
        handle.arch if handle.attribute_id == BRAND_ID else f"{handle.arch} · {names[handle.attribute_id]}": handle
        for handle in every_current_handle(engine)
    }


def load_model(handle: ModelHandle) -> Any:
    """The Keras model of ``handle``, read from disk once per process."""
    return load_keras(handle.path)


def predict_uploads(files: Sequence[tuple[str, bytes]], handles: Mapping[str, ModelHandle]) -> list[UploadPrediction]:
    """Each current model's probabilities for each uploaded photo; unusable files get an error, not a raise."""
    results = [UploadPrediction(name) for name, _ in files]
    usable: list[int] = []
    for i, (name, data) in enumerate(files):
        try:
            inspect_upload(name, data)
            usable.append(i)
        except ImageError as exc:
            results[i].error = str(exc)
    for key, handle in handles.items():
        probabilities, errors = predict_sources(handle, [bytes(files[i][1]) for i in usable])
        for position, probs in probabilities.items():
            i = usable[position]
            results[i].answers[key] = ModelAnswer(
                handle.arch, handle.id, {name: float(p) for name, p in zip(handle.class_names, probs, strict=True)}
            )
        for position, exc in errors.items():
            results[usable[position]].error = f"{files[usable[position]][0]}: {exc.reason}"
    return results


def store_upload_predictions(
    handles: Mapping[str, ModelHandle],
    answers: Mapping[int, Mapping[str, ModelAnswer]],
    *,
    engine: Engine | None = None,
) -> int:
    """Keep the predictions made for uploaded photos that joined the catalogue (image id -> answers),
    so they enter the review queues ranked without waiting for a refresh."""
    engine = engine or get_engine()
    stored = 0
    for arch, handle in handles.items():
        probabilities = {
            image_id: np.array([by_arch[arch].probabilities[name] for name in handle.class_names])
            for image_id, by_arch in answers.items()
            if arch in by_arch and by_arch[arch].model_version_id == handle.id
        }
        if probabilities:
            stored += store_predictions(engine, handle, probabilities)
    return stored


# --------------------------------------------------------------------------- models ready before the first upload


@dataclass
class WarmModel:
    """One current model being made ready: read from disk and run once (JAX compiles on the first call)."""

    key: str
    label: str
    state: str = "waiting"  # waiting, loading, ready, failed
    seconds: float | None = None
    error: str = ""


class Warmup:
    """Makes the current models ready in a background thread when the app starts, the CNN first (it is
    ready in seconds; InceptionV3 follows), so the first uploads are answered at once; what it has done so
    far, for the Predict page. Runs through the same locks as every prediction (see
    :data:`modeling.registry.INFERENCE_LOCK`), so an upload during it waits rather than fails."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine or get_engine()
        self.models: list[WarmModel] = []
        self.finished = False
        self.thread = threading.Thread(target=self._run, name="shoelabel-warmup", daemon=True)

    def start(self) -> Warmup:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            handles = current_handles(self.engine)
            order = sorted(handles, key=lambda key: handles[key].arch != "cnn")  # the CNN first, brand first
            self.models = [WarmModel(key, _model_name(key, handles[key])) for key in order]
            for model in self.models:
                self._ready(model, handles[model.key])
        except Exception:  # the database cannot be read now: the pages say why; uploads load models as before
            log.exception("the models could not be made ready at start")
        finally:
            self.finished = True

    @staticmethod
    def _ready(model: WarmModel, handle: ModelHandle) -> None:
        if not Path(handle.path).is_file():  # said where it is used; no Keras import for it
            model.state, model.error = "failed", f"model file missing: {handle.path}"
            return
        model.state, started = "loading", time.monotonic()
        try:
            (result,) = predict_uploads([("warm-up.png", _warmup_photo())], {model.key: handle})
            if result.error:
                raise RuntimeError(result.error)
        except Exception as exc:  # the page that uses the model shows the error then
            model.state, model.error = "failed", str(exc) or type(exc).__name__
            return
        model.state, model.seconds = "ready", time.monotonic() - started

    @property
    def done(self) -> bool:
        return self.finished


def _model_name(key: str, handle: ModelHandle) -> str:
    """ "CNN v3", or "CNN v4 (colour)" for another attribute's model."""
    _, _, attribute = key.partition(" · ")
    name = f"{ARCH_NAMES.get(handle.arch, handle.arch)} v{handle.id}"
    return f"{name} ({attribute})" if attribute else name


def _warmup_photo() -> bytes:
    from PIL import Image as PILImage

    out = io.BytesIO()
    PILImage.new("RGB", (320, 320), (200, 200, 200)).save(out, format="PNG")
    return out.getvalue()


# --------------------------------------------------------------------------- uploads already in the catalogue


@dataclass(frozen=True)
class KnownPhoto:
    """An uploaded photo that is in the catalogue already, with its label for each attribute."""

    image_id: int
    labels: dict[str, str]  # attribute -> its class, "not a shoe", "in conflict" or "no label yet"


def known_photos(shas: Sequence[str], engine: Engine | None = None) -> dict[str, KnownPhoto]:
    """The uploads (by content hash) that the catalogue has already, and what each is labelled."""
    found: dict[str, KnownPhoto] = {}
    with session_scope(engine or get_engine()) as session:
        ids = dict(session.execute(select(Image.sha256, Image.id).where(Image.sha256.in_(list(set(shas))))).all())
        if not ids:
            return found
        labels: dict[int, dict[str, str]] = {image_id: {} for image_id in ids.values()}
        for attribute in attributes(session):
            for image_id, label in effective_labels(session, list(ids.values()), attribute.id).items():
                labels[image_id][attribute.name] = _label_text(label.value, label.conflict)
    return {sha: KnownPhoto(image_id, labels[image_id]) for sha, image_id in ids.items()}


def _label_text(value: str | None, conflict: bool) -> str:
    if conflict:
        return "in conflict"
    if value is None:
        return "no label yet"
    return "not a shoe" if value == NOT_A_SHOE else value


# --------------------------------------------------------------------------- a model's classes as they are now


def class_names_now(names: Iterable[str], attribute_id: int = BRAND_ID, engine: Engine | None = None) -> dict[str, str]:
    """Each class name a model was trained with -> the attribute's class it is today: its new name after a
    rename, the class it was merged into after a merge (a name the catalogue does not know stays as it is)."""
    with session_scope(engine or get_engine()) as session:
        classes = {c.id: c for c in session.scalars(select(LabelClass).where(LabelClass.attribute_id == attribute_id))}
        by_name = {c.name.lower(): c for c in classes.values()}
        renames = select(ClassChange).where(ClassChange.attribute_id == attribute_id, ClassChange.kind == "rename")
        for change in session.scalars(renames.order_by(ClassChange.id.desc())):  # the latest rename wins
            if change.class_id in classes:
                by_name.setdefault(change.old_name.lower(), classes[change.class_id])
        now = {}
        for name in names:
            found = by_name.get(name.strip().lower()) if name != NOT_A_SHOE else None
            if found is not None and found.merged_into_id in classes:
                found = classes[found.merged_into_id]
            now[name] = found.name if found is not None else name
        return now


def answer_now(answer: ModelAnswer, names: Mapping[str, str]) -> ModelAnswer:
    """``answer`` under today's class names (``names`` from :func:`class_names_now`); the probabilities of
    classes merged since are added up."""
    probabilities: dict[str, float] = {}
    for name, p in answer.probabilities.items():
        shown = names.get(name, name)
        probabilities[shown] = probabilities.get(shown, 0.0) + p
    return ModelAnswer(answer.arch, answer.model_version_id, probabilities)


def answers_now(
    answers: Mapping[str, ModelAnswer], attribute_id: int = BRAND_ID, engine: Engine | None = None
) -> dict[str, ModelAnswer]:
    """Each model's answer (by key) under today's class names."""
    names = class_names_now({n for a in answers.values() for n in a.probabilities}, attribute_id, engine)
    return {key: answer_now(answer, names) for key, answer in answers.items()}


# --------------------------------------------------------------------------- rounds and metrics


def _metric(metrics: Mapping[str, Any] | None, key: str) -> float | None:
    if not metrics or metrics.get(key) is None:
        return None
    return float(metrics[key])


def round_table(rounds: Sequence[Round]) -> pd.DataFrame:
    """One row per round, newest first, with the held-out scores of the candidate and the model it challenged."""
    import pandas as pd

    records = []
    for r in rounds:
        metrics = r.metrics or {}
        data = r.data or {}
        records.append(
            {
                "round": r.id,
                "started": r.started_at,
                "arch": r.arch,
                "trigger": r.trigger,
                "mode": r.mode,
                "parent": r.parent_model_id,
                "status": str(r.status),
                "train images": data.get("n_train"),
                "reviews since last round": data.get("reviews_since_last_round"),
                "candidate accuracy": _metric(metrics.get("candidate"), "accuracy"),
                "candidate macro F1": _metric(metrics.get("candidate"), "macro_f1"),
                "current accuracy": _metric(metrics.get("current"), "accuracy"),
                "current macro F1": _metric(metrics.get("current"), "macro_f1"),
                "duration (s)": r.duration_s,
                "message": r.message,
            }
        )
    return pd.DataFrame.from_records(records)


HISTORY_COLUMNS = ["round", "arch", "metric", "held-out photos", "n", "value", "status"]


def metric_history(rounds: Sequence[Round]) -> pd.DataFrame:
    """Long table of each round's held-out candidate scores, oldest first: accuracy and macro F1 over all
    held-out photos, and accuracy on each source of them (held out at import, from the review pool)."""
    import pandas as pd

    records = []
    for r in sorted(rounds, key=lambda r: r.id):
        candidate = (r.metrics or {}).get("candidate") or {}
        parts = [("all", candidate), *(candidate.get("by_source") or {}).items()]
        for part, values in parts:
            for key, name in (("accuracy", "accuracy"), ("macro_f1", "macro F1")):
                value = _metric(values, key)
                if value is None or (part != "all" and key != "accuracy"):
                    continue
                records.append(
                    {
                        "round": r.id,
                        "arch": r.arch,
                        "metric": name,
                        "held-out photos": part,
                        "n": values.get("n"),
                        "value": value,
                        "status": str(r.status),
                    }
                )
    return pd.DataFrame.from_records(records, columns=HISTORY_COLUMNS)


def latest_results(rounds: Sequence[Round]) -> list[Round]:
    """The most recent finished round of each architecture, newest first."""
    latest: dict[str, Round] = {}
    for r in sorted(rounds, key=lambda r: r.id, reverse=True):
        if r.status != RoundStatus.RUNNING and r.arch not in latest:
            latest[r.arch] = r
    return sorted(latest.values(), key=lambda r: r.id, reverse=True)


def comparison_frame(r: Round) -> pd.DataFrame | None:
    """The before/after held-out scores of a finished round (metric, current, candidate, change), or None."""
    import pandas as pd

    metrics = r.metrics or {}
    candidate, before = metrics.get("candidate"), metrics.get("current")
    if not candidate:
        return None
    rows = [
        ("accuracy", "accuracy"),
        ("macro F1", "macro_f1"),
        ("macro precision", "macro_precision"),
        ("macro recall", "macro_recall"),
    ]
    records = [(label, _metric(before, key), _metric(candidate, key)) for label, key in rows]
    sources = candidate.get("by_source") or {}
    if len(sources) > 1:  # both kinds of held-out photos: each on its own
        for source, values in sources.items():
            previous = ((before or {}).get("by_source") or {}).get(source, {})
            records.append((f"accuracy, {source} (n={values['n']})", _metric(previous, "accuracy"), values["accuracy"]))
    for brand, values in (candidate.get("per_class") or {}).items():
        previous = ((before or {}).get("per_class") or {}).get(brand, {}).get("f1")
        records.append((f"F1 {brand}", previous, values.get("f1")))
    frame = pd.DataFrame.from_records(records, columns=["held-out metric", "current", "candidate"])
    frame["change"] = frame["candidate"] - frame["current"]
    return frame


@dataclass(frozen=True)
class ModelReport:
    arch: str
    version_id: int
    created_at: datetime
    metrics: dict[str, Any] | None  # held-out Metrics dict; None when promoted without evaluation

    @property
    def label(self) -> str:
        return f"{self.arch} v{self.version_id}"


def current_models(engine: Engine | None = None, attribute_id: int = BRAND_ID) -> list[ModelReport]:
    with session_scope(engine or get_engine()) as session:
        versions = current_versions(session, attribute_id)
        return [
            ModelReport(arch, v.id, v.created_at, dict(v.metrics) if v.metrics else None)
            for arch in ARCHITECTURES
            if (v := versions.get(arch)) is not None
        ]


def confusion_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Long table (true, predicted, count, share of the true brand's row) of a Metrics dict."""
    import pandas as pd

    names = list(metrics.get("class_names") or [])
    matrix = np.array(metrics.get("confusion") or np.zeros((len(names), len(names))), dtype=float)
    if matrix.size == 0:
        return pd.DataFrame(columns=["true", "predicted", "count", "share"])
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    return pd.DataFrame.from_records(
        [
            {"true": t, "predicted": p, "count": int(matrix[i, j]), "share": float(shares[i, j])}
            for i, t in enumerate(names)
            for j, p in enumerate(names)
        ]
    )


def per_class_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """One row per class, the classes with the most held-out photos first."""
    import pandas as pd

    rows = [{"class": name, **values} for name, values in (metrics.get("per_class") or {}).items()]
    frame = pd.DataFrame.from_records(rows, columns=["class", "precision", "recall", "f1", "support"])
    return frame.sort_values(["support", "class"], ascending=[False, True], kind="stable").reset_index(drop=True)


def top_confusions(metrics: Mapping[str, Any], limit: int = 15) -> pd.DataFrame:
    """The most frequent mistakes (true class, predicted class, photos, share of the true class's photos),
    most frequent first: what a confusion matrix of dozens of classes says, readable."""
    frame = confusion_frame(metrics)
    if frame.empty:
        return frame
    mistakes = frame[(frame["true"] != frame["predicted"]) & (frame["count"] > 0)]
    return mistakes.sort_values(["count", "share"], ascending=False, kind="stable").head(limit).reset_index(drop=True)
