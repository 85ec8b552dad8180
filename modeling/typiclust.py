"""Cold start: which photos to label first when an attribute has no labels and no model.

TypiClust (Hacohen, Dekel and Weinshall, "Active Learning on a Budget", ICML 2022): cluster the
photos' features into as many clusters as there are labels to ask for, and take from each cluster
its most *typical* photo, the one in the densest part of the cluster (the inverse of the mean
distance to its nearest neighbours). With a few labels, typical and diverse photos teach a model
more than uncertain ones, which a model that knows nothing cannot rank anyway.
"""

from __future__ import annotations

import numpy as np

NEIGHBOURS = 20  # the nearest neighbours typicality is measured over (the paper's choice)


def typicality(features: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """1 / mean distance to the ``neighbours`` nearest other rows (a single row: 1)."""
    n = len(features)
    if n < 2:
        return np.ones(n)
    k = min(neighbours, n - 1)
    squared = np.sum(features**2, axis=1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * features @ features.T, 0.0))
    np.fill_diagonal(distances, np.inf)
    nearest = np.partition(distances, k - 1, axis=1)[:, :k]
    return 1.0 / (nearest.mean(axis=1) + 1e-12)


def typical_picks(features: np.ndarray, budget: int, seed: int = 0) -> list[int]:
    """Row indices of up to ``budget`` photos to label first: the most typical photo of each of ``budget``
    clusters, largest cluster first."""
    n = len(features)
    if n == 0 or budget <= 0:
        return []
    clusters = min(budget, n)
    unit = features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-12)  # cosine geometry
    from sklearn.cluster import KMeans  # seconds to import: not on the app's first page

    assignment = KMeans(n_clusters=clusters, n_init=3, random_state=seed).fit_predict(unit)
    sizes = np.bincount(assignment, minlength=clusters)
    picks = []
    for cluster in np.argsort(-sizes, kind="stable"):
        members = np.flatnonzero(assignment == cluster)
        if len(members):
            picks.append(int(members[int(np.argmax(typicality(unit[members])))]))
    return picks
