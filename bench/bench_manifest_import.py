"""Does a large manifest import hold up reviewers? How long does an answer wait while one runs?

    python bench/bench_manifest_import.py [--rows 20000] [--repo DIR] [--json FILE]

Writes ``--rows`` distinct small JPEGs and a manifest naming them (three brands, some held out), ingests a pool
of 40 photos to answer, then starts ``python -m feedback.manifest import`` in its own process (the code of
``--repo``, this repository by default: point it at an older checkout for a before/after pair) and, while it
runs, records one answer every 0.1 s from this process, as a reviewer in the app would. Each answer is timed
from the call to its commit; an answer that waits past the busy timeout (30 s) fails, as in the app.

Prints the import's time and the answers' waits (median, 95th percentile, longest, failed); figures, not
assertions. Before chunked imports, an answer waited for the whole import (20,000 rows: past 30 s, so it
failed); with them, it waits for one chunk at most.

Measured on a shared 2-core machine (SQLite): before, 2,000 rows: answers' median wait 26 ms, longest 9.7 s
(the whole import); after, 5,000 rows: median 28 ms, 95th percentile 143 ms, longest 0.35 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BRANDS = ("acme", "bolt", "crest")
POOL = 40


def write_photos(folder: Path, rows: int) -> Path:
    """``rows`` distinct 64x64 JPEGs and a manifest of them; returns the manifest."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["path,brand,split"]
    for n in range(rows):
        pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        path = folder / f"m{n:06d}.jpg"
        Image.fromarray(pixels).save(path, quality=80)
        lines.append(f"{path},{BRANDS[n % 3]},{'holdout' if n % 7 == 0 else 'train'}")
    manifest = folder / "labels.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def pool_photos(folder: Path) -> Path:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(POOL):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / f"p{n}.jpg")
    return folder


def answer_while(process: subprocess.Popen[bytes], pool: list[int]) -> tuple[list[float], int]:
    """Record one answer every 0.1 s while ``process`` runs; the waits (s) and the failures."""
    from db import DatabaseBusyError
    from feedback.reviews import record_review

    waits: list[float] = []
    failed = 0
    n = 0
    while process.poll() is None:
        started = time.perf_counter()
        try:
            record_review(pool[n % len(pool)], f"r{n // len(pool)}", "correct", label=BRANDS[n % 3])
            waits.append(time.perf_counter() - started)
        except DatabaseBusyError:
            failed += 1
        n += 1
        time.sleep(0.1)
    return waits, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repo", type=Path, default=REPO, help="the code the import runs (default: this one)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        os.environ["SHOELABEL_HOME"] = str(home)
        os.environ.pop("SHOELABEL_DB", None)
        from sqlalchemy import select

        from db import get_engine, session_scope
        from db.models import Image as Photo
        from db.models import Split
        from feedback.classes import add_classes
        from feedback.ingest import ingest_folder

        manifest = write_photos(Path(scratch) / "photos", args.rows)
        ingest_folder(pool_photos(Path(scratch) / "pool"))
        add_classes("brand", list(BRANDS))  # the answers' classes, there before the import
        with session_scope(get_engine()) as session:
            pool = list(session.scalars(select(Photo.id).where(Photo.split == Split.POOL)))
        command = [sys.executable, "-m", "feedback.manifest", "import", str(manifest)]
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=args.repo, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        waits, failed = answer_while(process, pool)
        process.wait()
        took = time.perf_counter() - started
    waits.sort()
    figures = {
        "rows": args.rows,
        "repo": str(args.repo),
        "import_s": round(took, 1),
        "import_exit": process.returncode,
        "answers": len(waits),
        "failed": failed,
        "wait_median_ms": round(statistics.median(waits) * 1000, 1) if waits else None,
        "wait_p95_ms": round(waits[int(0.95 * (len(waits) - 1))] * 1000, 1) if waits else None,
        "wait_max_ms": round(waits[-1] * 1000, 1) if waits else None,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
