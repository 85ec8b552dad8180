"""A new attribute's first labels, and how many labels colour needs, on the multi-attribute catalogue.

    python bench/bench_cold_start.py [--data labels.csv] [--home DIR] [--seeds 3] [--json OUT] [--plot OUT]

For every attribute of the manifest (default: ../shared/data/catalogue-shoes/labels.csv): held-out
accuracy of the InceptionV3 head trained on the first 20, 50 and 100 labels, chosen by TypiClust
(the queue's cold start) or at random. Then, for colour, the learning curves of the review queue's
default strategy and of random picks from a few labels per class, and the labels each needs to
reach 95% of the accuracy all the pool's labels give. Pooled ImageNet InceptionV3 features, through
the product's activation cache; a 15% stratified held-out split never picked from. Figures, not
assertions.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.catalogue_args import catalogue_parser

ATTRIBUTES = ("brand", "colour", "gender", "usage", "season")
CURVE_ATTRIBUTE = "colour"
TARGET = 0.95


def main() -> int:
    parser = catalogue_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=None, help="where the activation cache lives")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "bench-cold-start.json")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "cold-start.png")
    parser.add_argument("--curves", type=Path, default=REPO / "docs" / "colour-learning-curves.png")
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"skipped: the catalogue manifest is not at {args.data}", file=sys.stderr)
        return 0
    os.environ["SHOELABEL_HOME"] = str(args.home or Path(tempfile.mkdtemp(prefix="bench-cold-start-")))
    os.environ["SHOELABEL_INCEPTION_WEIGHTS"] = str(args.weights)

    import numpy as np

    from feedback.queue import DEFAULT_STRATEGY
    from feedback.simulate import (
        cold_start,
        folder_features,
        format_cold_start,
        format_table,
        full_data_accuracy,
        plot_curves,
        simulate,
        summarise,
        without_thin_classes,
    )
    from shoelabel.progress import TerminalProgress

    starts: dict[str, dict] = {}
    colour = None
    for attribute in ATTRIBUTES:
        bar = TerminalProgress(f"{attribute}: InceptionV3 features")
        try:
            features, labels, names = folder_features(args.data, 299, bar, attribute)
        finally:
            bar.close()
        features, labels, names, left_out = without_thin_classes(features, labels, names, 4)
        result = cold_start(features, labels, seeds=args.seeds)
        starts[attribute] = {"classes": len(names), "photos": len(labels), "left_out": left_out, **result}
        print(format_cold_start(result, attribute))
        if attribute == CURVE_ATTRIBUTE:
            colour = (features, labels, names)

    assert colour is not None
    features, labels, names = colour
    full = full_data_accuracy(features, labels)
    pool_size = len(labels) - int(np.ceil(0.15 * len(labels)))
    curves = [
        simulate(features, labels, strategy, seed=seed, batch=args.batch, rounds=args.rounds, class_names=names)
        for strategy in (DEFAULT_STRATEGY, "random")
        for seed in range(args.seeds)
    ]
    table = summarise(curves, full, pool_size, TARGET)
    print(f"\n{CURVE_ATTRIBUTE}: full-data accuracy (all {pool_size} pool labels) {full:.3f}")
    print(format_table(table, pool_size, TARGET))
    plot_curves(curves, full, args.curves, pool_size, TARGET)
    _plot_starts(starts, args.plot)

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "data": str(args.data),
                "seeds": args.seeds,
                "cold_start": starts,
                "colour": {"full_data_accuracy": full, "pool_size": pool_size, "target": TARGET, "summary": table},
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written: {args.json}, {args.plot}, {args.curves}")
    return 0


def _plot_starts(starts: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(starts), figsize=(3.2 * len(starts), 3.2), sharey=True)
    for ax, (attribute, result) in zip(axes, starts.items(), strict=True):
        for start, style in (("typiclust", "-o"), ("random", "--s")):
            budgets = sorted(result[start])
            ax.plot(budgets, [result[start][b] for b in budgets], style, label=start)
        ax.set_title(f"{attribute} ({result['classes']} classes)")
        ax.set_xlabel("first labels")
    axes[0].set_ylabel("held-out accuracy")
    axes[0].legend(loc="lower right")
    fig.suptitle("A new attribute's first labels: TypiClust against random (mean over seeds)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
