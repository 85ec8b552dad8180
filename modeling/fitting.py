"""Training both architectures.

The custom CNN trains on decoded pixels with augmentation, taught by InceptionV3 where one
exists (:mod:`modeling.distillation`). InceptionV3 trains from cached ``mixed8`` activations:
its head is a logistic regression over the pooled features of the photo and its mirror image
(:mod:`modeling.linear_head`); ``finetune`` then trains the top blocks at a low learning rate over
augmented views too, so a round over images it has already seen never runs the lower network
again. Every model leaves training with a fitted temperature (:mod:`modeling.calibration`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

import modeling  # noqa: F401  (selects the JAX backend)
from db.labels import MIN_PHOTOS_PER_BRAND
from modeling.architectures import (
    CNN_INPUT_SIZE,
    INCEPTION_INPUT_SIZE,
    augmentation,
    build_cnn,
    build_inception,
    inception_pooled,
    replace_head,
    set_frozen_below_cut,
    split_inception,
)
from modeling.calibration import calibrate, fold_temperature, logits_of, validation_slice
from modeling.distillation import Teacher, targets
from modeling.feature_cache import VIEWS, FeatureCache
from modeling.linear_head import LinearHead, fit_linear_head
from shoelabel.errors import UserError
from shoelabel.images import ImageError, iter_batches
from shoelabel.progress import Progress, Stage, Throttled, silent


class TrainingError(UserError, ValueError):
    """Training cannot start with the data given."""


@dataclass
class CnnConfig:
    input_size: int = CNN_INPUT_SIZE
    epochs: int = 100  # from scratch
    round_epochs: int = 15  # continuing from the current model
    batch_size: int = 32
    learning_rate: float = 2e-3
    round_learning_rate: float = 5e-4
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    validation_share: float = 0.1  # of the labelled photos, set aside to fit the temperature
    sample_budget: int = 60_000  # photos seen per training: fewer epochs when the pool adds photos
    seed: int = 0


@dataclass
class InceptionConfig:
    input_size: int = INCEPTION_INPUT_SIZE
    head_views: int = 2  # the head learns from the photo and its mirror image
    validation_share: float = 0.1  # of the training photos, set aside while fine-tuning to fit the temperature
    finetune_epochs: int = 3  # over every cached view of each photo
    finetune_learning_rate: float = 1e-4
    round_finetune_epochs: int = 2
    round_learning_rate: float = 5e-5
    batch_size: int = 32
    label_smoothing: float = 0.1
    seed: int = 0
    feature_batch_size: int = 32


@dataclass
class TrainOutcome:
    model: keras.Model
    class_names: list[str]
    input_size: int
    details: dict[str, Any] = field(default_factory=dict)


class KerasProgress(keras.callbacks.Callback):
    """Reports batch-level progress of ``fit`` to a :data:`Progress`."""

    def __init__(self, progress: Progress, epochs: int, label: str) -> None:
        super().__init__()
        self.report, self.epochs, self.label = Throttled(progress), epochs, label
        self.epoch, self.last_loss = 0, float("nan")

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        steps = self.params.get("steps") or 1
        self.last_loss = float((logs or {}).get("loss", self.last_loss))
        done = (self.epoch + (batch + 1) / steps) / self.epochs
        self.report(done, f"{self.label}: epoch {self.epoch + 1}/{self.epochs}, loss {self.last_loss:.3f}")


def class_indices(classes: Sequence[str], class_names: list[str]) -> np.ndarray:
    """Each photo's class as an index into ``class_names``."""
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({c for c in classes if c not in index})
    if unknown:
        raise TrainingError(f"Classes {unknown} are not among the model's classes {class_names}.")
    return np.array([index[c] for c in classes], dtype=int)


def check_trainable(brands: Sequence[str], min_per_class: int = MIN_PHOTOS_PER_BRAND) -> list[str]:
    """The sorted brand set, after checking there is enough to learn from."""
    counts: dict[str, int] = {}
    for brand in brands:
        counts[brand] = counts.get(brand, 0) + 1
    if len(counts) < 2:
        raise TrainingError(
            f"Training needs labelled photos of at least 2 brands; found {len(counts)} "
            f"({', '.join(counts) or 'none'}). Ingest a folder of brand subfolders or review more photos."
        )
    thin = {b: n for b, n in counts.items() if n < min_per_class}
    if thin:
        raise TrainingError(f"Too few labelled photos for {thin}; each brand needs at least {min_per_class}.")
    return sorted(counts)


def _adapt(model: keras.Model, parent_classes: list[str], class_names: list[str]) -> tuple[keras.Model, bool]:
    if parent_classes == class_names:
        return model, False
    return replace_head(model, class_names, parent_classes), True


# --------------------------------------------------------------------------- CNN


def load_pixels(paths: Sequence[str], size: int, progress: Progress = silent, chunk: int = 64) -> np.ndarray:
    """Decode images to ``(n, size, size, 3)`` uint8 (resized, never full-size).

    Every unreadable file is named in one :class:`TrainingError`, not just the first.
    """
    out = np.zeros((len(paths), size, size, 3), np.uint8)
    errors: dict[str, ImageError] = {}
    done = 0
    for batch in iter_batches(list(paths), size, chunk):
        out[batch.indices] = batch.pixels
        errors.update((paths[i], error) for i, error in batch.errors)
        done += len(batch.indices) + len(batch.errors)
        progress(done / max(len(paths), 1), f"decoding photos {done}/{len(paths)}")
    if errors:
        raise TrainingError(f"{unreadable(errors)}. Restore or remove them, then train again.")
    return out


def train_cnn(
    paths: Sequence[str],
    classes: Sequence[str],
    *,
    parent: tuple[keras.Model, list[str]] | None = None,
    config: CnnConfig | None = None,
    teacher: Teacher | None = None,
    progress: Progress = silent,
    verbose: int = 0,
) -> TrainOutcome:
    """Train the custom CNN from scratch, or continue from ``parent`` (model, its classes); with a
    ``teacher``, on soft targets over the labelled photos and the pool (:mod:`modeling.distillation`).
    A validation slice of the labelled photos fits the temperature."""
    config = config or CnnConfig()
    class_names = check_trainable(classes)
    keras.utils.set_random_seed(config.seed)
    if parent is None:
        model, new_head = build_cnn(len(class_names), config.input_size, seed=config.seed), True
        epochs, lr = config.epochs, config.learning_rate
    else:
        model, new_head = _adapt(parent[0], parent[1], class_names)
        epochs, lr = config.round_epochs, config.round_learning_rate
    input_size = int(model.input.shape[1])  # a parent keeps the size it was trained at
    labels = class_indices(classes, class_names)
    fit, validation = validation_slice(labels, config.validation_share, config.seed)
    pixels = load_pixels(paths, input_size, Stage(progress, 0.0, 0.08))
    soft = targets(labels, teacher.labelled if teacher else None, len(class_names), config.label_smoothing)
    pool_pixels, pool_targets = _pool_pixels(teacher, input_size, len(class_names), Stage(progress, 0.08, 0.15))
    data = SoftTargets(np.concatenate([pixels[fit], pool_pixels]), np.concatenate([soft[fit], pool_targets]), config)
    epochs = max(1, min(epochs, math.ceil(config.sample_budget / max(len(data.pixels), 1))))
    history = _fit_cnn(model, data, epochs, lr, config, Stage(progress, 0.15, 0.97), verbose)
    details: dict[str, Any] = {
        "epochs": epochs,
        "learning_rate": lr,
        "from": "scratch" if parent is None else "parent",
        "new_head": new_head,
        "final_train_loss": float(history.history["loss"][-1]),
        "n_train": len(fit),
        **(teacher.details() if teacher else {"teacher_version": None}),
    }
    if len(validation):
        progress(0.98, "fitting the temperature on the validation slice")
        calibration = calibrate(logits_of(model.predict(pixels[validation], verbose=0)), labels[validation])
        fold_temperature(model, calibration.temperature)
        details["calibration"] = calibration.to_dict()
    return TrainOutcome(model, class_names, input_size, details)


class SoftTargets(keras.utils.PyDataset):
    """Batches of decoded photos (kept as uint8) with their soft targets, reshuffled every epoch."""

    def __init__(self, pixels: np.ndarray, targets: np.ndarray, config: CnnConfig) -> None:
        super().__init__()
        self.pixels, self.targets, self.batch_size = pixels, targets, config.batch_size
        self.rng = np.random.default_rng(config.seed)
        self.order = self.rng.permutation(len(pixels))

    def __len__(self) -> int:
        return math.ceil(len(self.pixels) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        return self.pixels[rows].astype("float32"), self.targets[rows]

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.pixels))


def _fit_cnn(
    model: keras.Model, data: SoftTargets, epochs: int, lr: float, config: CnnConfig, progress: Progress, verbose: int
) -> keras.callbacks.History:
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(len(data) * epochs, 1))
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(),  # the targets carry the label smoothing
    )
    return model.fit(
        data, epochs=epochs, verbose=verbose, callbacks=[KerasProgress(progress, epochs, "training the CNN")]
    )


def _pool_pixels(
    teacher: Teacher | None, size: int, n_classes: int, progress: Progress
) -> tuple[np.ndarray, np.ndarray]:
    """The pool photos the teacher answered, decoded; one that cannot be read is left out."""
    if teacher is None or not teacher.pool_paths:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0, n_classes), "float32")
    kept, chunks = [], []
    for batch in iter_batches(list(teacher.pool_paths), size, 64):
        kept += batch.indices
        chunks.append(batch.pixels)
        progress(len(kept) / len(teacher.pool_paths), f"decoding pool photos {len(kept)}/{len(teacher.pool_paths)}")
    return np.concatenate(chunks), teacher.pool[kept].astype("float32")


# --------------------------------------------------------------------------- InceptionV3


@dataclass
class ActivationReport:
    computed: int  # images whose activations were computed now
    errors: dict[str, ImageError] = field(default_factory=dict)  # by sha256: images that could not be read


def ensure_activations(
    lower: keras.Model | None,
    cache: FeatureCache,
    shas: Sequence[str],
    paths: Sequence[str],
    input_size: int,
    *,
    views: int = VIEWS,
    batch_size: int = 32,
    progress: Progress = silent,
    make_lower: Callable[[], keras.Model] | None = None,
) -> ActivationReport:
    """Compute and cache ``mixed8`` activations of the images that lack ``views`` views.

    Prediction needs the photo alone (``views=1``); training needs every view.
    ``make_lower`` builds the lower network only when something is missing.
    Unreadable images are reported, not raised.
    """
    todo = list({sha: path for sha, path in zip(shas, paths, strict=True) if not cache.has(sha, views)}.items())
    if not todo:
        return ActivationReport(0)
    if lower is None:
        if make_lower is None:
            raise TypeError("ensure_activations needs the lower network or make_lower to build it")
        lower = make_lower()
    augment = augmentation(seed=0) if views > 2 else None
    report = ActivationReport(0)
    done = 0
    for batch in iter_batches([path for _, path in todo], input_size, batch_size):
        report.errors.update({todo[i][0]: error for i, error in batch.errors})
        if batch.indices:
            pixels = batch.pixels.astype("float32")
            stack = [pixels, pixels[:, :, ::-1]][:views]
            stack += [np.asarray(augment(pixels / 255.0, training=True)) * 255.0 for _ in range(views - 2)]
            activations = np.asarray(lower.predict_on_batch(np.concatenate(stack)))
            activations = activations.reshape(views, len(pixels), *activations.shape[1:])
            for j, i in enumerate(batch.indices):
                cache.put(todo[i][0], activations[:, j])
            report.computed += len(batch.indices)
        done += len(batch.indices) + len(batch.errors)
        progress(done / len(todo), f"InceptionV3 features of new photos {done}/{len(todo)}")
    return report


def unreadable(errors: dict[str, ImageError], limit: int = 5) -> str:
    """A short list of unreadable files for an error message."""
    listed = "; ".join(str(e) for e in list(errors.values())[:limit])
    more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
    return f"{len(errors)} photo(s) could not be read: {listed}{more}"


class CachedActivations(keras.utils.PyDataset):
    """Batches of cached activations (every view) with one-hot targets, reshuffled every epoch."""

    def __init__(
        self, cache: FeatureCache, shas: Sequence[str], targets: np.ndarray, batch_size: int, seed: int
    ) -> None:
        super().__init__()
        self.cache, self.shas, self.targets, self.batch_size = cache, list(shas), targets, batch_size
        self.items = np.array([(i, v) for i in range(len(self.shas)) for v in range(VIEWS)])
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(self.items))

    def __len__(self) -> int:
        return math.ceil(len(self.items) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        picked = self.items[self.order[index * self.batch_size : (index + 1) * self.batch_size]]
        x = np.stack([self.cache.get(self.shas[i])[v] for i, v in picked]).astype("float32")
        return x, self.targets[picked[:, 0]]

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.items))


def upper_pooled(
    model: keras.Model,
    cache: FeatureCache,
    shas: Sequence[str],
    view: int | None = None,
    n_views: int = VIEWS,
    batch_size: int = 64,
) -> np.ndarray:
    """Pooled features the head sees, from cached activations: ``(n, n_views, d)`` for the
    first ``n_views`` views, or ``(n, d)`` for one view (0: the photo)."""
    pooled = inception_pooled(model)
    out = []
    for start in range(0, len(shas), batch_size):
        acts = cache.load(list(shas[start : start + batch_size]), view=view, views=n_views)
        flat = acts.reshape((-1, *acts.shape[-3:])).astype("float32")
        features = np.asarray(pooled.predict_on_batch(flat))
        out.append(features if view is not None else features.reshape(len(acts), -1, features.shape[-1]))
    return np.concatenate(out)


def set_head(model: keras.Model, head: LinearHead) -> dict[str, Any]:
    """Write a fitted linear head into the model's softmax layer, its temperature folded in."""
    model.get_layer("brand").set_weights([head.kernel, head.bias])
    if head.calibration is not None:
        fold_temperature(model, head.calibration.temperature)
    return head.details()


def _fit_head(
    model: keras.Model,
    cache: FeatureCache,
    shas: Sequence[str],
    labels: np.ndarray,
    config: InceptionConfig,
    progress: Progress,
) -> dict[str, Any]:
    """Fit the head on pooled cached features of the photo and its mirror image (seconds, not
    minutes): a convex fit, so a round refits it on every label rather than continuing the last one."""
    progress(0.0, "pooling cached features")
    features = upper_pooled(model, cache, shas, n_views=config.head_views)
    progress(0.5, f"fitting the head ({len(shas)} photos, regularisation by cross-validation)")
    details = set_head(model, fit_linear_head(features, labels, model.get_layer("brand").units, seed=config.seed))
    progress(1.0, "head fitted")
    return details


def _fine_tune(
    model: keras.Model,
    upper: keras.Model,
    cache: FeatureCache,
    shas: Sequence[str],
    labels: np.ndarray,
    parts: tuple[np.ndarray, np.ndarray],
    new_head: bool,
    config: InceptionConfig,
    progress: Progress,
) -> dict[str, Any]:
    """Fine-tune ``mixed9``/``mixed10`` at a low learning rate over every cached view of the ``parts``
    fit rows; the validation rows (none when the model continues one that saw them) then fit the
    temperature of the fine-tuned model."""
    fit, validation = parts
    epochs = config.finetune_epochs if new_head else config.round_finetune_epochs
    lr = config.finetune_learning_rate if new_head else config.round_learning_rate
    set_frozen_below_cut(model)
    upper.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    targets = keras.utils.to_categorical(labels, model.get_layer("brand").units).astype("float32")
    shas = list(shas)
    data = CachedActivations(cache, [shas[i] for i in fit], targets[fit], config.batch_size, config.seed)
    history = upper.fit(
        data, epochs=epochs, verbose=0, callbacks=[KerasProgress(progress, epochs, "fine-tuning mixed9-10")]
    )
    details: dict[str, Any] = {
        "finetune_epochs": epochs,
        "finetune_learning_rate": lr,
        "final_train_loss": float(history.history["loss"][-1]),
        "final_train_accuracy": float(history.history["accuracy"][-1]),
    }
    details["finetune_calibration"] = None
    if len(validation):
        activations = cache.load([shas[i] for i in validation], view=0).astype("float32")
        calibration = calibrate(logits_of(upper.predict(activations, verbose=0)), labels[validation])
        fold_temperature(model, calibration.temperature)
        details["finetune_calibration"] = calibration.to_dict()
    return details


def _calibration_parts(
    labels: np.ndarray, mode: str, new_head: bool, config: InceptionConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) rows. A new fine-tuned model leaves a validation slice out of its head's fit and
    of fine-tuning, to fit its temperature on photos it never learned from. A round continuing a model
    has no such photos (the model it continues saw them): it learns from every photo and keeps that
    model's temperature. The head alone fits its temperature on its own cross-validation."""
    if mode == "finetune" and new_head:
        return validation_slice(labels, config.validation_share, config.seed)
    return np.arange(len(labels)), np.zeros(0, dtype=int)


def train_inception(
    shas: Sequence[str],
    paths: Sequence[str],
    brands: Sequence[str],
    *,
    cache: FeatureCache,
    weights: str | None,
    parent: tuple[keras.Model, list[str]] | None = None,
    mode: str = "finetune",
    config: InceptionConfig | None = None,
    progress: Progress = silent,
) -> TrainOutcome:
    """Train InceptionV3 on cached activations.

    ``mode="head"`` fits the classification head only (seconds); ``"finetune"``
    also fine-tunes ``mixed9``/``mixed10``. A new head (no parent, or new classes)
    is always fitted first, so fine-tuning starts from sensible gradients.
    """
    if mode not in ("head", "finetune"):
        raise TrainingError(f"Unknown mode {mode!r}; use 'head' or 'finetune'.")
    config = config or InceptionConfig()
    class_names = check_trainable(brands)
    keras.utils.set_random_seed(config.seed)
    if parent is None:
        model = build_inception(len(class_names), weights, config.input_size)
        new_head = True
    else:
        model, new_head = _adapt(parent[0], parent[1], class_names)
    input_size = int(model.input.shape[1])
    lower, upper = split_inception(model)
    activations = ensure_activations(
        lower,
        cache,
        shas,
        paths,
        input_size,
        views=VIEWS if mode == "finetune" else config.head_views,
        batch_size=config.feature_batch_size,
        progress=Stage(progress, 0.0, 0.45),
    )
    if activations.errors:
        raise TrainingError(f"{unreadable(activations.errors)}. Restore or remove them, then train again.")
    labels = class_indices(brands, class_names)
    details: dict[str, Any] = {
        "mode": mode,
        "new_head": new_head,
        "activations_computed": activations.computed,
        "n_train": len(shas),
    }
    head_end = 0.55 if mode == "finetune" else 1.0
    fit, validation = _calibration_parts(labels, mode, new_head, config)
    if new_head or mode == "head":
        rows = [shas[i] for i in fit]
        details.update(_fit_head(model, cache, rows, labels[fit], config, Stage(progress, 0.45, head_end)))
    if mode == "finetune":
        stage = Stage(progress, head_end, 1.0)
        details.update(_fine_tune(model, upper, cache, shas, labels, (fit, validation), new_head, config, stage))
        if not new_head:
            details["finetune_calibration_note"] = "the temperature is kept from the model this round continues"
    for layer in model.layers:
        layer.trainable = True
    return TrainOutcome(model, class_names, input_size, details)
