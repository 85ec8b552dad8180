"""How reviewers agree: the Team page's figures, and the quality-control share.

Per reviewer: answers per hour and agreement with the settled label. Per pair of reviewers: Cohen's kappa
over the photos both answered, and every photo on which they differ.

- *Answers per hour* are measured over active time: each answer given within 30 minutes of the same
  reviewer's previous one counts, with the time since that one; the first answer after a longer break
  starts a new session and has no measured time, so it is left out of the rate (coffee breaks are not
  review time).
- A reviewer's *answer* to a photo is their latest live decisive review of it (confirm, correct, not a
  shoe; skip, unsure and undone reviews are not answers). A review that settles a conflict is not an
  independent answer (its reviewer has seen the others), so it is left out of agreement and kappa.
- *Agreement with the settled label*: the share of a reviewer's answers equal to the photo's effective
  label, counted on photos whose label is settled (not in conflict) and that another reviewer answered
  too (a photo only one reviewer answered has that reviewer's answer as its label: it says nothing).

Figures of tiny samples are not shown as figures: agreement and kappa need :data:`MIN_SHARED_PHOTOS`
photos shared with another reviewer, answers per hour :data:`MIN_TIMED_ANSWERS` timed answers over
:data:`MIN_ACTIVE_MINUTES` active minutes (the dataclasses say whether they have ``enough``).

The *quality-control share* (an admin setting, 0-50%) sends that share of the photos decided by exactly
one reviewer to a second, different reviewer: the review queue offers them to every reviewer who has not
answered them, first, without the first answer. Which photos are picked is fixed by a hash of the photo's
id, so the sample does not depend on who asks or when, and kappa fills up as reviewers work.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import combinations, pairwise
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, distinct, false, func, select
from sqlalchemy.orm import Session

from db import get_engine, session_scope
from db.access import Actor, Permission, require
from db.labels import DECISIVE, NOT_A_SHOE, ReviewRow, effective_labels, review_rows
from db.models import BRAND_ID, Image, Review, ReviewAction, TeamSetting, utcnow
from shoelabel.errors import UserError
from shoelabel.paths import shown_path

QC_SHARE_KEY = "quality_control_share"
DEFAULT_QC_SHARE = 0.0  # off until an admin turns it on
MAX_QC_SHARE = 0.5
SESSION_GAP = timedelta(minutes=30)  # a longer pause between two answers ends a review session
MIN_SHARED_PHOTOS = 20  # photos shared with another reviewer before agreement and kappa mean anything
MIN_TIMED_ANSWERS = 20  # timed answers ...
MIN_ACTIVE_MINUTES = 10  # ... over this much active time before answers per hour mean anything
IN_CONFLICT = "(in conflict)"
_HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash: consecutive ids spread evenly over the range
_HASH_RANGE = 2**32


class SettingError(UserError, ValueError):
    """A team setting value that cannot be used (nothing was changed)."""


# --------------------------------------------------------------------------- quality control


def qc_threshold(share: float) -> int:
    """The hash values below which a photo is picked for a second look at ``share``."""
    return round(min(max(share, 0.0), MAX_QC_SHARE) * _HASH_RANGE)


def picked_for_second_look(image_id: int, share: float) -> bool:
    """Whether the photo ``image_id`` is in the quality-control sample at ``share`` (as :func:`second_look`)."""
    return (image_id * _HASH_MULTIPLIER) % _HASH_RANGE < qc_threshold(share)


def second_look(share: float) -> ColumnElement[bool]:
    """SQL filter on ``Image``: photos decided by exactly one reviewer and picked for a second look at
    ``share`` (false for a share of 0). The queue adds the reviewers' own filters (not answered by them)."""
    threshold = qc_threshold(share)
    if threshold <= 0:
        return false()
    deciders = (
        select(func.count(distinct(Review.reviewer)))
        .where(
            Review.image_id == Image.id,
            Review.attribute_id == BRAND_ID,
            Review.undone_at.is_(None),
            Review.action.in_(DECISIVE),
        )
        .scalar_subquery()
    )
    return and_((Image.id * _HASH_MULTIPLIER) % _HASH_RANGE < threshold, deciders == 1)  # the cheap test first


def read_qc_share(session: Session) -> float:
    """The quality-control share stored in the team settings (the default when none is stored)."""
    setting = session.get(TeamSetting, QC_SHARE_KEY)
    if setting is None:
        return DEFAULT_QC_SHARE
    try:
        share = float((setting.value or {}).get("share", DEFAULT_QC_SHARE))
    except (TypeError, ValueError):
        return DEFAULT_QC_SHARE
    return DEFAULT_QC_SHARE if math.isnan(share) else min(max(share, 0.0), MAX_QC_SHARE)


def quality_control_share(engine: Engine | None = None) -> float:
    with session_scope(engine or get_engine()) as session:
        return read_qc_share(session)


def set_quality_control_share(share: float, *, actor: Actor, engine: Engine | None = None) -> float:
    """Store the quality-control share (a fraction, 0 to 0.5); admins only. Returns the share stored.

    ``actor`` must be allowed to manage team settings (an admin); anyone else is refused with
    :class:`db.access.PermissionDenied` before anything is read or written.
    """
    require(actor, Permission.MANAGE)
    try:
        value = float(share)
    except (TypeError, ValueError) as exc:
        raise SettingError(f"The quality-control share must be a number, not {share!r}.") from exc
    if not 0.0 <= value <= MAX_QC_SHARE:  # NaN fails too
        raise SettingError(f"The quality-control share must be between 0% and {MAX_QC_SHARE:.0%}, not {value:.1%}.")
    with session_scope(engine or get_engine(), write=True) as session:
        setting = session.get(TeamSetting, QC_SHARE_KEY)
        if setting is None:
            setting = TeamSetting(key=QC_SHARE_KEY, value={})
            session.add(setting)
        setting.value = {"share": value}
        setting.updated_at = utcnow()
        setting.updated_by = actor.name[:120]
    return value


def qc_setting_note(engine: Engine | None = None) -> tuple[float, str, datetime | None]:
    """The share, who set it last and when (empty and None when it was never set)."""
    with session_scope(engine or get_engine()) as session:
        setting = session.get(TeamSetting, QC_SHARE_KEY)
        share = read_qc_share(session)
        return (share, setting.updated_by, setting.updated_at) if setting else (share, "", None)


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class ReviewerStats:
    reviewer: str
    answers: int  # live reviews of any kind
    sessions: int  # runs of answers with no pause over SESSION_GAP
    active_hours: float  # the time between answers within sessions
    per_hour: float | None  # timed answers per active hour (None with no timed answer)
    decisive: int  # photos with an answer of this reviewer (resolutions aside)
    settled: int  # of those, photos whose label is settled and that another reviewer answered too
    agreeing: int  # of those, photos whose label is this reviewer's answer
    timed: int = 0  # answers with a measured time (see active_time)

    @property
    def agreement(self) -> float | None:
        return self.agreeing / self.settled if self.settled else None

    @property
    def enough_for_rate(self) -> bool:
        """Whether answers per hour rest on enough answers and time to be shown."""
        return self.timed >= MIN_TIMED_ANSWERS and self.active_hours * 60 >= MIN_ACTIVE_MINUTES

    @property
    def enough_for_agreement(self) -> bool:
        return self.settled >= MIN_SHARED_PHOTOS


@dataclass(frozen=True)
class PairAgreement:
    first: str
    second: str
    shared: int  # photos both answered
    agreeing: int  # of those, photos on which they gave the same answer
    kappa: float | None  # Cohen's kappa; None when undefined (fewer than 2 shared photos, or one answer only)

    @property
    def agreement(self) -> float | None:
        return self.agreeing / self.shared if self.shared else None

    @property
    def enough(self) -> bool:
        """Whether the pair shares enough photos for agreement and kappa to be shown."""
        return self.shared >= MIN_SHARED_PHOTOS


@dataclass(frozen=True)
class Disagreement:
    image_id: int
    path: str
    answers: dict[str, str]  # reviewer -> answer, reviewers in name order
    label_now: str  # the effective label, or IN_CONFLICT

    @property
    def file(self) -> str:
        return Path(shown_path(self.path)).name


@dataclass
class TeamReport:
    reviewers: list[ReviewerStats] = field(default_factory=list)
    pairs: list[PairAgreement] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)
    photos_with_two_or_more: int = 0


def active_time(times: list[datetime], gap: timedelta = SESSION_GAP) -> tuple[int, int, float]:
    """(sessions, timed answers, active seconds) of answers given at ``times``: each answer within ``gap``
    of the previous one is timed by the time since that one; a longer pause starts a new session."""
    ordered = sorted(times)
    sessions = 1 if ordered else 0
    timed = 0
    seconds = 0.0
    for before, after in pairwise(ordered):
        pause = after - before
        if pause > gap:
            sessions += 1
        else:
            timed += 1
            seconds += pause.total_seconds()
    return sessions, timed, seconds


def cohen_kappa(first: list[str], second: list[str]) -> float | None:
    """Cohen's kappa of two reviewers' answers to the same photos (scikit-learn); None when it is undefined:
    fewer than two photos, or a single answer throughout (chance agreement is then certain)."""
    if len(first) < 2 or len(set(first) | set(second)) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(first, second))


def _answer_value(row: ReviewRow) -> str:
    return NOT_A_SHOE if row.action == ReviewAction.NOT_A_SHOE else (row.brand or "")


def independent_answers(rows: dict[int, list[ReviewRow]]) -> dict[int, dict[str, str]]:
    """image id -> reviewer -> that reviewer's latest live decisive answer that settles no conflict."""
    answers: dict[int, dict[str, str]] = {}
    for image_id, reviews in rows.items():
        latest: dict[str, ReviewRow] = {}
        for row in sorted(reviews, key=lambda r: (r.at, r.review_id)):
            if row.action in DECISIVE and not row.resolves_conflict:
                latest[row.reviewer] = row
        if latest:
            answers[image_id] = {name: _answer_value(row) for name, row in sorted(latest.items())}
    return answers


def _reviewer_stats(
    rows: dict[int, list[ReviewRow]], answers: dict[int, dict[str, str]], labels: dict[int, Any]
) -> list[ReviewerStats]:
    times: dict[str, list[datetime]] = defaultdict(list)
    for reviews in rows.values():
        for row in reviews:
            times[row.reviewer].append(row.at)
    decisive: dict[str, int] = defaultdict(int)
    settled: dict[str, int] = defaultdict(int)
    agreeing: dict[str, int] = defaultdict(int)
    for image_id, by_reviewer in answers.items():
        label = labels.get(image_id)
        is_settled = label is not None and not label.conflict and label.value is not None and len(by_reviewer) > 1
        for name, value in by_reviewer.items():
            decisive[name] += 1
            if is_settled:
                settled[name] += 1
                agreeing[name] += value == label.value
    stats = []
    for name in sorted(times):
        sessions, timed, seconds = active_time(times[name])
        hours = seconds / 3600
        stats.append(
            ReviewerStats(
                reviewer=name,
                answers=len(times[name]),
                sessions=sessions,
                active_hours=hours,
                per_hour=timed / hours if hours > 0 else None,
                decisive=decisive[name],
                settled=settled[name],
                agreeing=agreeing[name],
                timed=timed,
            )
        )
    return stats


def _pairs(answers: dict[int, dict[str, str]]) -> list[PairAgreement]:
    shared: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for by_reviewer in answers.values():
        for first, second in combinations(sorted(by_reviewer), 2):
            shared[(first, second)].append((by_reviewer[first], by_reviewer[second]))
    pairs = []
    for (first, second), values in sorted(shared.items()):
        a, b = [v[0] for v in values], [v[1] for v in values]
        pairs.append(PairAgreement(first, second, len(values), sum(x == y for x, y in values), cohen_kappa(a, b)))
    return pairs


def team_report(engine: Engine | None = None) -> TeamReport:
    """Every reviewer's figures, every pair's kappa, and the photos on which reviewers differ."""
    with session_scope(engine or get_engine()) as session:
        rows = review_rows(session)
        labels = effective_labels(session) if rows else {}
        answers = independent_answers(rows)
        differing = {
            image_id: by_reviewer
            for image_id, by_reviewer in answers.items()
            if len(by_reviewer) > 1 and len(set(by_reviewer.values())) > 1
        }
        ids = sorted(differing)
        paths: dict[int, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            paths.update((i, p) for i, p in session.execute(select(Image.id, Image.path).where(Image.id.in_(chunk))))
    disagreements = [
        Disagreement(
            image_id,
            paths.get(image_id, ""),
            by_reviewer,
            IN_CONFLICT if labels[image_id].conflict else (labels[image_id].value or "(none)"),
        )
        for image_id, by_reviewer in sorted(differing.items())
    ]
    return TeamReport(
        reviewers=_reviewer_stats(rows, answers, labels),
        pairs=_pairs(answers),
        disagreements=disagreements,
        photos_with_two_or_more=sum(len(by_reviewer) > 1 for by_reviewer in answers.values()),
    )
