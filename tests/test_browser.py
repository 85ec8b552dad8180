"""End to end: the real app server in headless Chromium, answered with the keyboard, checked in SQLite.

(``bench/screenshot_review.py`` uses the same helpers to photograph the Review page for the README.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from db import session_scope
from db.models import Review, ReviewAction
from tests.app_support import AppServerError, pool_ids, running_app, seed_catalogue

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("SHOELABEL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SETTLE_MS = 300


@pytest.fixture(scope="module")
def playwright_api() -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(
            f"Chromium not found at {CHROMIUM}: install it (apt-get install chromium) or set SHOELABEL_CHROMIUM"
        )
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture
def server(home: Path) -> Iterator[str]:
    """``streamlit run streamlit_app.py`` on a free port, on the test's home folder."""
    try:
        with running_app(home, log=home.parent / "server.log") as url:
            yield url
    except AppServerError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def page(playwright_api: object) -> Iterator[object]:
    browser = playwright_api.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    try:
        page = browser.new_page(viewport={"width": 1440, "height": 960})
        page.set_default_timeout(30_000)
        yield page
    finally:
        browser.close()


def sign_in(page: object, url: str, name: str) -> None:
    page.goto(url)
    name_box = page.get_by_label("Your name")
    name_box.fill(name)
    name_box.press("Enter")  # submits the form
    page.get_by_role("button", name="Confirm").wait_for()


def photo_caption(page: object, image_id: int) -> object:
    return page.get_by_text(f"Photo #{image_id} ·")


#: Records, in the page, how long after a key press the next photo's caption appeared.
WATCH_LATENCY = """() => {
  const shown = () => { const m = document.body.innerText.match(/Photo #(\\d+) ·/); return m && m[1]; };
  window.__photo = shown();
  document.addEventListener('keydown', () => { window.__down = performance.now(); window.__latency = null; }, true);
  new MutationObserver(() => {
    const now = shown();
    if (now && now !== window.__photo) { window.__photo = now; window.__latency = performance.now() - window.__down; }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def ready(page: object, image_id: int) -> None:
    """Wait until photo ``image_id`` and its keys are on screen. The keys belong to the photo (a key
    pressed on a photo already answered does nothing), and bind just after the redraw, so pause the
    way a reviewer looks at the photo before answering."""
    photo_caption(page, image_id).wait_for()
    page.locator(f".st-key-skip_{image_id}").wait_for()
    page.wait_for_timeout(SETTLE_MS)


def answer(page: object, key: str, next_image_id: int) -> float:
    """Press ``key``, wait for the next photo, and return the key-to-photo time in seconds."""
    page.keyboard.press(key)
    photo_caption(page, next_image_id).wait_for()
    latency = page.evaluate("window.__latency")
    ready(page, next_image_id)
    return (latency or 0.0) / 1000


def wait_for_review(engine: Engine, count: int, timeout_s: float = 15.0) -> list[Review]:
    deadline = time.monotonic() + timeout_s
    while True:
        with session_scope(engine) as session:
            rows = list(session.scalars(select(Review).order_by(Review.id)))
            for row in rows:
                _ = row.brand  # load while the session is open
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_keyboard_answers_land_in_the_database(
    engine: Engine, home: Path, brand_folder: Path, pool_folder: Path, server: str, page: object
) -> None:
    seed_catalogue(engine, home, brand_folder, pool_folder)
    pool = pool_ids(engine)
    sign_in(page, server, "ann")
    page.evaluate(WATCH_LATENCY)
    ready(page, pool[0])

    timings = [answer(page, "2", pool[1])]  # correct to brand 2 (bolt)
    [review] = wait_for_review(engine, 1)
    assert (review.image_id, review.reviewer, review.action, review.brand.name) == (
        pool[0],
        "ann",
        ReviewAction.CORRECT,
        "bolt",
    )

    timings += [answer(page, "s", pool[n + 1]) for n in range(1, 5)]  # skip four photos
    reviews = wait_for_review(engine, 5)
    assert [(r.image_id, r.action) for r in reviews] == [(pool[0], ReviewAction.CORRECT)] + [
        (pool[n], ReviewAction.SKIP) for n in range(1, 5)
    ]

    timings.append(answer(page, "z", pool[4]))  # undo the last skip: that photo comes back
    deadline = time.monotonic() + 10
    while wait_for_review(engine, 5)[-1].undone_at is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert wait_for_review(engine, 5)[-1].undone_at is not None

    timings.append(answer(page, "Enter", pool[5]))  # confirm the top brand shown
    reviews = wait_for_review(engine, 6)
    assert (reviews[-1].image_id, reviews[-1].reviewer, reviews[-1].action, reviews[-1].brand.name) == (
        pool[4],
        "ann",
        ReviewAction.CONFIRM,
        "bolt",
    )
    print(f"\nkey press to next photo on screen: {', '.join(f'{t * 1000:.0f} ms' for t in timings)}")
