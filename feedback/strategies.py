"""Active-learning query strategies.

Each strategy is a small function over stored predictions (and, for ``diverse``,
cached InceptionV3 features): it gets a :class:`Candidates` and returns up to
``k`` positions into it, most useful to review first. Strategies never call a
model, so a queue is answered from the database alone.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

EPS = 1e-12


@dataclass
class Candidates:
    """Images a strategy may pick, with what the models said about them.

    ``probabilities`` maps a model name (``"cnn"``, ``"inception"``) to an
    ``(n, n_classes)`` array, columns in ``class_names`` order; a row of NaN means
    that model has no prediction for the image yet.
    """

    image_ids: np.ndarray
    class_names: list[str]
    probabilities: dict[str, np.ndarray]
    features: Callable[[np.ndarray], np.ndarray] | None = None  # positions -> (len, d), for diversity
    given: np.ndarray | None = None  # (n,) class index each image is labelled with, for likely_mislabelled
    out_of_fold: np.ndarray | None = None  # (n, n_classes) probabilities from a model not trained on the image

    def __len__(self) -> int:
        return len(self.image_ids)

    def consensus(self) -> np.ndarray:
        """Mean probabilities over the models that predicted each image (NaN rows: none did)."""
        if not self.probabilities:
            return np.full((len(self), len(self.class_names)), np.nan)
        stacked = np.stack(list(self.probabilities.values()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
            return np.nanmean(stacked, axis=0)


Strategy = Callable[[Candidates, int, np.random.Generator], np.ndarray]


def _rank(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Highest score first; unscored (NaN) images last in random order; ties broken at random."""
    jitter = rng.random(len(scores))
    scored = np.where(np.isnan(scores), -np.inf, scores)
    order = np.lexsort((jitter, -scored))
    return order[:k]


def sorted_probs(probs: np.ndarray) -> np.ndarray:
    return -np.sort(-probs, axis=1)


def least_confidence_scores(probs: np.ndarray) -> np.ndarray:
    return 1.0 - np.max(probs, axis=1)


def margin_scores(probs: np.ndarray) -> np.ndarray:
    """Higher is more uncertain: minus the gap between the two most likely brands."""
    top = sorted_probs(probs)
    if probs.shape[1] < 2:
        return np.zeros(len(probs))
    return -(top[:, 0] - top[:, 1])


def entropy_scores(probs: np.ndarray) -> np.ndarray:
    return -np.sum(probs * np.log(np.clip(probs, EPS, 1.0)), axis=1)


def least_confidence(c: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
    return _rank(least_confidence_scores(c.consensus()), k, rng)


def margin(c: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
    return _rank(margin_scores(c.consensus()), k, rng)


def entropy(c: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
    return _rank(entropy_scores(c.consensus()), k, rng)


def random(c: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(len(c))[:k]


def disagreement_scores(probs_by_model: list[np.ndarray]) -> np.ndarray:
    """Query-by-committee: 1 for each model whose vote differs from the majority, plus the
    Jensen-Shannon divergence of the models' probability vectors (in [0, ln 2])."""
    stacked = np.stack(probs_by_model)  # (m, n, c)
    votes = stacked.argmax(axis=2)
    mean = stacked.mean(axis=0)
    vote_split = np.array([len(set(col)) - 1 for col in votes.T], dtype=float)
    js = entropy_scores(mean) - np.mean([entropy_scores(p) for p in stacked], axis=0)
    return vote_split + np.clip(js, 0.0, None)


def disagreement(c: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
    """Images the two models disagree on most; images only one model has seen rank after
    them by that model's margin. With a single model this is ``margin``."""
    models = list(c.probabilities.values())
    if len(models) < 2:
        return margin(c, k, rng)
    both = ~np.any(np.stack([np.isnan(m).any(axis=1) for m in models]), axis=0)
    scores = np.full(len(c), np.nan)
    if both.any():
        scores[both] = 10.0 + disagreement_scores([m[both] for m in models])
    one = ~both & ~np.isnan(c.consensus()).any(axis=1)
    scores[one] = margin_scores(c.consensus()[one])  # in [-1, 0], below every disagreement score
    return _rank(scores, k, rng)


def cluster_representatives(features: np.ndarray, k: int, seed: int) -> np.ndarray:
    """One row per k-means cluster (cosine geometry): the first row of each cluster, so
    callers that pass rows most-uncertain-first get each cluster's most uncertain member."""
    from sklearn.cluster import KMeans

    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), EPS)
    clusters = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(unit)
    return np.array(sorted(int(np.flatnonzero(clusters == c)[0]) for c in np.unique(clusters)))


def diverse(c: Candidates, k: int, rng: np.random.Generator, slice_factor: int = 3) -> np.ndarray:
    """Uncertain and unlike each other: the ``slice_factor * k`` least confident images are
    clustered into ``k`` groups in InceptionV3 feature space and the most uncertain image of
    each group is taken, so a batch is not twenty photos of one shoe (and, unlike picking
    the farthest points, not a batch of outliers). Without features this is
    ``least_confidence``."""
    ranked = least_confidence(c, len(c), rng)
    if c.features is None or k <= 1:
        return ranked[:k]
    scored = ranked[~np.isnan(c.consensus()[ranked]).any(axis=1)]
    top = scored[: k * slice_factor]
    if len(top) <= k:
        return np.concatenate([top, ranked[~np.isin(ranked, top)]])[:k]
    top, features = _with_features(c.features, top)
    if len(top) <= k:
        return np.concatenate([top, ranked[~np.isin(ranked, top)]])[:k]
    return top[cluster_representatives(features, k, seed=int(rng.integers(1 << 31)))]


def _with_features(
    features: Callable[[np.ndarray], np.ndarray], positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The positions that have cached features (e.g. not a photo predicted from an upload), with them."""
    try:
        return positions, features(positions)
    except KeyError:
        pass
    kept, rows = [], []
    for position in positions:
        try:
            rows.append(features(np.array([position]))[0])
            kept.append(position)
        except KeyError:
            continue
    return np.array(kept, dtype=positions.dtype), np.array(rows)


def likely_mislabelled_scores(given: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Confident-learning style: an image is suspect when some other brand's probability
    reaches that brand's own average self-confidence, while its given brand's does not.
    Suspects score 1 + (p_other - p_given); the rest score p_other - p_given (< 1)."""
    n, n_classes = probs.shape
    thresholds = np.array([probs[given == j, j].mean() if np.any(given == j) else 1.0 for j in range(n_classes)])
    p_given = probs[np.arange(n), given]
    others = probs.copy()
    others[np.arange(n), given] = -np.inf
    best_other = others.max(axis=1)
    best_other_class = others.argmax(axis=1)
    suspect = (best_other >= thresholds[best_other_class]) & (p_given < thresholds[given])
    return np.where(suspect, 1.0, 0.0) + (best_other - p_given)


def likely_mislabelled(c: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
    """Labelled images whose given brand the models contradict with high confidence,
    scored on out-of-fold probabilities where available (a model's own training
    images say little about their labels)."""
    if c.given is None:
        raise ValueError("likely_mislabelled needs the given labels of the candidates")
    probs = c.consensus()
    if c.out_of_fold is not None:  # photos labelled since the last round have none yet: models' view
        has_oof = ~np.isnan(c.out_of_fold).any(axis=1)
        probs = np.where(has_oof[:, None], c.out_of_fold, probs)
    known = (c.given >= 0) & ~np.isnan(probs).any(axis=1)
    scores = np.full(len(c), np.nan)
    if known.any():
        scores[known] = likely_mislabelled_scores(c.given[known], probs[known])
    return _rank(scores, k, rng)


STRATEGIES: dict[str, Strategy] = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
    "disagreement": disagreement,
    "diverse": diverse,
    "random": random,
    "likely_mislabelled": likely_mislabelled,
}

#: Strategies that rank unlabelled images; ``likely_mislabelled`` ranks labelled ones.
UNLABELLED_STRATEGIES = [name for name in STRATEGIES if name != "likely_mislabelled"]


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"Unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}.") from None
