"""Prediction: for files on disk (``python -m modeling.predict PATH...``) and for the catalogue.

Images are decoded in background threads while the model runs, in batches. For
catalogue images, InceptionV3 starts from cached ``mixed8`` activations, so
refreshing the predictions after a round costs only the top blocks.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Engine, Select, delete, func, select
from sqlalchemy.orm import Session

from db import get_engine, session_scope
from db.catalog import get_or_create_brand
from db.models import Image, ModelVersion, Prediction, PredictionKind
from modeling import uncertainty
from modeling.feature_cache import FeatureCache, inception_activation_cache
from modeling.jobs import JobLock, job_record, mark_abandoned_jobs
from modeling.registry import ARCHITECTURES, ModelNotFoundError, current_versions, load_keras
from shoelabel.cli import command
from shoelabel.csvcells import neutralise
from shoelabel.images import IMAGE_SUFFIXES, ImageError, Source, iter_batches, list_images
from shoelabel.progress import Progress, Stage, TerminalProgress, fan_out, silent

if TYPE_CHECKING:
    import keras

MAX_PASSES = 5  # refresh passes while new photos keep arriving
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelAnswer:
    """One model's probabilities for one photo, as a reviewer or the Predict page shows them."""

    arch: str
    model_version_id: int
    probabilities: dict[str, float]

    @property
    def brand(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.brand]

    @property
    def label(self) -> str:
        return f"{self.arch} v{self.model_version_id}"


def stored_answers(
    session: Session,
    versions: Mapping[str, ModelVersion],
    image_ids: Sequence[int],
    kind: PredictionKind = PredictionKind.MODEL,
    chunk: int = 500,
) -> dict[int, dict[str, ModelAnswer]]:
    """What each model version in ``versions`` (by architecture) said about these photos, as stored."""
    arch_of = {v.id: arch for arch, v in versions.items()}
    answers: dict[int, dict[str, ModelAnswer]] = {}
    ids = list(image_ids)
    for start in range(0, len(ids) if arch_of else 0, chunk):
        rows = session.execute(
            select(Prediction.image_id, Prediction.model_version_id, Prediction.probabilities).where(
                Prediction.model_version_id.in_(list(arch_of)),
                Prediction.kind == kind,
                Prediction.image_id.in_(ids[start : start + chunk]),
            )
        )
        for image_id, version_id, probabilities in rows:
            arch = arch_of[version_id]
            answers.setdefault(image_id, {})[arch] = ModelAnswer(arch, version_id, probabilities)  # stored as floats
    return answers


@dataclass(frozen=True)
class ModelHandle:
    """What prediction needs to know of a registered model version (no session attached)."""

    id: int
    arch: str
    path: str
    class_names: tuple[str, ...]
    input_size: int
    base_weights: str

    @classmethod
    def of(cls, version: ModelVersion) -> ModelHandle:
        return cls(
            version.id, version.arch, version.path, tuple(version.class_names), version.input_size, version.base_weights
        )

    @property
    def label(self) -> str:
        return f"{self.arch} v{self.id}"

    def model(self) -> keras.Model:
        return load_keras(self.path)

    def feature_cache(self) -> FeatureCache:
        return inception_activation_cache(self.base_weights, self.input_size)


def predict_sources(
    handle: ModelHandle, sources: Sequence[Source], batch_size: int = 32, progress: Progress = silent
) -> tuple[dict[int, np.ndarray], dict[int, ImageError]]:
    """Probabilities for each decodable source (by position), and the errors of the others."""
    model = handle.model()
    probabilities: dict[int, np.ndarray] = {}
    errors: dict[int, ImageError] = {}
    done = 0
    for batch in iter_batches(list(sources), handle.input_size, batch_size):
        errors.update(dict(batch.errors))
        if len(batch.indices):
            probs = np.asarray(model.predict_on_batch(batch.pixels.astype("float32")))
            probabilities.update(zip(batch.indices, probs, strict=True))
        done += len(batch.indices) + len(batch.errors)
        progress(done / len(sources), f"predicting with {handle.label}: {done}/{len(sources)}")
    return probabilities, errors


def predict_images(
    handle: ModelHandle, images: Sequence[tuple[int, str, str]], batch_size: int = 32, progress: Progress = silent
) -> tuple[dict[int, np.ndarray], dict[int, ImageError]]:
    """Probabilities for catalogue images ``(id, sha256, path)``, keyed by image id."""
    if handle.arch != "inception":
        probs, errors = predict_sources(handle, [path for _, _, path in images], batch_size, progress)
        return ({images[i][0]: p for i, p in probs.items()}, {images[i][0]: e for i, e in errors.items()})
    from modeling.architectures import split_inception
    from modeling.fitting import ensure_activations

    model = handle.model()
    lower, upper = split_inception(model)
    cache = handle.feature_cache()
    report = ensure_activations(
        lower,
        cache,
        [sha for _, sha, _ in images],
        [path for _, _, path in images],
        handle.input_size,
        views=1,  # the photo alone; training adds augmented views when it needs them
        batch_size=batch_size,
        progress=lambda f, t: progress(0.8 * f, t),
    )
    errors = {image_id: report.errors[sha] for image_id, sha, _ in images if sha in report.errors}
    usable = [(image_id, sha) for image_id, sha, _ in images if sha not in report.errors]
    probabilities: dict[int, np.ndarray] = {}
    for start in range(0, len(usable), batch_size * 2):
        chunk = usable[start : start + batch_size * 2]
        activations = cache.load([sha for _, sha in chunk], view=0).astype("float32")
        probs = np.asarray(upper.predict_on_batch(activations))
        probabilities.update(zip([image_id for image_id, _ in chunk], probs, strict=True))
        progress(0.8 + 0.2 * min(start + len(chunk), len(usable)) / len(usable), f"predicting with {handle.label}")
    return probabilities, errors


def store_predictions(
    engine: Engine,
    handle: ModelHandle,
    probabilities: dict[int, np.ndarray],
    kind: PredictionKind = PredictionKind.MODEL,
    chunk: int = 500,
) -> int:
    """Replace the stored predictions of ``handle`` for these images, in short transactions."""
    items = list(probabilities.items())
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        probs = np.stack([p for _, p in part])
        confidence, margin, entropy = (
            uncertainty.confidence(probs),
            uncertainty.margin(probs),
            uncertainty.entropy(probs),
        )
        with session_scope(engine, write=True) as session:
            brand_ids = {name: get_or_create_brand(session, name).id for name in handle.class_names}
            session.execute(
                delete(Prediction).where(
                    Prediction.model_version_id == handle.id,
                    Prediction.kind == kind,
                    Prediction.image_id.in_([image_id for image_id, _ in part]),
                )
            )
            session.add_all(
                Prediction(
                    image_id=image_id,
                    model_version_id=handle.id,
                    kind=kind,
                    probabilities={name: round(float(v), 6) for name, v in zip(handle.class_names, p, strict=True)},
                    brand_id=brand_ids[handle.class_names[int(np.argmax(p))]],
                    confidence=float(confidence[i]),
                    margin=float(margin[i]),
                    entropy=float(entropy[i]),
                )
                for i, (image_id, p) in enumerate(part)
            )
    return len(items)


@dataclass
class RefreshReport:
    """What a refresh stored, per model, and which models failed (named, with the reason)."""

    stored: dict[str, int] = field(default_factory=dict)  # model label -> predictions stored
    failed: dict[str, str] = field(default_factory=dict)  # model label -> why it could not predict
    unreadable: dict[str, str] = field(default_factory=dict)  # photo path -> why it could not be read

    def merge(self, other: RefreshReport) -> None:
        for label, n in other.stored.items():
            self.stored[label] = self.stored.get(label, 0) + n
        self.failed.update(other.failed)
        self.unreadable.update(other.unreadable)

    def lines(self) -> list[str]:
        lines = [f"stored predictions: {label} {n}" for label, n in self.stored.items()]
        lines += [f"error: {label} could not predict: {reason}" for label, reason in self.failed.items()]
        if self.unreadable:
            path, reason = next(iter(self.unreadable.items()))
            lines.append(f"{len(self.unreadable)} photo(s) could not be read, e.g. {path}: {reason}")
        return lines


def current_handles(engine: Engine | None = None, archs: Sequence[str] = ARCHITECTURES) -> list[ModelHandle]:
    """The current model of each architecture in ``archs`` that has one, in ``ARCHITECTURES`` order."""
    with session_scope(engine or get_engine()) as session:
        versions = current_versions(session)
    return [ModelHandle.of(versions[arch]) for arch in ARCHITECTURES if arch in versions and arch in archs]


def missing_predictions(engine: Engine, handle: ModelHandle) -> int:
    """How many catalogue photos ``handle`` has not predicted yet."""
    with session_scope(engine) as session:
        return session.scalar(select(func.count(Image.id)).where(Image.id.not_in(_predicted_by(handle)))) or 0


def refresh_predictions(
    engine: Engine | None = None,
    *,
    only_missing: bool = True,
    archs: Sequence[str] = ARCHITECTURES,
    progress: Progress = silent,
) -> RefreshReport:
    """Predict catalogue photos with each current model (by default only those it has not predicted).

    A model that cannot predict (its file is gone or unreadable, its weights are missing) is named in
    the report with the reason; the other models still predict.
    """
    engine = engine or get_engine()
    handles = current_handles(engine, archs)
    report = RefreshReport()
    for n, handle in enumerate(handles):
        stage = Stage(progress, n / len(handles), (n + 1) / len(handles))
        try:
            stored, unreadable = update_predictions(engine, handle, only_missing=only_missing, progress=stage)
        except Exception as exc:  # one broken model never stops the others
            log.warning("%s could not predict", handle.label, exc_info=True)
            report.failed[handle.label] = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
            continue
        report.stored[handle.label] = stored
        report.unreadable.update(unreadable)
    return report


def _predicted_by(handle: ModelHandle) -> Select[tuple[int]]:
    return select(Prediction.image_id).where(
        Prediction.model_version_id == handle.id, Prediction.kind == PredictionKind.MODEL
    )


def update_predictions(
    engine: Engine,
    handle: ModelHandle,
    *,
    only_missing: bool = True,
    chunk: int = 1024,
    progress: Progress = silent,
) -> tuple[int, dict[str, str]]:
    """Predict catalogue photos with one registered model (current or candidate) and store the results.

    Works through the catalogue in chunks, committing each, so a killed run loses at most one
    chunk and a re-run continues where it stopped. Returns the number stored and the photos
    that could not be read (path -> reason; they keep any older prediction).
    """
    with session_scope(engine) as session:
        query = select(Image.id, Image.sha256, Image.path).order_by(Image.id)
        if only_missing:
            query = query.where(Image.id.not_in(_predicted_by(handle)))
        images = [tuple(row) for row in session.execute(query)]
    stored, unreadable = 0, {}
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk]
        stage = Stage(progress, start / len(images), (start + len(part)) / len(images))
        probabilities, errors = predict_images(handle, part, progress=stage)
        paths = {image_id: path for image_id, _, path in part}
        unreadable.update({paths[image_id]: error.reason for image_id, error in errors.items()})
        stored += store_predictions(engine, handle, probabilities)
    return stored, unreadable


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the image files under them."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            files += [p for p in list_images(path) if p.suffix.lower() in IMAGE_SUFFIXES] or list_images(path)
        else:
            files.append(path)
    return files


def _handles(engine: Engine, model: str) -> list[ModelHandle]:
    with session_scope(engine) as session:
        versions = current_versions(session)
    wanted = list(ARCHITECTURES) if model == "both" else [model]
    handles = [ModelHandle.of(versions[a]) for a in wanted if a in versions]
    if not handles:
        raise ModelNotFoundError(
            f"No current {model if model != 'both' else 'model'} yet. "
            "Train one first: python -m modeling.train --arch inception"
        )
    return handles


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeling.predict", description="Predict the brand of photos.")
    parser.add_argument("paths", nargs="*", help="image files or folders")
    parser.add_argument(
        "--model", choices=[*ARCHITECTURES, "both"], default="both", help="which current model(s) to use"
    )
    parser.add_argument("--csv", action="store_true", help="print CSV (one row per image and model)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--refresh", action="store_true", help="predict catalogue images the current models have not predicted yet"
    )
    parser.add_argument("--all", action="store_true", help="with --refresh: predict every catalogue image again")
    parser.add_argument("--job-id", type=int, default=None, help=argparse.SUPPRESS)  # set by a background start
    args = parser.parse_args(argv)
    engine = get_engine()
    if args.refresh:
        return _refresh_command(
            engine, archs=ARCHITECTURES if args.model == "both" else (args.model,), every=args.all, job_id=args.job_id
        )
    if not args.paths:
        parser.error("give image files or folders, or --refresh")
    files = expand_paths(args.paths)
    if not files:
        print(f"error: no files under {', '.join(args.paths)}", file=sys.stderr)
        return 2
    handles = _handles(engine, args.model)
    rows: list[dict[str, object]] = []
    failed: dict[int, ImageError] = {}
    broken = 0
    for handle in handles:
        bar = TerminalProgress(f"predicting with {handle.label}")
        try:
            probabilities, errors = predict_sources(handle, files, args.batch_size, bar)
        except Exception as exc:  # one broken model never stops the others
            log.debug("%s could not predict", handle.label, exc_info=True)
            print(f"error: {handle.label} could not predict: {exc}", file=sys.stderr)
            broken += 1
            continue
        finally:
            bar.close()
        failed.update(errors)
        for i, probs in sorted(probabilities.items()):
            top = int(np.argmax(probs))
            rows.append(
                {
                    "path": str(files[i]),
                    "model": handle.label,
                    "brand": handle.class_names[top],
                    "confidence": round(float(probs[top]), 4),
                    **{f"p_{name}": round(float(v), 4) for name, v in zip(handle.class_names, probs, strict=True)},
                }
            )
    _print_rows(rows, args)
    for i, exc in sorted(failed.items()):
        print(f"skipped {files[i]}: {exc.reason}", file=sys.stderr)
    return 0 if rows and not broken else 1


def refresh_until_done(
    engine: Engine, *, archs: Sequence[str] = ARCHITECTURES, every: bool = False, progress: Progress = silent
) -> RefreshReport:
    """Refresh, then again while photos keep arriving (an ingest may commit while a pass runs)."""
    report = refresh_predictions(engine, only_missing=not every, archs=archs, progress=progress)
    for _ in range(MAX_PASSES - 1):
        again = refresh_predictions(engine, only_missing=True, archs=archs, progress=progress)
        report.merge(again)
        if not any(again.stored.values()):
            break
    return report


def _refresh_command(engine: Engine, *, archs: Sequence[str], every: bool, job_id: int | None) -> int:
    """``--refresh``: under the job lock, recorded in the job's row when the app started it."""

    lock = JobLock.acquire()
    bar = TerminalProgress("refreshing predictions")
    with lock, job_record(engine, job_id) as job:
        if job_id is None:  # we hold the lock: no other job can be running
            mark_abandoned_jobs(engine)
        try:
            report = refresh_until_done(engine, archs=archs, every=every, progress=fan_out(bar, job.progress))
        finally:
            bar.close()
        for line in report.lines() or ["stored predictions: none (no current model)"]:
            print(line, file=sys.stderr if line.startswith("error:") else sys.stdout)
        if report.failed:
            job.fail("; ".join(f"{label} could not predict: {reason}" for label, reason in report.failed.items()))
            return 1
    return 0


def _print_rows(rows: list[dict[str, object]], args: argparse.Namespace) -> None:
    if args.json:
        print(json.dumps(rows, indent=2))
    elif args.csv:
        fields = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(sys.stdout, fieldnames=fields)
        writer.writeheader()
        writer.writerows({key: neutralise(value) for key, value in row.items()} for row in rows)
    else:
        for row in rows:
            probs = "  ".join(f"{k[2:]} {v:.3f}" for k, v in row.items() if k.startswith("p_"))
            print(f"{row['path']}\t{row['model']}\t{row['brand']} ({row['confidence']:.1%})\t{probs}")


if __name__ == "__main__":
    raise SystemExit(main())
