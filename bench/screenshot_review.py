"""Save a screenshot of the Review page of a catalogue with real models (for the README).

    python bench/screenshot_review.py --home DIR [--out docs/review-page.png] [--scope unreviewed]

Starts the app on ``DIR`` (a catalogue with trained models, such as the one
``bench/bench_models.py --home DIR`` leaves), signs in, picks the queue scope and
saves the page. Needs Debian's chromium and the playwright package.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    from playwright.sync_api import sync_playwright

    from tests.app_support import running_app
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "review-page.png")
    parser.add_argument("--scope", default="unreviewed", choices=["unlabelled", "unreviewed", "labelled"])
    args = parser.parse_args()
    with running_app(args.home) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(60_000)
        page.goto(url)
        name_box = page.get_by_label("Your name")
        name_box.fill("ann")
        name_box.press("Enter")
        page.get_by_label("Photos").wait_for()
        if args.scope != "unlabelled":
            page.get_by_label("Photos").click()
            page.get_by_role("option", name=args.scope, exact=False).first.click()
            page.get_by_role("button", name="Confirm").wait_for()
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(1500)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        browser.close()
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
