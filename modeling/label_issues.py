"""Out-of-fold probabilities, for finding labels the models contradict (confident learning).

A model's predictions on its own training images say little about their labels,
so each image is scored by a classifier that was fitted without it.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def out_of_fold_probabilities(
    features: np.ndarray, labels: np.ndarray, n_classes: int, folds: int = 5, seed: int = 0, c: float = 0.05
) -> np.ndarray:
    """``(n, n_classes)`` probabilities, each row from a logistic regression not fitted on that row."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=n_classes)
    folds = int(min(folds, counts[counts > 0].min()))
    out = np.full((len(labels), n_classes), np.nan)
    if folds < 2:
        return out
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for fit_rows, score_rows in splitter.split(features, labels):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        model.fit(features[fit_rows], labels[fit_rows])
        out[np.ix_(score_rows, model[-1].classes_)] = model.predict_proba(features[score_rows])
    return np.nan_to_num(out, nan=0.0)
