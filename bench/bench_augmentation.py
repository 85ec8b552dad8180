"""Does the zoom-out and crop augmentation pay, and does the second look at the shoe?

    python bench/bench_augmentation.py [--train DIR] [--arrivals DIR] [--cnn-epochs 30] [--json OUT]

Trains both models twice on the training part of ``shoes-train`` (the product's own 15% held out, seed 0),
each time in a fresh catalogue and its own process: once with the previous release's augmentation
(zoom 0.8-1.2, shifts up to 8%) and once with the current one (zoom 0.55-1.3, shifts up to 15%: a small
shoe in a big frame, and crops of it). InceptionV3: ``--inception-mode`` (default ``finetune``, which
trains on the augmented views; ``head`` trains on the photo and its mirror image only, so the
augmentation changes nothing there); the CNN: ``--cnn-epochs`` from scratch. Each model is
scored on the same-source held-out photos and on every photo of ``new-arrivals`` (labels.csv), InceptionV3
with and without the second look at the shoe. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
VARIANTS = {"previous": {"zoom": (0.8, 1.2), "translation": 0.08}, "current": {}}


def variant(name: str, args: argparse.Namespace) -> dict:
    """Train and score both models with one augmentation (run in its own process)."""
    sys.path.insert(0, str(REPO))
    import numpy as np

    import modeling.architectures as architectures
    import modeling.fitting as fitting
    import modeling.shoe_crop as shoe_crop
    from db import get_engine
    from feedback.ingest import ingest_folder
    from modeling.fitting import CnnConfig
    from modeling.predict import current_handles, predict_images
    from modeling.rounds import run_round
    from shoelabel.images import list_images

    if VARIANTS[name]:
        augment = functools.partial(architectures.augmentation, **VARIANTS[name])
        architectures.augmentation = fitting.augmentation = augment  # the CNN's layers and InceptionV3's views
    engine = get_engine()
    ingest_folder(args.train)
    result: dict = {
        "augmentation": VARIANTS[name] or {"zoom": architectures.ZOOM, "translation": architectures.TRANSLATION}
    }
    for arch in ("inception", "cnn"):
        started = time.monotonic()
        if arch == "inception":
            done = run_round("inception", mode=args.inception_mode, engine=engine)
        else:
            done = run_round("cnn", cnn_config=CnnConfig(epochs=args.cnn_epochs), engine=engine)
        result[arch] = {"same_source": done.candidate.accuracy, "round_s": round(time.monotonic() - started, 1)}

    with (args.arrivals / "labels.csv").open(newline="") as handle:
        truth = {Path(r["file"]).name: r["brand"].strip() for r in csv.DictReader(handle)}
    files = [p for p in list_images(args.arrivals / "images") if p.name in truth]
    sets = {"new_arrivals": [(p, truth[p.name]) for p in files], "small_in_frame": small_shoes(engine, args.seed)}
    for handle in current_handles(engine):
        for name, photos in sets.items():
            rows = [(i, hashlib.sha256(p.read_bytes()).hexdigest(), str(p)) for i, (p, _) in enumerate(photos)]

            def accuracy(probs: dict, photos: list = photos, names: list = handle.class_names) -> float:
                return float(np.mean([names[int(np.argmax(probs[i]))] == b for i, (_, b) in enumerate(photos)]))

            probs, _ = predict_images(handle, rows)
            result[handle.arch][name] = accuracy(probs)
            if handle.arch == "inception":  # the same model, seen whole only
                factor, shoe_crop.LARGE_SIDE_FACTOR = shoe_crop.LARGE_SIDE_FACTOR, float("inf")
                whole, _ = predict_images(handle, rows)
                shoe_crop.LARGE_SIDE_FACTOR = factor
                result["inception"][f"{name}_whole_photo"] = accuracy(whole)
    result["n"] = {name: len(photos) for name, photos in sets.items()}
    return result


def small_shoes(engine, seed: int) -> list[tuple[Path, str]]:
    """Each same-source held-out photo (held out at import) made a small part of a 1200x1600 frame: scaled
    to a quarter of the frame's width, at a random place on a background of its own border colour with
    some noise."""
    import numpy as np
    from PIL import Image

    from db import session_scope
    from db.evaluation_part import IMPORTED
    from db.labels import labelled_set
    from shoelabel.settings import get_settings

    rng = np.random.default_rng(seed)
    folder = get_settings().home / "small-in-frame"
    folder.mkdir(parents=True, exist_ok=True)
    with session_scope(engine) as session:
        held_out = [item for item in labelled_set(session).holdout if item.source == IMPORTED]
    photos = []
    for item in held_out:
        shoe = Image.open(item.path).convert("RGB").resize((300, 300))
        border = np.concatenate([np.asarray(shoe)[[0, -1]].reshape(-1, 3), np.asarray(shoe)[:, [0, -1]].reshape(-1, 3)])
        colour = np.median(border, axis=0)
        frame = np.clip(colour + rng.normal(0, 6, (1600, 1200, 3)), 0, 255).astype(np.uint8)
        canvas = Image.fromarray(frame)
        canvas.paste(shoe, (int(rng.integers(0, 900)), int(rng.integers(0, 1300))))
        path = folder / f"{item.sha256[:16]}.jpg"
        canvas.save(path, quality=90)
        photos.append((path, item.brand))
    return photos


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=SHARED / "data" / "shoes-train")
    parser.add_argument("--arrivals", type=Path, default=SHARED / "data" / "new-arrivals")
    parser.add_argument("--weights", type=Path, default=SHARED / "weights" / "inception_v3_imagenet_notop.h5")
    parser.add_argument("--cnn-epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inception-mode", choices=["finetune", "head"], default="finetune")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "bench-augmentation.json")
    parser.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        args.out.write_text(json.dumps(variant(args.variant, args)))
        return 0
    missing = [p for p in (args.train, args.arrivals / "labels.csv", args.weights) if not p.exists()]
    if missing:
        print(f"skipped: not found: {', '.join(map(str, missing))}", file=sys.stderr)
        return 0
    results = {}
    for name in VARIANTS:
        home = Path(tempfile.mkdtemp(prefix=f"bench-augmentation-{name}-"))
        env = {**os.environ, "SHOELABEL_HOME": str(home), "SHOELABEL_INCEPTION_WEIGHTS": str(args.weights)}
        env.pop("SHOELABEL_DB", None)
        out = home / "result.json"
        command = [sys.executable, __file__, "--variant", name, "--out", str(out), "--cnn-epochs", str(args.cnn_epochs)]
        command += ["--seed", str(args.seed), "--inception-mode", args.inception_mode]
        command += ["--train", str(args.train), "--arrivals", str(args.arrivals)]
        print(f"{name} augmentation ...", flush=True)
        subprocess.run(command, env=env, check=True, cwd=REPO)
        results[name] = json.loads(out.read_text())
        print(json.dumps(results[name], indent=2), flush=True)
    print("\n| model | augmentation | same-source held-out | new arrivals | held-out, small in a big frame |")
    print("|---|---|---|---|---|")
    for arch in ("inception", "cnn"):
        for name, r in results.items():
            scores = r[arch]
            print(
                f"| {arch} | {name} | {scores['same_source']:.1%} | {scores['new_arrivals']:.1%} | "
                f"{scores['small_in_frame']:.1%} |"
            )
    for name, r in results.items():
        for where in ("new_arrivals", "small_in_frame"):
            whole, looked = r["inception"][f"{where}_whole_photo"], r["inception"][where]
            print(f"InceptionV3, {name} augmentation, {where}: whole photo {whole:.1%}, second look {looked:.1%}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps({"cnn_epochs": args.cnn_epochs, "inception_mode": args.inception_mode, **results}, indent=2) + "\n"
    )
    print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
