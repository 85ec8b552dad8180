"""Which photos does likely_mislabelled flag when 5% of the labels are wrong? Own rule against cleanlab.

    python bench/bench_label_issues.py [--data FOLDER] [--input-size 299] [--seeds 10] [--noise 0.05 0.10] [--json OUT]

Pooled InceptionV3 features (ImageNet weights) of a labelled folder are computed once
(``feedback.simulate.folder_features``, through the activation cache under
``SHOELABEL_HOME``, default a folder under the system temp directory; the pooled
features are kept there too, so a second run skips InceptionV3). For each seed a share
of the labels is flipped, at random, to another brand; out-of-fold probabilities
are computed on the noisy labels (``out_of_fold_probabilities``, as a round does);
then each method flags photos. Reported, mean over seeds: the flagged set's
precision, recall and F1 against the flipped photos, precision@k of the method's
ranking with k = the number flipped, and the method's time (out-of-fold fitting
excluded: it is shared). Photos mislabelled in the folder itself count as false
positives, so precision is a lower bound. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: A method takes (given labels, probabilities) and returns (flagged mask, ranking score: higher = more suspect).
Method = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def handwritten_rule(given: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The project's own confident-learning rule before cleanlab (frozen copy, for the record):
    suspect when another brand reaches its mean self-confidence while the given brand does not."""
    n, n_classes = probs.shape
    thresholds = np.array([probs[given == j, j].mean() if np.any(given == j) else 1.0 for j in range(n_classes)])
    p_given = probs[np.arange(n), given]
    others = probs.copy()
    others[np.arange(n), given] = -np.inf
    best_other = others.max(axis=1)
    best_other_class = others.argmax(axis=1)
    suspect = (best_other >= thresholds[best_other_class]) & (p_given < thresholds[given])
    return suspect, np.where(suspect, 1.0, 0.0) + (best_other - p_given)


def handwritten_rule_self_confidence(given: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The own flags, ranked like cleanlab's self_confidence: is a better ranking all cleanlab adds?"""
    suspect, _ = handwritten_rule(given, probs)
    return suspect, np.where(suspect, 1.0, 0.0) + (1.0 - probs[np.arange(len(given)), given])


def product_rule(given: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the review queue uses now: ``likely_mislabelled_scores`` (flagged = score >= 1)."""
    from modeling.label_issues import likely_mislabelled_scores

    scores = likely_mislabelled_scores(given, probs)
    return scores >= 1.0, scores


def cleanlab_method(filter_by: str, rank_by: str) -> Method:
    """``cleanlab.filter.find_label_issues(filter_by=...)``; ranked by ``get_label_quality_scores(method=...)``."""

    def run(given: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flagged = find_label_issues(given, probs, filter_by=filter_by, n_jobs=1)
            quality = get_label_quality_scores(given, probs, method=rank_by)
        return np.asarray(flagged, dtype=bool), np.where(flagged, 1.0, 0.0) + (1.0 - quality)

    return run


def methods() -> dict[str, Method]:
    return {
        "own rule (hand-written)": handwritten_rule,
        "own rule, ranked by self-confidence": handwritten_rule_self_confidence,
        "likely_mislabelled_scores (product)": product_rule,
        "cleanlab prune_by_noise_rate (default)": cleanlab_method("prune_by_noise_rate", "self_confidence"),
        "cleanlab prune_by_class": cleanlab_method("prune_by_class", "self_confidence"),
        "cleanlab both": cleanlab_method("both", "self_confidence"),
        "cleanlab confident_learning": cleanlab_method("confident_learning", "self_confidence"),
        "cleanlab prune_by_noise_rate, normalized_margin": cleanlab_method("prune_by_noise_rate", "normalized_margin"),
    }


def flip_labels(
    labels: np.ndarray, n_classes: int, share: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy copy of ``labels`` with ``round(share * n)`` of them moved to another class, and the flipped rows."""
    flipped = np.sort(rng.choice(len(labels), size=max(1, round(share * len(labels))), replace=False))
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, n_classes, size=len(flipped))) % n_classes
    return noisy, flipped


def measure(flagged: np.ndarray, scores: np.ndarray, flipped: np.ndarray, n: int) -> dict[str, float]:
    truth = np.zeros(n, dtype=bool)
    truth[flipped] = True
    hits = int((flagged & truth).sum())
    precision = hits / flagged.sum() if flagged.any() else 0.0
    recall = hits / truth.sum()
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    top = np.argsort(-scores, kind="stable")[: len(flipped)]
    return {
        "flagged": int(flagged.sum()),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "precision_at_k": float(truth[top].mean()),
    }


def pooled_features(data: Path, input_size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features of the folder, from ``$SHOELABEL_HOME`` when an earlier run left them there."""
    from feedback.simulate import folder_features
    from shoelabel.settings import get_settings

    kept = get_settings().home / f"bench-label-issues-{data.name}-{input_size}.npz"
    if kept.is_file():
        saved = np.load(kept)
        return saved["features"], saved["labels"], [str(name) for name in saved["names"]]
    started = time.perf_counter()
    features, labels, names = folder_features(data, input_size)
    print(f"features of {len(labels)} photos in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    kept.parent.mkdir(parents=True, exist_ok=True)
    np.savez(kept, features=features, labels=labels, names=np.array(names))
    return features, labels, names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    shared = Path(os.environ.get("SHOELABEL_SHARED", REPO.parent / "shared"))
    parser.add_argument("--data", type=Path, default=shared / "data" / "shoes-train")
    parser.add_argument("--weights", type=Path, default=shared / "weights" / "inception_v3_imagenet_notop.h5")
    parser.add_argument("--input-size", type=int, default=299, help="InceptionV3 input size (smaller is faster)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.05, 0.10], help="share(s) of labels to flip")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "bench-label-issues.json")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: no labelled photos at {args.data} (give --data)", file=sys.stderr)
        return 0
    os.environ.setdefault("SHOELABEL_HOME", str(Path(tempfile.gettempdir()) / "shoelabel-label-issues"))
    if args.weights.is_file():
        os.environ.setdefault("SHOELABEL_INCEPTION_WEIGHTS", str(args.weights))

    from modeling.label_issues import out_of_fold_probabilities

    features, labels, names = pooled_features(args.data, args.input_size)
    n, n_classes = len(labels), len(names)
    print(f"{n} photos, brands {dict(zip(names, np.bincount(labels, minlength=n_classes).tolist(), strict=True))}")
    clean = out_of_fold_probabilities(features, labels, n_classes)
    context = {
        "oof_accuracy": float((clean.argmax(axis=1) == labels).mean()),
        "flagged_without_flips": {name: int(method(labels, clean)[0].sum()) for name, method in methods().items()},
    }
    print(f"out-of-fold accuracy on the folder's own labels: {context['oof_accuracy']:.3f}; flagged with no flips:")
    for name, count in context["flagged_without_flips"].items():
        print(f"  {count:4d}  {name}")
    runs: list[dict] = []
    for share in args.noise:
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            noisy, flipped = flip_labels(labels, n_classes, share, rng)
            started = time.perf_counter()
            probs = out_of_fold_probabilities(features, noisy, n_classes, seed=seed)
            oof_s = time.perf_counter() - started
            for name, method in methods().items():
                started = time.perf_counter()
                flagged, scores = method(noisy, probs)
                elapsed = time.perf_counter() - started
                runs.append(
                    {"noise": share, "seed": seed, "method": name, "flipped": len(flipped), "oof_s": oof_s}
                    | measure(flagged, scores, flipped, n)
                    | {"ms": elapsed * 1000}
                )
                runs[-1] = {k: round(v, 4) if isinstance(v, float) else v for k, v in runs[-1].items()}
    summary = summarise(runs)
    print_table(summary)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "data": str(args.data.name),
                "photos": n,
                "brands": names,
                "input_size": args.input_size,
                "seeds": args.seeds,
                "clean_labels": context,
                "summary": summary,
                "runs": runs,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"raw numbers: {args.json}")
    return 0


def summarise(runs: list[dict]) -> list[dict]:
    keys = ["flagged", "precision", "recall", "f1", "precision_at_k", "ms"]
    out = []
    for share in dict.fromkeys(r["noise"] for r in runs):
        for name in dict.fromkeys(r["method"] for r in runs):
            mine = [r for r in runs if r["noise"] == share and r["method"] == name]
            row = {"noise": share, "method": name, "flipped": mine[0]["flipped"]}
            row |= {k: round(statistics.mean(r[k] for r in mine), 3) for k in keys}
            row["f1_sd"] = round(statistics.pstdev(r["f1"] for r in mine), 3)
            row["oof_s"] = round(statistics.mean(r["oof_s"] for r in mine), 2)
            out.append(row)
    return out


def print_table(summary: list[dict]) -> None:
    header = f"{'noise':>5} {'method':<50} {'flagged':>7} {'prec':>6} {'recall':>6} {'F1':>6} {'P@k':>6} {'ms':>7}"
    print(header)
    print("-" * len(header))
    for row in summary:
        print(
            f"{row['noise']:>5.0%} {row['method']:<50} {row['flagged']:>7.1f} {row['precision']:>6.3f} "
            f"{row['recall']:>6.3f} {row['f1']:>6.3f} {row['precision_at_k']:>6.3f} {row['ms']:>7.1f}"
        )
    oof = statistics.mean(row["oof_s"] for row in summary)
    print(f"(k = flipped photos; out-of-fold probabilities: {oof:.1f} s per seed, not in ms)")


if __name__ == "__main__":
    raise SystemExit(main())
