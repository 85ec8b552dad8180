"""Confidences that mean what they say: temperature scaling and calibration error.

A temperature ``T`` divides a model's logits before the softmax. It is fitted on photos the model
was not trained on (a validation slice of the training part, or out-of-fold predictions) by
minimising their log loss, and folded into the model's last layer (kernel and bias divided by
``T``), so every path that runs the saved model, in any process, gives calibrated probabilities
without knowing about it. The value is kept in the model version's training record.

numpy and scipy only (no Keras), so queues and benchmarks can use the error measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import minimize_scalar

if TYPE_CHECKING:
    import keras

ECE_BINS = 15
#: Temperatures outside this range mean the validation photos say nothing sensible (too few, or all
#: right with huge logits); the fit stops at its ends.
TEMPERATURE_RANGE = (0.05, 20.0)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64)))


def logits_of(probabilities: np.ndarray) -> np.ndarray:
    """Logits (up to a constant per row) of softmax outputs."""
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the log loss of ``softmax(logits / T)`` on ``labels``."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=int)
    if len(labels) == 0:
        return 1.0
    rows = np.arange(len(labels))

    def loss(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t))[rows, labels].mean())

    low, high = np.log(TEMPERATURE_RANGE[0]), np.log(TEMPERATURE_RANGE[1])
    result = minimize_scalar(loss, bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: the photo-weighted mean gap between confidence and accuracy over equal-width
    confidence bins."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels, dtype=int)
    if len(labels) == 0:
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        members = which == b
        total += members.sum() * abs(confidence[members].mean() - correct[members].mean())
    return float(total / len(labels))


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature and what it did on the photos it was fitted on."""

    temperature: float
    n: int
    ece_before: float
    ece_after: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "temperature": round(self.temperature, 4),
            "n": self.n,
            "ece_before": round(self.ece_before, 4),
            "ece_after": round(self.ece_after, 4),
        }


def calibrate(logits: np.ndarray, labels: np.ndarray) -> Calibration:
    """Fit a temperature on validation logits and report the error before and after."""
    temperature = fit_temperature(logits, labels)
    return Calibration(
        temperature,
        len(labels),
        expected_calibration_error(softmax(logits), labels),
        expected_calibration_error(softmax(np.asarray(logits) / temperature), labels),
    )


def fold_temperature(model: keras.Model, temperature: float, layer: str = "brand") -> None:
    """Divide the softmax layer's kernel and bias by ``temperature``: ``softmax((Wx + b) / T)``
    exactly, stored in the model file, applied wherever the model runs."""
    head = model.get_layer(layer)
    kernel, bias = head.get_weights()
    head.set_weights([kernel / temperature, bias / temperature])


def validation_slice(labels: np.ndarray, share: float, seed: int, keep: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) row indices: a seeded, stratified ``share`` of each class's photos set aside to
    fit the temperature on. A class with ``keep`` photos or fewer gives none (it needs them to learn)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    validation: list[int] = []
    for value in np.unique(labels):
        rows = np.flatnonzero(labels == value)
        if len(rows) > keep:
            validation += rng.choice(rows, size=max(1, round(share * len(rows))), replace=False).tolist()
    chosen = np.zeros(len(labels), dtype=bool)
    chosen[validation] = True
    return np.flatnonzero(~chosen), np.flatnonzero(chosen)
