"""likely_mislabelled_scores on tiny synthetic inputs: flags, ordering, edge cases and input errors (no Keras)."""

from __future__ import annotations

import numpy as np
import pytest

from modeling.label_issues import likely_mislabelled_scores


def confident(true: np.ndarray, n_classes: int, p: float = 0.9) -> np.ndarray:
    """Probabilities that put ``p`` on each image's true class and share the rest."""
    probs = np.full((len(true), n_classes), (1 - p) / (n_classes - 1))
    probs[np.arange(len(true)), true] = p
    return probs


def noisy_three_brands() -> tuple[np.ndarray, np.ndarray, list[int]]:
    true = np.repeat([0, 1, 2], 10)
    given = true.copy()
    flipped = [3, 14, 25]
    given[flipped] = [1, 2, 0]
    return given, confident(true, 3), flipped


def test_flipped_labels_the_probabilities_contradict_are_flagged_and_clean_ones_are_not() -> None:
    given, probs, flipped = noisy_three_brands()
    scores = likely_mislabelled_scores(given, probs)
    assert scores.shape == (30,)
    assert set(np.flatnonzero(scores >= 1)) == set(flipped)
    assert (np.delete(scores, flipped) < 1).all()


def test_flagged_photos_rank_by_lowest_probability_of_their_given_brand() -> None:
    given, probs, _ = noisy_three_brands()
    probs[14] = [0.05, 0.6, 0.35]  # labelled 2, looks like 1: flagged, but less sure than the others
    scores = likely_mislabelled_scores(given, probs)
    assert list(np.argsort(-scores, kind="stable")[:3]) == [3, 25, 14]


def test_an_unsure_photo_is_not_flagged() -> None:
    given, probs, _ = noisy_three_brands()
    probs[5] = [0.4, 0.35, 0.25]  # labelled 0, only weakly: nobody contradicts it with confidence
    assert likely_mislabelled_scores(given, probs)[5] < 1


def test_a_brand_nobody_is_labelled_with_cannot_be_the_contradicting_one() -> None:
    true = np.repeat([0, 1], 10)
    given = true.copy()
    probs = np.hstack([confident(true, 2, 0.8) * 0.9, np.full((20, 1), 0.1)])
    probs[4] = [0.02, 0.02, 0.96]  # looks like brand 2, which no photo is labelled with
    probs[12] = [0.9, 0.05, 0.05]
    given[12] = 1
    scores = likely_mislabelled_scores(given, probs)
    assert np.flatnonzero(scores >= 1).tolist() == [12]
    assert scores[4] > np.delete(scores, [4, 12]).max()  # still first among the rest


@pytest.mark.parametrize("n_classes", [1, 3])
def test_one_brand_given_flags_nothing_and_ranks_by_its_probability(n_classes: int) -> None:
    given = np.full(6, 0 if n_classes == 1 else 2)
    probs = np.random.default_rng(0).dirichlet(np.ones(n_classes), size=6)
    scores = likely_mislabelled_scores(given, probs)
    assert (scores < 1).all()
    assert np.allclose(scores, 1 - probs[:, given[0]])


def test_no_photos_give_no_scores() -> None:
    assert likely_mislabelled_scores(np.array([], dtype=int), np.zeros((0, 3))).shape == (0,)


def test_whole_floats_and_lists_are_accepted_as_labels() -> None:
    given, probs, _ = noisy_three_brands()
    as_floats = likely_mislabelled_scores(given.astype(float), probs.tolist())
    assert np.array_equal(as_floats, likely_mislabelled_scores(given.tolist(), probs))


@pytest.mark.parametrize(
    ("given", "probs", "message"),
    [
        (np.zeros((2, 2), dtype=int), np.full((2, 2), 0.5), "1-D array"),
        (np.zeros(2, dtype=int), np.full(2, 0.5), "2-D"),
        (np.zeros(3, dtype=int), np.full((2, 2), 0.5), "3 labels but probs has 2 rows"),
        (np.array([0.0, 0.5]), np.full((2, 2), 0.5), "integer class indices"),
        (np.array(["a", "b"]), np.full((2, 2), 0.5), "integer class indices"),
        (np.array([0, 2]), np.full((2, 2), 0.5), r"class indices in 0\.\.1, got 0\.\.2"),
        (np.array([-1, 0]), np.full((2, 2), 0.5), r"class indices in 0\.\.1"),
        (np.array([0, 1]), np.array([[0.5, np.nan], [0.5, 0.5]]), "NaN or infinite"),
        (np.array([0, 1]), np.array([[3.0, -2.0], [0.5, 0.5]]), r"probabilities in \[0, 1\]"),
        (np.array([0, 1]), np.array([["a", "b"], ["c", "d"]]), "numeric"),
    ],
)
def test_bad_inputs_raise_clear_errors(given: np.ndarray, probs: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        likely_mislabelled_scores(given, probs)
