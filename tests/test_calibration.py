"""Confidences that mean what they say: the temperature fit, the calibration error, the linear head
and its folded standardisation, and a temperature that travels with a saved model to a new process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modeling.calibration import (
    calibrate,
    expected_calibration_error,
    fit_temperature,
    softmax,
    validation_slice,
)
from modeling.linear_head import fit_linear_head, out_of_fold_logits
from tests.conftest import REPO


def sampled(n: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits, and labels drawn from softmax(logits / temperature): calibrated at that temperature."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, 4))
    probs = softmax(logits / temperature)
    labels = np.array([rng.choice(4, p=p) for p in probs])
    return logits, labels


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_the_fitted_temperature_is_the_one_the_labels_were_drawn_at(true_temperature: float) -> None:
    logits, labels = sampled(4000, true_temperature)
    assert fit_temperature(logits, labels) == pytest.approx(true_temperature, rel=0.12)


def test_calibration_error_of_known_cases() -> None:
    sure = np.tile([[1.0, 0.0]], (10, 1))
    assert expected_calibration_error(sure, np.array([0] * 5 + [1] * 5)) == pytest.approx(0.5)
    assert expected_calibration_error(sure, np.zeros(10, int)) == pytest.approx(0.0)
    # 70% confident, right 7 times in 10: no gap
    seventy = np.tile([[0.7, 0.3]], (10, 1))
    assert expected_calibration_error(seventy, np.array([0] * 7 + [1] * 3)) == pytest.approx(0.0, abs=1e-9)


def test_a_temperature_fitted_on_overconfident_logits_lowers_the_error() -> None:
    logits, labels = sampled(3000, 3.0, seed=1)  # the logits are 3x too sharp
    fitted = calibrate(logits, labels)
    assert fitted.temperature > 2.0
    assert fitted.ece_after < fitted.ece_before / 2


def test_the_validation_slice_is_stratified_and_spares_rare_classes() -> None:
    labels = np.array([0] * 50 + [1] * 20 + [2] * 3)
    fit, validation = validation_slice(labels, 0.1, seed=0)
    assert sorted(np.concatenate([fit, validation]).tolist()) == list(range(len(labels)))
    assert np.bincount(labels[validation], minlength=3).tolist() == [5, 2, 0]
    assert np.array_equal(validation, validation_slice(labels, 0.1, seed=0)[1])  # seeded


def blobs(n_per_class: int, n_classes: int, dims: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two views of each photo (the second a noisy copy), on very different feature scales."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (n_classes, dims))
    labels = np.repeat(np.arange(n_classes), n_per_class)
    photo = centres[labels] + rng.normal(0, 1.2, (len(labels), dims))
    scale = np.logspace(-2, 2, dims)
    views = np.stack([photo, photo + rng.normal(0, 0.3, photo.shape)], axis=1) * scale + 5.0
    return views.astype(np.float32), labels


def test_the_linear_head_folds_its_standardisation_and_is_calibrated_out_of_fold() -> None:
    features, labels = blobs(60, 3, 12, seed=0)
    head = fit_linear_head(features, labels, 3, seed=0)
    assert head.c in (0.01, 0.03, 0.1, 0.3, 1.0) and set(head.cv_accuracy) == {0.01, 0.03, 0.1, 0.3, 1.0}
    assert head.cv_accuracy[head.c] == max(head.cv_accuracy.values())
    test, test_labels = blobs(40, 3, 12, seed=0)  # same centres, new photos
    accuracy = np.mean(head.logits(test[:, 0]).argmax(axis=1) == test_labels)
    assert accuracy > 0.8  # on raw, unstandardised features: the standardisation is in the weights
    oof = out_of_fold_logits(features, labels, 3, head.c)
    assert head.calibration is not None and head.calibration.n == len(labels)
    assert head.calibration.temperature == pytest.approx(fit_temperature(oof, labels), rel=1e-3)


def test_a_class_missing_from_a_fold_is_never_predicted_there() -> None:
    features, labels = blobs(10, 3, 6, seed=2)
    labels[-1] = 3  # one photo of a fourth class: the fold that scores it has not seen the class
    oof = out_of_fold_logits(features, labels, 4, c=0.1)
    assert oof[-1].argmax() != 3


SAVE_AND_PREDICT = """
import sys, numpy as np, keras
from modeling.architectures import build_cnn
from modeling.calibration import fold_temperature
model = build_cnn(3, input_size=32, widths=(8, 16), seed=0)
x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
before = model.predict(x, verbose=0)
fold_temperature(model, float(sys.argv[2]))
model.save(sys.argv[1])
np.save(sys.argv[1] + ".x.npy", x)
np.save(sys.argv[1] + ".before.npy", before)
"""

LOAD_AND_PREDICT = """
import sys, numpy as np
from modeling.registry import load_fresh
model = load_fresh(sys.argv[1])
np.save(sys.argv[1] + ".after.npy", model.predict(np.load(sys.argv[1] + ".x.npy"), verbose=0))
"""


@pytest.mark.slow
def test_a_folded_temperature_is_applied_by_a_model_loaded_in_a_new_process(tmp_path: Path) -> None:
    path, temperature = str(tmp_path / "model.keras"), 2.5
    for script, args in ((SAVE_AND_PREDICT, [path, str(temperature)]), (LOAD_AND_PREDICT, [path])):
        done = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    before, after = np.load(path + ".before.npy"), np.load(path + ".after.npy")
    expected = softmax(np.log(before) / temperature)
    assert np.allclose(after, expected, atol=1e-5)
    assert after.max(axis=1).mean() < before.max(axis=1).mean()  # a temperature above 1 softens
