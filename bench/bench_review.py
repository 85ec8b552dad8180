"""How long does a review action take, end to end? (Budget: 300 ms.)

    python bench/bench_review.py [--pool 2000] [--actions 40] [--no-browser]

Builds a catalogue (the shared photos, labelled, plus ``--pool`` unlabelled photos)
with stored predictions of two current models, then times one answer:

* service: record the review and fetch the next two photos from the queue;
* app: the same through the Streamlit script (AppTest: click, rerun, redraw);
* browser: key press in headless Chromium until the next photo is on screen
  (the real server; needs Debian's chromium and the playwright package).

Prints median and 95th percentile; figures, not assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def summary(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 1),
    }


def build_catalogue(home: Path, pool: int) -> None:
    from db import get_engine
    from feedback.ingest import ingest_folder
    from tests.app_support import fake_models
    from tests.conftest import make_brand_photo

    engine = get_engine()
    shared = REPO.parent / "shared" / "data" / "shoes-train"
    labelled = shared if shared.is_dir() else home / "labelled"
    if not shared.is_dir():
        for b, brand in enumerate(["acme", "bolt", "crest"]):
            for i in range(50):
                make_brand_photo(labelled / brand / f"{i}.jpg", b, seed=100 * b + i)
    ingest_folder(labelled, engine=engine)
    for i in range(pool):
        make_brand_photo(home / "pool" / f"p{i}.jpg", i % 3, seed=50_000 + i)
    ingest_folder(home / "pool", engine=engine)
    from db import session_scope
    from db.catalog import class_names

    with session_scope(engine) as session:
        brands = class_names(session)
    fake_models(engine, home, brands, lambda position, arch, n: _probabilities(position, arch, n))


def _probabilities(position: int, arch: str, n: int) -> np.ndarray:
    return np.random.default_rng(position * 2 + (arch == "cnn")).dirichlet(np.ones(n))


def bench_service(actions: int) -> dict[str, float]:
    from feedback.queue import next_items
    from feedback.reviews import record_review

    timings = []
    items = next_items("bench-service", "s-service", k=2)
    for _ in range(actions):
        started = time.perf_counter()
        record_review(items[0].image_id, "bench-service", "confirm", shown=items[0].shown())
        items = next_items("bench-service", "s-service", k=2, first=items[1].image_id)
        timings.append(time.perf_counter() - started)
    return summary(timings)


def bench_app(actions: int) -> dict[str, float]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=120).run()
    at.text_input(key="reviewer_name").input("bench-app")
    at.button(key="FormSubmitter:reviewer_form-Start").click().run()
    timings = []
    for _ in range(actions):
        image_id = at.session_state["review_queue"][0].image_id
        started = time.perf_counter()
        at.button(key=f"confirm_{image_id}").click().run()
        timings.append(time.perf_counter() - started)
    assert not at.exception, [e.value for e in at.exception]
    return summary(timings)


def bench_browser(home: Path, actions: int) -> dict[str, float] | str:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "skipped: playwright is not installed"
    from tests import test_browser as browser
    from tests.conftest import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.is_file():
        return f"skipped: no Chromium at {CHROMIUM}"
    from tests.app_support import running_app

    with running_app(home) as url, sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = chromium.new_page(viewport={"width": 1440, "height": 960})
        page.set_default_timeout(30_000)
        browser.sign_in(page, url, "bench-browser")
        page.evaluate(browser.WATCH_LATENCY)
        timings = []
        for _ in range(actions):
            current = int(page.evaluate("window.__photo"))
            page.keyboard.press("Enter")
            page.wait_for_function(f"window.__photo && window.__photo !== '{current}'")
            timings.append(page.evaluate("window.__latency") / 1000)
            page.locator(f".st-key-skip_{page.evaluate('window.__photo')}").wait_for()
            page.wait_for_timeout(browser.SETTLE_MS)
        chromium.close()
    return summary(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=2000, help="unlabelled photos in the catalogue")
    parser.add_argument("--actions", type=int, default=40)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--json", type=Path, default=REPO / "docs" / "bench-review.json")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="shoelabel-review-bench-"))
    os.environ["SHOELABEL_HOME"] = str(home)
    os.environ.pop("SHOELABEL_DB", None)
    print(f"building a catalogue with {args.pool} unlabelled photos in {home} ...", file=sys.stderr)
    build_catalogue(home, args.pool)
    figures: dict[str, object] = {"pool": args.pool, "actions": args.actions}
    figures["service"] = bench_service(args.actions)
    print(f"service (record + next two photos): {figures['service']}")
    figures["app"] = bench_app(args.actions)
    print(f"app (AppTest click to redrawn page): {figures['app']}")
    if not args.no_browser:
        figures["browser"] = bench_browser(home, min(args.actions, 20))
        print(f"browser (key press to next photo on screen): {figures['browser']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
