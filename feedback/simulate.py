"""Label-efficiency simulation: how many labels does each query strategy need?

    python -m feedback.simulate --data FOLDER|MANIFEST [--attribute NAME] --strategy NAME|all
        [--seed-per-class 2] [--batch 10] [--rounds 30] [--seeds 3] [--target 0.98] [--cold-start]
        [--json] [--plot PATH]

An oracle replays the true labels of a labelled folder (its subfolders are the classes) or of
one attribute column of a manifest. A stratified held-out split (15%) is set aside; the rest is
the pool. Starting from a few labels per class, each round the strategy picks ``--batch``
images, the oracle labels them, and the InceptionV3 head (a softmax layer, fitted as
multinomial logistic regression) is retrained on cached features; held-out accuracy and macro
F1 are recorded after every round. ``disagreement`` uses a committee of two heads, one on
the frozen ``mixed5``-``mixed8`` features and one on ``mixed9``-``mixed10``. Classes with too
few photos to hold one out and seed the pool are left out, with a message.

``--cold-start`` measures a new attribute's first labels instead: with no label at all, the
first 20, 50 and 100 photos chosen by TypiClust (typical photos of as many clusters) against
the same numbers chosen at random, by held-out accuracy of the head trained on them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from feedback.strategies import UNLABELLED_STRATEGIES, Candidates, get_strategy
from modeling.evaluate import read_labelled_folder, read_manifest_labels
from modeling.feature_cache import CUT_CHANNELS, LOW_FEATURES, inception_activation_cache
from modeling.typiclust import typical_picks
from shoelabel.cli import command
from shoelabel.errors import UserError
from shoelabel.images import ImageError, inspect
from shoelabel.progress import Progress, TerminalProgress
from shoelabel.settings import get_settings

FROZEN_DIM = LOW_FEATURES + CUT_CHANNELS  # the pooled features' first columns: mixed5-8; the rest, mixed9-10


class SimulationError(UserError, ValueError):
    """The simulation cannot run as asked (e.g. more seed labels than a class has photos)."""


@dataclass
class Curve:
    strategy: str
    seed: int
    labels: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    macro_f1: list[float] = field(default_factory=list)


class Head:
    """The classification head on standardised pooled features."""

    def __init__(self, columns: slice = slice(None), c: float = 0.05) -> None:
        self.columns, self.c = columns, c

    def fit(self, x: np.ndarray, y: np.ndarray, n_classes: int) -> Head:
        self.n_classes = n_classes
        self.scaler = StandardScaler().fit(x[:, self.columns])
        self.model = LogisticRegression(C=self.c, max_iter=3000)
        self.model.fit(self.scaler.transform(x[:, self.columns]), y)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros((len(x), self.n_classes))
        out[:, self.model.classes_] = self.model.predict_proba(self.scaler.transform(x[:, self.columns]))
        return out


def simulate(
    features: np.ndarray,
    labels: np.ndarray,
    strategy: str,
    *,
    seed: int = 0,
    seed_per_class: int = 2,
    batch: int = 10,
    rounds: int = 30,
    holdout_fraction: float = 0.15,
    split_seed: int = 0,
    class_names: Sequence[str] | None = None,
) -> Curve:
    """One learning curve: held-out metrics after each round of ``batch`` oracle labels."""
    n_classes = int(labels.max()) + 1
    indices = np.arange(len(labels))
    pool, holdout = train_test_split(indices, test_size=holdout_fraction, stratify=labels, random_state=split_seed)
    per_class = np.bincount(labels[pool], minlength=n_classes)
    if per_class.min() < seed_per_class:
        thin = int(np.argmin(per_class))
        name = class_names[thin] if class_names else f"class {thin}"
        raise SimulationError(
            f"--seed-per-class {seed_per_class} is more than the {per_class[thin]} photo(s) of {name} "
            "in the pool; lower it or bring more photos of that brand."
        )
    rng = np.random.default_rng(seed)
    labelled = np.concatenate(
        [rng.choice(pool[labels[pool] == c], seed_per_class, replace=False) for c in range(n_classes)]
    )
    rank = get_strategy(strategy).rank
    curve = Curve(strategy, seed)
    for round_index in range(rounds + 1):
        head = Head().fit(features[labelled], labels[labelled], n_classes)
        predicted = head.predict_proba(features[holdout]).argmax(axis=1)
        curve.labels.append(len(labelled))
        curve.accuracy.append(float(np.mean(predicted == labels[holdout])))
        curve.macro_f1.append(float(f1_score(labels[holdout], predicted, average="macro")))
        unlabelled = np.setdiff1d(pool, labelled)
        if round_index == rounds or len(unlabelled) == 0:
            break
        probabilities = {"inception": head.predict_proba(features[unlabelled])}
        if strategy == "disagreement":
            committee = {
                "mixed5-8": Head(slice(0, FROZEN_DIM)).fit(features[labelled], labels[labelled], n_classes),
                "mixed9-10": Head(slice(FROZEN_DIM, None)).fit(features[labelled], labels[labelled], n_classes),
            }
            probabilities = {name: h.predict_proba(features[unlabelled]) for name, h in committee.items()}
        candidates = Candidates(
            unlabelled,
            [str(c) for c in range(n_classes)],
            probabilities,
            features=lambda positions, u=unlabelled: features[u[positions]],
        )
        picked = unlabelled[rank(candidates, min(batch, len(unlabelled)), rng)]
        labelled = np.concatenate([labelled, picked])
    return curve


def full_data_accuracy(
    features: np.ndarray, labels: np.ndarray, holdout_fraction: float = 0.15, split_seed: int = 0
) -> float:
    indices = np.arange(len(labels))
    pool, holdout = train_test_split(indices, test_size=holdout_fraction, stratify=labels, random_state=split_seed)
    head = Head().fit(features[pool], labels[pool], int(labels.max()) + 1)
    return float(np.mean(head.predict_proba(features[holdout]).argmax(axis=1) == labels[holdout]))


COLD_START_BUDGETS = (20, 50, 100)


def cold_start(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    seeds: int = 3,
    budgets: Sequence[int] = COLD_START_BUDGETS,
    holdout_fraction: float = 0.15,
    split_seed: int = 0,
) -> dict[str, dict[int, float]]:
    """Held-out accuracy of the head trained on the first ``budget`` labels of a new attribute, chosen by
    TypiClust or at random, averaged over ``seeds`` (both see the same pool and held-out photos)."""
    n_classes = int(labels.max()) + 1
    pool, holdout = train_test_split(
        np.arange(len(labels)), test_size=holdout_fraction, stratify=labels, random_state=split_seed
    )
    results: dict[str, dict[int, list[float]]] = {"typiclust": {}, "random": {}}
    for budget in budgets:
        if budget > len(pool):
            continue
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            chosen = {
                "typiclust": pool[typical_picks(features[pool], budget, seed=seed)],
                "random": rng.choice(pool, budget, replace=False),
            }
            for start, picked in chosen.items():
                if len(np.unique(labels[picked])) < 2:
                    accuracy = float(np.mean(labels[holdout] == labels[picked][0]))  # one class: always that one
                else:
                    head = Head().fit(features[picked], labels[picked], n_classes)
                    accuracy = float(np.mean(head.predict_proba(features[holdout]).argmax(axis=1) == labels[holdout]))
                results[start].setdefault(budget, []).append(accuracy)
    return {start: {b: float(np.mean(v)) for b, v in by_budget.items()} for start, by_budget in results.items()}


def summarise(
    curves: list[Curve], full_accuracy: float, pool_size: int, target: float = 0.98
) -> dict[str, dict[str, float | None]]:
    """Per strategy: labels to reach ``target`` of full-data accuracy, accuracy at 10/20/40% of the pool,
    normalised area under the accuracy curve, all averaged over seeds."""
    table: dict[str, dict[str, float | None]] = {}
    for strategy in dict.fromkeys(c.strategy for c in curves):
        mine = [c for c in curves if c.strategy == strategy]
        row: dict[str, float | None] = {}
        reach = []
        for c in mine:
            hits = [n for n, a in zip(c.labels, c.accuracy, strict=True) if a >= target * full_accuracy]
            reach.append(hits[0] if hits else np.nan)
        row["labels_to_target"] = None if np.all(np.isnan(reach)) else float(np.nanmean(reach))
        row["reached_runs"] = int(np.sum(~np.isnan(reach)))
        row["runs"] = len(mine)
        for share in (0.1, 0.2, 0.4):
            budget = share * pool_size
            row[f"accuracy_at_{int(share * 100)}pct"] = float(
                np.mean([np.interp(budget, c.labels, c.accuracy) for c in mine])
            )
        row["auc"] = float(np.mean([np.trapezoid(c.accuracy, c.labels) / (c.labels[-1] - c.labels[0]) for c in mine]))
        row["final_accuracy"] = float(np.mean([c.accuracy[-1] for c in mine]))
        table[strategy] = row
    return table


def plot_curves(curves: list[Curve], full_accuracy: float, path: Path, pool_size: int, target: float = 0.98) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for strategy in dict.fromkeys(c.strategy for c in curves):
        mine = [c for c in curves if c.strategy == strategy]
        length = min(len(c.labels) for c in mine)
        x = np.array(mine[0].labels[:length])
        acc = np.array([c.accuracy[:length] for c in mine])
        style = {"linestyle": "--", "color": "black"} if strategy == "random" else {}
        ax.plot(x, acc.mean(axis=0), label=strategy, **style)
        ax.fill_between(
            x, acc.min(axis=0), acc.max(axis=0), alpha=0.12, **({"color": "black"} if strategy == "random" else {})
        )
    ax.axhline(full_accuracy, color="grey", linewidth=0.8)
    ax.text(ax.get_xlim()[0], full_accuracy, " all labels", va="bottom", color="grey")
    ax.axhline(target * full_accuracy, color="grey", linewidth=0.8, linestyle=":")
    for share in (0.1, 0.2, 0.4):
        ax.axvline(share * pool_size, color="lightgrey", linewidth=0.8)
    ax.set_xlabel("labelled images")
    ax.set_ylabel("held-out accuracy")
    ax.set_title("Label efficiency of query strategies (mean over seeds, band: min-max)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def labelled_photos(data: Path, attribute: str) -> tuple[list[Path], list[str]]:
    """The photos and their classes: a folder's subfolders, or a manifest's ``attribute`` column (photos
    whose cell is empty are left out)."""
    if data.is_file():
        files, columns = read_manifest_labels(data)
        if attribute not in columns:
            raise SimulationError(f"{data} has no {attribute!r} column; its attributes: {', '.join(columns)}.")
        kept = [(f, c) for f, c in zip(files, columns[attribute], strict=True) if c]
        return [f for f, _ in kept], [c for _, c in kept]
    return read_labelled_folder(data)


def without_thin_classes(
    features: np.ndarray, labels: np.ndarray, names: list[str], fewest: int
) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, int]]:
    """Leave out the classes with fewer than ``fewest`` photos (too few to hold one out and seed the pool)."""
    counts = np.bincount(labels, minlength=len(names))
    keep = [c for c in range(len(names)) if counts[c] >= fewest]
    left_out = {names[c]: int(counts[c]) for c in range(len(names)) if counts[c] < fewest}
    rows = np.isin(labels, keep)
    remap = {old: new for new, old in enumerate(keep)}
    return features[rows], np.array([remap[int(c)] for c in labels[rows]]), [names[c] for c in keep], left_out


def folder_features(
    data: Path, input_size: int = 299, progress: Progress | None = None, attribute: str = "brand"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Pooled InceptionV3 features (ImageNet weights, no fine-tuning) of a labelled folder or manifest,
    through the product's activation cache. Unreadable files are reported and left out."""
    from modeling.architectures import build_inception, split_inception, weights_id
    from modeling.fitting import ensure_activations, upper_pooled

    listed, listed_brands = labelled_photos(data, attribute)
    files, brands, shas = [], [], []
    for path, brand in zip(listed, listed_brands, strict=True):
        try:
            shas.append(inspect(path).sha256)
        except ImageError as exc:
            print(f"skipped {exc}", file=sys.stderr)
            continue
        files.append(path)
        brands.append(brand)
    names = sorted(set(brands))
    source = get_settings().inception_weights_source()
    model = build_inception(len(names), source, input_size)
    cache = inception_activation_cache(weights_id(source), input_size)
    lower, _ = split_inception(model)
    ensure_activations(
        lower, cache, shas, [str(f) for f in files], input_size, views=1, progress=progress or (lambda f, t: None)
    )
    features = upper_pooled(model, cache, shas, view=0)
    return features, np.array([names.index(b) for b in brands]), names


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m feedback.simulate", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="a labelled folder (one subfolder per class) or a manifest"
    )
    parser.add_argument("--attribute", default="brand", help="with a manifest: the attribute column to label")
    parser.add_argument("--target", type=float, default=0.98, help="the share of full-data accuracy to count labels to")
    parser.add_argument(
        "--cold-start", action="store_true", help="compare TypiClust and random first labels (20, 50, 100)"
    )
    parser.add_argument("--strategy", default="all", help=f"one of {', '.join(UNLABELLED_STRATEGIES)}, or 'all'")
    parser.add_argument("--seed-per-class", type=int, default=2)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=3, help="repeat with this many seeds")
    parser.add_argument("--json", action="store_true", help="print the curves and summary as JSON")
    parser.add_argument("--plot", type=Path, default=None, help="save the learning curves as a PNG")
    parser.add_argument("--input-size", type=int, default=299, help="InceptionV3 input size in pixels")
    return parser


def _learnable_features(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, int]]:
    """Features and labels of the data, classes too thin to seed and hold out left out (said on stderr)."""
    bar = TerminalProgress("InceptionV3 features")
    try:
        features, labels, names = folder_features(args.data, args.input_size, bar, args.attribute.lower())
    finally:
        bar.close()
    fewest = max(args.seed_per_class + 2, 3)
    features, labels, names, left_out = without_thin_classes(features, labels, names, fewest)
    if left_out:
        listed = ", ".join(f"{name} ({n})" for name, n in sorted(left_out.items()))
        print(f"left out, with fewer than {fewest} photos: {listed}", file=sys.stderr)
    return features, labels, names, left_out


def _curves(
    args: argparse.Namespace, strategies: list[str], features: np.ndarray, labels: np.ndarray, names: list[str]
) -> list[Curve]:
    curves = []
    for strategy in strategies:
        for seed in range(args.seeds):
            curve = simulate(
                features,
                labels,
                strategy,
                seed=seed,
                seed_per_class=args.seed_per_class,
                batch=args.batch,
                rounds=args.rounds,
                class_names=names,
            )
            curves.append(curve)
            print(
                f"{strategy:<17} seed {seed}: final accuracy {curve.accuracy[-1]:.3f} with {curve.labels[-1]} labels",
                file=sys.stderr,
            )
    return curves


@command
def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    strategies = list(UNLABELLED_STRATEGIES) if args.strategy == "all" else [args.strategy]
    for name in strategies:
        if name not in UNLABELLED_STRATEGIES:
            parser.error(f"unknown strategy {name!r}; choose from {', '.join(UNLABELLED_STRATEGIES)} or 'all'")
    features, labels, names, left_out = _learnable_features(args)
    if args.cold_start:
        starts = cold_start(features, labels, seeds=args.seeds)
        if args.json:
            print(json.dumps({"classes": names, "left_out": left_out, "cold_start": starts}, indent=2))
        else:
            print(format_cold_start(starts, args.attribute))
        return 0
    full = full_data_accuracy(features, labels)
    pool_size = len(labels) - int(np.ceil(0.15 * len(labels)))
    curves = _curves(args, strategies, features, labels, names)
    table = summarise(curves, full, pool_size, args.target)
    if args.plot:
        plot_curves(curves, full, args.plot, pool_size, args.target)
    if not args.json:
        print(f"full-data accuracy (all {pool_size} pool labels): {full:.3f}")
        print(format_table(table, pool_size, args.target))
        return 0
    run = {"classes": names, "left_out": left_out, "target": args.target, "pool_size": pool_size}
    run |= {"full_data_accuracy": full, "summary": table, "curves": [c.__dict__ for c in curves]}
    print(json.dumps(run, indent=2))
    return 0


def format_cold_start(starts: dict[str, dict[int, float]], attribute: str) -> str:
    budgets = sorted({b for by_budget in starts.values() for b in by_budget})
    lines = [
        f"| first {attribute} labels chosen by | " + " | ".join(f"accuracy after {b}" for b in budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    for start, by_budget in starts.items():
        lines.append(f"| {start} | " + " | ".join(f"{by_budget[b]:.3f}" for b in budgets) + " |")
    return "\n".join(lines)


def format_table(table: dict[str, dict[str, float | None]], pool_size: int, target: float = 0.98) -> str:
    lines = [
        f"| strategy | labels to {target:.0%} of full-data acc. | acc. @10% pool | @20% | @40% | AUC |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in table.items():
        reach = (
            f"{row['labels_to_target']:.0f} ({row['labels_to_target'] / pool_size:.0%}), "
            f"{row['reached_runs']}/{row['runs']} runs"
            if row["labels_to_target"]
            else f"not reached in {row['runs']} runs"
        )
        lines.append(
            f"| {name} | {reach} | {row['accuracy_at_10pct']:.3f} | {row['accuracy_at_20pct']:.3f} | "
            f"{row['accuracy_at_40pct']:.3f} | {row['auc']:.3f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
