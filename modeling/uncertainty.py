"""How unsure a model is of a photo: one definition of each measure, used where predictions are
stored and where queues rank them. Rows are probability vectors; higher scores mean less sure."""

from __future__ import annotations

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


#: The measures kept with every stored prediction, in the order of its columns.
STORED = (confidence, margin, entropy)
