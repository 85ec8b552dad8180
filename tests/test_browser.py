"""End to end: the real app server in headless Chromium, answered with the keyboard, checked in SQLite.

(``bench/screenshot_review.py`` uses the same helpers to photograph the Review page for the README.)
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, select

from db import session_scope
from db.models import Review, ReviewAction
from feedback.ingest import ingest_folder
from feedback.reviews import record_review
from tests.app_support import add_round_history, fake_models, pool_ids, seed_catalogue

pytestmark = pytest.mark.browser

SETTLE_MS = 300


def sign_in(page: object, url: str, name: str) -> None:
    page.goto(url)
    name_box = page.get_by_label("Your name")
    name_box.fill(name)
    name_box.press("Enter")  # submits the form
    page.get_by_role("button", name="Confirm").wait_for()


def assert_one_review(engine: Engine, expected: tuple[int, str, ReviewAction, str]) -> None:
    """The database holds one review, this one: (photo, reviewer, action, brand)."""
    [review] = wait_for_review(engine, 1)
    assert (review.image_id, review.reviewer, review.action, review.label_class.name) == expected


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


#: True once the page holds no element left over from the previous run of the script.
NO_STALE = "() => !document.querySelector('[data-stale=true]')"


def ready(page: object, image_id: int) -> None:
    """Wait until photo ``image_id`` and its keys are on screen. The keys belong to the photo (a key
    pressed on a photo already answered does nothing), and bind just after the redraw, so pause the
    way a reviewer looks at the photo before answering."""
    page.locator(f'.st-key-skip_{image_id}:not([data-stale="true"])').wait_for()
    page.wait_for_function(NO_STALE)  # a redraw's leftovers share keys with the new elements
    photo_caption(page, image_id).wait_for()
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
                _ = row.label_class  # load while the session is open
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_keyboard_answers_land_in_the_database(server: str, page: object, catalogue: Engine) -> None:
    pool = pool_ids(catalogue)
    sign_in(page, server, "ann")
    page.evaluate(WATCH_LATENCY)
    ready(page, pool[0])

    timings = [answer(page, "2", pool[1])]  # correct to brand 2 (bolt)
    assert_one_review(catalogue, (pool[0], "ann", ReviewAction.CORRECT, "bolt"))

    timings += [answer(page, "s", pool[n + 1]) for n in range(1, 5)]  # skip four photos
    reviews = wait_for_review(catalogue, 5)
    assert [(r.image_id, r.action) for r in reviews] == [(pool[0], ReviewAction.CORRECT)] + [
        (pool[n], ReviewAction.SKIP) for n in range(1, 5)
    ]

    timings.append(answer(page, "z", pool[4]))  # undo the last skip: that photo comes back
    deadline = time.monotonic() + 10
    while wait_for_review(catalogue, 5)[-1].undone_at is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert wait_for_review(catalogue, 5)[-1].undone_at is not None

    timings.append(answer(page, "Enter", pool[5]))  # confirm the top brand shown
    reviews = wait_for_review(catalogue, 6)
    assert (reviews[-1].image_id, reviews[-1].reviewer, reviews[-1].action, reviews[-1].label_class.name) == (
        pool[4],
        "ann",
        ReviewAction.CONFIRM,
        "bolt",
    )
    print(f"\nkey press to next photo on screen: {', '.join(f'{t * 1000:.0f} ms' for t in timings)}")


#: Each loaded image under an element: its width on screen and its own width, in pixels.
IMAGE_WIDTHS = """(root) => [...root.querySelectorAll('img')]
  .filter(i => i.complete && i.naturalWidth > 0).map(i => [i.getBoundingClientRect().width, i.naturalWidth])"""


def image_widths(locator: object) -> list[tuple[float, int]]:
    """(on screen, own) widths of the images under ``locator``, once they have loaded."""
    locator.locator("img").first.wait_for()
    deadline = time.monotonic() + 10
    while not (widths := locator.evaluate(IMAGE_WIDTHS)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return widths


#: The rectangles of the visible element toolbars (Streamlit's fullscreen button) that overlap the status line.
TOOLBARS_OVER_STATUS = """() => {
  const status = [...document.querySelectorAll('[data-testid=stMarkdownContainer]')]
    .find(e => e.innerText.startsWith('Reviewed this session'));
  const s = status.getBoundingClientRect();
  return [...document.querySelectorAll('[data-testid=stElementToolbar]')].map(t => t.getBoundingClientRect())
    .filter(r => r.width > 0 && r.height > 0 && r.left < s.right && r.right > s.left && r.top < s.bottom
            && r.bottom > s.top).map(r => [r.left, r.top, r.width, r.height]);
}"""


def test_review_photo_fills_its_column_at_most_twice_its_size_and_zooms_to_its_own(
    server: str, page: object, catalogue: Engine
) -> None:
    pool = pool_ids(catalogue)  # photos 64 px wide, in a column far wider
    sign_in(page, server, "ann")
    ready(page, pool[0])
    photo = page.locator(".st-key-review_photo")
    [(shown, own)] = image_widths(photo)
    column = photo.evaluate("(e) => e.getBoundingClientRect().width")
    assert column > 2 * own and shown == pytest.approx(2 * own, abs=1)

    photo.locator("img").hover()  # the status line above the photo stays uncovered
    page.wait_for_timeout(SETTLE_MS)
    assert page.evaluate(TOOLBARS_OVER_STATUS) == []

    photo.get_by_text("Own size").click()
    deadline = time.monotonic() + 10
    while (widths := image_widths(photo)) != [[own, own]] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert widths == [[own, own]]


def test_browse_thumbnail_opens_its_photo_and_settling_stays_on_conflicts(
    engine: Engine, home: Path, brand_folder: Path, pool_folder: Path, server: str, page: object
) -> None:
    seed_catalogue(engine, home, brand_folder, pool_folder)
    for image_id in pool_ids(engine)[:2]:
        record_review(image_id, "ann", "correct", label="acme", engine=engine)
        record_review(image_id, "bob", "correct", label="crest", engine=engine)
    page.goto(f"{server}/browse")
    page.get_by_text("photo(s) match").wait_for()
    thumbnail = page.get_by_test_id("stMain").get_by_test_id("stImage").locator("img").first  # catalogue order
    thumbnail.wait_for()
    page.wait_for_timeout(SETTLE_MS)
    box = thumbnail.bounding_box()
    started = time.monotonic()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # the picture, not a button
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Photo #1", exact=True).wait_for(timeout=10_000)
    opened_s = time.monotonic() - started
    widths = image_widths(dialog)
    assert widths and all(shown <= own for shown, own in widths), widths
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")

    conflicts_tab = page.get_by_role("tab", name="Conflicts")
    conflicts_tab.click()
    name_box = page.get_by_label("Your name")
    name_box.fill("carol")
    name_box.press("Enter")
    page.locator("[class*='st-key-resolve_choice_'] input").first.click()  # nothing is chosen beforehand
    page.get_by_role("option", name="bolt").click()
    page.get_by_role("button", name="Settle").first.click()
    page.get_by_text("settled as").wait_for()
    page.get_by_text("1 photo(s) have reviewers who disagree").wait_for()
    assert conflicts_tab.get_attribute("aria-selected") == "true"
    print(f"\nthumbnail click to photo details on screen: {opened_s * 1000:.0f} ms")


def test_all_rounds_table_fits_the_page(
    engine: Engine, home: Path, brand_folder: Path, pool_folder: Path, server: str, page: object
) -> None:
    seed_catalogue(engine, home, brand_folder, pool_folder)
    add_round_history(
        engine,
        message="Promoted: the candidate's held-out macro F1 is not below the current model's, so it "
        "replaces the current model from now on.",
        duration_s=125.0,
    )
    page.goto(f"{server}/rounds")
    heading = page.get_by_test_id("stElementContainer").filter(has=page.get_by_role("heading", name="All rounds"))
    table = heading.locator("xpath=following-sibling::*[1]")  # whatever shows the rounds
    table.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)  # drawn
    found = table.evaluate(
        """(t) => {
          const main = document.querySelector('[data-testid=stMainBlockContainer]').getBoundingClientRect();
          const cut = [...t.querySelectorAll('*')].filter(e => e.scrollWidth > e.clientWidth + 1
              && (e.matches('th, td') || ['auto', 'scroll', 'hidden'].includes(getComputedStyle(e).overflowX)));
          return {right: t.getBoundingClientRect().right, mainRight: main.right, text: t.innerText,
                  cut: cut.map(e => `${e.tagName}.${e.className}: ${e.scrollWidth} > ${e.clientWidth}`)};
        }"""
    )
    assert found["right"] <= found["mainRight"] + 1, found  # within the page, and nothing scrolls or is cut
    assert not found["cut"], found["cut"]
    assert "replaces the current model from now on." in found["text"] and "None" not in found["text"]


def test_enter_offers_to_add_only_letters_that_match_no_class(
    engine: Engine, home: Path, brand_folder: Path, pool_folder: Path, server: str, page: object
) -> None:
    pool = twelve_brands_on_screen(engine, home, brand_folder, pool_folder, server, page)
    page.keyboard.press("/")
    page.keyboard.type("qwz")  # no class has these letters
    page.get_by_role("option", name="Add: qwz").wait_for()
    page.keyboard.press("Enter")
    page.get_by_text("'qwz' is not a brand yet").wait_for()
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("'qwz' is not a brand yet").wait_for(state="hidden")
    assert wait_for_review(engine, 0) == [] and photo_caption(page, pool[0]).is_visible()


SHOE_BRANDS = [
    "adidas", "asics", "converse", "fila", "hoka", "keen", "nike", "puma", "reebok", "salomon", "saucony", "vans",
]  # fmt: skip


def twelve_brands_on_screen(
    engine: Engine, home: Path, brand_folder: Path, pool_folder: Path, server: str, page: object
) -> list[int]:
    """A catalogue whose models know twelve brands, its first pool photo on ann's screen; the pool's ids."""
    ingest_folder(brand_folder, engine=engine)
    ingest_folder(pool_folder, engine=engine)
    fake_models(engine, home, class_names=SHOE_BRANDS, pool=late_brands_first)
    pool = pool_ids(engine)
    sign_in(page, server, "ann")
    ready(page, pool[0])
    return pool


def late_brands_first(position: int, arch: str, n_classes: int) -> np.ndarray:
    """The later a brand in the alphabet, the likelier; the first pool photo is the least confident."""
    weights = np.arange(1.0, n_classes + 1)
    weights[-1] += 0.5 * position
    return weights / weights.sum()


def test_slash_then_letters_then_enter_corrects_to_a_brand_without_a_key(
    engine: Engine, home: Path, brand_folder: Path, pool_folder: Path, server: str, page: object
) -> None:
    pool = twelve_brands_on_screen(engine, home, brand_folder, pool_folder, server, page)
    assert page.locator(f".st-key-brand_{pool[0]}_1").inner_text().startswith("1 · vans")  # the likeliest brand

    page.keyboard.press("/")
    page.keyboard.type("asi")  # "s" and the rest go to the box, not to the page's keys: nothing is skipped
    page.get_by_role("option", name="asics").wait_for()
    page.keyboard.press("Enter")
    photo_caption(page, pool[1]).wait_for()
    assert_one_review(engine, (pool[0], "ann", ReviewAction.CORRECT, "asics"))

    ready(page, pool[1])
    page.keyboard.press("s")  # the page's keys work again on the next photo
    photo_caption(page, pool[2]).wait_for()
    assert [(r.image_id, r.action) for r in wait_for_review(engine, 2)] == [
        (pool[0], ReviewAction.CORRECT),
        (pool[1], ReviewAction.SKIP),
    ]
