"""The Review page's "Every attribute at once" in headless Chromium: every attribute of a photo answered with
keys only (a row per attribute, arrows between rows, digits for the row's likeliest classes, Enter saves), with
each model's answer shown on its attribute's row."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, select

from db import session_scope
from db.models import Review, ReviewAction
from feedback.classes import add_attribute, add_classes, attribute_ids
from modeling.predict import store_predictions
from tests.app_support import current_fakes, pool_ids, seed_catalogue
from tests.test_browser import SETTLE_MS, photo_caption, ready, sign_in

pytestmark = pytest.mark.browser

# more than nine: the digits offer the likeliest
MATERIALS = [
    "canvas", "cork", "denim", "felt", "leather", "mesh", "nubuck", "rubber", "satin", "suede", "velvet",
]  # fmt: skip


def material_probabilities(arch: str) -> np.ndarray:
    """The later a material in the alphabet, the likelier; the two models differ a little."""
    weights = np.arange(1.0, len(MATERIALS) + 1) ** (2.0 if arch == "inception" else 1.5)
    return weights / weights.sum()


def material_models(engine: Engine, home: Path, image_ids: list[int]) -> dict[str, np.ndarray]:
    """A current InceptionV3 and CNN model of ``material`` with predictions for ``image_ids``."""
    material = attribute_ids(engine=engine)["material"]
    accuracies = {"inception": 0.8, "cnn": 0.8}
    handles = current_fakes(engine, home, "material-{arch}.keras", MATERIALS, accuracies, attribute_id=material)
    shown = {arch: material_probabilities(arch) for arch in handles}
    for arch, handle in handles.items():
        store_predictions(engine, handle, {image_id: shown[arch] for image_id in image_ids})
    return shown


def run_of(page: object) -> str | None:
    """Which run drew the review (see ``shoelabel-ready`` in ui/review.py)."""
    marker = page.locator(".shoelabel-ready")
    return marker.first.get_attribute("data-run") if marker.count() else None


def press(page: object, key: str, timeout_s: float = 5.0) -> None:
    """Press ``key`` and wait until the review is drawn again (or ``timeout_s`` passes: the key did nothing)."""
    before = run_of(page)
    page.keyboard.press(key)
    deadline = time.monotonic() + timeout_s
    while run_of(page) == before and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    page.wait_for_timeout(SETTLE_MS)


def stored(engine: Engine) -> list[tuple[int, str, str, str, ReviewAction]]:
    with session_scope(engine) as session:
        rows = session.scalars(select(Review).order_by(Review.id))
        return [(r.image_id, r.reviewer, r.attribute.name, r.label_class.name, r.action) for r in rows]


def test_every_attribute_of_a_photo_answered_with_keys_only(
    engine: Engine, home: Path, brand_folder: Path, pool_folder: Path, server: str, page: object
) -> None:
    seed_catalogue(engine, home, brand_folder, pool_folder)  # brand: acme, bolt, crest; both models say bolt
    add_attribute("colour", engine=engine)
    add_classes("colour", ["Black", "White"], engine=engine)  # no model
    add_attribute("material", engine=engine)
    add_classes("material", MATERIALS, engine=engine)
    pool = pool_ids(engine)
    models = material_models(engine, home, pool)
    likeliest = [MATERIALS[i] for i in np.argsort(-(models["inception"] + models["cnn"]))]

    sign_in(page, server, "ann")
    ready(page, pool[0])
    page.locator(".st-key-review_attribute input").click()  # the mode, chosen in the sidebar
    page.keyboard.type("Every")
    page.get_by_role("option", name="Every attribute at once").click()
    photo_caption(page, pool[0]).wait_for()
    ready(page, pool[0])
    rows = [page.locator(f".st-key-every_row_{pool[0]}_{i}") for i in range(3)]
    rows[2].wait_for(timeout=10_000)

    # Each model's answer on its attribute's row: class and confidence.
    brand_row, colour_row, material_row = (row.inner_text() for row in rows)
    assert re.search(r"InceptionV3[^\n]*bolt \d+%", brand_row) and re.search(r"CNN[^\n]*bolt \d+%", brand_row)
    top = {arch: f"{MATERIALS[int(np.argmax(p))]} {p.max():.0%}" for arch, p in models.items()}
    assert top["inception"] in material_row and top["cnn"] in material_row, material_row
    assert "no model" in colour_row

    press(page, "3")  # brand: three classes, alphabetical keys -> crest; the colour row is next
    press(page, "2")  # colour -> White; the material row is next
    press(page, "ArrowUp")  # back to colour
    press(page, "1")  # colour -> Black; material next
    press(page, "2")  # material: its second likeliest class
    assert f"material: {likeliest[1]}" in rows[2].inner_text()
    page.keyboard.press("/")  # any material: typed, not a key of the page
    page.keyboard.type("sat")
    page.get_by_role("option", name="satin").wait_for()
    press(page, "Enter")
    assert "material: satin" in rows[2].inner_text()
    assert stored(engine) == []  # nothing is stored before Enter
    press(page, "Enter")
    photo_caption(page, pool[1]).wait_for(timeout=10_000)

    assert sorted(stored(engine)) == sorted(
        [
            (pool[0], "ann", "brand", "crest", ReviewAction.CORRECT),
            (pool[0], "ann", "colour", "Black", ReviewAction.CORRECT),
            (pool[0], "ann", "material", "satin", ReviewAction.CORRECT),
        ]
    )
