"""Figures that cannot flatter, for the model benchmark: accuracy with its Wilson interval, macro F1
and calibration error with bootstrap intervals, the majority-class baseline, and McNemar's paired
test of two models on the same photos."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import f1_score

from modeling.calibration import expected_calibration_error

BOOTSTRAP = 1000


def wilson(right: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = right / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def macro_f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Macro F1 over the classes these photos have."""
    return float(f1_score(labels, predicted, labels=np.unique(labels), average="macro", zero_division=0))


def _interval(values: list[float]) -> tuple[float, float]:
    return (float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5)))


def scores(probabilities: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, object]:
    """Every figure of one model on one set of photos (class indices in one shared order); the baseline is
    the constant answer that scores best on these photos (their most frequent class)."""
    labels = np.asarray(labels)
    majority = int(np.bincount(labels).argmax())
    predicted = probabilities.argmax(axis=1)
    rng = np.random.default_rng(seed)
    f1s, eces = [], []
    for _ in range(BOOTSTRAP):
        rows = rng.integers(0, len(labels), len(labels))
        f1s.append(macro_f1(labels[rows], predicted[rows]))
        eces.append(expected_calibration_error(probabilities[rows], labels[rows]))
    right = int((predicted == labels).sum())
    baseline = labels == majority
    return {
        "n": len(labels),
        "accuracy": round(right / len(labels), 4),
        "accuracy_95": [round(v, 4) for v in wilson(right, len(labels))],
        "macro_f1": round(macro_f1(labels, predicted), 4),
        "macro_f1_95": [round(v, 4) for v in _interval(f1s)],
        "ece": round(expected_calibration_error(probabilities, labels), 4),
        "ece_95": [round(v, 4) for v in _interval(eces)],
        "mean_confidence": round(float(probabilities.max(axis=1).mean()), 4),
        "majority_accuracy": round(float(baseline.mean()), 4),
        "majority_macro_f1": round(macro_f1(labels, np.full(len(labels), majority)), 4),
    }


def mcnemar(labels: np.ndarray, mine: np.ndarray, reference: np.ndarray) -> dict[str, object]:
    """Exact McNemar test: photos only one of the two models gets right."""
    right, ref_right = mine == labels, reference == labels
    only_mine, only_ref = int((right & ~ref_right).sum()), int((ref_right & ~right).sum())
    p = binomtest(only_mine, only_mine + only_ref).pvalue if only_mine + only_ref else 1.0
    verdict = "tie" if p >= 0.05 else ("better" if only_mine > only_ref else "worse")
    return {"only_this_right": only_mine, "only_reference_right": only_ref, "p": round(float(p), 4), "verdict": verdict}
