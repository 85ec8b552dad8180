"""How unsure a model is of a photo: one definition of each measure, used where predictions are
stored and where queues rank them. Rows are probability vectors; higher scores mean less sure."""

from __future__ import annotations

import warnings

import numpy as np

EPS = 1e-12


def sorted_desc(probs: np.ndarray) -> np.ndarray:
    return -np.sort(-probs, axis=1)


def confidence(probs: np.ndarray) -> np.ndarray:
    """The top class's probability."""
    return np.max(probs, axis=1)


def margin(probs: np.ndarray) -> np.ndarray:
    """The gap between the two most likely classes (the whole top probability with one class)."""
    if probs.shape[1] < 2:
        return np.max(probs, axis=1)
    top = sorted_desc(probs)
    return top[:, 0] - top[:, 1]


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats."""
    return -np.sum(probs * np.log(np.clip(probs, EPS, 1.0)), axis=1)


def least_confidence_scores(probs: np.ndarray) -> np.ndarray:
    return 1.0 - confidence(probs)


def margin_scores(probs: np.ndarray) -> np.ndarray:
    """Minus the margin: the closer the top two classes, the higher."""
    if probs.shape[1] < 2:
        return np.zeros(len(probs))
    return -margin(probs)


def entropy_scores(probs: np.ndarray) -> np.ndarray:
    return entropy(probs)


def disagreement_scores(probs_by_model: list[np.ndarray]) -> np.ndarray:
    """Query-by-committee: 1 for each model whose vote differs from the majority, plus the
    Jensen-Shannon divergence of the models' probability vectors (in [0, ln 2])."""
    stacked = np.stack(probs_by_model)  # (m, n, c)
    votes = stacked.argmax(axis=2)
    mean = stacked.mean(axis=0)
    vote_split = np.array([len(set(col)) - 1 for col in votes.T], dtype=float)
    js = entropy(mean) - np.mean([entropy(p) for p in stacked], axis=0)
    return vote_split + np.clip(js, 0.0, None)


def consensus(probs_by_model: list[np.ndarray]) -> np.ndarray:
    """Mean probabilities over the models that predicted each photo (a NaN row: one model has none;
    all NaN: none has)."""
    if not probs_by_model:
        raise ValueError("consensus of no models")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
        return np.nanmean(np.stack(probs_by_model), axis=0)


def committee_scores(probs_by_model: list[np.ndarray]) -> np.ndarray:
    """The ``disagreement`` queue's score: photos every model predicted rank by
    :func:`disagreement_scores` (plus 10, so above the rest); photos only one model has seen rank
    after them by that model's margin score (in [-1, 0]); unpredicted photos are NaN. With a single
    model this is the margin score."""
    mean = consensus(probs_by_model)
    if len(probs_by_model) < 2:
        return np.where(np.isnan(mean).any(axis=1), np.nan, margin_scores(np.nan_to_num(mean)))
    both = ~np.any(np.stack([np.isnan(m).any(axis=1) for m in probs_by_model]), axis=0)
    scores = np.full(len(mean), np.nan)
    if both.any():
        scores[both] = 10.0 + disagreement_scores([m[both] for m in probs_by_model])
    one = ~both & ~np.isnan(mean).any(axis=1)
    if one.any():
        scores[one] = margin_scores(mean[one])
    return scores


#: The measures kept with every stored prediction, in the order of its columns.
STORED = (confidence, margin, entropy)
