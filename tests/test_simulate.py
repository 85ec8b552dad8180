"""The label-efficiency simulation: curves, summary, plot, and the command on real features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from feedback.simulate import (
    FROZEN_DIM,
    Curve,
    cold_start,
    full_data_accuracy,
    main,
    plot_curves,
    simulate,
    summarise,
    without_thin_classes,
)


def blobs(n_per: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1, 2], n_per)
    dims = FROZEN_DIM + 120  # the disagreement committee splits the columns at FROZEN_DIM
    centres = rng.normal(0, 3, (3, dims))
    features = centres[labels] + rng.normal(0, 6, (len(labels), dims))
    return features, labels


@pytest.mark.parametrize("strategy", ["margin", "random", "disagreement", "diverse"])
@pytest.mark.slow
def test_curves_grow_by_the_batch_and_learn(strategy: str) -> None:
    features, labels = blobs()
    curve = simulate(features, labels, strategy, seed=1, seed_per_class=2, batch=5, rounds=6)
    assert curve.labels == [6, 11, 16, 21, 26, 31, 36]
    assert len(curve.accuracy) == len(curve.macro_f1) == 7
    assert curve.accuracy[-1] > 0.6 and curve.accuracy[-1] >= curve.accuracy[0] - 0.05


def test_the_oracle_stops_when_the_pool_is_used_up() -> None:
    features, labels = blobs(n_per=10)
    curve = simulate(features, labels, "margin", batch=10, rounds=50)
    pool = len(labels) - int(np.ceil(0.15 * len(labels)))
    assert curve.labels[-1] == pool


def test_summary_reads_thresholds_off_the_curves(tmp_path: Path) -> None:
    curves = [
        Curve("margin", 0, [10, 20, 40], [0.5, 0.9, 0.95], [0.5, 0.9, 0.95]),
        Curve("random", 0, [10, 20, 40], [0.5, 0.7, 0.92], [0.5, 0.7, 0.92]),
    ]
    table = summarise(curves, full_accuracy=0.95, pool_size=100)
    assert table["margin"]["labels_to_target"] == 40 and table["random"]["labels_to_target"] is None
    assert table["margin"]["accuracy_at_10pct"] == pytest.approx(0.5)
    assert table["margin"]["accuracy_at_20pct"] == pytest.approx(0.9)
    assert table["margin"]["auc"] > table["random"]["auc"]
    png = plot_curves(curves, 0.95, tmp_path / "curves.png", pool_size=100)
    assert png.stat().st_size > 5_000


def test_full_data_accuracy_is_high_on_separable_data() -> None:
    features, labels = blobs()
    assert full_data_accuracy(features, labels) > 0.9


@pytest.mark.slow
def test_simulate_command_on_a_labelled_folder(home: Path, brand_folder: Path, weights_path: Path, capsys) -> None:
    (brand_folder / "acme" / "broken.jpg").write_text("not an image")
    code = main(
        [
            "--data",
            str(brand_folder),
            "--strategy",
            "margin",
            "--seeds",
            "1",
            "--rounds",
            "2",
            "--batch",
            "4",
            "--input-size",
            "75",
            "--json",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["classes"] == ["acme", "bolt", "crest"]
    assert [c["labels"] for c in result["curves"]] == [[6, 10, 14]]
    assert "broken.jpg" in captured.err


def test_unknown_strategy_is_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--data", ".", "--strategy", "cleverest"])
    assert "unknown strategy" in capsys.readouterr().err


def test_more_seed_labels_than_a_brand_has_is_a_clear_error() -> None:
    features, labels = blobs(n_per=5)  # 4 of each brand left in the pool
    with pytest.raises(ValueError, match=r"--seed-per-class 5 is more than the 4 photo\(s\) of acme"):
        simulate(features, labels, "margin", seed_per_class=5, class_names=["acme", "bolt", "crest"])


def test_cold_start_compares_typiclust_and_random_first_labels() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 6, (6, 16))
    sizes = [150, 100, 60, 30, 15, 10]  # long-tailed: random first labels miss the small classes
    features = np.concatenate([centres[c] + rng.normal(0, 1, (n, 16)) for c, n in enumerate(sizes)])
    labels = np.repeat(np.arange(6), sizes)
    starts = cold_start(features, labels, seeds=3, budgets=(6, 20))
    assert set(starts) == {"typiclust", "random"} and set(starts["typiclust"]) == {6, 20}
    assert starts["typiclust"][6] > starts["random"][6]  # one typical photo per cluster covers the classes
    assert all(0 <= a <= 1 for by_budget in starts.values() for a in by_budget.values())


def test_thin_classes_are_left_out_with_their_counts() -> None:
    features = np.arange(20, dtype=float).reshape(10, 2)
    labels = np.array([0] * 6 + [1] * 3 + [2])
    kept, relabelled, names, left_out = without_thin_classes(features, labels, ["a", "b", "c"], fewest=4)
    assert names == ["a"] and left_out == {"b": 3, "c": 1} and len(kept) == 6 and set(relabelled) == {0}


@pytest.mark.slow
def test_simulate_reads_one_attribute_of_a_manifest(home: Path, brand_folder: Path, weights_path: Path, capsys) -> None:
    manifest = brand_folder / "labels.csv"
    rows = [
        f"{p.relative_to(brand_folder)},{'Dark' if p.parent.name == 'crest' else 'Light'}"
        for p in sorted(brand_folder.rglob("*.jpg"))
    ]
    manifest.write_text("file,colour\n" + "\n".join(rows) + "\n")
    code = main(
        [
            "--data",
            str(manifest),
            "--attribute",
            "colour",
            "--cold-start",
            "--seeds",
            "1",
            "--input-size",
            "75",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["classes"] == ["Dark", "Light"] and set(result["cold_start"]) == {"typiclust", "random"}
    assert set(result["cold_start"]["typiclust"]) == {"20"}  # the larger budgets exceed the 30-photo pool
