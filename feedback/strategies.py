"""Active-learning query strategies.

Each strategy is a small function over stored predictions (and, for ``diverse``,
cached InceptionV3 features): it gets a :class:`Candidates` and returns up to
``k`` positions into it, most useful to review first. Strategies never call a
model, so a queue is answered from the database alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from modeling import uncertainty
from modeling.label_issues import likely_mislabelled_scores
from modeling.uncertainty import EPS, entropy_scores, least_confidence_scores, margin_scores


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
        return uncertainty.consensus(list(self.probabilities.values()))


Ranker = Callable[[Candidates, int, np.random.Generator], np.ndarray]  # -> up to k positions, best first

SCOPES = ("unlabelled", "unreviewed", "labelled")  # which photos a queue draws from


@dataclass(frozen=True)
class Strategy:
    """A query strategy and what it declares: the photos it ranks and the inputs it needs."""

    name: str
    rank: Ranker
    scopes: tuple[str, ...]  # the photos it can rank; the first is its default
    needs: frozenset[str] = frozenset()  # beyond predictions: "features", "labels", "out_of_fold"
    #: The stored queue score it ranks by (a column of ``queue_entries``, see :mod:`modeling.queue_scores`):
    #: the queue is then an indexed query. Without one, it ranks a bounded slice of the most uncertain photos.
    column: str | None = None

    @property
    def default_scope(self) -> str:
        return self.scopes[0]


def _rank(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Highest score first; unscored (NaN) images last in random order; ties broken at random."""
    jitter = rng.random(len(scores))
    scored = np.where(np.isnan(scores), -np.inf, scores)
    order = np.lexsort((jitter, -scored))
    return order[:k]


def least_confidence(c: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
    return _rank(least_confidence_scores(c.consensus()), k, rng)


def margin(c: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
    return _rank(margin_scores(c.consensus()), k, rng)


def entropy(c: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
    return _rank(entropy_scores(c.consensus()), k, rng)


def random(c: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(len(c))[:k]


def disagreement(c: Candidates, k: int, rng: np.random.Generator) -> np.ndarray:
    """Images the two models disagree on most (see :func:`modeling.uncertainty.committee_scores`)."""
    if not c.probabilities:
        return _rank(np.full(len(c), np.nan), k, rng)
    return _rank(uncertainty.committee_scores(list(c.probabilities.values())), k, rng)


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


_FOR_NEW = SCOPES  # photos without a decision first; labelled ones may be re-checked

STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("least_confidence", least_confidence, _FOR_NEW, column="least_confidence"),
        Strategy("margin", margin, _FOR_NEW, column="margin"),
        Strategy("entropy", entropy, _FOR_NEW, column="entropy"),
        Strategy("disagreement", disagreement, _FOR_NEW, column="disagreement"),
        Strategy("diverse", diverse, _FOR_NEW, frozenset({"features"})),
        Strategy("random", random, _FOR_NEW, column="random_key"),
        Strategy("likely_mislabelled", likely_mislabelled, ("labelled",), frozenset({"labels", "out_of_fold"})),
    )
}

#: Strategies that rank photos nobody has labelled yet (what the simulation compares).
UNLABELLED_STRATEGIES = [name for name, s in STRATEGIES.items() if "unlabelled" in s.scopes]


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"Unknown strategy {name!r}; choose one of: {', '.join(STRATEGIES)}.") from None
