"""The catalogue counts in the app's header: right (photos counted by how they arrived) and fresh (a change
made on a page shows in the same run, not after the next page change)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import Engine, func, select

from db import session_scope
from db.models import EvaluationDraw
from feedback.ingest import ingest_folder
from feedback.queue import queue_summary
from feedback.reviews import record_review
from tests.app_support import assert_clean, new_app, pool_ids, texts


def _answer_the_pool(engine: Engine) -> int:
    """Every pool photo answered; returns how many the first answers held out."""
    for image_id in pool_ids(engine):
        record_review(image_id, "ann", "correct", label="acme", engine=engine)
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).where(EvaluationDraw.held_out))


@pytest.fixture
def ingested(engine: Engine, brand_folder: Path, pool_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """The labelled and the pool fixtures ingested; half of the pool photos answered go to the evaluation part."""
    monkeypatch.setenv("SHOELABEL_REVIEW_HOLDOUT", "0.5")
    ingest_folder(brand_folder, engine=engine)
    ingest_folder(pool_folder, engine=engine)
    return engine


def test_photos_added_without_a_brand_stay_counted_when_their_answers_hold_them_out(ingested: Engine) -> None:
    before = queue_summary(ingested)
    assert (before["images"], before["pool"]) == (44, 8)
    held_out = _answer_the_pool(ingested)
    assert held_out >= 2  # half of the answered pool photos went to the evaluation part
    after = queue_summary(ingested)
    assert after["images"] == 44 and after["pool"] == 8  # still the 8 photos that came without a brand
    assert after["holdout"] == before["holdout"] + held_out and after["pool_held_out"] == held_out
    assert after["train"] + after["holdout"] + after["pool"] - after["pool_held_out"] == after["images"]


@pytest.mark.slow
def test_the_sidebar_says_how_many_pool_photos_are_held_out(ingested: Engine) -> None:
    held_out = _answer_the_pool(ingested)
    at = new_app().run()
    assert_clean(at)
    [caption] = [c for c in texts(at.sidebar.caption) if "photos:" in c]
    assert f"({held_out} of them from the review pool)" in caption
    assert "8 added without a brand" in caption and caption.startswith("44 photos")


def _jpeg(seed: int) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (64, 64), (seed * 40 % 256, 90, 160)).save(out, format="JPEG")
    return out.getvalue()


@pytest.mark.slow
def test_photos_added_on_the_predict_page_are_counted_in_the_same_run(engine: Engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder, engine=engine)
    at = new_app().run()
    at.switch_page("ui/pages/predict.py").run()
    assert any(c.startswith("36 photos") for c in texts(at.sidebar.caption))
    at.file_uploader(key="predict_files").set_value(
        [("a.jpg", _jpeg(1), "image/jpeg"), ("b.jpg", _jpeg(2), "image/jpeg")]
    )
    at.run()
    at.button(key="add_to_pool").click().run()
    assert_clean(at)
    assert any("Added 2 photo(s) to the review pool" in s.value for s in at.success)  # the same run
    captions = [c for c in texts(at.sidebar.caption) if "photos:" in c]
    assert len(captions) == 1 and captions[0].startswith("38 photos")
    assert "2 added without a brand" in captions[0]
