"""The Team page with AppTest: the figures, the chart, and the quality-control share an admin sets."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from feedback.agreement import quality_control_share
from feedback.reviews import record_review
from tests.app_support import assert_clean, open_page, pool_ids, texts


def team_page() -> object:
    return open_page("team")


def test_team_page_without_reviews_says_so(catalogue: Engine) -> None:
    at = team_page()
    assert any("No reviews yet" in text for text in texts(at.info))
    assert any("0%" in text for text in texts(at.markdown))  # the quality-control share, off


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
    assert pairs.iloc[0]["Cohen's kappa"] == "0.50"  # observed 2/3, chance (2*1 + 1*1 + 0*1) / 9 = 1/3
    disagreements = next(f for cols, f in frames.items() if "label now" in cols)
    assert list(disagreements["answers"]) == ["ann: acme; bob: crest"]
    assert list(disagreements["label now"]) == ["(in conflict)"]
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")  # agreement per reviewer


def test_the_local_admin_sets_the_quality_control_share(catalogue: Engine) -> None:
    at = team_page()
    at.slider(key="qc_share_percent").set_value(10)
    at.button(key="FormSubmitter:quality_control-Save").click().run()
    assert_clean(at)
    assert quality_control_share(catalogue) == pytest.approx(0.10)
    assert any("set to 10%" in text for text in texts(at.success))
