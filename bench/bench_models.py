"""Benchmark both models on a labelled folder (default: ../shared/data/shoes-train).

    python bench/bench_models.py [--data FOLDER] [--home DIR] [--skip-cnn] [--json OUT]

Ingests the folder into a fresh catalogue (stratified 15% held-out split, seed 0),
trains InceptionV3 (head, then fine-tuning of mixed9-10 from cached activations)
and the custom CNN, and prints held-out accuracy and macro F1, training time,
prediction throughput next to the raw InceptionV3 forward pass, and the latency
of a head-only round over cached data. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "shoes-train")
    parser.add_argument(
        "--weights", type=Path, default=REPO.parent / "shared" / "weights" / "inception_v3_imagenet_notop.h5"
    )
    parser.add_argument("--home", type=Path, default=None, help="catalogue folder (default: a fresh temporary one)")
    parser.add_argument("--skip-cnn", action="store_true")
    parser.add_argument("--skip-inception", action="store_true")
    parser.add_argument(
        "--rounds-only", action="store_true", help="with --home: time rounds over an already trained catalogue"
    )
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "bench-models.json")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: no labelled photos at {args.data} (give --data)", file=sys.stderr)
        return 0
    home = args.home or Path(tempfile.mkdtemp(prefix="shoelabel-bench-"))
    os.environ["SHOELABEL_HOME"] = str(home)
    os.environ.pop("SHOELABEL_DB", None)
    if args.weights.is_file():
        os.environ["SHOELABEL_INCEPTION_WEIGHTS"] = str(args.weights)

    from db import get_engine, session_scope
    from db.labels import labelled_set
    from feedback.ingest import ingest_folder
    from modeling.rounds import run_round
    from shoelabel.progress import TerminalProgress

    engine = get_engine()
    report = ingest_folder(args.data, show_bar=True)
    print(f"catalogue: {report.added} new images in {home}; held out: {report.holdout_drawn or 'as before'}")
    with session_scope(engine) as session:
        holdout = labelled_set(session).holdout
    figures: dict[str, object] = {"data": str(args.data), "n_holdout": len(holdout), "cpu_count": os.cpu_count()}

    def timed_round(arch: str, **kwargs) -> dict[str, object]:
        bar = TerminalProgress(f"{arch} {kwargs.get('mode', '')}")
        started = time.perf_counter()
        result = run_round(arch, engine=engine, progress=bar, trigger="bench", **kwargs)
        bar.close()
        seconds = time.perf_counter() - started
        print(result.table())
        return {
            "status": result.status.value,
            "seconds": round(seconds, 1),
            "accuracy": round(result.candidate.accuracy, 4) if result.candidate else None,
            "macro_f1": round(result.candidate.macro_f1, 4) if result.candidate else None,
            "per_class_f1": {k: round(v["f1"], 4) for k, v in result.candidate.per_class.items()}
            if result.candidate
            else None,
            "model_version": result.candidate_id,
        }

    if args.rounds_only:
        figures["inception_head_round"] = timed_round("inception", mode="head")
        figures["inception_head_round_again"] = timed_round("inception", mode="head")
        figures["inception_finetune_round"] = timed_round("inception", mode="finetune")
        figures["cnn_round"] = timed_round("cnn")
        args.skip_inception = args.skip_cnn = True
    if not args.skip_inception:
        figures["inception_train"] = timed_round("inception", mode="finetune", from_scratch=True, force=True)
        figures["inception_head_round"] = timed_round("inception", mode="head", force=False)
        figures["inception_finetune_round"] = timed_round("inception", mode="finetune", force=False)
        figures["inception_predict"] = prediction_speed("inception", args.data)
    if not args.skip_cnn:
        figures["cnn_train"] = timed_round("cnn", from_scratch=True, force=True)
        figures["cnn_round"] = timed_round("cnn", force=False)
        figures["cnn_predict"] = prediction_speed("cnn", args.data)

    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(args.json.read_text()) if args.json.is_file() else {}
        args.json.write_text(json.dumps({**previous, **figures}, indent=2) + "\n")
        print(f"figures written to {args.json}")
    if args.home is None:
        shutil.rmtree(home, ignore_errors=True)
    return 0


def prediction_speed(arch: str, data: Path, n: int = 96, batch_size: int = 32) -> dict[str, float]:
    """Images/s of the full prediction path (files -> decode -> model) and of the raw forward pass."""
    import numpy as np

    from db import get_engine, session_scope
    from modeling.predict import ModelHandle, expand_paths, predict_sources
    from modeling.registry import require_current
    from shoelabel.images import load_batch

    with session_scope(get_engine()) as session:
        handle = ModelHandle.of(require_current(session, arch))
    files = expand_paths([data])[:n]
    model = handle.model()
    pixels = load_batch(files, handle.input_size).astype("float32")
    model.predict_on_batch(pixels[:batch_size])  # compile
    started = time.perf_counter()
    for start in range(0, len(pixels), batch_size):
        np.asarray(model.predict_on_batch(pixels[start : start + batch_size]))
    raw = len(pixels) / (time.perf_counter() - started)
    started = time.perf_counter()
    predict_sources(handle, files, batch_size=batch_size)
    full = len(files) / (time.perf_counter() - started)
    print(f"{arch}: raw forward {raw:.1f} images/s, files to probabilities {full:.1f} images/s ({full / raw:.0%})")
    return {
        "raw_forward_images_per_s": round(raw, 2),
        "predict_images_per_s": round(full, 2),
        "ratio": round(full / raw, 3),
    }


if __name__ == "__main__":
    raise SystemExit(main())
