"""Which way of looking at a large photo predicts best: whole, a crop around the shoe, or five crops?

    python bench/bench_shoe_look.py --home CATALOGUE [--version ID] [--limit N] [--arrivals DIR] [--json OUT]

On a catalogue with an InceptionV3 model (e.g. the one ``bench/bench_feedback.py`` leaves; ``--version``
picks a model version, default the current one): its accuracy on the photos of ``new-arrivals`` and on
the catalogue's held-out photos made a small part of a 1200x1600 frame (as ``bench_augmentation.py``
makes them), seen whole; with the second look at the shoe, the crop found by the class activation map
or by the last block's total activity; averaged over the whole photo and five crops (the centre and
four corners, each 60% of the side: multi-crop); and with its mirror image. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CROPS = [(0.2, 0.2, 0.8, 0.8), (0.0, 0.0, 0.6, 0.6), (0.4, 0.0, 1.0, 0.6), (0.0, 0.4, 0.6, 1.0), (0.4, 0.4, 1.0, 1.0)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--version", type=int, default=None)
    parser.add_argument("--arrivals", type=Path, default=SHARED / "data" / "new-arrivals")
    parser.add_argument("--weights", type=Path, default=SHARED / "weights" / "inception_v3_imagenet_notop.h5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="a seeded sample of this many new arrivals")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "bench-shoe-look.json")
    args = parser.parse_args()
    os.environ["SHOELABEL_HOME"] = str(args.home)
    os.environ["SHOELABEL_INCEPTION_WEIGHTS"] = str(args.weights)
    os.environ.pop("SHOELABEL_DB", None)
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))

    import numpy as np
    from bench_augmentation import small_shoes

    import modeling.shoe_crop as shoe_crop
    from db import get_engine, session_scope
    from db.models import ModelVersion
    from modeling.architectures import split_inception
    from modeling.predict import FixedBatches, ModelHandle, predict_images
    from modeling.registry import current
    from shoelabel.images import list_images, load_array, load_crop

    engine = get_engine()
    with session_scope(engine) as session:
        row = session.get(ModelVersion, args.version) if args.version else current(session, "inception")
        handle = ModelHandle.of(row)
    lower, upper = (FixedBatches(part, 32) for part in split_inception(handle.model()))
    with (args.arrivals / "labels.csv").open(newline="") as stream:
        truth = {Path(r["file"]).name: r["brand"].strip() for r in csv.DictReader(stream)}
    arrivals = [(p, truth[p.name]) for p in list_images(args.arrivals / "images") if p.name in truth]
    if args.limit and args.limit < len(arrivals):
        picked = np.random.default_rng(args.seed).choice(len(arrivals), args.limit, replace=False)
        arrivals = [arrivals[i] for i in sorted(picked)]
    sets = {"new_arrivals": arrivals, "small_in_frame": small_shoes(engine, args.seed)}
    names = handle.class_names
    report: dict = {"model_version": handle.id}
    for name, photos in sets.items():
        rows = [(i, hashlib.sha256(p.read_bytes()).hexdigest(), str(p)) for i, (p, _) in enumerate(photos)]
        looked = {}
        for kind in ("class", "energy"):
            shoe_crop.MAP = kind
            looked[kind], _ = predict_images(handle, rows)
        shoe_crop.MAP = "class"
        factor, shoe_crop.LARGE_SIDE_FACTOR = shoe_crop.LARGE_SIDE_FACTOR, float("inf")
        whole, _ = predict_images(handle, rows)
        shoe_crop.LARGE_SIDE_FACTOR = factor
        crops, mirrored = {}, {}
        for i, (path, _) in enumerate(photos):
            views = np.stack([load_crop(path, box, handle.input_size) for box in CROPS])
            crops[i] = upper.predict_on_batch(lower.predict_on_batch(views)).mean(axis=0)
            flipped = load_array(path, handle.input_size)[:, ::-1][None]
            mirrored[i] = upper.predict_on_batch(lower.predict_on_batch(flipped))[0]

        def accuracy(probs: dict, photos: list = photos) -> float:
            return float(np.mean([names[int(np.argmax(probs[i]))] == b for i, (_, b) in enumerate(photos)]))

        report[name] = {
            "n": len(photos),
            "whole photo": accuracy(whole),
            "second look, class activation map": accuracy(looked["class"]),
            "second look, last block's activity": accuracy(looked["energy"]),
            "whole + five crops": accuracy({i: (whole[i] + 5 * crops[i]) / 6 for i in whole}),
            "whole + mirror": accuracy({i: (whole[i] + mirrored[i]) / 2 for i in whole}),
        }
        print(name, json.dumps(report[name], indent=2), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
