"""The Review page's keyboard in headless Chromium against the real app server: the sidebar never keeps the
keyboard, and keys pressed while the next photo is drawn are held back with a notice."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import Engine

from db.models import ReviewAction
from tests.app_support import pool_ids
from tests.test_browser import SETTLE_MS, photo_caption, ready, sign_in, wait_for_review

pytestmark = pytest.mark.browser


def photo_on_screen(page: object) -> int:
    """The id of the photo the page shows, once its keys are bound."""
    caption = page.get_by_text(re.compile(r"^Photo #\d+ ·")).first
    caption.wait_for()
    image_id = int(re.match(r"Photo #(\d+)", caption.inner_text()).group(1))
    ready(page, image_id)
    return image_id


def test_answer_keys_work_after_a_sidebar_choice(server: str, page: object, catalogue: Engine) -> None:
    sign_in(page, server, "ann")
    ready(page, pool_ids(catalogue)[0])
    page.locator(".st-key-strategy input").click()
    page.keyboard.type("marg")
    page.get_by_role("option", name="Smallest margin").wait_for()
    page.keyboard.press("Enter")
    deadline = time.monotonic() + 10
    while (
        chosen := page.locator(".st-key-strategy input").input_value()
    ) != "Smallest margin" and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert chosen == "Smallest margin", chosen
    page.wait_for_timeout(2 * SETTLE_MS)
    shown = photo_on_screen(page)
    page.keyboard.press("s")  # not typed into the select box: skips the photo
    [review] = wait_for_review(catalogue, 1, timeout_s=5)
    assert (review.image_id, review.action) == (shown, ReviewAction.SKIP)


def test_escape_takes_the_keyboard_out_of_the_sidebar(server: str, page: object, catalogue: Engine) -> None:
    pool = pool_ids(catalogue)
    sign_in(page, server, "ann")
    ready(page, pool[0])
    page.locator(".st-key-scope_least_confidence input").click()  # opens its list of options
    page.get_by_role("option").first.wait_for()
    page.keyboard.press("Escape")
    page.wait_for_timeout(SETTLE_MS)
    page.keyboard.press("3")
    [review] = wait_for_review(catalogue, 1, timeout_s=5)
    assert (review.image_id, review.action, review.label_class.name) == (pool[0], ReviewAction.CORRECT, "crest")


IGNORED = re.compile(r"(\d+) keys? ignored: wait for the photo")


def test_keys_pressed_before_the_next_photo_is_drawn_are_ignored_with_a_notice(
    server: str, page: object, catalogue: Engine
) -> None:
    pool = pool_ids(catalogue)
    sign_in(page, server, "ann")
    ready(page, pool[0])
    presses = 5
    for _ in range(presses):
        page.keyboard.press("s")
        page.wait_for_timeout(30)
    page.get_by_text(IGNORED).first.wait_for(timeout=5000)
    time.sleep(1.0)  # any answer still on its way is recorded
    recorded = wait_for_review(catalogue, 0)
    assert 1 <= len(recorded) < presses
    # Each key answered the photo on screen when it was pressed: the queue's photos in order, none twice.
    assert [(r.image_id, r.action) for r in recorded] == [(i, ReviewAction.SKIP) for i in pool[: len(recorded)]]
    notices = page.get_by_text(IGNORED).all_inner_texts()
    assert sum(int(IGNORED.search(text).group(1)) for text in notices) == presses - len(recorded), notices
    photo_caption(page, pool[len(recorded)]).wait_for()
