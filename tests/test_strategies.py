"""Query strategies on small cases where the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from feedback.strategies import STRATEGIES, Candidates, cluster_representatives, get_strategy
from modeling.label_issues import out_of_fold_probabilities

NAMES = ["adidas", "converse", "nike"]


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def confident_pool(n: int = 10) -> np.ndarray:
    probs = np.tile([0.96, 0.03, 0.01], (n, 1))
    return probs


def candidates(probs: np.ndarray, **extra) -> Candidates:
    return Candidates(np.arange(len(probs)), NAMES, {"inception": probs}, **extra)


@pytest.mark.parametrize("name", ["least_confidence", "margin", "entropy", "diverse", "disagreement"])
def test_a_clearly_uncertain_image_ranks_first(name: str) -> None:
    probs = confident_pool()
    probs[6] = [0.50, 0.49, 0.01]
    assert get_strategy(name).rank(candidates(probs), 3, rng())[0] == 6


def test_margin_prefers_a_close_call_over_a_flat_but_decided_vector() -> None:
    probs = confident_pool(3)
    probs[0] = [0.45, 0.44, 0.11]  # top two almost tied
    probs[1] = [0.60, 0.20, 0.20]  # higher entropy, but the top brand is clear
    assert list(STRATEGIES["margin"].rank(candidates(probs), 2, rng())) == [0, 1]


def test_entropy_and_least_confidence_orderings() -> None:
    probs = np.array([[0.34, 0.33, 0.33], [0.6, 0.4, 0.0], [0.9, 0.05, 0.05]])
    assert list(STRATEGIES["entropy"].rank(candidates(probs), 3, rng())) == [0, 1, 2]
    assert list(STRATEGIES["least_confidence"].rank(candidates(probs), 3, rng())) == [0, 1, 2]


def test_unpredicted_images_come_last() -> None:
    probs = confident_pool(4)
    probs[1] = np.nan
    order = STRATEGIES["margin"].rank(candidates(probs), 4, rng())
    assert order[-1] == 1


def test_disagreement_puts_images_the_two_models_split_on_first() -> None:
    cnn = confident_pool(5)
    inception = confident_pool(5)
    inception[3] = [0.02, 0.02, 0.96]  # confident, but the other way round
    inception[1] = [0.7, 0.2, 0.1]  # same vote, softer
    c = Candidates(np.arange(5), NAMES, {"cnn": cnn, "inception": inception})
    order = STRATEGIES["disagreement"].rank(c, 5, rng())
    assert order[0] == 3 and order[1] == 1


def test_diverse_spreads_a_batch_over_clusters() -> None:
    n_per, k = 6, 3
    centres = np.eye(3) * 10
    feats = np.concatenate([centres[c] + np.random.default_rng(c).normal(0, 0.1, (n_per, 3)) for c in range(3)])
    probs = np.tile([0.4, 0.35, 0.25], (3 * n_per, 1))  # all uncertain
    probs[:n_per, :] = [0.36, 0.34, 0.30]  # cluster 0 slightly more uncertain than the rest
    c = candidates(probs, features=lambda positions: feats[positions])
    picked = STRATEGIES["diverse"].rank(c, k, rng())
    assert sorted({int(p) // n_per for p in picked}) == [0, 1, 2]
    plain = STRATEGIES["margin"].rank(c, k, rng())
    assert {int(p) // n_per for p in plain} == {0}  # uncertainty alone takes one cluster


def test_cluster_representatives_take_the_first_row_of_each_cluster() -> None:
    feats = np.array([[1, 0], [0.99, 0.01], [0, 1], [0.01, 0.99], [-1, 0]], dtype=float)
    assert list(cluster_representatives(feats, 3, seed=0)) == [0, 2, 4]


def test_random_is_a_seeded_permutation() -> None:
    c = candidates(confident_pool(20))
    a = STRATEGIES["random"].rank(c, 20, np.random.default_rng(1))
    b = STRATEGIES["random"].rank(c, 20, np.random.default_rng(1))
    assert sorted(a) == list(range(20)) and list(a) == list(b)
    assert list(a) != list(range(20))


def test_likely_mislabelled_finds_a_flipped_label() -> None:
    generator = np.random.default_rng(3)
    labels = np.repeat([0, 1, 2], 30)
    feats = np.eye(3)[labels] * 4 + generator.normal(0, 0.6, (90, 3))
    given = labels.copy()
    given[17] = 2  # an adidas photo labelled nike
    oof = out_of_fold_probabilities(feats, given, 3)
    c = candidates(np.full((90, 3), np.nan), given=given, out_of_fold=oof)
    assert STRATEGIES["likely_mislabelled"].rank(c, 3, rng())[0] == 17


def test_out_of_fold_rows_never_come_from_a_model_fitted_on_them() -> None:
    # each photo has a feature of its own: only a model fitted on that photo can learn its label from it
    feats = np.eye(20)
    labels = np.array([0, 1] * 10)
    probs = out_of_fold_probabilities(feats, labels, 2, folds=5)
    assert probs.shape == (20, 2) and np.allclose(probs.sum(axis=1), 1.0)
    assert np.allclose(probs[np.arange(20), labels], 0.5)  # no row knows its own label
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fitted_on_all = make_pipeline(StandardScaler(), LogisticRegression(C=0.05)).fit(feats, labels)
    assert (fitted_on_all.predict_proba(feats)[np.arange(20), labels] > 0.55).all()  # what a leak would look like


def test_likely_mislabelled_falls_back_to_the_models_where_out_of_fold_is_missing() -> None:
    given = np.array([0, 0, 1, 1, 2, 2])
    oof = np.tile([np.nan] * 3, (6, 1))
    oof[:5] = np.eye(3)[given[:5]] * 0.9 + 0.033
    models = np.eye(3)[given] * 0.9 + 0.033
    models[5] = [0.9, 0.05, 0.05]  # labelled since the last round: only the models' view exists
    c = candidates(models, given=given, out_of_fold=oof)
    assert STRATEGIES["likely_mislabelled"].rank(c, 1, rng())[0] == 5


def test_diverse_clusters_the_photos_that_have_features() -> None:
    feats = {p: np.eye(3)[p % 3] * 10 for p in range(12)}
    del feats[0]  # the most uncertain photo has no cached features (predicted from an upload)

    def lookup(positions: np.ndarray) -> np.ndarray:
        return np.array([feats[int(p)] for p in positions])  # KeyError for a missing one

    probs = np.tile([0.5, 0.3, 0.2], (12, 1))
    probs[0] = [0.34, 0.33, 0.33]
    picked = STRATEGIES["diverse"].rank(candidates(probs, features=lookup), 3, rng())
    assert 0 not in picked and sorted(int(p) % 3 for p in picked) == [0, 1, 2]


def test_unknown_strategy_names_the_choices() -> None:
    with pytest.raises(ValueError, match="choose one of: least_confidence"):
        get_strategy("smartest")
