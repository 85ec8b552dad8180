"""The reference the product's models are judged against: a linear probe on the frozen ImageNet
InceptionV3. Global-average-pooled ``mixed5`` to ``mixed10`` of the photo and of its mirror image,
standardised, multinomial logistic regression with C from {0.01, 0.03, 0.1, 0.3, 1} chosen by
5-fold stratified cross-validation inside the training photos; predictions averaged over the photo
and its mirror image. The features are cached per photo file (``--cache``), so later runs skip the
network."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modeling.calibration import softmax
from modeling.linear_head import fit_linear_head
from shoelabel.images import iter_batches
from shoelabel.progress import TerminalProgress

BLOCKS = ("mixed5", "mixed6", "mixed7", "mixed8", "mixed9", "mixed10")
SIZE = 299


def _extractor(weights: str) -> object:
    import keras

    from modeling.architectures import inception_base

    inputs = keras.Input((SIZE, SIZE, 3))
    scaled = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    base = inception_base(weights, SIZE, input_tensor=scaled)
    pooled = [keras.layers.GlobalAveragePooling2D()(base.get_layer(b).output) for b in BLOCKS]
    return keras.Model(inputs, keras.layers.Concatenate()(pooled))


def _cache_file(cache: Path, weights: str, paths: Sequence[str]) -> Path:
    key = hashlib.sha256("\n".join([weights, *paths]).encode()).hexdigest()[:16]
    return cache / f"probe-{key}.npz"


def features(paths: Sequence[str], weights: str, cache: Path) -> np.ndarray:
    """``(photos, 2, d)``: pooled features of each photo and its mirror image."""
    file = _cache_file(cache, weights, paths)
    if file.is_file():
        return np.load(file)["features"]
    model = _extractor(weights)
    out: np.ndarray | None = None
    bar = TerminalProgress("probe features")
    done = 0
    for batch in iter_batches(list(paths), SIZE, 32):
        if batch.errors:
            raise SystemExit(f"unreadable photos: {[str(e) for _, e in batch.errors]}")
        pixels = batch.pixels.astype("float32")
        pooled = np.asarray(model.predict_on_batch(np.concatenate([pixels, pixels[:, :, ::-1]])))
        if out is None:
            out = np.zeros((len(paths), 2, pooled.shape[1]), np.float32)
        out[batch.indices] = np.stack([pooled[: len(pixels)], pooled[len(pixels) :]], axis=1)
        done += len(batch.indices)
        bar(done / len(paths), f"{done}/{len(paths)} photos")
    bar.close()
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(file, features=out)
    return out


def probe(train: np.ndarray, labels: np.ndarray, n_classes: int, test: np.ndarray) -> tuple[np.ndarray, dict]:
    """Fit on ``train`` (photo and mirror rows), predict ``test`` averaged over photo and mirror."""
    head = fit_linear_head(train, labels, n_classes, calibrated=False)
    probabilities = np.mean([softmax(head.logits(test[:, v])) for v in range(test.shape[1])], axis=0)
    return probabilities, {"c": head.c, "cv_accuracy": {str(c): round(a, 4) for c, a in head.cv_accuracy.items()}}
