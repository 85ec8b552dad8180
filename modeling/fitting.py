"""Training both architectures.

The custom CNN trains on decoded pixels with augmentation. InceptionV3 trains
from cached ``mixed8`` activations (the photo, its mirror image and augmented
views): the head first, then the top blocks at a low learning rate, so a round
over images it has already seen never runs the lower network again.
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
from modeling.feature_cache import VIEWS, FeatureCache
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
    seed: int = 0


@dataclass
class InceptionConfig:
    input_size: int = INCEPTION_INPUT_SIZE
    head_epochs: int = 40
    head_learning_rate: float = 1e-3
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


def _one_hot(brands: Sequence[str], class_names: list[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({b for b in brands if b not in index})
    if unknown:
        raise TrainingError(f"Brands {unknown} are not among the model's brands {class_names}.")
    return keras.utils.to_categorical([index[b] for b in brands], len(class_names)).astype("float32")


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
    brands: Sequence[str],
    *,
    parent: tuple[keras.Model, list[str]] | None = None,
    config: CnnConfig | None = None,
    progress: Progress = silent,
    verbose: int = 0,
) -> TrainOutcome:
    """Train the custom CNN from scratch, or continue from ``parent`` (model, its brands)."""
    config = config or CnnConfig()
    class_names = check_trainable(brands)
    keras.utils.set_random_seed(config.seed)
    if parent is None:
        model, new_head = build_cnn(len(class_names), config.input_size, seed=config.seed), True
        epochs, lr = config.epochs, config.learning_rate
    else:
        model, new_head = _adapt(parent[0], parent[1], class_names)
        epochs, lr = config.round_epochs, config.round_learning_rate
    input_size = int(model.input.shape[1])  # a parent keeps the size it was trained at
    pixels = load_pixels(paths, input_size, Stage(progress, 0.0, 0.1))
    targets = _one_hot(brands, class_names)
    steps = math.ceil(len(pixels) / config.batch_size) * epochs
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(steps, 1), warmup_target=None)
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    history = model.fit(
        pixels.astype("float32"),
        targets,
        batch_size=config.batch_size,
        epochs=epochs,
        shuffle=True,
        verbose=verbose,
        callbacks=[KerasProgress(Stage(progress, 0.1, 1.0), epochs, "training the CNN")],
    )
    return TrainOutcome(
        model,
        class_names,
        input_size,
        {
            "epochs": epochs,
            "learning_rate": lr,
            "from": "scratch" if parent is None else "parent",
            "new_head": new_head,
            "final_train_loss": float(history.history["loss"][-1]),
            "final_train_accuracy": float(history.history["accuracy"][-1]),
            "n_train": len(paths),
        },
    )


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
        assert make_lower is not None, "give the lower network or a way to build it"
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
        acts = cache.load(list(shas[start : start + batch_size]), view=view)
        if view is None:
            acts = acts[:, :n_views]
        flat = acts.reshape((-1, *acts.shape[-3:])).astype("float32")
        features = np.asarray(pooled.predict_on_batch(flat))
        out.append(features if view is not None else features.reshape(len(acts), -1, features.shape[-1]))
    return np.concatenate(out)


def train_head(
    model: keras.Model,
    features: np.ndarray,
    targets: np.ndarray,
    epochs: int,
    lr: float,
    label_smoothing: float,
    batch_size: int,
    seed: int,
    progress: Progress,
) -> dict[str, float]:
    """Train only the ``brand`` layer on pooled features (every view), then write it back."""
    brand = model.get_layer("brand")
    inputs = keras.Input((features.shape[-1],))
    x = keras.layers.Dropout(model.get_layer("dropout").rate)(inputs)
    head_layer = keras.layers.Dense(brand.units, activation="softmax")
    head = keras.Model(inputs, head_layer(x))
    head_layer.set_weights(brand.get_weights())
    head.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=["accuracy"],
    )
    x_all = features.reshape(-1, features.shape[-1])
    y_all = np.repeat(targets, features.shape[1], axis=0)
    keras.utils.set_random_seed(seed)
    history = head.fit(
        x_all,
        y_all,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=True,
        verbose=0,
        callbacks=[KerasProgress(progress, epochs, "training the head")],
    )
    brand.set_weights(head_layer.get_weights())
    return {"head_loss": float(history.history["loss"][-1]), "head_accuracy": float(history.history["accuracy"][-1])}


def _fit_head(
    model: keras.Model,
    cache: FeatureCache,
    shas: Sequence[str],
    targets: np.ndarray,
    mode: str,
    new_head: bool,
    config: InceptionConfig,
    progress: Progress,
) -> dict[str, Any]:
    """Train the head alone on pooled cached features; a head-only round keeps to the photo and its
    mirror image (seconds, not minutes)."""
    progress(0.0, "pooling cached features")
    features = upper_pooled(model, cache, shas, n_views=2 if mode == "head" else VIEWS)
    lr = config.head_learning_rate if new_head else config.head_learning_rate / 2
    details = train_head(
        model,
        features,
        targets,
        config.head_epochs,
        lr,
        config.label_smoothing,
        config.batch_size,
        config.seed,
        Stage(progress, 0.1, 1.0),
    )
    return {**details, "head_epochs": config.head_epochs}


def _fine_tune(
    model: keras.Model,
    upper: keras.Model,
    cache: FeatureCache,
    shas: Sequence[str],
    targets: np.ndarray,
    new_head: bool,
    config: InceptionConfig,
    progress: Progress,
) -> dict[str, Any]:
    """Fine-tune ``mixed9``/``mixed10`` at a low learning rate over every cached view."""
    epochs = config.finetune_epochs if new_head else config.round_finetune_epochs
    lr = config.finetune_learning_rate if new_head else config.round_learning_rate
    set_frozen_below_cut(model)
    upper.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    data = CachedActivations(cache, shas, targets, config.batch_size, config.seed)
    history = upper.fit(
        data, epochs=epochs, verbose=0, callbacks=[KerasProgress(progress, epochs, "fine-tuning mixed9-10")]
    )
    return {
        "finetune_epochs": epochs,
        "finetune_learning_rate": lr,
        "final_train_loss": float(history.history["loss"][-1]),
        "final_train_accuracy": float(history.history["accuracy"][-1]),
    }


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

    ``mode="head"`` trains the classification head only (seconds); ``"finetune"``
    also fine-tunes ``mixed9``/``mixed10``. A new head (no parent, or new brands)
    is always trained first, so fine-tuning starts from sensible gradients.
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
        lower, cache, shas, paths, input_size, batch_size=config.feature_batch_size, progress=Stage(progress, 0.0, 0.45)
    )
    if activations.errors:
        raise TrainingError(f"{unreadable(activations.errors)}. Restore or remove them, then train again.")
    targets = _one_hot(brands, class_names)
    details: dict[str, Any] = {
        "mode": mode,
        "new_head": new_head,
        "activations_computed": activations.computed,
        "n_train": len(shas),
    }
    head_end = 0.55 if mode == "finetune" else 1.0
    if new_head or mode == "head":
        details.update(_fit_head(model, cache, shas, targets, mode, new_head, config, Stage(progress, 0.45, head_end)))
    if mode == "finetune":
        details.update(_fine_tune(model, upper, cache, shas, targets, new_head, config, Stage(progress, head_end, 1.0)))
    for layer in model.layers:
        layer.trainable = True
    return TrainOutcome(model, class_names, input_size, details)
