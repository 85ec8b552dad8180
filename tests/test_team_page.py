"""The Team page with AppTest: the figures, the chart, and the quality-control share an admin sets."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select, update

from db import session_scope
from db.models import Image, Review
from feedback.agreement import quality_control_share
from feedback.reviews import record_review
from tests.app_support import assert_clean, open_page, pool_ids, texts


def team_page() -> object:
    return open_page("team")


@pytest.mark.slow
def test_team_page_without_reviews_says_so(catalogue: Engine) -> None:
    at = team_page()
    assert any("No reviews yet" in text for text in texts(at.info))
    assert any("0%" in text for text in texts(at.markdown))  # the quality-control share, off


@pytest.mark.slow
def test_team_page_shows_rates_kappa_and_disagreements(catalogue: Engine) -> None:
    pool = pool_ids(catalogue)
    for image_id, (ann, bob) in zip(pool, [("acme", "acme"), ("bolt", "bolt"), ("acme", "crest")], strict=False):
        record_review(image_id, "ann", "correct", label=ann, engine=catalogue)
        record_review(image_id, "bob", "correct", label=bob, engine=catalogue)
    at = team_page()
    frames = {tuple(d.value.columns): d.value for d in at.dataframe}
    reviewers = next(f for cols, f in frames.items() if "answers per hour" in cols)
    assert list(reviewers["reviewer"]) == ["ann", "bob"]
    pairs = next(f for cols, f in frames.items() if "Cohen's kappa" in cols)
    assert (pairs.iloc[0]["reviewer"], pairs.iloc[0]["other reviewer"], pairs.iloc[0]["photos both answered"]) == (
        "ann",
        "bob",
        3,
    )
    assert pairs.iloc[0]["Cohen's kappa"] == "not enough data (3 of 20)"  # 3 photos say nothing yet
    assert pairs.iloc[0]["same answer"] == "not enough data (3 of 20)"
    assert list(reviewers["answers per hour"]) == ["not enough data (2 of 20)"] * 2  # 3 answers: 2 timed
    assert list(reviewers["agreement with the settled label"]) == ["not enough data (2 of 20)"] * 2
    disagreements = next(f for cols, f in frames.items() if "label now" in cols)
    assert list(disagreements["answers"]) == ["ann: acme; bob: crest"]
    assert list(disagreements["label now"]) == ["(in conflict)"]
    assert not (at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"))  # no agreement to chart yet


def answer_at(engine: Engine, image_id: int, reviewer: str, label: str, minutes: float) -> None:
    review_id = record_review(image_id, reviewer, "correct", label=label, engine=engine)
    with session_scope(engine, write=True) as session:
        when = datetime(2024, 3, 1, 9, 0) + timedelta(minutes=minutes)
        session.execute(update(Review).where(Review.id == review_id).values(created_at=when))


@pytest.mark.slow
def test_team_figures_need_twenty_photos_and_ten_active_minutes(catalogue: Engine) -> None:
    with session_scope(catalogue) as session:
        photos = list(session.scalars(select(Image.id).order_by(Image.id)))[:22]
    ann = ["acme"] * 12 + ["bolt"] * 8 + ["acme"] * 2
    bob = ["acme"] * 12 + ["bolt"] * 8 + ["crest"] * 2  # the last two photos are in conflict
    for n, image_id in enumerate(photos):
        answer_at(catalogue, image_id, "ann", ann[n], minutes=n)  # 21 timed answers over 21 minutes
        answer_at(catalogue, image_id, "bob", bob[n], minutes=100 + n / 4)  # 21 over 5.25 minutes
    for n, image_id in enumerate(photos[:5]):
        answer_at(catalogue, image_id, "carol", "acme", minutes=200 + 3 * n)  # alone on none, but only 5
    at = team_page()
    frames = {tuple(d.value.columns): d.value for d in at.dataframe}
    reviewers = next(f for cols, f in frames.items() if "answers per hour" in cols).set_index("reviewer")
    assert reviewers.loc["ann", "answers per hour"] == "60"
    assert reviewers.loc["bob", "answers per hour"] == "not enough data (5 of 10 active minutes)"
    assert reviewers.loc["ann", "agreement with the settled label"] == "100%"  # 20 settled, shared photos
    assert reviewers.loc["carol", "agreement with the settled label"] == "not enough data (5 of 20)"
    pairs = next(f for cols, f in frames.items() if "Cohen's kappa" in cols).set_index(["reviewer", "other reviewer"])
    # observed 20/22; chance (14*12 + 8*8 + 0*2) / 22**2 = 232/484; kappa (440 - 232) / (484 - 232) = 0.825
    assert pairs.loc[("ann", "bob"), "Cohen's kappa"] == "0.83"
    assert pairs.loc[("ann", "carol"), "Cohen's kappa"] == "not enough data (5 of 20)"
    [chart] = at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    spec = json.loads(chart.proto.spec)
    assert len(spec["encoding"]["x"]["axis"]["values"]) <= 10


@pytest.mark.slow
def test_the_local_admin_sets_the_quality_control_share(catalogue: Engine) -> None:
    at = team_page()
    at.slider(key="qc_share_percent").set_value(10)
    at.button(key="FormSubmitter:quality_control-Save").click().run()
    assert_clean(at)
    assert quality_control_share(catalogue) == pytest.approx(0.10)
    assert any("set to 10%" in text for text in texts(at.success))
