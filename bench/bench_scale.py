"""Does anything a reviewer does slow down as the catalogue grows? (Budget at 1,000,000 pool photos:
answer + next photo median <= 50 ms and p95 <= 150 ms; a Browse page <= 300 ms.)

    python bench/bench_scale.py --images 1000000 [--sizes 10000,100000] [--postgres URL] [--actions 40]

For each database (SQLite always; PostgreSQL with ``--postgres`` or ``SHOELABEL_TEST_POSTGRES``, a URL of a
server where the role may create databases) and each size, builds a synthetic catalogue directly in the
schema (no image files: see ``bench/synthetic.py``) and times, median and 95th percentile:

* answer + next: record a review and fetch the next two photos, per query strategy;
* Browse: one page of thumbnails, for several filters and orders;
* counts: the Review page's pending count and the header's counts.

Prints a table and writes ``docs/bench-scale.json``; figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_review import summary

STRATEGIES = ("least_confidence", "margin", "entropy", "disagreement", "random", "diverse", "likely_mislabelled")


def timed(call: Callable[[], Any], repeat: int) -> dict[str, float]:
    call()  # warm: the first call pays for imports and the database's cold pages
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return summary(timings)


def bench_answers(strategy: str, actions: int) -> dict[str, float]:
    from feedback.queue import next_items
    from feedback.reviews import record_review

    reviewer, tab = f"bench-{strategy}", f"tab-{strategy}"
    scope = "labelled" if strategy == "likely_mislabelled" else None
    items = next_items(reviewer, tab, strategy=strategy, scope=scope, k=2)
    timings = []
    for n in range(actions):
        started = time.perf_counter()
        action = "skip" if n % 4 == 3 else "confirm"
        record_review(items[0].image_id, reviewer, action, shown=items[0].shown())
        first = items[1].image_id if len(items) > 1 else None
        items = next_items(reviewer, tab, strategy=strategy, scope=scope, k=2, first=first)
        timings.append(time.perf_counter() - started)
    return summary(timings)


def bench_browse(repeat: int) -> dict[str, dict[str, float]]:
    from feedback.browse import UNLABELLED, BrowseFilter, find_images

    pages: dict[str, tuple[BrowseFilter, str, int]] = {
        "all, newest first": (BrowseFilter(), "newest", 0),
        "all, page 200": (BrowseFilter(), "oldest", 200 * 48),
        "unlabelled, least confident first": (BrowseFilter(label=UNLABELLED), "least_confident", 0),
        "predicted brand-03, most confident first": (BrowseFilter(predicted="brand-03"), "most_confident", 0),
        "reviewed by reviewer-1": (BrowseFilter(reviewer="reviewer-1"), "newest", 0),
        "labelled brand-05": (BrowseFilter(label="brand-05"), "oldest", 0),
    }
    return {
        name: timed(lambda f=flt, s=sort, o=offset: find_images(f, sort=s, offset=o, limit=48), repeat)
        for name, (flt, sort, offset) in pages.items()
    }


def bench_counts(repeat: int) -> dict[str, dict[str, float]]:
    from feedback.queue import pending_count, queue_summary

    return {
        "pending (Review page)": timed(lambda: pending_count("bench-counts", "tab-counts"), repeat),
        "photos per split (header)": timed(queue_summary, repeat),
    }


def fresh_database(backend: str, postgres: str | None, workdir: Path) -> tuple[str, Callable[[], None]]:
    """A URL of a new empty database, and how to drop it afterwards."""
    if backend == "sqlite":
        path = workdir / f"scale-{uuid.uuid4().hex[:8]}.db"
        return f"sqlite:///{path}", lambda: [p.unlink(missing_ok=True) for p in workdir.glob(f"{path.name}*")]
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = make_url(postgres)
    name = f"shoelabel_scale_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        from db import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return admin_url.set(database=name).render_as_string(hide_password=False), drop


def run_size(backend: str, url: str, size: int, actions: int, repeat: int) -> dict[str, Any]:
    from bench.synthetic import build_synthetic_catalogue
    from db import dispose_engines, get_engine

    os.environ["SHOELABEL_DB"] = url
    dispose_engines()
    engine = get_engine()
    catalogue = build_synthetic_catalogue(engine, size)
    if backend == "postgresql":
        from sqlalchemy import text

        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    result: dict[str, Any] = {"backend": backend, "pool": size, "built_s": round(catalogue.seconds, 1)}
    result["answer_and_next"] = {s: bench_answers(s, actions) for s in STRATEGIES}
    result["browse"] = bench_browse(repeat)
    result["counts"] = bench_counts(repeat)
    dispose_engines()
    return result


def print_result(result: dict[str, Any]) -> None:
    print(f"\n{result['backend']}, {result['pool']:,} pool photos (built in {result['built_s']} s)")
    for group in ("answer_and_next", "browse", "counts"):
        for name, figures in result[group].items():
            print(f"  {group:<16} {name:<42} median {figures['median_ms']:>7.1f} ms   p95 {figures['p95_ms']:>7.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1_000_000, help="the largest pool size")
    parser.add_argument("--sizes", default="10000,100000", help="smaller pool sizes to measure too")
    parser.add_argument("--postgres", default=os.environ.get("SHOELABEL_TEST_POSTGRES"), help="a PostgreSQL URL")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--actions", type=int, default=40, help="answers timed per strategy")
    parser.add_argument("--repeat", type=int, default=15, help="timings per Browse page and count")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "bench-scale.json")
    args = parser.parse_args(argv)
    sizes = sorted({*(int(s) for s in args.sizes.split(",") if s), args.images})
    backends = [b for b in args.backends.split(",") if b]
    if "postgresql" in backends and not args.postgres:
        print("PostgreSQL skipped: no server given (--postgres URL or SHOELABEL_TEST_POSTGRES)")
        backends.remove("postgresql")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SHOELABEL_HOME"] = tmp
        for backend in backends:
            for size in sizes:
                url, drop = fresh_database(backend, args.postgres, Path(tmp))
                try:
                    results.append(run_size(backend, url, size, args.actions, args.repeat))
                finally:
                    drop()
                print_result(results[-1])
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
