"""Both models on every attribute of the multi-attribute catalogue (default: ../shared/data/catalogue-shoes).

    python bench/bench_attributes.py [--data labels.csv] [--home DIR] [--inception-mode head|finetune]
        [--cnn-epochs N] [--skip-cnn] [--json OUT]

Imports the manifest into a fresh catalogue (the held-out photos drawn per brand and topped up per
attribute, seed 0), trains InceptionV3 and the custom CNN for every attribute with the product's
own commands, each in its own process, and prints per attribute and model: held-out photos,
accuracy, macro F1 over the classes the held-out photos have, the classes left out of training,
and the time each round took. Figures, not assertions.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.catalogue_args import catalogue_parser


def run(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", *args], env=env, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"{' '.join(args)} failed with status {done.returncode}")
    return done, time.monotonic() - started


def round_times(output: str) -> dict[str, float]:
    """``{"cnn colour": seconds, ...}`` from a training command's round headers."""
    times = {}
    for what, seconds in re.findall(r"== Round \d+: ([^,]+), \w+ in ([\d.]+)s", output):
        arch, _, attribute = what.partition(" ")
        times[f"{arch} {attribute or 'brand'}"] = float(seconds)
    return times


def main() -> int:
    parser = catalogue_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=None, help="catalogue folder (default: a fresh temporary one)")
    parser.add_argument("--inception-mode", choices=["head", "finetune"], default="finetune")
    parser.add_argument("--cnn-epochs", type=int, default=None, help="CNN epochs (default: the product's)")
    parser.add_argument("--skip-cnn", action="store_true")
    parser.add_argument(
        "--cnn-attributes", default=None, help="comma-separated attributes to train the CNN on (default: every one)"
    )
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "bench-attributes.json")
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"skipped: the catalogue manifest is not at {args.data}", file=sys.stderr)
        return 0
    home = args.home or Path(tempfile.mkdtemp(prefix="bench-attributes-"))
    env = {**os.environ, "SHOELABEL_HOME": str(home), "SHOELABEL_INCEPTION_WEIGHTS": str(args.weights)}
    env.pop("SHOELABEL_DB", None)

    imported, import_s = run(env, "feedback.manifest", "import", str(args.data))
    print(imported.stdout.split("Added per brand")[0].strip())
    print(f"import: {import_s:.0f}s")
    times: dict[str, float] = {}
    inception, _ = run(env, "modeling.train", "--arch", "inception", "--mode", args.inception_mode)
    times |= round_times(inception.stdout)
    if not args.skip_cnn:
        cnn_args = ["--epochs", str(args.cnn_epochs)] if args.cnn_epochs else []
        for attribute in args.cnn_attributes.split(",") if args.cnn_attributes else [None]:
            which = ["--attribute", attribute] if attribute else []
            cnn, _ = run(env, "modeling.train", "--arch", "cnn", *cnn_args, *which)
            times |= round_times(cnn.stdout)
    evaluated, _ = run(env, "modeling.evaluate", "--json")
    report = json.loads(evaluated.stdout)

    rows = []
    for attribute, by_arch in report.items():
        for arch, metrics in by_arch.items():
            supported = [c for c, row in metrics["per_class"].items() if row["support"] > 0]
            rows.append(
                {
                    "attribute": attribute,
                    "model": arch,
                    "held_out": metrics["n"],
                    "classes_held_out": len(supported),
                    "classes_trained": len(metrics["class_names"]),
                    "accuracy": round(metrics["accuracy"], 4),
                    "macro_f1": round(metrics["macro_f1"], 4),
                    "round_s": round(times.get(f"{arch} {attribute}", float("nan")), 1),
                }
            )
    print("\n| attribute | model | held-out photos (classes) | accuracy | macro F1 | round |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['attribute']} | {r['model']} | {r['held_out']} ({r['classes_held_out']}) | {r['accuracy']:.3f} | "
            f"{r['macro_f1']:.3f} | {r['round_s']:.0f} s |"
        )
    result = {
        "data": str(args.data),
        "inception_mode": args.inception_mode,
        "cnn_epochs": args.cnn_epochs,
        "cnn_attributes": args.cnn_attributes,
        "rows": rows,
        "machine": {"cpus": os.cpu_count()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten: {args.json} (catalogue: {home})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
