"""A linear head fitted as a convex problem: standardised multinomial logistic regression.

Over pooled features of a frozen network this is the strongest simple classifier there is (a
"linear probe"), and it beat a head trained by gradient descent with dropout on every data set
measured (docs/bench-models.md). The regularisation strength is chosen by stratified
cross-validation inside the training photos (never the held-out ones); the out-of-fold logits
of that choice fit the temperature (:mod:`modeling.calibration`). The standardisation folds into
the weights, so the head is one dense layer.

Features come as ``(photos, views, d)``: every view of a training photo is a training row (the
photo and its mirror image, augmented views), while cross-validation scores the photo itself
(view 0) of photos none of whose views it was fitted on.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from modeling.calibration import Calibration, calibrate

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
FOLDS = 5
MISSING_LOGIT = -50.0  # a class a fold did not see: never predicted there


@dataclass
class LinearHead:
    """``softmax((x @ kernel + bias) / temperature)`` over raw (unstandardised) features."""

    kernel: np.ndarray  # (d, classes)
    bias: np.ndarray  # (classes,)
    c: float
    calibration: Calibration | None
    cv_accuracy: dict[float, float] = field(default_factory=dict)

    def logits(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.kernel + self.bias

    def details(self) -> dict[str, object]:
        return {
            "head": "logistic regression",
            "c": self.c,
            "cv_accuracy": {str(c): round(a, 4) for c, a in self.cv_accuracy.items()},
            "calibration": self.calibration.to_dict() if self.calibration else None,
        }


class _Standardised:
    """Logistic regression on standardised features, folded back to raw-feature weights."""

    def __init__(self, c: float, n_classes: int, seed: int) -> None:
        self.c, self.n_classes, self.seed = c, n_classes, seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale < 1e-6] = 1.0
        model = LogisticRegression(C=self.c, max_iter=300, tol=1e-3, random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs stopping at max_iter: the CV score says whether it matters
            model.fit((x - mean) / scale, y)
        coef = np.zeros((self.n_classes, x.shape[1]))
        intercept = np.full(self.n_classes, MISSING_LOGIT)
        coef[model.classes_], intercept[model.classes_] = model.coef_, model.intercept_
        if len(model.classes_) == 2:  # sklearn keeps one row for two classes: logits (-z/2, z/2)
            coef[model.classes_] = np.stack([-model.coef_[0], model.coef_[0]]) / 2
            intercept[model.classes_] = np.array([-model.intercept_[0], model.intercept_[0]]) / 2
        kernel = (coef / scale).T
        return kernel, intercept - (coef / scale) @ mean


def _rows(features: np.ndarray, labels: np.ndarray, photos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every view of the given photos as training rows."""
    views = features.shape[1]
    return features[photos].reshape(-1, features.shape[-1]), np.repeat(labels[photos], views)


def _folds(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    counts = np.bincount(labels)
    n_splits = int(max(2, min(folds, counts[counts > 0].max(), len(labels) // 2)))
    splitter = StratifiedKFold(n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes with fewer photos than folds: sklearn warns, still splits
        return list(splitter.split(np.zeros(len(labels)), labels))


def out_of_fold_logits(
    features: np.ndarray, labels: np.ndarray, n_classes: int, c: float, folds: int = FOLDS, seed: int = 0
) -> np.ndarray:
    """Logits of view 0 of every photo, each from a head fitted without any view of that photo."""
    out = np.zeros((len(labels), n_classes))
    for fit, score in _folds(labels, folds, seed):
        kernel, bias = _Standardised(c, n_classes, seed).fit(*_rows(features, labels, fit))
        out[score] = features[score, 0].astype(np.float64) @ kernel + bias
    return out


def fit_linear_head(
    features: np.ndarray,
    labels: Sequence[int],
    n_classes: int,
    *,
    cs: Sequence[float] = C_GRID,
    folds: int = FOLDS,
    seed: int = 0,
    calibrated: bool = True,
) -> LinearHead:
    """Choose C by cross-validated accuracy, fit the temperature on that C's out-of-fold logits,
    then fit the head on every photo."""
    features, labels = np.asarray(features, dtype=np.float32), np.asarray(labels, dtype=int)
    if features.ndim == 2:
        features = features[:, None, :]
    scores, oof = {}, {}
    for c in cs if len(cs) > 1 or calibrated else []:
        oof[c] = out_of_fold_logits(features, labels, n_classes, c, folds, seed)
        scores[c] = float(np.mean(oof[c].argmax(axis=1) == labels))
    best = max(scores, key=lambda c: (scores[c], c)) if scores else cs[0]
    calibration = calibrate(oof[best], labels) if calibrated else None
    kernel, bias = _Standardised(best, n_classes, seed).fit(*_rows(features, labels, np.arange(len(labels))))
    return LinearHead(kernel.astype(np.float32), bias.astype(np.float32), best, calibration, scores)
