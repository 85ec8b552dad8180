"""Finding labels the models contradict (confident learning), from out-of-fold probabilities.

A model's predictions on its own training images say little about their labels,
so each image is scored by a classifier that was fitted without it.

cleanlab and scikit-learn are imported when first used: they take seconds to import, and the app's first
page imports this module (through the review strategies) without needing them.
"""

from __future__ import annotations

import numpy as np


def out_of_fold_probabilities(
    features: np.ndarray, labels: np.ndarray, n_classes: int, folds: int = 5, seed: int = 0, c: float = 0.05
) -> np.ndarray:
    """``(n, n_classes)`` probabilities, each row from a logistic regression not fitted on that row."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

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


_BELOW_ONE = np.nextafter(1.0, 0.0)


def likely_mislabelled_scores(given: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Higher = more likely mislabelled, from cleanlab's confident learning on ``probs`` (out-of-fold).

    An image is flagged when another brand's probability reaches that brand's mean
    self-confidence and is the highest such brand (``find_label_issues``,
    ``filter_by="confident_learning"``). Flagged images score ``2 - p_given`` (>= 1),
    the rest ``1 - p_given`` (< 1): within each group the lowest self-confidence comes
    first, which ranked flipped labels better than the margin did (docs/label-issues.md).
    """
    given, probs = _checked(given, probs)
    if len(given) == 0:
        return np.zeros(0)
    p_given = probs[np.arange(len(given)), given]  # cleanlab's "self_confidence" label quality score
    flagged = np.zeros(len(given), dtype=bool)
    if len(np.unique(given)) > 1:  # one brand given: no other brand has a self-confidence to reach
        from cleanlab.filter import find_label_issues

        # confident_learning keeps no module state (the prune_by_* filters do) and n_jobs=1 never forks the app
        flagged = find_label_issues(given, probs, filter_by="confident_learning", n_jobs=1)
    return np.where(flagged, 2.0 - p_given, np.minimum(1.0 - p_given, _BELOW_ONE))


def _checked(given: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``given`` as int class indices and ``probs`` as floats, or a ValueError that says what is wrong."""
    given, probs = np.asarray(given), np.asarray(probs)
    if given.ndim != 1:
        raise ValueError(f"given must be a 1-D array of class indices, got shape {given.shape}")
    if probs.ndim != 2 or probs.shape[1] < 1:
        raise ValueError(f"probs must be a 2-D (images, classes) array, got shape {probs.shape}")
    if len(given) != len(probs):
        raise ValueError(f"given has {len(given)} labels but probs has {len(probs)} rows")
    whole = given.dtype.kind == "f" and np.all(np.isfinite(given)) and np.all(given == np.round(given))
    if given.dtype.kind not in "iu" and not whole:
        raise ValueError(f"given must hold integer class indices, got dtype {given.dtype}")
    if probs.dtype.kind not in "fiu":
        raise ValueError(f"probs must be numeric, got dtype {probs.dtype}")
    given, probs = given.astype(int), probs.astype(float)
    n_classes = probs.shape[1]
    if len(given) and (given.min() < 0 or given.max() >= n_classes):
        raise ValueError(f"given labels must be class indices in 0..{n_classes - 1}, got {given.min()}..{given.max()}")
    if not np.all(np.isfinite(probs)):
        raise ValueError("probs has NaN or infinite values: leave out images without predictions")
    if len(probs) and (probs.min() < -1e-6 or probs.max() > 1 + 1e-6):
        raise ValueError(f"probs must be probabilities in [0, 1], got {probs.min():.3g}..{probs.max():.3g}")
    return given, np.clip(probs, 0.0, 1.0)
