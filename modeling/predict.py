"""Prediction: for files on disk (``python -m modeling.predict PATH...``) and for the catalogue.

Images are decoded in background threads while the model runs, in batches. For
catalogue images, InceptionV3 starts from cached ``mixed8`` activations, so
refreshing the predictions after a round costs only the top blocks.

A refresh streams the catalogue: it reads the photos to predict a chunk at a time
(keyset pagination on the image id, never the whole list), predicts them batch by batch
and commits each chunk while predicting the next, so memory stays bounded, a killed refresh
loses at most the chunk it was predicting and the one it was committing, and running it
again continues with what is missing. ``--ray`` runs the same refresh on
a Ray cluster (:mod:`modeling.ray_scoring`).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeVar
from weakref import WeakKeyDictionary

import numpy as np
from sqlalchemy import Engine, Select, delete, exists, func, select

from db import get_engine, session_scope
from db.catalog import attributes, prediction_class, require_attribute
from db.models import BRAND_ID, Image, ModelVersion, Prediction, PredictionKind
from modeling import uncertainty
from modeling.feature_cache import CUT_CHANNELS, FeatureCache, inception_activation_cache
from modeling.jobs import JobLock, job_record, mark_abandoned_jobs
from modeling.queue_scores import score_images
from modeling.registry import (
    ARCHITECTURES,
    INFERENCE_LOCK,
    ModelNotFoundError,
    current_versions,
    every_current_version,
    load_keras,
)
from modeling.shoe_crop import CROP_WEIGHT, Box, class_activation_map, is_large, shoe_box
from shoelabel.cli import command
from shoelabel.csvcells import neutralise
from shoelabel.images import (
    IMAGE_SUFFIXES,
    ImageError,
    Source,
    iter_batches,
    list_images,
    load_crop,
    upright_size,
)
from shoelabel.progress import Progress, Rate, Stage, TerminalProgress, fan_out, silent

if TYPE_CHECKING:
    import keras

    from modeling.ray_scoring import RayCluster, Scored

MAX_PASSES = 5  # refresh passes while new photos keep arriving
T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelHandle:
    """What prediction needs to know of a registered model version (no session attached)."""

    id: int
    arch: str
    path: str
    class_names: tuple[str, ...]
    input_size: int
    base_weights: str
    attribute_id: int = BRAND_ID  # the attribute it predicts

    @classmethod
    def of(cls, version: ModelVersion) -> ModelHandle:
        return cls(
            version.id,
            version.arch,
            version.path,
            tuple(version.class_names),
            version.input_size,
            version.base_weights,
            version.attribute_id,
        )

    @property
    def label(self) -> str:
        return f"{self.arch} v{self.id}"

    def model(self) -> keras.Model:
        return load_keras(self.path)

    def feature_cache(self) -> FeatureCache:
        return inception_activation_cache(self.base_weights, self.input_size)


class FixedBatches:
    """A model run on batches of exactly ``batch_size`` photos (the last one padded): JAX compiles a
    model once per batch length, and a new length costs most of a second for the CNN, far more for
    InceptionV3. Padding changes no photo's result (inference treats each photo on its own).

    Inputs go in as they come (uint8 pixels, float16 cached activations): the model casts them to
    float32 inside its compiled graph, which costs less than a cast in numpy before it."""

    def __init__(self, model: keras.Model, batch_size: int) -> None:
        self.model, self.batch_size = model, batch_size

    def predict_on_batch(self, x: np.ndarray) -> np.ndarray:
        """The model's outputs for a non-empty ``x`` of any length."""
        outputs = []
        for start in range(0, len(x), self.batch_size):
            part = x[start : start + self.batch_size]
            n = len(part)
            if n < self.batch_size:
                part = np.concatenate([part, np.zeros((self.batch_size - n, *part.shape[1:]), part.dtype)])
            with INFERENCE_LOCK:  # one thread at a time per process (see INFERENCE_LOCK)
                outputs.append(np.asarray(self.model.predict_on_batch(part))[:n])
        return np.concatenate(outputs)


class ShoeLook:
    """InceptionV3's second look at the shoe in a large photo (see :mod:`modeling.shoe_crop`): the class
    activation map of its answer, a crop around it seen again, the two answers averaged."""

    def __init__(self, model: keras.Model, lower: FixedBatches, upper: FixedBatches, input_size: int) -> None:
        from modeling.architectures import cam_kernels

        self.lower, self.upper, self.input_size = lower, upper, input_size
        self.top = FixedBatches(_inception_top(model), upper.batch_size)  # the cut -> mixed10 maps
        with INFERENCE_LOCK:  # not while another thread's call has the weights
            self.kernels = list(cam_kernels(model))

    def boxes(self, paths: Sequence[Source], cut: np.ndarray, probs: np.ndarray) -> dict[int, Box]:
        """The crop box of each large photo whose map points at a small part of it, by position."""
        sizes: dict[int, tuple[int, int]] = {}
        for i, path in enumerate(paths):
            try:
                size = upright_size(path)
            except ImageError:
                continue  # predicted from its cached activations; the file is gone or unreadable now
            if is_large(*size, self.input_size):
                sizes[i] = size
        if not sizes:
            return {}
        positions = list(sizes)
        top = self.top.predict_on_batch(cut[positions])
        boxes = {}
        for j, i in enumerate(positions):
            maps = [cut[i][..., :CUT_CHANNELS], top[j]]
            cam = class_activation_map(maps, self.kernels, int(np.argmax(probs[i])))
            if (box := shoe_box(cam, *sizes[i])) is not None:
                boxes[i] = box
        return boxes

    def refine(
        self,
        paths: Sequence[Source],
        cut: np.ndarray,
        probs: np.ndarray,
        cache: FeatureCache | None = None,
        shas: Sequence[str] | None = None,
    ) -> np.ndarray:
        """``probs`` (of the photos ``paths``, from their ``mixed8`` activations ``cut``) with each large
        photo's crop averaged in. With a ``cache``, crops' activations are read from and kept in it."""
        boxes = self.boxes(paths, cut, probs)
        if not boxes:
            return probs
        keys = {i: f"{shas[i]}-{box.key()}" for i, box in boxes.items()} if cache and shas else {}
        crops = {i: cache.get(key)[0] for i, key in keys.items() if cache.has(key)}
        pixels = {}
        for i, box in boxes.items():
            if i not in crops:
                try:
                    pixels[i] = load_crop(paths[i], (box.left, box.top, box.right, box.bottom), self.input_size)
                except ImageError:
                    continue  # seen whole only
        if pixels:
            computed = self.lower.predict_on_batch(np.stack(list(pixels.values())))
            for i, activations in zip(pixels, computed, strict=True):
                crops[i] = activations
                if i in keys:
                    cache.put(keys[i], activations[None])
        if not crops:
            return probs
        positions = list(crops)
        seen = self.upper.predict_on_batch(np.stack([crops[i] for i in positions]))
        refined = probs.copy()
        refined[positions] = (1.0 - CROP_WEIGHT) * probs[positions] + CROP_WEIGHT * seen
        return refined


def _predict_pixels(
    model: FixedBatches, sources: Sequence[Source], input_size: int, progress: Progress, label: str
) -> tuple[dict[int, np.ndarray], dict[int, ImageError]]:
    """Decode ``sources`` in background threads while ``model`` predicts; results by position."""
    probabilities: dict[int, np.ndarray] = {}
    errors: dict[int, ImageError] = {}
    done = 0
    for batch in iter_batches(list(sources), input_size, model.batch_size):
        errors.update(dict(batch.errors))
        if len(batch.indices):
            probabilities.update(zip(batch.indices, model.predict_on_batch(batch.pixels), strict=True))
        done += len(batch.indices) + len(batch.errors)
        progress(done / len(sources), f"predicting with {label}: {done}/{len(sources)}")
    return probabilities, errors


def predict_sources(
    handle: ModelHandle, sources: Sequence[Source], batch_size: int = 32, progress: Progress = silent
) -> tuple[dict[int, np.ndarray], dict[int, ImageError]]:
    """Probabilities for each decodable source (by position), and the errors of the others."""
    if handle.arch != "inception":
        model = FixedBatches(handle.model(), batch_size)
        return _predict_pixels(model, sources, handle.input_size, progress, handle.label)
    lower, upper = (FixedBatches(part, batch_size) for part in _inception_parts(handle.model()))
    look = ShoeLook(handle.model(), lower, upper, handle.input_size)
    probabilities: dict[int, np.ndarray] = {}
    errors: dict[int, ImageError] = {}
    done = 0
    for batch in iter_batches(list(sources), handle.input_size, batch_size):
        errors.update(dict(batch.errors))
        if len(batch.indices):
            cut = lower.predict_on_batch(batch.pixels)
            probs = look.refine([sources[i] for i in batch.indices], cut, upper.predict_on_batch(cut))
            probabilities.update(zip(batch.indices, probs, strict=True))
        done += len(batch.indices) + len(batch.errors)
        progress(done / len(sources), f"predicting with {handle.label}: {done}/{len(sources)}")
    return probabilities, errors


class CatalogueRow(NamedTuple):
    """A catalogue photo as prediction needs it."""

    id: int
    sha256: str
    path: str


class CatalogueScorer:
    """One model, loaded once, predicting catalogue photos a chunk at a time: the CNN from the decoded
    files; InceptionV3 from cached ``mixed8`` activations, computed (and cached) first for photos that
    have none. A refresh uses one in its own process; on Ray, each worker holds one."""

    def __init__(self, handle: ModelHandle, batch_size: int = 32) -> None:
        self.handle = handle
        model = handle.model()
        self.lower: FixedBatches | None = None  # InceptionV3 up to mixed8
        if handle.arch == "inception":
            lower, upper = _inception_parts(model)
            self.lower, self.probabilities = FixedBatches(lower, batch_size), FixedBatches(upper, batch_size)
            self.cache = handle.feature_cache()
            self.look = ShoeLook(model, self.lower, self.probabilities, handle.input_size)
            self.crops = FeatureCache(self.cache.root.parent, f"{self.cache.key}-crops")
        else:
            self.probabilities = FixedBatches(model, batch_size)

    def __call__(
        self, images: Sequence[tuple[int, str, str]], progress: Progress = silent
    ) -> tuple[dict[int, np.ndarray], dict[int, ImageError]]:
        """Probabilities for the decodable photos ``(id, sha256, path)``, and the errors of the others, by id."""
        rows = [CatalogueRow(*image) for image in images]
        if self.lower is None:
            probs, errors = _predict_pixels(
                self.probabilities, [row.path for row in rows], self.handle.input_size, progress, self.handle.label
            )
            return {rows[i].id: p for i, p in probs.items()}, {rows[i].id: e for i, e in errors.items()}
        from modeling.fitting import ensure_activations

        report = ensure_activations(
            self.lower,
            self.cache,
            [row.sha256 for row in rows],
            [row.path for row in rows],
            self.handle.input_size,
            views=1,  # the photo alone; training adds augmented views when it needs them
            batch_size=self.lower.batch_size,
            progress=Stage(progress, 0.0, 0.8),
        )
        errors = {row.id: report.errors[row.sha256] for row in rows if row.sha256 in report.errors}
        usable = [row for row in rows if row.sha256 not in report.errors]
        probabilities: dict[int, np.ndarray] = {}
        step = self.probabilities.batch_size
        parts = [usable[start : start + step] for start in range(0, len(usable), step)]
        done = 0
        for part, activations in _ahead(lambda part: self.cache.load([row.sha256 for row in part], view=0), parts):
            probs = self.probabilities.predict_on_batch(activations)
            shas = [row.sha256 for row in part]
            probs = self.look.refine([row.path for row in part], activations, probs, self.crops, shas)
            probabilities.update(zip([row.id for row in part], probs, strict=True))
            done += len(part)
            progress(0.8 + 0.2 * done / len(usable), f"predicting with {self.handle.label}: {done}/{len(usable)}")
        return probabilities, errors


_parts: WeakKeyDictionary[keras.Model, tuple[keras.Model, keras.Model]] = WeakKeyDictionary()


def _inception_parts(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """InceptionV3's lower and upper networks, made once per loaded model: new ones would be compiled
    again (seconds for the lower network), in every refresh pass."""
    if model not in _parts:
        from modeling.architectures import split_inception

        _parts[model] = split_inception(model)
    return _parts[model]


_tops: WeakKeyDictionary[keras.Model, keras.Model] = WeakKeyDictionary()


def _inception_top(model: keras.Model) -> keras.Model:
    """The cached cut -> the last block's maps (for class activation maps), made once per model."""
    if model not in _tops:
        from modeling.architectures import inception_top

        _tops[model] = inception_top(model)
    return _tops[model]


def _ahead(load: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[T, R]]:
    """Each item with what ``load`` gives for it; the next item loads in a thread while the caller
    works on this one (reading cached activations overlaps the forward pass)."""
    if not items:
        return
    with ThreadPoolExecutor(1, thread_name_prefix="load-ahead") as pool:
        loading = pool.submit(load, items[0])
        for i, item in enumerate(items):
            loaded = loading.result()
            if i + 1 < len(items):
                loading = pool.submit(load, items[i + 1])
            yield item, loaded


def predict_images(
    handle: ModelHandle, images: Sequence[tuple[int, str, str]], batch_size: int = 32, progress: Progress = silent
) -> tuple[dict[int, np.ndarray], dict[int, ImageError]]:
    """Probabilities for catalogue images ``(id, sha256, path)``, keyed by image id."""
    return CatalogueScorer(handle, batch_size)(images, progress)


def store_predictions(
    engine: Engine,
    handle: ModelHandle,
    probabilities: dict[int, np.ndarray],
    kind: PredictionKind = PredictionKind.MODEL,
    chunk: int = 500,
) -> int:
    """Replace the stored predictions of ``handle`` for these images, in short transactions; for a
    current model, the same transactions update the photos' queue scores."""
    items = list(probabilities.items())
    with session_scope(engine) as session:  # a current model's predictions also set the queue scores
        current_ids = {v.id for v in current_versions(session).values()}
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        probs = np.stack([p for _, p in part])
        confidence, margin, entropy = (
            uncertainty.confidence(probs),
            uncertainty.margin(probs),
            uncertainty.entropy(probs),
        )
        with session_scope(engine, write=True) as session:
            class_ids = {name: prediction_class(session, name, handle.attribute_id).id for name in handle.class_names}
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
                    attribute_id=handle.attribute_id,
                    probabilities={name: round(float(v), 6) for name, v in zip(handle.class_names, p, strict=True)},
                    class_id=class_ids[handle.class_names[int(np.argmax(p))]],
                    confidence=float(confidence[i]),
                    margin=float(margin[i]),
                    entropy=float(entropy[i]),
                )
                for i, (image_id, p) in enumerate(part)
            )
            if kind == PredictionKind.MODEL and handle.id in current_ids:
                session.flush()
                score_images(session, [image_id for image_id, _ in part])
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
    """The current model of each architecture in ``archs`` for every attribute, brand first, in
    ``ARCHITECTURES`` order within an attribute."""
    with session_scope(engine or get_engine()) as session:
        versions = every_current_version(session)
    order = {arch: n for n, arch in enumerate(ARCHITECTURES)}
    ranked = sorted(versions, key=lambda v: (v.attribute_id != BRAND_ID, v.attribute_id, order[v.arch]))
    return [ModelHandle.of(v) for v in ranked if v.arch in archs]


def missing_predictions(engine: Engine, handle: ModelHandle) -> int:
    """How many catalogue photos ``handle`` has not predicted yet."""
    return _count(engine, _to_predict(handle, only_missing=True))


def _count(engine: Engine, query: Select[tuple[int, str, str]]) -> int:
    with session_scope(engine) as session:
        return session.scalar(query.with_only_columns(func.count(Image.id))) or 0


def refresh_predictions(
    engine: Engine | None = None,
    *,
    only_missing: bool = True,
    archs: Sequence[str] = ARCHITECTURES,
    batch_size: int = 32,
    ray: RayCluster | None = None,
    progress: Progress = silent,
) -> RefreshReport:
    """Predict catalogue photos with each current model (by default only those it has not predicted),
    in this process or, with ``ray``, on a Ray cluster.

    A model that cannot predict (its file is gone or unreadable, its weights are missing) is named in
    the report with the reason; the other models still predict.
    """
    engine = engine or get_engine()
    handles = current_handles(engine, archs)
    report = RefreshReport()
    for n, handle in enumerate(handles):
        stage = Stage(progress, n / len(handles), (n + 1) / len(handles))
        try:
            stored, unreadable = update_predictions(
                engine, handle, only_missing=only_missing, batch_size=batch_size, ray=ray, progress=stage
            )
        except Exception as exc:  # one broken model never stops the others
            log.warning("%s could not predict", handle.label, exc_info=True)
            report.failed[handle.label] = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
            continue
        report.stored[handle.label] = stored
        report.unreadable.update(unreadable)
    return report


COMMIT_EVERY = 512  # photos per query and per transaction (a killed refresh loses at most two chunks)
LIST_CHUNK = 10_000  # photos listed per query for a refresh on Ray (the list goes to Ray's object store)


def _to_predict(handle: ModelHandle, *, only_missing: bool) -> Select[tuple[int, str, str]]:
    """The catalogue photos a refresh predicts with ``handle``: all, or those it has not predicted."""
    query = select(Image.id, Image.sha256, Image.path)
    if only_missing:  # an anti-join on the unique (image, model version, kind) index
        query = query.where(
            ~exists().where(
                Prediction.image_id == Image.id,
                Prediction.model_version_id == handle.id,
                Prediction.kind == PredictionKind.MODEL,
            )
        )
    return query


def catalogue_pages(
    engine: Engine, handle: ModelHandle, *, only_missing: bool = True, chunk: int = COMMIT_EVERY
) -> Iterator[list[CatalogueRow]]:
    """The photos to predict, ``chunk`` at a time in id order: each chunk is one query that starts after
    the last id of the one before (keyset pagination), so the whole list is never held, and photos
    arriving meanwhile (higher ids) are read too."""
    after = 0
    while True:
        query = _to_predict(handle, only_missing=only_missing).where(Image.id > after).order_by(Image.id)
        with session_scope(engine) as session:
            rows = [CatalogueRow(*row) for row in session.execute(query.limit(chunk))]
        if not rows:
            return
        yield rows
        after = rows[-1].id


def update_predictions(
    engine: Engine,
    handle: ModelHandle,
    *,
    only_missing: bool = True,
    chunk: int = COMMIT_EVERY,
    batch_size: int = 32,
    ray: RayCluster | None = None,
    progress: Progress = silent,
) -> tuple[int, dict[str, str]]:
    """Predict catalogue photos with one registered model (current or candidate) and store the results.

    Streams the catalogue: ``chunk`` photos per query, decoded and predicted ``batch_size`` at a
    time, stored in one transaction per chunk while the next chunk is predicted; memory stays
    bounded by two chunks, a killed run loses at most those two, and a re-run continues with what
    is missing. With ``ray``, the workers of a Ray cluster predict and this process stores what
    they send back, a chunk at a time.
    Returns the number stored and the photos that could not be read (path -> reason; they keep
    any older prediction).
    """
    total = _count(engine, _to_predict(handle, only_missing=only_missing))
    if not total:
        return 0, {}
    rate, done = Rate("photos"), 0

    def show(photos: int) -> None:
        seen = max(total, photos)  # photos arriving meanwhile are predicted too
        progress(photos / seen, f"{handle.label}: {rate.text(photos, seen)}")

    def within(size: int) -> Progress:
        """A chunk's own progress, shown as photos of the whole."""
        return lambda fraction, _text: show(done + round(fraction * size))

    def here() -> Iterator[Scored]:
        scorer = CatalogueScorer(handle, batch_size)
        show(0)  # the rate is timed from here: loading the model is not predicting
        for page in catalogue_pages(engine, handle, only_missing=only_missing, chunk=chunk):
            probabilities, errors = scorer(page, progress=within(len(page)))
            yield len(page), probabilities, {row.path: errors[row.id].reason for row in page if row.id in errors}

    if ray is None:
        results = here()
    else:
        show(0)  # on Ray, starting the workers is part of the time
        results = ray.predict(
            catalogue_pages(engine, handle, only_missing=only_missing, chunk=LIST_CHUNK),
            partial(CatalogueScorer, handle, batch_size),
            n_classes=len(handle.class_names),
            total=total,
            rows_per_result=chunk,
        )

    def advance(photos: int) -> None:
        nonlocal done
        done += photos
        show(done)

    return _store_while_predicting(engine, handle, results, advance)


def _store_while_predicting(
    engine: Engine, handle: ModelHandle, results: Iterator[Scored], advance: Callable[[int], None]
) -> tuple[int, dict[str, str]]:
    """Store each chunk of ``results`` in a thread of its own while the next one is predicted; an
    exception (Ctrl-C) still lets the chunk being committed finish. Returns (stored, unreadable)."""
    stored, unreadable = 0, {}
    with ThreadPoolExecutor(1, thread_name_prefix="store-predictions") as writer:
        committing: Future[int] | None = None
        for n, probabilities, errors in results:
            if committing is not None:
                stored += committing.result()
            committing = writer.submit(store_predictions, engine, handle, probabilities)
            unreadable.update(errors)
            advance(n)
        if committing is not None:
            stored += committing.result()
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


def _handles(engine: Engine, model: str, attribute: str | None) -> tuple[list[ModelHandle], dict[int, str]]:
    """The current models asked for (an architecture or both; one attribute or all), and attribute names."""
    with session_scope(engine) as session:
        names = {a.id: a.name for a in attributes(session)}
        wanted_attribute = require_attribute(session, attribute).id if attribute else None
    wanted = list(ARCHITECTURES) if model == "both" else [model]
    handles = [
        h for h in current_handles(engine, wanted) if wanted_attribute is None or h.attribute_id == wanted_attribute
    ]
    if not handles:
        which = f" --attribute {attribute}" if attribute else ""
        raise ModelNotFoundError(
            f"No current {model if model != 'both' else 'model'}{f' for {attribute}' if attribute else ''} yet. "
            f"Train one first: python -m modeling.train --arch inception{which}"
        )
    return handles, names


def _positive(kind: type[int] | type[float], *, zero: bool = False) -> Callable[[str], float]:
    """An argparse type: a number above 0 (or at least 0), with an error naming the value."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0 or (value == 0 and not zero):
            raise argparse.ArgumentTypeError(f"{text} is not {'0 or more' if zero else 'above 0'}")
        return value

    return parse


def _ray_cluster(args: argparse.Namespace) -> RayCluster | None:
    if args.ray is None:
        return None
    from modeling.ray_scoring import RayCluster

    cluster = RayCluster(args.ray, args.ray_workers, args.ray_cpus_per_worker, args.ray_gpus_per_worker)
    cluster.check()  # Ray missing, or nothing at the address: say so before anything starts
    return cluster


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modeling.predict", description="Predict the brand and every other attribute of photos."
    )
    parser.add_argument("paths", nargs="*", help="image files or folders")
    parser.add_argument(
        "--model", choices=[*ARCHITECTURES, "both"], default="both", help="which current model(s) to use"
    )
    parser.add_argument("--attribute", default=None, help="one attribute (default: every attribute with a model)")
    parser.add_argument("--csv", action="store_true", help="print CSV (one row per image and model)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--batch-size", type=_positive(int), default=32, help="photos per forward pass")
    parser.add_argument(
        "--refresh", action="store_true", help="predict catalogue images the current models have not predicted yet"
    )
    parser.add_argument("--all", action="store_true", help="with --refresh: predict every catalogue image again")
    ray = parser.add_argument_group('with --refresh, on a Ray cluster (pip install "shoelabel[ray]")')
    ray.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the refresh through Ray Data: 'auto' (the cluster in RAY_ADDRESS or started here with "
        "`ray start`, else a new one on this machine), 'local' (a new one on this machine), or the "
        "head's address (host:6379, ray://host:10001)",
    )
    ray.add_argument("--ray-workers", type=_positive(int), default=2, help="workers, each loading the model once")
    ray.add_argument("--ray-cpus-per-worker", type=_positive(float), default=1.0, help="CPUs each worker reserves")
    ray.add_argument(
        "--ray-gpus-per-worker", type=_positive(float, zero=True), default=0.0, help="GPUs each worker reserves"
    )
    parser.add_argument("--job-id", type=int, default=None, help=argparse.SUPPRESS)  # set by a background start
    return parser


def _answer_rows(
    handle: ModelHandle, files: Sequence[Path], probabilities: dict[int, np.ndarray], attribute: str
) -> list[dict[str, object]]:
    """One printed row per photo: the top class, its confidence and every class's probability."""
    rows: list[dict[str, object]] = []
    for i, probs in sorted(probabilities.items()):
        top = int(np.argmax(probs))
        rows.append(
            {
                "path": str(files[i]),
                "model": handle.label,
                "attribute": attribute,
                "class": handle.class_names[top],
                "confidence": round(float(probs[top]), 4),
                **{f"p_{name}": round(float(v), 4) for name, v in zip(handle.class_names, probs, strict=True)},
            }
        )
    return rows


def _predict_files(engine: Engine, args: argparse.Namespace, files: list[Path]) -> int:
    """Predict photo files with every model asked for; print the answers, then the photos skipped."""
    handles, attribute_names = _handles(engine, args.model, args.attribute)
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
        rows += _answer_rows(handle, files, probabilities, attribute_names.get(handle.attribute_id, ""))
    _print_rows(rows, args)
    for i, exc in sorted(failed.items()):
        print(f"skipped {files[i]}: {exc.reason}", file=sys.stderr)
    return 0 if rows and not broken else 1


@command
def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.ray is not None and not args.refresh:
        parser.error("--ray runs a refresh: add --refresh")
    engine = get_engine()
    if args.refresh:
        return _refresh_command(
            engine,
            archs=ARCHITECTURES if args.model == "both" else (args.model,),
            every=args.all,
            batch_size=args.batch_size,
            ray=_ray_cluster(args),
            job_id=args.job_id,
        )
    if not args.paths:
        parser.error("give image files or folders, or --refresh")
    files = expand_paths(args.paths)
    if not files:
        print(f"error: no files under {', '.join(args.paths)}", file=sys.stderr)
        return 2
    return _predict_files(engine, args, files)


def refresh_until_done(
    engine: Engine,
    *,
    archs: Sequence[str] = ARCHITECTURES,
    every: bool = False,
    batch_size: int = 32,
    ray: RayCluster | None = None,
    progress: Progress = silent,
) -> RefreshReport:
    """Refresh, then again while photos keep arriving (an ingest may commit while a pass runs)."""
    refresh = partial(refresh_predictions, engine, archs=archs, batch_size=batch_size, ray=ray, progress=progress)
    report = refresh(only_missing=not every)
    for _ in range(MAX_PASSES - 1):
        again = refresh(only_missing=True)
        report.merge(again)
        if not any(again.stored.values()):
            break
    return report


def _refresh_command(
    engine: Engine,
    *,
    archs: Sequence[str],
    every: bool,
    batch_size: int,
    ray: RayCluster | None,
    job_id: int | None,
) -> int:
    """``--refresh``: under the job lock, recorded in the job's row when the app started it."""

    lock = JobLock.acquire()
    bar = TerminalProgress("refreshing predictions")
    with lock, job_record(engine, job_id) as job:
        if job_id is None:  # we hold the lock: no other job can be running
            mark_abandoned_jobs(engine)
        try:
            report = refresh_until_done(
                engine,
                archs=archs,
                every=every,
                batch_size=batch_size,
                ray=ray,
                progress=fan_out(bar, job.progress),
            )
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
            answer = f"{row['attribute']}: {row['class']} ({row['confidence']:.1%})"
            print(f"{row['path']}\t{row['model']}\t{answer}\t{probs}")


if __name__ == "__main__":
    # run the importable module's main, not this copy's: Ray pickles the classes a worker needs by
    # module and name, and a worker cannot import ``__main__``
    from modeling.predict import main as predict_main

    raise SystemExit(predict_main())
