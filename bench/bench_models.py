"""The model benchmark: the product's models beside a linear probe, judged in one run on the same photos.

    python bench/bench_models.py                       # shoes-train and catalogue-shoes (brand, colour, gender)
    python bench/bench_models.py --sets shoes --quick  # a subset and fewer epochs, for iterating

Each set is brought into a fresh catalogue exactly as a user would (the product's own held-out
split); nothing is chosen on the held-out photos. Rows, on the same held-out photos:

* ``probe``: the reference (bench/probe.py), a logistic regression on frozen InceptionV3 features;
* ``inception``: InceptionV3 as ``python -m modeling.train --arch inception`` trains it;
* ``cnn``: the custom CNN as ``python -m modeling.train --arch cnn`` trains it (taught by InceptionV3
  over the labelled photos and the pool: for shoes-train the pool is new-arrivals, ingested flat);
* ``committee``: the mean of both models' calibrated probabilities (what the queue and Enter use).

``new-arrivals`` (581 brand-shop photos, 87% nike) is a second-source test of the shoes-train models.
Printed per row: accuracy (Wilson 95% interval), macro F1 and ECE (bootstrap 95% intervals), mean
confidence, the majority-class baseline, McNemar's paired test against the probe, training time.
Written to docs/bench-models.json and docs/bench-models.md. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("SHOELABEL_SHARED", REPO.parent / "shared"))

from bench.model_scores import mcnemar, scores


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="shoes,catalogue", help="comma-separated: shoes, catalogue")
    parser.add_argument("--attributes", default="brand,colour,gender", help="catalogue attributes to train")
    parser.add_argument("--quick", action="store_true", help="a subset of the photos and fewer epochs")
    parser.add_argument("--catalogue-cnn", action="store_true", help="also train the CNN on the catalogue")
    parser.add_argument("--skip-cnn", action="store_true", help="shoes-train: InceptionV3 and the probe only")
    parser.add_argument(
        "--mode", choices=["head", "finetune"], default=None, help="InceptionV3 mode (default: the product's)"
    )
    parser.add_argument("--weights", type=Path, default=SHARED / "weights" / "inception_v3_imagenet_notop.h5")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "shoelabel-bench")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "bench-models.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "bench-models.md")
    return parser.parse_args()


def fresh_home(name: str) -> Path:
    from db import dispose_engines

    home = Path(tempfile.mkdtemp(prefix=f"shoelabel-bench-{name}-"))
    os.environ["SHOELABEL_HOME"] = str(home)
    os.environ.pop("SHOELABEL_DB", None)
    dispose_engines()
    return home


def timed_round(arch: str, attribute_id: int, args: argparse.Namespace) -> tuple[object, float]:
    from modeling.fitting import CnnConfig
    from modeling.rounds import run_round
    from shoelabel.progress import TerminalProgress

    config = CnnConfig(epochs=10) if args.quick else None
    bar = TerminalProgress(f"{arch} training")
    started = time.perf_counter()
    result = run_round(
        arch,
        attribute_id=attribute_id,
        trigger="bench",
        mode=args.mode if arch == "inception" else None,
        from_scratch=True,
        force=True,
        progress=bar,
        cnn_config=config,
    )
    bar.close()
    return result, round(time.perf_counter() - started, 1)


def current_handle(arch: str, attribute_id: int) -> object:
    from db import get_engine, session_scope
    from modeling.predict import ModelHandle
    from modeling.registry import require_current

    with session_scope(get_engine()) as session:
        return ModelHandle.of(require_current(session, arch, attribute_id))


def in_order(
    probabilities: dict[int, np.ndarray], handle: object, ids: list[int], class_names: list[str]
) -> np.ndarray:
    """Rows for ``ids`` over ``class_names`` (a class the model lacks gets 0)."""
    columns = [list(handle.class_names).index(c) if c in handle.class_names else None for c in class_names]
    return np.array([[probabilities[i][j] if j is not None else 0.0 for j in columns] for i in ids])


def predicted(handle: object, items: list, class_names: list[str]) -> np.ndarray:
    from modeling.predict import predict_images

    probabilities, errors = predict_images(handle, [(i.image_id, i.sha256, i.path) for i in items])
    if errors:
        raise SystemExit(f"unreadable held-out photos: {list(errors.values())[:3]}")
    return in_order(probabilities, handle, [i.image_id for i in items], class_names)


def table_rows(name: str, rows: dict[str, np.ndarray], labels: np.ndarray, times: dict) -> dict:
    """Scores of every row on one set of photos, each paired with the probe."""
    out = {}
    for model, probabilities in rows.items():
        out[model] = scores(probabilities, labels)
        if model != "probe" and "probe" in rows:
            out[model]["vs_probe"] = mcnemar(labels, probabilities.argmax(1), rows["probe"].argmax(1))
        if model in times:
            out[model]["train_seconds"] = times[model]
        print(line(name, model, out[model]))
    return out


def line(name: str, model: str, s: dict) -> str:
    lo, hi = s["accuracy_95"]
    paired = f"  vs probe: {s['vs_probe']['verdict']} (p={s['vs_probe']['p']})" if "vs_probe" in s else ""
    return (
        f"{name:<22} {model:<10} n={s['n']:<4} acc {s['accuracy']:.1%} [{lo:.1%}-{hi:.1%}]  "
        f"macro F1 {s['macro_f1']:.3f}  ECE {s['ece']:.3f}  majority {s['majority_accuracy']:.1%}{paired}"
    )


def split_items(attribute_id: int) -> tuple[list, list, list]:
    """Training and held-out photos of one attribute, the classes a model learns, and the held-out photos
    of those classes (a class with too few photos to learn is left out of every row alike)."""
    from db import get_engine, session_scope
    from db.labels import labelled_set

    with session_scope(get_engine()) as session:
        labelled = labelled_set(session, attribute_id)
    class_names = sorted({i.brand for i in labelled.train})
    holdout = [i for i in labelled.holdout if i.brand in class_names]
    return labelled.train, holdout, class_names


def labels_of(items: list, class_names: list[str]) -> np.ndarray:
    return np.array([class_names.index(i.brand) for i in items])


def committee(rows: dict[str, np.ndarray]) -> None:
    if "inception" in rows and "cnn" in rows:
        rows["committee"] = (rows["inception"] + rows["cnn"]) / 2


def subset(folder: Path, per_class: int, flat: bool = False) -> Path:
    """A copy of the first ``per_class`` photos of each class folder (or of a flat folder), for --quick."""
    import shutil

    target = Path(tempfile.mkdtemp(prefix="shoelabel-bench-subset-"))
    groups = [folder] if flat else sorted(p for p in folder.iterdir() if p.is_dir())
    for group in groups:
        destination = target if flat else target / group.name
        destination.mkdir(parents=True, exist_ok=True)
        for photo in sorted(p for p in group.iterdir() if p.is_file())[:per_class]:
            shutil.copy(photo, destination / photo.name)
    return target


def arrivals_truth(folder: Path) -> dict[str, str]:
    """new-arrivals' labels.csv: file name -> brand."""
    with open(folder / "labels.csv", newline="") as handle:
        return {Path(row["file"]).name: row["brand"] for row in csv.DictReader(handle)}


def shoes(args: argparse.Namespace) -> dict:
    """shoes-train's held-out photos, and new-arrivals as a second source, for all four rows."""
    from bench import probe
    from db import get_engine
    from db.models import BRAND_ID
    from feedback.ingest import ingest_folder
    from modeling.predict import update_predictions

    data, arrivals = SHARED / "data" / "shoes-train", SHARED / "data" / "new-arrivals"
    fresh_home("shoes")
    ingest_folder(subset(data, 60) if args.quick else data)
    train, holdout, class_names = split_items(BRAND_ID)
    truth = labels_of(holdout, class_names)
    feats = probe.features([i.path for i in train + holdout], str(args.weights), args.cache)
    rows, times, details = {}, {}, {}
    started = time.perf_counter()
    rows["probe"], details["probe"] = probe.probe(
        feats[: len(train)], labels_of(train, class_names), len(class_names), feats[len(train) :]
    )
    times["probe"] = round(time.perf_counter() - started, 1)
    result, times["inception"] = timed_round("inception", BRAND_ID, args)
    details["inception"] = result.data.get("training", {})
    inception = current_handle("inception", BRAND_ID)
    rows["inception"] = predicted(inception, holdout, class_names)
    pool_folder = subset(arrivals / "images", 120, flat=True) if args.quick else arrivals / "images"
    ingest_folder(pool_folder)
    started = time.perf_counter()
    update_predictions(get_engine(), inception, only_missing=True)
    details["pool_prediction_seconds"] = round(time.perf_counter() - started, 1)
    cnn = None
    if not args.skip_cnn:
        result, times["cnn"] = timed_round("cnn", BRAND_ID, args)
        cnn = current_handle("cnn", BRAND_ID)
        rows["cnn"] = predicted(cnn, holdout, class_names)
    committee(rows)
    details["head_round_seconds"] = head_round_seconds()
    out = {"classes": class_names, "n_train": len(train), "details": details}
    out["held-out"] = table_rows("shoes-train held-out", rows, truth, times)
    out["new-arrivals"] = second_source(
        args, pool_folder, arrivals, class_names, feats[: len(train)], train, inception, cnn
    )
    return out


def head_round_seconds() -> float:
    """A head-only InceptionV3 round as a user starts it: a new process, re-prediction of the catalogue included."""
    import subprocess

    started = time.perf_counter()
    command = [sys.executable, "-m", "modeling.retrain", "--arch", "inception", "--mode", "head"]
    done = subprocess.run(command, cwd=REPO, env=dict(os.environ), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the head round failed: {done.stdout}{done.stderr}")
    return round(time.perf_counter() - started, 1)


def second_source(args, pool_folder, arrivals, class_names, train_feats, train, inception, cnn) -> dict:
    """The shoes-train models on new-arrivals (the pool they were taught on, never labelled)."""
    from sqlalchemy import select

    from bench import probe
    from db import get_engine, session_scope
    from db.models import Image, ModelVersion, Split
    from modeling.answers import stored_answers

    truth_by_name = arrivals_truth(arrivals)
    with session_scope(get_engine()) as session:
        pool = [
            (i, Path(p).name) for i, p in session.execute(select(Image.id, Image.path).where(Image.split == Split.POOL))
        ]
        handles = {"inception": inception, "cnn": cnn} if cnn else {"inception": inception}
        versions = {arch: session.get_one(ModelVersion, h.id) for arch, h in handles.items()}
        answers = stored_answers(session, versions, [i for i, _ in pool])
    pool = [(i, name) for i, name in pool if truth_by_name.get(name) in class_names]
    ids, labels = [i for i, _ in pool], np.array([class_names.index(truth_by_name[n]) for _, n in pool])
    rows = {}
    feats = probe.features([str(pool_folder / n) for _, n in pool], str(args.weights), args.cache)
    rows["probe"], _ = probe.probe(train_feats, labels_of(train, class_names), len(class_names), feats)
    for arch, handle in handles.items():
        stored = {i: np.array([answers[i][arch].probabilities.get(c, 0.0) for c in handle.class_names]) for i in ids}
        rows[arch] = in_order(stored, handle, ids, class_names)
    committee(rows)
    return table_rows("new-arrivals", rows, labels, {})


def catalogue(args: argparse.Namespace) -> dict:
    """catalogue-shoes, one attribute after another: probe and InceptionV3 (and the CNN, if asked)."""
    from bench import probe
    from db import get_engine, session_scope
    from db.catalog import require_attribute
    from feedback.manifest import import_manifest

    manifest = SHARED / "data" / "catalogue-shoes" / "labels.csv"
    fresh_home("catalogue")
    if args.quick:
        manifest = quick_manifest(manifest, 600)
    import_manifest(manifest)
    out: dict = {}
    for name in args.attributes.split(","):
        with session_scope(get_engine()) as session:
            attribute_id = require_attribute(session, name).id
        train, holdout, class_names = split_items(attribute_id)
        truth = labels_of(holdout, class_names)
        feats = probe.features([i.path for i in train + holdout], str(args.weights), args.cache)
        rows, times = {}, {}
        started = time.perf_counter()
        rows["probe"], detail = probe.probe(
            feats[: len(train)], labels_of(train, class_names), len(class_names), feats[len(train) :]
        )
        times["probe"] = round(time.perf_counter() - started, 1)
        result, times["inception"] = timed_round("inception", attribute_id, args)
        rows["inception"] = predicted(current_handle("inception", attribute_id), holdout, class_names)
        if args.catalogue_cnn:
            _, times["cnn"] = timed_round("cnn", attribute_id, args)
            rows["cnn"] = predicted(current_handle("cnn", attribute_id), holdout, class_names)
            committee(rows)
        out[name] = {
            "classes": len(class_names),
            "n_train": len(train),
            "probe": detail,
            "inception": result.data.get("training", {}),
            "held-out": table_rows(f"catalogue {name}", rows, truth, times),
        }
    return out


def quick_manifest(manifest: Path, rows: int) -> Path:
    """The first ``rows`` rows of a manifest, with absolute paths, for --quick."""
    with open(manifest, newline="") as handle:
        records = list(csv.DictReader(handle))[:rows]
    target = Path(tempfile.mkdtemp(prefix="shoelabel-bench-manifest-")) / "labels.csv"
    with open(target, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows({**r, "file": str(manifest.parent / r["file"])} for r in records)
    return target


def span(s: dict, key: str, percent: bool) -> str:
    form = "{:.1%}" if percent else "{:.3f}"
    low, high = s[f"{key}_95"]
    return f"{form.format(s[key])} ({form.format(low)}-{form.format(high)})"


def markdown(figures: dict) -> str:
    """The table the README links: one line per set and row."""
    lines = [
        "| set | model | n | accuracy (95%) | macro F1 (95%) | ECE (95%) | majority acc. / F1 | vs probe | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for set_name, part in figures["sets"].items():
        for label, s_rows in sets_of(set_name, part):
            for model, s in s_rows.items():
                vs = s.get("vs_probe")
                paired = f"{vs['verdict']} (p={vs['p']})" if vs else ""
                lines.append(
                    f"| {label} | {model} | {s['n']} | {span(s, 'accuracy', True)} | {span(s, 'macro_f1', False)} | "
                    f"{span(s, 'ece', False)} | {s['majority_accuracy']:.1%} / {s['majority_macro_f1']:.3f} | "
                    f"{paired} | {s.get('train_seconds', '')} |"
                )
    return "\n".join(lines) + "\n"


def sets_of(set_name: str, part: dict) -> list[tuple[str, dict]]:
    if set_name == "shoes-train":
        return [("shoes-train held-out", part["held-out"]), ("new-arrivals (second source)", part["new-arrivals"])]
    return [(f"catalogue {attribute}", figures["held-out"]) for attribute, figures in part.items()]


def main() -> int:
    args = arguments()
    if not args.weights.is_file() or not (SHARED / "data").is_dir():
        print(f"skipped: the benchmark needs {SHARED / 'data'} and {args.weights}", file=sys.stderr)
        return 0
    os.environ["SHOELABEL_INCEPTION_WEIGHTS"] = str(args.weights)
    figures: dict = {"quick": args.quick, "cpu_count": os.cpu_count(), "sets": {}}
    wanted = args.sets.split(",")
    if "shoes" in wanted:
        figures["sets"]["shoes-train"] = shoes(args)
    if "catalogue" in wanted:
        figures["sets"]["catalogue-shoes"] = catalogue(args)
    if not args.quick:  # a set not run this time keeps its figures from the last run
        previous = json.loads(args.json.read_text()) if args.json.is_file() else {}
        figures["sets"] = {**previous.get("sets", {}), **figures["sets"]}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        args.markdown.write_text(markdown(figures))
        print(f"figures written to {args.json} and {args.markdown}")
    else:
        print(markdown(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
