"""Training and fine-tuning rounds: train a candidate, evaluate it on the frozen held-out
set next to the current model, and promote it only if it is not worse (:mod:`modeling.promotion`).

A round is recorded in the ``rounds`` table from start to finish (what it used,
progress, metrics, confusion matrix, duration), which is also what the app shows.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import time
import traceback
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from db import get_engine, session_scope
from db.evaluation_part import SOURCES
from db.labels import MIN_PHOTOS_PER_BRAND, LabelledImage, LabelledSet, labelled_set
from db.models import (
    BRAND,
    BRAND_ID,
    Attribute,
    ModelStatus,
    ModelVersion,
    PredictionKind,
    Review,
    Round,
    RoundStatus,
    utcnow,
)
from modeling.feature_cache import inception_activation_cache
from modeling.label_issues import out_of_fold_probabilities
from modeling.metrics import Metrics, compare_table, compute_metrics, plot_confusion
from modeling.predict import ModelHandle, predict_images, store_predictions, update_predictions
from modeling.promotion import decide, source_scores
from modeling.queue_scores import rescore_all
from modeling.registry import (
    DEFAULT_INCEPTION_MODE,
    check_arch,
    current,
    load_fresh,
    new_model_path,
    promote,
    register,
    reject,
    remember,
)
from shoelabel.errors import UserError
from shoelabel.progress import Progress, Stage, Throttled, fan_out, silent
from shoelabel.settings import get_settings

if TYPE_CHECKING:
    from modeling.fitting import CnnConfig, InceptionConfig, TrainOutcome

log = logging.getLogger(__name__)


#: "Not a shoe" answers a brand round needs before its models learn to reject such photos (a class of
#: their own, :data:`~db.models.NOT_A_SHOE`): fewer would be a class the models cannot learn.
MIN_NOT_A_SHOE = 10


class RoundError(UserError, RuntimeError):
    """A round could not run (too little data, no weights, ...); the message says what to do."""


@dataclass
class RoundResult:
    round_id: int
    arch: str
    status: RoundStatus
    message: str
    candidate: Metrics | None
    current: Metrics | None
    duration_s: float
    candidate_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    confusion_png: str | None = None
    attribute: str = BRAND

    def table(self) -> str:
        if self.candidate is None:
            return self.message
        return compare_table(self.current, self.candidate)


# --------------------------------------------------------------------------- round records


def open_round(engine: Engine, arch: str, trigger: str, mode: str, attribute_id: int = BRAND_ID) -> int:
    with session_scope(engine, write=True) as session:
        row = Round(
            arch=arch,
            attribute_id=attribute_id,
            trigger=trigger,
            mode=mode,
            status=RoundStatus.RUNNING,
            pid=os.getpid(),
            host=socket.gethostname(),
            progress_text="starting",
        )
        session.add(row)
        session.flush()
        return row.id


def adopt_round(engine: Engine, round_id: int) -> None:
    """Take over a round row the app created before starting this process."""
    with session_scope(engine, write=True) as session:
        row = session.get(Round, round_id)
        if row is None:
            raise RoundError(f"No round with id {round_id}.")
        row.pid, row.host = os.getpid(), socket.gethostname()


def progress_writer(engine: Engine, round_id: int) -> Progress:
    """A throttled progress callback that writes into the round's row."""

    def write(fraction: float, text: str) -> None:
        try:
            with session_scope(engine, write=True) as session:
                row = session.get(Round, round_id)
                if row is not None:
                    row.progress, row.progress_text = float(fraction), text[:500]
        except Exception:  # a progress line is not worth failing the round for; say why it is missing
            log.warning("round %s: its progress could not be written", round_id, exc_info=True)

    return Throttled(write, interval=1.0)


def finish_round(engine: Engine, round_id: int, **values: Any) -> None:
    with session_scope(engine, write=True) as session:
        row = session.get(Round, round_id)
        if row is None:
            raise RoundError(f"No round with id {round_id}: it was deleted while it ran.")
        for key, value in values.items():
            setattr(row, key, value)
        row.finished_at = utcnow()
        row.duration_s = (row.finished_at - row.started_at).total_seconds()


def mark_abandoned_rounds(engine: Engine) -> int:
    """Rounds left 'running' by a process that is gone become 'failed'. Call only while
    holding the job lock (then no round can really be running).

    Their candidate models, and any other model still a 'candidate' (no round runs to
    decide on it), are rejected and their files deleted; so are partial ``.keras`` files
    in the models folder that no model version refers to (a save that was cut short).
    """
    with session_scope(engine, write=True) as session:
        rows = list(session.scalars(select(Round).where(Round.status == RoundStatus.RUNNING)))
        orphans = {
            v.id: v for v in session.scalars(select(ModelVersion).where(ModelVersion.status == ModelStatus.CANDIDATE))
        }
        for row in rows:
            row.status = RoundStatus.FAILED
            note = "The process running this round ended before it finished."
            if row.candidate_model_id in orphans:
                note += f" Its candidate model v{row.candidate_model_id} was discarded."
            row.message = (row.message + "\n" if row.message else "") + note
            row.finished_at = utcnow()
        discarded = _discard(session, list(orphans.values()))
        kept = {
            _resolved(path)
            for path in session.scalars(select(ModelVersion.path).where(ModelVersion.id.not_in(orphans)))
        }
    _delete_files(discarded - kept)
    _delete_partial_model_files(kept | discarded)
    return len(rows)


def _resolved(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def _discard(session: Session, versions: list[ModelVersion]) -> set[str]:
    """Reject candidate versions no round will decide on; returns their files, to delete after commit."""
    for version in versions:
        reject(version)
    session.flush()
    return {_resolved(version.path) for version in versions}


def _delete_files(paths: set[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):  # a file that cannot be deleted now is harmless: its version is rejected
            Path(path).unlink(missing_ok=True)


def _delete_partial_model_files(referenced: set[str]) -> None:
    """Delete ``.keras`` files no version refers to that are a cut-short save: temporary, empty or not a zip."""
    folder = get_settings().models_dir
    if not folder.is_dir():
        return
    for path in folder.glob("*.keras"):
        if _resolved(path) in referenced or not path.is_file():
            continue
        try:
            partial = ".tmp-" in path.name or path.stat().st_size == 0 or not zipfile.is_zipfile(path)
        except OSError:
            continue
        if partial:
            _delete_files({str(path)})


def discard_candidate(engine: Engine, round_id: int) -> None:
    """Reject the candidate of a round that failed before deciding on it, and delete its file."""
    try:
        with session_scope(engine, write=True) as session:
            row = session.get(Round, round_id)
            version = session.get(ModelVersion, row.candidate_model_id) if row and row.candidate_model_id else None
            if version is None or version.status != ModelStatus.CANDIDATE:
                return
            files = _discard(session, [version])
            row.message = (
                row.message + "\n" if row.message else ""
            ) + f"Its candidate model v{version.id} was discarded."
            referenced = {
                _resolved(path)
                for path in session.scalars(select(ModelVersion.path).where(ModelVersion.id != version.id))
            }
        _delete_files(files - referenced)
    except Exception:  # never hide the error that failed the round
        log.warning("round %s: its candidate model could not be discarded", round_id, exc_info=True)


def save_model(model: Any, path: Path) -> None:
    """Save a Keras model to ``path`` atomically: written under a temporary name in the same
    folder, then renamed, so a process killed while saving never leaves a partial file at ``path``."""
    temporary = path.with_name(f"{path.stem}.tmp-{os.getpid()}.keras")  # Keras needs the .keras suffix
    try:
        model.save(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def data_summary(session: Session, labelled: LabelledSet, arch: str, attribute_id: int = BRAND_ID) -> dict[str, Any]:
    last = session.scalar(
        select(func.max(Round.started_at)).where(
            Round.arch == arch, Round.attribute_id == attribute_id, Round.status != RoundStatus.RUNNING
        )
    )
    reviews = select(func.count(Review.id)).where(Review.undone_at.is_(None), Review.attribute_id == attribute_id)
    return {
        "train_counts": labelled.counts("train"),
        "holdout_counts": labelled.counts("holdout"),
        "n_train": len(labelled.train),
        "n_holdout": len(labelled.holdout),
        "holdout_sources": {s: n for s in SOURCES if (n := sum(i.source == s for i in labelled.holdout))},
        "excluded_conflicts": labelled.excluded_conflicts,
        "not_a_shoe": labelled.not_a_shoe,
        "reviews_total": session.scalar(reviews) or 0,
        "reviews_since_last_round": session.scalar(reviews.where(Review.created_at > last) if last else reviews) or 0,
    }


# --------------------------------------------------------------------------- evaluation


def holdout_fingerprint(items: list[LabelledImage]) -> str:
    """Names the exact held-out images and labels a model was scored on."""
    text = "\n".join(f"{i.sha256}:{i.brand}" for i in sorted(items, key=lambda i: i.sha256))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stored_metrics(metrics: dict[str, Any], fingerprint: str, class_names: list[str]) -> Metrics | None:
    """A model's recorded held-out metrics, if they were taken on this very held-out set.

    Saves scoring the current model again in every round; a corrected held-out label or a
    new brand changes the fingerprint, and then the model is scored afresh.
    """
    if metrics.get("holdout") == fingerprint and metrics.get("class_names") == class_names:
        stored = Metrics.from_dict(metrics)
        if len(stored.predicted) == stored.n:  # recorded photo by photo (older records were not)
            return stored
    return None


def evaluate_handle(
    handle: ModelHandle, items: list[LabelledImage], class_names: list[str], progress: Progress = silent
) -> Metrics:
    """Metrics of a registered model on labelled catalogue images, in ``class_names`` space."""

    probs, errors = predict_images(handle, [(i.image_id, i.sha256, i.path) for i in items], progress=progress)
    if errors:
        first = next(iter(errors.values()))
        raise RoundError(f"{len(errors)} held-out image(s) could not be read, e.g. {first}")
    index = {name: j for j, name in enumerate(class_names)}
    y_true = np.array([index[i.brand] for i in items])
    y_pred = np.array([index[handle.class_names[int(np.argmax(probs[i.image_id]))]] for i in items])
    metrics = compute_metrics(y_true, y_pred, class_names)
    metrics.truth, metrics.predicted = y_true.tolist(), y_pred.tolist()
    metrics.sources = [i.source for i in items]
    metrics.by_source = source_scores(y_true, y_pred, metrics.sources, class_names)
    return metrics


# --------------------------------------------------------------------------- the round


def run_round(
    arch: str,
    *,
    attribute_id: int = BRAND_ID,
    trigger: str = "cli",
    mode: str | None = None,
    force: bool = False,
    from_scratch: bool = False,
    engine: Engine | None = None,
    progress: Progress = silent,
    round_id: int | None = None,
    cnn_config: CnnConfig | None = None,
    inception_config: InceptionConfig | None = None,
) -> RoundResult:
    """Run one round for ``arch`` on one attribute (default: brand); the caller holds the job lock
    (:class:`modeling.jobs.JobLock`)."""
    check_arch(arch)
    engine = engine or get_engine()
    mode = mode or (DEFAULT_INCEPTION_MODE if arch == "inception" else "train")
    if round_id is None:
        round_id = open_round(engine, arch, trigger, mode, attribute_id)
    else:
        adopt_round(engine, round_id)
    report = fan_out(progress, progress_writer(engine, round_id))
    started = time.monotonic()
    try:
        plan = RoundPlan(arch, attribute_id, mode, force, from_scratch, cnn_config, inception_config)
        result = _run(engine, round_id, plan, report)
    except Exception as exc:
        finish_round(
            engine,
            round_id,
            status=RoundStatus.FAILED,
            message=str(exc),
            progress=1.0,
            progress_text="failed",
            data={"traceback": traceback.format_exc(limit=8)},
        )
        discard_candidate(engine, round_id)
        raise
    result.duration_s = time.monotonic() - started
    return result


@dataclass
class RoundStart:
    """What a round starts from: the labels, the model it continues (None: from scratch) and the
    current model it must not be worse than, with that model's recorded held-out metrics."""

    labelled: LabelledSet
    data: dict[str, Any]
    parent: ModelHandle | None
    current: ModelHandle | None
    current_metrics: dict[str, Any]
    attribute_id: int = BRAND_ID
    attribute: str = BRAND


@dataclass
class HeldOutScores:
    """The promotion inputs: both models scored on the same frozen held-out photos and classes."""

    class_names: list[str]
    candidate: Metrics | None  # None when there are no held-out photos
    current: Metrics | None  # None without a current model


def _start(engine: Engine, arch: str, from_scratch: bool, attribute_id: int) -> RoundStart:
    with session_scope(engine) as session:
        attribute = session.get(Attribute, attribute_id)
        if attribute is None:
            raise RoundError(f"No attribute with id {attribute_id}.")
        labelled = labelled_set(session, attribute_id)
        current_row = current(session, arch, attribute_id)
        start = RoundStart(
            labelled=labelled,
            data=data_summary(session, labelled, arch, attribute_id),
            parent=ModelHandle.of(current_row) if current_row and not from_scratch else None,
            current=ModelHandle.of(current_row) if current_row else None,
            current_metrics=dict(current_row.metrics) if current_row else {},
            attribute_id=attribute_id,
            attribute=attribute.name,
        )
    if not labelled.train:
        raise RoundError(
            f"No labelled photos to train {start.attribute} on. Ingest a folder with one subfolder per "
            f"class (--attribute {start.attribute}), import a manifest with a {start.attribute} column, or review "
            "photos first."
        )
    if attribute_id == BRAND_ID and len(labelled.rejected_train) >= MIN_NOT_A_SHOE:
        labelled.train += labelled.rejected_train  # the brand models learn to say "not a shoe"
        labelled.holdout += labelled.rejected_holdout
        learnt = {"train": len(labelled.rejected_train), "holdout": len(labelled.rejected_holdout)}
        start.data["not_a_shoe_learnt"] = learnt
    thin = {b: n for b, n in labelled.counts("train").items() if n < MIN_PHOTOS_PER_BRAND}
    if thin and len(labelled.counts("train")) - len(thin) >= 2:  # a new brand with one photo blocks nobody
        labelled.train = [i for i in labelled.train if i.brand not in thin]
        start.data["left_out_brands"] = thin
    return start


def _register_candidate(
    engine: Engine, round_id: int, arch: str, start: RoundStart, outcome: TrainOutcome, weights: str
) -> ModelHandle:
    path = new_model_path(arch)
    save_model(outcome.model, path)
    remember(path, outcome.model)
    with session_scope(engine, write=True) as session:
        row = register(
            session,
            arch=arch,
            path=path,
            class_names=outcome.class_names,
            input_size=outcome.input_size,
            parent_id=start.parent.id if start.parent else None,
            attribute_id=start.attribute_id,
            base_weights=weights,
            training={**outcome.details, **start.data},
        )
        session.get(Round, round_id).candidate_model_id = row.id  # so a dead round's candidate is found
        return ModelHandle.of(row)


def _score_on_holdout(start: RoundStart, candidate: ModelHandle, progress: Progress) -> HeldOutScores:
    """Score the candidate, and the current model unless its stored scores are on this very held-out set."""
    holdout, current_model = start.labelled.holdout, start.current
    known = set(candidate.class_names) | (set(current_model.class_names) if current_model else set())
    scores = HeldOutScores(sorted(known | {i.brand for i in holdout}), None, None)  # unknown held-out brand: missed
    if not holdout:
        return scores
    fingerprint = holdout_fingerprint(holdout)
    progress(0.0, "evaluating the candidate on the held-out set")
    scores.candidate = evaluate_handle(candidate, holdout, scores.class_names, Stage(progress, 0.0, 0.6))
    scores.candidate.holdout = fingerprint
    if current_model is not None:
        progress(0.6, "evaluating the current model on the held-out set")
        scores.current = stored_metrics(start.current_metrics, fingerprint, scores.class_names) or evaluate_handle(
            current_model, holdout, scores.class_names, Stage(progress, 0.6, 1.0)
        )
        scores.current.holdout = fingerprint
    return scores


def _settle(
    engine: Engine,
    arch: str,
    start: RoundStart,
    candidate: ModelHandle,
    scores: HeldOutScores,
    accepted: bool,
    progress: Progress,
) -> None:
    """Promote or reject the candidate; a promoted one stores its predictions first, so the queues
    never see a current model without them."""
    brand = start.attribute_id == BRAND_ID
    if accepted:
        update_predictions(engine, candidate, only_missing=False, progress=Stage(progress, 0.0, 0.75))
        if arch == "inception" and brand:
            store_out_of_fold(engine, candidate, start.labelled, Stage(progress, 0.75, 1.0))
    with session_scope(engine, write=True) as session:
        row = session.get(ModelVersion, candidate.id)
        row.metrics = scores.candidate.to_dict() if scores.candidate else {}
        if start.current is not None and scores.current is not None:  # scored on today's held-out set
            session.get(ModelVersion, start.current.id).metrics = scores.current.to_dict()
        if accepted:
            promote(session, row)
        else:
            reject(row)
    if accepted and brand:
        rescore_all(engine)  # the queues now rank by the new model's predictions


@dataclass(frozen=True)
class RoundPlan:
    """What a round was asked to do."""

    arch: str
    attribute_id: int
    mode: str
    force: bool
    from_scratch: bool
    cnn_config: CnnConfig | None
    inception_config: InceptionConfig | None


def _run(engine: Engine, round_id: int, plan: RoundPlan, report: Progress) -> RoundResult:
    report(0.0, "collecting labels")
    start = _start(engine, plan.arch, plan.from_scratch, plan.attribute_id)
    train_stage = Stage(report, 0.02, 0.80)
    if plan.arch == "inception":
        outcome, weights = _train_inception(start.labelled, start.parent, plan.mode, plan.inception_config, train_stage)
    else:
        outcome, weights = _train_cnn(
            engine, start.labelled, start.parent, plan.cnn_config, plan.attribute_id, train_stage
        )
    report(0.80, "saving the candidate")
    candidate = _register_candidate(engine, round_id, plan.arch, start, outcome, weights)
    scores = _score_on_holdout(start, candidate, Stage(report, 0.82, 0.92))
    accepted, message = decide(scores.candidate, scores.current, start.current is not None, plan.force)
    message += _left_out_note(start)
    png = _confusion_png(round_id, plan.arch, start, candidate, scores)
    _settle(engine, plan.arch, start, candidate, scores, accepted, Stage(report, 0.92, 1.0))
    status = RoundStatus.ACCEPTED if accepted else RoundStatus.REJECTED
    finish_round(
        engine,
        round_id,
        status=status,
        message=message,
        progress=1.0,
        progress_text="done",
        parent_model_id=start.parent.id if start.parent else None,
        candidate_model_id=candidate.id,
        data={**start.data, "training": outcome.details, "confusion_png": png},
        metrics={
            "candidate": scores.candidate.summary() if scores.candidate else None,
            "current": scores.current.summary() if scores.current else None,
        },
        confusion={"class_names": scores.class_names, "matrix": scores.candidate.confusion if scores.candidate else []},
    )
    return RoundResult(
        round_id,
        plan.arch,
        status,
        message,
        scores.candidate,
        scores.current,
        duration_s=0.0,
        candidate_id=candidate.id,
        data={**start.data, "training": outcome.details},
        confusion_png=png,
        attribute=start.attribute,
    )


def _left_out_note(start: RoundStart) -> str:
    """The classes left out of training for too few photos, and what to do, or nothing."""
    thin = start.data.get("left_out_brands")
    if not thin:
        return ""
    listed = ", ".join(f"{b} ({n})" for b, n in sorted(thin.items()))
    return (
        f" Left out of training, with fewer than {MIN_PHOTOS_PER_BRAND} labelled photos: {listed}; "
        f"label more of them to add the {start.attribute}."
    )


def _confusion_png(
    round_id: int, arch: str, start: RoundStart, candidate: ModelHandle, scores: HeldOutScores
) -> str | None:
    if scores.candidate is None:
        return None
    title = f"Round {round_id}: {arch} {start.attribute} candidate v{candidate.id}"
    path = get_settings().reports_dir / f"round-{round_id}-{arch}-confusion.png"
    return str(plot_confusion(scores.candidate, path, title=title))


def _train_inception(
    labelled: LabelledSet,
    parent: ModelHandle | None,
    mode: str,
    config: InceptionConfig | None,
    progress: Progress,
) -> tuple[TrainOutcome, str]:
    from modeling.architectures import split_inception, weights_id
    from modeling.fitting import InceptionConfig, ensure_activations, train_inception, unreadable

    config = config or InceptionConfig()
    if parent is not None:
        weights = parent.base_weights
        model = load_fresh(parent.path)
        parent_arg = (model, list(parent.class_names))
    else:
        source = get_settings().inception_weights_source()
        weights = weights_id(source)
        model, parent_arg = None, None
    cache = inception_activation_cache(weights, parent.input_size if parent is not None else config.input_size)
    train = labelled.train
    outcome = train_inception(
        [i.sha256 for i in train],
        [i.path for i in train],
        [i.brand for i in train],
        cache=cache,
        weights=None if parent is not None else get_settings().inception_weights_source(),
        parent=parent_arg,
        mode=mode,
        config=config,
        progress=Stage(progress, 0.0, 0.93),
    )
    lower, _ = split_inception(outcome.model)
    holdout = labelled.holdout
    report = ensure_activations(
        lower,
        cache,
        [i.sha256 for i in holdout],
        [i.path for i in holdout],
        outcome.input_size,
        views=1,  # evaluation looks at the photo alone
        progress=Stage(progress, 0.93, 1.0),
    )
    if report.errors:
        raise RoundError(f"Held-out {unreadable(report.errors)}. Restore them, then run the round again.")
    return outcome, weights


def _train_cnn(
    engine: Engine,
    labelled: LabelledSet,
    parent: ModelHandle | None,
    config: CnnConfig | None,
    attribute_id: int,
    progress: Progress,
) -> tuple[TrainOutcome, str]:
    """Train the CNN, taught by the attribute's current InceptionV3 where there is one."""
    from modeling.distillation import teacher_for
    from modeling.fitting import check_trainable, train_cnn

    train = labelled.train
    classes = [i.brand for i in train]
    with session_scope(engine) as session:
        teacher = teacher_for(session, attribute_id, labelled, check_trainable(classes))
    parent_arg = (load_fresh(parent.path), list(parent.class_names)) if parent is not None else None
    outcome = train_cnn(
        [i.path for i in train], classes, parent=parent_arg, config=config, teacher=teacher, progress=progress
    )
    return outcome, ""


def store_out_of_fold(engine: Engine, handle: ModelHandle, labelled: LabelledSet, progress: Progress = silent) -> int:
    """Out-of-fold probabilities of every labelled image, for the ``likely_mislabelled`` queue."""
    from modeling.fitting import upper_pooled

    items = [i for i in labelled.train + labelled.holdout if i.brand in handle.class_names]
    if len(items) < 4:
        return 0
    progress(0.0, "out-of-fold predictions for label checking")
    feats = upper_pooled(handle.model(), handle.feature_cache(), [i.sha256 for i in items], view=0)
    labels = np.array([handle.class_names.index(i.brand) for i in items])
    probs = out_of_fold_probabilities(feats, labels, len(handle.class_names))
    stored = store_predictions(
        engine, handle, {i.image_id: p for i, p in zip(items, probs, strict=True)}, kind=PredictionKind.OUT_OF_FOLD
    )
    progress(1.0, "out-of-fold predictions stored")
    return stored


def latest_rounds(engine: Engine | None = None, limit: int = 200, attribute_id: int | None = None) -> list[Round]:
    """The latest rounds, newest first: of one attribute, or of all."""
    query = select(Round).order_by(Round.id.desc()).limit(limit)
    if attribute_id is not None:
        query = query.where(Round.attribute_id == attribute_id)
    with session_scope(engine or get_engine()) as session:
        return list(session.scalars(query))
