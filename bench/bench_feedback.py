"""What one round of reviews does on photos unlike the training set.

    python bench/bench_feedback.py [--train DIR] [--arrivals DIR] [--home DIR] [--cnn-epochs N]
                                   [--json OUT] [--plot OUT]

The README's tour, each step its own process: ingest ``shoes-train`` (15% held out), train both models,
ingest ``new-arrivals/images`` as an unlabelled pool (predicted by both models on arrival). Then the
reviewer: ``new-arrivals/labels.csv`` answers the first half of the review queue, in queue order, one
photo at a time through the review service (the default strategy, as the app shows it; a correct top
brand is confirmed, a wrong one corrected). Then one round (``python -m modeling.retrain``). Printed:
each model's accuracy on the unreviewed half before and after the round, on the same-source held-out
photos before and after, the round's time; and, before any feedback, InceptionV3 on the unreviewed
half seen whole, with the second look at the shoe, and with mirror averaging, to show what each pays.
Figures, not assertions.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
REVIEWER = "labels.csv"


def run(env: dict[str, str], *args: str) -> tuple[str, float]:
    started = time.monotonic()
    print(f"$ python -m {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"{' '.join(args)} failed with status {done.returncode}")
    seconds = time.monotonic() - started
    print(f"  {seconds:.0f} s", flush=True)
    return done.stdout, seconds


def true_brands(labels: Path) -> dict[str, str]:
    with labels.open(newline="") as handle:
        return {Path(row["file"]).name: row["brand"].strip() for row in csv.DictReader(handle)}


def review_first_half(brands: dict[str, str], pool: list[int], paths: dict[int, str]) -> list[int]:
    """Answer the first half of the queue in queue order; returns the ids answered."""
    from feedback.queue import DEFAULT_STRATEGY, next_items
    from feedback.reviews import record_review

    answered: list[int] = []
    while len(answered) < len(pool) // 2:
        items = next_items(REVIEWER, "bench", strategy=DEFAULT_STRATEGY, k=1)
        if not items:
            break
        item = items[0]
        truth = brands[Path(item.path).name]
        shown = item.predictions.get("inception") or next(iter(item.predictions.values()), None)
        action = "confirm" if shown is not None and shown.brand == truth else "correct"
        record_review(item.image_id, REVIEWER, action, label=truth, shown=shown)
        answered.append(item.image_id)
    return answered


def stored_accuracy(ids: list[int], truth: dict[int, str]) -> dict[str, float]:
    """Each current model's accuracy on ``ids``, from its stored predictions."""
    from db import get_engine, session_scope
    from modeling.answers import stored_answers
    from modeling.registry import current_versions

    with session_scope(get_engine()) as session:
        answers = stored_answers(session, current_versions(session), ids)
    accuracy = {}
    for arch in ("inception", "cnn"):
        hits = [answers.get(i, {}).get(arch) for i in ids]
        if all(hits):
            accuracy[arch] = sum(a.brand == truth[i] for a, i in zip(hits, ids, strict=True)) / len(ids)
    return accuracy


def same_source() -> dict[str, dict]:
    """Each current model's accuracy on the held-out photos, per source, as its last evaluation recorded."""
    from db import get_engine, session_scope
    from modeling.registry import current_versions

    with session_scope(get_engine()) as session:
        scores = {}
        for arch, version in current_versions(session).items():
            metrics = version.metrics or {}
            scores[arch] = {"all": metrics.get("accuracy"), "n": metrics.get("n"), **(metrics.get("by_source") or {})}
        return scores


def inception_variants(ids: list[int], truth: dict[int, str]) -> dict[str, float]:
    """InceptionV3 (current) on ``ids``: seen whole, with the second look at the shoe, and with mirror averaging."""
    import numpy as np

    import modeling.shoe_crop as shoe_crop
    from db import get_engine, session_scope
    from db.models import Image
    from modeling.predict import FixedBatches, ModelHandle, predict_images
    from modeling.registry import current
    from shoelabel.images import load_array

    with session_scope(get_engine()) as session:
        handle = ModelHandle.of(current(session, "inception"))
        rows = [(i, session.get(Image, i).sha256, session.get(Image, i).path) for i in ids]
    names = handle.class_names

    def accuracy(probs: dict[int, np.ndarray]) -> float:
        return float(np.mean([names[int(np.argmax(probs[i]))] == truth[i] for i in ids]))

    with_crop, _ = predict_images(handle, rows)
    factor, shoe_crop.LARGE_SIDE_FACTOR = shoe_crop.LARGE_SIDE_FACTOR, float("inf")
    try:
        whole, _ = predict_images(handle, rows)
    finally:
        shoe_crop.LARGE_SIDE_FACTOR = factor
    from modeling.architectures import split_inception

    lower, upper = (FixedBatches(part, 32) for part in split_inception(handle.model()))
    mirrored = {}
    for start in range(0, len(rows), 32):
        part = rows[start : start + 32]
        pixels = np.stack([load_array(path, handle.input_size)[:, ::-1] for _, _, path in part])
        mirrored.update(zip([r[0] for r in part], upper.predict_on_batch(lower.predict_on_batch(pixels)), strict=True))
    return {
        "whole photo": accuracy(whole),
        "whole + shoe crop (the product)": accuracy(with_crop),
        "whole + mirror": accuracy({i: (whole[i] + mirrored[i]) / 2 for i in ids}),
        "whole + shoe crop + mirror": accuracy({i: (2 * with_crop[i] + mirrored[i]) / 3 for i in ids}),
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    archs = [a for a in ("inception", "cnn") if a in result["unreviewed_before"]]
    groups = [
        ("new arrivals, unreviewed half", "unreviewed_before", "unreviewed_after"),
        ("same-source held-out", "same_source_before", "same_source_after"),
    ]
    fig, axes = plt.subplots(1, len(groups), figsize=(10, 4), sharey=True)
    for ax, (title, before_key, after_key) in zip(axes, groups, strict=True):
        x = np.arange(len(archs))

        def value(key: str, arch: str) -> float:
            v = result[key].get(arch)
            return float(v["imported"]["accuracy"] if isinstance(v, dict) else v)

        before = [value(before_key, a) for a in archs]
        after = [value(after_key, a) for a in archs]
        ax.bar(x - 0.2, before, 0.4, label="before feedback", color="#9ecae1")
        ax.bar(x + 0.2, after, 0.4, label="after one round", color="#3182bd")
        for xi, b, a in zip(x, before, after, strict=True):
            ax.text(xi - 0.2, b + 0.01, f"{b:.0%}", ha="center", fontsize=9)
            ax.text(xi + 0.2, a + 0.01, f"{a:.0%}", ha="center", fontsize=9)
        if before_key == "unreviewed_before":  # what answering the commonest brand every time scores
            counts = result["unreviewed_brands"]
            baseline = max(counts.values()) / sum(counts.values())
            label = f"always {max(counts, key=counts.get)}: {baseline:.0%}"
            ax.axhline(baseline, color="grey", linestyle="--", linewidth=1, label=label)
        ax.set_xticks(x, ["InceptionV3" if a == "inception" else "custom CNN" for a in archs])
        ax.set_title(title)
        ax.set_ylim(0, 1.08)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="lower left")
    fig.suptitle(f"One round on {result['answered']} reviewed new arrivals")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def replot(json_path: Path, plot_path: Path) -> None:
    """Draw the figure again from a run's JSON."""
    plot(json.loads(json_path.read_text()), plot_path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=SHARED / "data" / "shoes-train")
    parser.add_argument("--arrivals", type=Path, default=SHARED / "data" / "new-arrivals")
    parser.add_argument("--weights", type=Path, default=SHARED / "weights" / "inception_v3_imagenet_notop.h5")
    parser.add_argument("--home", type=Path, default=None, help="catalogue folder (default: a fresh temporary one)")
    parser.add_argument("--cnn-epochs", type=int, default=None, help="CNN epochs (default: the product's)")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "bench-feedback.json")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "feedback.png")
    parser.add_argument("--replot", action="store_true", help="only draw the figure again from --json")
    args = parser.parse_args()
    if args.replot:
        replot(args.json, args.plot)
        return 0
    missing = [p for p in (args.train, args.arrivals / "labels.csv", args.weights) if not p.exists()]
    if missing:
        print(f"skipped: not found: {', '.join(map(str, missing))}", file=sys.stderr)
        return 0
    home = args.home or Path(tempfile.mkdtemp(prefix="bench-feedback-"))
    os.environ["SHOELABEL_HOME"] = str(home)
    os.environ["SHOELABEL_INCEPTION_WEIGHTS"] = str(args.weights)
    os.environ.pop("SHOELABEL_DB", None)
    env = dict(os.environ)
    sys.path.insert(0, str(REPO))

    times: dict[str, float] = {}
    _, times["ingest training photos"] = run(env, "feedback.ingest", str(args.train))
    _, times["train inception"] = run(env, "modeling.train", "--arch", "inception")
    epochs = ["--epochs", str(args.cnn_epochs)] if args.cnn_epochs else []
    _, times["train cnn"] = run(env, "modeling.train", "--arch", "cnn", *epochs)
    _, times["ingest and predict new arrivals"] = run(env, "feedback.ingest", str(args.arrivals / "images"), "--wait")

    from sqlalchemy import select

    from db import get_engine, session_scope
    from db.models import Image, Split

    brands = true_brands(args.arrivals / "labels.csv")
    with session_scope(get_engine()) as session:
        pool_rows = session.execute(select(Image.id, Image.path).where(Image.split == Split.POOL)).all()
    paths = dict(pool_rows)
    pool = sorted(paths)
    truth = {i: brands[Path(p).name] for i, p in paths.items()}
    same_before = same_source()

    started = time.monotonic()
    answered = review_first_half(brands, pool, paths)
    times["reviews"] = time.monotonic() - started
    unreviewed = [i for i in pool if i not in set(answered)]
    before = stored_accuracy(unreviewed, truth)
    variants = inception_variants(unreviewed, truth)
    print(f"answered {len(answered)} photos; unreviewed half: {len(unreviewed)}")
    print("before the round:", before, variants, flush=True)

    retrain, times["round (both models)"] = run(env, "modeling.retrain")
    after = stored_accuracy(unreviewed, truth)
    same_after = same_source()
    decisions = re.findall(r"== Round \d+: ([^,]+), (\w+) in ([\d.]+)s", retrain)

    result = {
        "train": str(args.train),
        "arrivals": str(args.arrivals),
        "pool": len(pool),
        "answered": len(answered),
        "unreviewed": len(unreviewed),
        "unreviewed_brands": {b: sum(truth[i] == b for i in unreviewed) for b in sorted(set(truth.values()))},
        "cnn_epochs": args.cnn_epochs,
        "unreviewed_before": before,
        "unreviewed_after": after,
        "inception_prediction_variants_before": variants,
        "same_source_before": same_before,
        "same_source_after": same_after,
        "round_decisions": [{"model": m, "status": s, "seconds": float(t)} for m, s, t in decisions],
        "times_s": {k: round(v, 1) for k, v in times.items()},
        "round_output": retrain[-4000:],
        "machine": {"cpus": os.cpu_count()},
    }
    print(json.dumps({k: v for k, v in result.items() if k != "round_output"}, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.plot)
    print(f"\nwritten: {args.json}, {args.plot} (catalogue: {home})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
