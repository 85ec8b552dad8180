"""Reviewer agreement (answers per hour, agreement with the settled label, Cohen's kappa, disagreements) and the
quality-control share that sends decided photos to a second reviewer, checked against hand-computed values."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from db import session_scope
from db.access import Actor, PermissionDenied
from db.labels import has_imported
from db.models import Image, Review, Role, Split, TeamSetting
from feedback.agreement import (
    SettingError,
    active_time,
    cohen_kappa,
    picked_for_second_look,
    quality_control_share,
    set_quality_control_share,
    team_report,
)
from feedback.ingest import ingest_folder
from feedback.queue import next_items, pending_count
from feedback.reviews import record_review
from tests.app_support import fake_models

ADMIN = Actor("ada", Role.ADMIN)
T0 = datetime(2024, 3, 1, 9, 0)


@pytest.fixture
def pool(engine, home: Path, brand_folder: Path, pool_folder: Path) -> list[int]:
    ingest_folder(brand_folder, engine=engine)
    ingest_folder(pool_folder, engine=engine)
    fake_models(engine, home)  # predictions for every photo; the models put "bolt" on top of pool photos
    with session_scope(engine) as session:
        return list(session.scalars(select(Image.id).where(Image.split == Split.POOL).order_by(Image.id)))


def review_at(engine, image_id: int, reviewer: str, action: str, minutes: float, **kwargs: object) -> int:
    review_id = record_review(image_id, reviewer, action, engine=engine, **kwargs)
    with session_scope(engine, write=True) as session:
        session.execute(update(Review).where(Review.id == review_id).values(created_at=T0 + timedelta(minutes=minutes)))
    return review_id


# --------------------------------------------------------------------------- figures


@pytest.fixture
def reviewed(engine, pool: list[int]) -> list[int]:
    """Six photos answered by ann and bob, two of them by carol too, one conflict settled by dan.

    ======  =====  =====  =====  =====================
    photo   ann    bob    carol  label now
    ======  =====  =====  =====  =====================
    1       acme   acme   acme   acme
    2       acme   acme          acme
    3       bolt   bolt          bolt
    4       bolt   acme   bolt   in conflict
    5       crest  crest         crest
    6       acme   bolt          acme (dan settled it)
    ======  =====  =====  =====  =====================
    """
    ann = ["acme", "acme", "bolt", "bolt", "crest", "acme"]
    bob = ["acme", "acme", "bolt", "acme", "crest", "bolt"]
    for n, (brand, minutes) in enumerate(zip(ann, [0, 2, 4, 6, 180, 183], strict=True)):
        review_at(engine, pool[n], "ann", "correct", minutes, label=brand)
    for n, brand in enumerate(bob):
        review_at(engine, pool[n], "bob", "correct", 10 + n, label=brand)
    review_at(engine, pool[6], "bob", "skip", 16)  # an answer (it took time), not a decision
    review_at(engine, pool[0], "carol", "correct", 20, label="acme")
    review_at(engine, pool[3], "carol", "correct", 60, label="bolt")  # after a 40-minute pause
    review_at(engine, pool[5], "dan", "correct", 300, label="acme", resolves_conflict=True)
    undone = review_at(engine, pool[7], "ann", "correct", 184, label="crest")
    with session_scope(engine, write=True) as session:
        session.execute(update(Review).where(Review.id == undone).values(undone_at=T0 + timedelta(minutes=185)))
    return pool


def test_answers_per_hour_count_active_time_only(engine, reviewed: list[int]) -> None:
    stats = {r.reviewer: r for r in team_report(engine).reviewers}
    assert set(stats) == {"ann", "bob", "carol", "dan"}
    ann = stats["ann"]  # 0, 2, 4, 6 | 174 min pause | 180, 183 (the undone answer does not count)
    assert (ann.answers, ann.sessions) == (6, 2)
    assert ann.active_hours == pytest.approx(9 / 60)
    assert ann.per_hour == pytest.approx(4 / (9 / 60))  # four timed answers in nine minutes
    bob = stats["bob"]  # 10..16, one a minute, the skip included
    assert (bob.answers, bob.sessions, bob.per_hour) == (7, 1, pytest.approx(60.0))
    carol = stats["carol"]  # two answers 40 minutes apart: two sessions, no timed answer
    assert (carol.answers, carol.sessions, carol.per_hour) == (2, 2, None)


def test_agreement_with_the_settled_label(engine, reviewed: list[int]) -> None:
    stats = {r.reviewer: r for r in team_report(engine).reviewers}
    # photo 4 is in conflict, so it counts for nobody; photo 6 is settled as acme
    assert (stats["ann"].decisive, stats["ann"].settled, stats["ann"].agreeing) == (6, 5, 5)
    assert stats["bob"].agreement == pytest.approx(4 / 5)  # bob said bolt for photo 6
    assert (stats["carol"].settled, stats["carol"].agreement) == (1, 1.0)
    assert (stats["dan"].decisive, stats["dan"].agreement) == (0, None)  # a settlement is not an answer


def test_pairwise_kappa_matches_the_hand_computed_values(engine, reviewed: list[int]) -> None:
    report = team_report(engine)
    pairs = {(p.first, p.second): p for p in report.pairs}
    assert set(pairs) == {("ann", "bob"), ("ann", "carol"), ("bob", "carol")}
    ann_bob = pairs[("ann", "bob")]
    # observed 4/6; chance (3*3 + 2*2 + 1*1) / 36 = 14/36; kappa (24 - 14) / (36 - 14) = 5/11
    assert (ann_bob.shared, ann_bob.agreeing) == (6, 4)
    assert ann_bob.kappa == pytest.approx(5 / 11)
    assert pairs[("ann", "carol")].kappa == pytest.approx(1.0)  # photos 1 and 4: the same answers
    assert pairs[("bob", "carol")].kappa == pytest.approx(0.0)  # observed 1/2, chance (2*1 + 0*1) / 4
    assert report.photos_with_two_or_more == 6


def test_disagreements_list_each_reviewers_answer(engine, reviewed: list[int]) -> None:
    found = team_report(engine).disagreements
    pool = reviewed
    assert [(d.image_id, d.answers, d.label_now) for d in found] == [
        (pool[3], {"ann": "bolt", "bob": "acme", "carol": "bolt"}, "(in conflict)"),
        (pool[5], {"ann": "acme", "bob": "bolt"}, "acme"),
    ]
    assert found[0].file == "new_3.jpg"


def test_kappa_is_undefined_with_one_answer_throughout() -> None:
    assert cohen_kappa(["acme", "acme"], ["acme", "acme"]) is None
    assert cohen_kappa(["acme"], ["bolt"]) is None  # one photo
    assert cohen_kappa(["acme", "bolt"], ["bolt", "acme"]) == pytest.approx(-1.0)


def test_active_time_splits_sessions_at_pauses_over_thirty_minutes() -> None:
    times = [T0 + timedelta(minutes=m) for m in (0, 30, 61, 62)]  # 30 min: still a session; 31: a new one
    assert active_time(times) == (2, 2, 31 * 60.0)
    assert active_time([]) == (0, 0, 0.0)


def test_team_report_of_an_empty_catalogue(engine) -> None:
    report = team_report(engine)
    assert (report.reviewers, report.pairs, report.disagreements) == ([], [], [])


# --------------------------------------------------------------------------- quality control


def test_the_sample_is_a_fixed_share_of_photos() -> None:
    ids = range(1, 20_001)
    picked = [i for i in ids if picked_for_second_look(i, 0.05)]
    assert 0.045 < len(picked) / len(ids) < 0.055
    assert picked == [i for i in ids if picked_for_second_look(i, 0.05)]  # the same whoever asks
    assert set(picked) <= {i for i in ids if picked_for_second_look(i, 0.2)}  # a larger share adds photos
    assert not any(picked_for_second_look(i, 0.0) for i in ids)


def test_second_looks_reach_other_reviewers_only(engine, pool: list[int]) -> None:
    for image_id in pool:
        record_review(image_id, "ann", "correct", label="acme", engine=engine)
    assert pending_count("bob", "tab-b", engine=engine) == 0  # no quality control yet: all decided
    set_quality_control_share(0.5, actor=ADMIN, engine=engine)
    picked = [i for i in pool if picked_for_second_look(i, 0.5)]
    assert 0 < len(picked) < len(pool)  # the fixture's ids give both kinds

    items = next_items("bob", "tab-b", k=len(pool), engine=engine, claim=False)  # a look, keeping nothing
    assert [i.image_id for i in items] == picked  # exactly the picked decided photos, oldest first
    assert all(item.second_look for item in items)
    assert all(item.confirm_target() == "bolt" for item in items)  # the models' top brand: ann's answer is hidden
    assert pending_count("bob", "tab-b", engine=engine) == len(picked)
    unreviewed = pending_count("bob", "tab-b", scope="unreviewed", engine=engine)
    assert unreviewed == len(picked) + _imported(engine)  # the imported photos nobody decided, and the picked
    assert next_items("ann", "tab-a", k=len(pool), engine=engine) == []  # never back to the first reviewer
    assert pending_count("ann", "tab-a", engine=engine) == 0

    record_review(picked[0], "bob", "correct", label="bolt", engine=engine)  # a second look given: enough
    carol = [i.image_id for i in next_items("carol", "tab-c", k=len(pool), engine=engine)]
    assert carol == picked[1:]
    assert [i.image_id for i in next_items("bob", "tab-b", k=len(pool), engine=engine)] == []  # carol has them
    assert any(d.image_id == picked[0] for d in team_report(engine).disagreements)  # kappa fills up

    set_quality_control_share(0.0, actor=ADMIN, engine=engine)
    assert next_items("carol", "tab-c", k=len(pool), engine=engine) == []


def _imported(engine) -> int:
    """Photos that arrived with a brand (the pool's answered photos may be held out: their split is not theirs)."""
    with session_scope(engine) as session:
        return len(list(session.scalars(select(Image.id).where(has_imported()))))


def test_second_looks_come_before_the_strategys_picks(engine, pool: list[int]) -> None:
    picked = [i for i in pool if picked_for_second_look(i, 0.5)]
    for image_id in picked:
        record_review(image_id, "ann", "not_a_shoe", engine=engine)  # a second look at "not a shoe" too
    set_quality_control_share(0.5, actor=ADMIN, engine=engine)
    items = next_items("bob", "tab-b", k=len(picked) + 1, engine=engine)
    assert [i.image_id for i in items[: len(picked)]] == picked
    assert not items[-1].second_look and items[-1].image_id not in picked


def test_only_an_admin_sets_the_share(engine) -> None:
    for role in (Role.REVIEWER, Role.VIEWER):
        with pytest.raises(PermissionDenied, match="does not allow"):
            set_quality_control_share(0.1, actor=Actor("rita", role), engine=engine)
    assert quality_control_share(engine) == 0.0
    with session_scope(engine) as session:
        assert session.get(TeamSetting, "quality_control_share") is None  # nothing written
    assert set_quality_control_share(0.1, actor=ADMIN, engine=engine) == pytest.approx(0.1)
    assert quality_control_share(engine) == pytest.approx(0.1)
    with session_scope(engine) as session:
        assert session.get(TeamSetting, "quality_control_share").updated_by == "ada"


@pytest.mark.parametrize("share", [-0.01, 0.51, math.nan, "lots"])
def test_a_share_out_of_range_is_refused(engine, share: object) -> None:
    with pytest.raises(SettingError):
        set_quality_control_share(share, actor=ADMIN, engine=engine)
    assert quality_control_share(engine) == 0.0
