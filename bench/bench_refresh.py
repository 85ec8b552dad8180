"""How fast does a refresh score the catalogue, against the model's raw forward pass?

    python bench/bench_refresh.py [--images 2000] [--ray-workers 1 2] [--inception]

Builds a catalogue of ``--images`` photos (rows pointing at the shared photos, or at synthetic
JPEGs, cycled; each row its own photo for the database) and a current model with the product's
architecture (untrained: speed does not depend on the weights), then prints photos/s of:

* the raw forward pass: the model on photos decoded beforehand, ``--batch-size`` at a time;
* ``python -m modeling.predict --refresh`` in one process: listing, decoding, predicting, storing;
* the same refresh through Ray Data on a local Ray instance, with 1 and 2 workers (end to end,
  worker start included, and the time until the first chunk was stored).

``--inception`` adds InceptionV3 (needs the shared ImageNet weights): the full network for photos
without cached activations, then the top blocks from the cache. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras
    from sqlalchemy import Engine

    from modeling.predict import ModelHandle
    from modeling.ray_scoring import RayCluster

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"


def photo_files(folder: Path, home: Path, n: int) -> list[Path]:
    """Up to ``n`` photos from ``folder``, or synthetic ones when it is missing."""
    from shoelabel.images import list_images

    if folder.is_dir():
        return list_images(folder)[:n]
    from tests.conftest import make_brand_photo

    return [make_brand_photo(home / "photos" / f"{i}.jpg", i % 3, seed=i, size=240) for i in range(min(n, 300))]


def build_catalogue(engine: Engine, files: list[Path], n: int) -> None:
    """``n`` image rows cycling over ``files`` (distinct hashes), with their queue entries."""
    from sqlalchemy import insert

    from db.models import Image, Split
    from db.queue_entries import add_all_missing

    rows = [
        {
            "sha256": hashlib.sha256(f"bench-{i}".encode()).hexdigest(),
            "path": str(files[i % len(files)]),
            "width": 240,
            "height": 240,
            "format": "JPEG",
            "file_size": files[i % len(files)].stat().st_size,
            "split": Split.POOL,
            "source": "bench",
        }
        for i in range(n)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Image), rows)
        add_all_missing(conn)


def register_model(
    engine: Engine, arch: str, model: keras.Model, input_size: int, home: Path, base_weights: str = ""
) -> ModelHandle:
    from db import session_scope
    from modeling.predict import ModelHandle
    from modeling.registry import promote, register

    path = home / "models" / f"{arch}.keras"
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    with session_scope(engine, write=True) as session:
        version = register(
            session,
            arch=arch,
            path=path,
            class_names=["adidas", "converse", "nike"],
            input_size=input_size,
            parent_id=None,
            base_weights=base_weights,
        )
        promote(session, version)
        session.flush()
        return ModelHandle.of(version)


def raw_forward(
    predict: Callable[[np.ndarray], object], inputs: np.ndarray, batch_size: int, n: int
) -> dict[str, float]:
    """Photos/s of ``predict`` over ``n`` inputs (cycled), full batches only, after a warm-up batch;
    and the CPU time it took per photo (all of the process's threads)."""
    batches = [inputs[(s % len(inputs)) : (s % len(inputs)) + batch_size] for s in range(0, n, batch_size)]
    batches = [b for b in batches if len(b) == batch_size] or [inputs[:batch_size]]
    np.asarray(predict(batches[0]))
    started, cpu = time.perf_counter(), time.process_time()
    for batch in batches:
        np.asarray(predict(batch))
    photos = len(batches) * batch_size
    return {
        "photos_per_s": round(photos / (time.perf_counter() - started), 1),
        "cpu_ms_per_photo": round((time.process_time() - cpu) * 1000 / photos, 2),
    }


def timed_refresh(
    engine: Engine, handle: ModelHandle, batch_size: int, ray: RayCluster | None = None
) -> dict[str, float]:
    """Run a refresh of every photo: photos/s end to end, and the seconds until the first chunk was stored
    (on Ray: starting the workers and loading the model in each)."""
    from sqlalchemy import delete

    import modeling.predict as predict
    from db import session_scope
    from db.models import Prediction

    with session_scope(engine, write=True) as session:
        session.execute(delete(Prediction))
    stores: list[tuple[float, int]] = []
    real_store = predict.store_predictions

    def store(*args: object, **kwargs: object) -> int:
        n = real_store(*args, **kwargs)
        stores.append((time.perf_counter(), n))
        return n

    predict.store_predictions = store
    try:
        started, cpu = time.perf_counter(), time.process_time()
        stored, unreadable = predict.update_predictions(engine, handle, batch_size=batch_size, ray=ray)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        predict.store_predictions = real_store
    figures = {"photos": stored, "unreadable": len(unreadable), "seconds": round(elapsed, 2)}
    figures["photos_per_s"] = round(stored / elapsed, 1)
    figures["cpu_ms_per_photo"] = round(cpu * 1000 / max(stored, 1), 2)  # this process only (not Ray's workers)
    if stores:
        figures["first_chunk_s"] = round(stores[0][0] - started, 2)
    return figures


def bench_model(
    engine: Engine, handle: ModelHandle, label: str, args: argparse.Namespace, raw: Callable[[], dict[str, float]]
) -> dict:
    """Raw forward and refresh in one process, alternated ``--repeat`` times (the best of each: other
    load on the machine only slows a run down), then the refresh on Ray with each worker count."""
    from modeling.ray_scoring import RayCluster

    raws, refreshes = [], []
    for _ in range(args.repeat):
        raws.append(raw())
        refreshes.append(timed_refresh(engine, handle, args.batch_size))
    best_raw = max(r["photos_per_s"] for r in raws)
    figures: dict = {"raw_forward": raws, "refresh": refreshes}
    rate = max(r["photos_per_s"] for r in refreshes)
    figures["best_refresh_over_best_raw"] = round(rate / best_raw, 3)
    print(f"{label}: raw forward {best_raw:.1f} photos/s (batch {args.batch_size}; best of {args.repeat})", flush=True)
    print(f"{label}: refresh in one process {rate:.1f} photos/s ({rate / best_raw:.0%} of raw)", flush=True)
    for workers in args.ray_workers:
        result = timed_refresh(engine, handle, args.batch_size, ray=RayCluster("local", workers=workers))
        figures[f"ray_{workers}_workers"] = result
        print(
            f"{label}: Ray, {workers} worker(s): {result['photos_per_s']:.1f} photos/s end to end, "
            f"first chunk stored after {result.get('first_chunk_s', float('nan')):.1f} s",
            flush=True,
        )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="catalogue photos (CNN)")
    parser.add_argument("--photos", type=Path, default=SHARED / "data" / "shoes-train")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3, help="raw and one-process runs, alternated (best kept)")
    parser.add_argument("--ray-workers", type=int, nargs="*", default=[1, 2], help="worker counts to try (none: skip)")
    parser.add_argument("--inception", action="store_true", help="also InceptionV3 (needs the shared weights)")
    parser.add_argument("--inception-images", type=int, default=128)
    parser.add_argument("--weights", type=Path, default=SHARED / "weights" / "inception_v3_imagenet_notop.h5")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="bench-refresh-"))
    os.environ["SHOELABEL_HOME"] = str(home)
    os.environ.pop("SHOELABEL_DB", None)
    if args.inception:
        os.environ["SHOELABEL_INCEPTION_WEIGHTS"] = str(args.weights)
    import modeling  # noqa: F401  (selects the JAX backend before Keras loads)
    from db import get_engine
    from shoelabel.images import load_batch

    figures: dict = {"images": args.images, "batch_size": args.batch_size, "cores": os.cpu_count()}
    try:
        files = photo_files(args.photos, home, args.images)
        sample = load_batch(files[:256], 128)

        from modeling.architectures import build_cnn

        engine = get_engine()
        build_catalogue(engine, files, args.images)
        cnn = register_model(engine, "cnn", build_cnn(3), 128, home)
        model = cnn.model()
        figures["cnn"] = bench_model(
            engine, cnn, "CNN", args, lambda: raw_forward(model.predict_on_batch, sample, args.batch_size, args.images)
        )

        if args.inception:
            figures["inception"] = bench_inception(home, files, args)
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def bench_inception(home: Path, files: list[Path], args: argparse.Namespace) -> dict:
    """InceptionV3 on a catalogue of its own: the full network first (no cached activations), then the top."""
    from db import get_engine
    from modeling.architectures import build_inception, split_inception, weights_id
    from shoelabel.images import load_batch

    os.environ["SHOELABEL_HOME"] = str(home / "inception")
    engine = get_engine()
    build_catalogue(engine, files, args.inception_images)  # smaller: the full network is slow on a CPU
    weights = str(args.weights)
    handle = register_model(engine, "inception", build_inception(3, weights), 299, home, weights_id(weights))
    model = handle.model()
    pixels = load_batch(files[: args.batch_size], 299)
    once = argparse.Namespace(**{**vars(args), "ray_workers": [], "repeat": 1})  # the cache is full after one
    figures = {
        "full_network": bench_model(
            engine,
            handle,
            "InceptionV3, no cache",
            once,
            lambda: raw_forward(model.predict_on_batch, pixels, args.batch_size, args.batch_size * 2),
        )
    }
    lower, upper = split_inception(model)
    activations = np.asarray(lower.predict_on_batch(pixels)).astype(np.float16)  # as cached
    figures["from_cache"] = bench_model(
        engine,
        handle,
        "InceptionV3, cached",
        args,
        lambda: raw_forward(upper.predict_on_batch, activations, args.batch_size, args.inception_images),
    )
    return figures


if __name__ == "__main__":
    raise SystemExit(main())
