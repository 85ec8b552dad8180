"""Review queues: what a reviewer sees next.

Answered from stored predictions alone (no model runs on the request path), by indexed
queries over each photo's stored queue scores (see :mod:`modeling.queue_scores`), so a
click costs the same at a million photos as at a thousand. A queue never shows an image
the reviewer already handled, skips images judged not to be shoes, and claims what it
hands out for a few minutes, so two reviewers working at once never get the same image
at the same time.
With a quality-control share set (see :mod:`feedback.agreement`), photos one
reviewer decided (not-a-shoe ones included) come first for the other reviewers.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Engine, Exists, Select, and_, delete, distinct, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from db import get_engine, session_scope
from db.catalog import class_names
from db.labels import (
    DECISIVE,
    EffectiveLabel,
    answered_by,
    effective_labels,
    has_decision,
    has_imported,
    latest_says_not_a_shoe,
    unlabelled,
)
from db.models import (
    BRAND_ID,
    EvaluationDraw,
    Image,
    ImageClaim,
    ImportedLabel,
    ModelVersion,
    Prediction,
    PredictionKind,
    QueueEntry,
    QueueStage,
    Review,
    ReviewAction,
    Split,
    utcnow,
)
from db.queue_entries import RANDOM_RANGE, SCOPE_STAGES, catalogue_counts
from feedback.agreement import read_qc_share, second_look
from feedback.reviews import clean_reviewer
from feedback.strategies import SCOPES, Candidates, Strategy, get_strategy
from modeling.answers import ModelAnswer, stored_answers
from modeling.feature_cache import inception_activation_cache
from modeling.queue_scores import ensure_scored
from modeling.registry import ARCHITECTURES, current_versions

CLAIM_MINUTES = 3  # renewed while the tab is open (see renew_claims); a closed tab frees its images soon
DEFAULT_STRATEGY = "least_confidence"
SECOND_LOOK_SCOPES = ("unlabelled", "unreviewed")  # the queues of photos to decide; "labelled" has them all
#: What each count of :func:`queue_summary` counts, in the app's words. The pool is where photos that came
#: without a brand live, reviewed or not; what is still to review is a queue's count (:func:`pending_count`).
SUMMARY_LABELS = {
    "images": "photos",
    "train": "added with a brand, for training",
    "holdout": "held out for evaluation",
    "pool": "added without a brand (the review pool, reviewed or not)",
}


@dataclass
class QueueItem:
    image_id: int
    path: str
    sha256: str
    width: int
    height: int
    label: EffectiveLabel
    predictions: dict[str, ModelAnswer] = field(default_factory=dict)  # by architecture
    second_look: bool = False  # sent for quality control: another reviewer decided it (their answer is not shown)

    def shown(self) -> ModelAnswer | None:
        """The answer shown first, kept with a review (InceptionV3's where it has one)."""
        return next((self.predictions[arch] for arch in ARCHITECTURES if arch in self.predictions), None)

    def confirm_target(self) -> str | None:
        """The brand Confirm records: the photo's label when it has one (Confirm means "the label
        is right", also when the models disagree with it), else the top brand shown. A second look for quality
        control confirms the top brand shown: the first reviewer's answer stays hidden."""
        if self.label.brand is not None and not self.second_look:
            return self.label.brand
        shown = self.shown()
        return shown.brand if shown else None


def default_scope(strategy: str) -> str:
    return get_strategy(strategy).default_scope


def claimed_elsewhere(session_id: str) -> Exists:
    return exists().where(
        ImageClaim.image_id == Image.id, ImageClaim.session_id != session_id, ImageClaim.expires_at > utcnow()
    )


def _scope_rules(scope: str) -> ColumnElement[bool]:
    """The label rules of ``scope``, exactly: a photo's stage picks the index range, these keep it exact."""
    if scope == "unlabelled":
        return unlabelled()
    if scope == "unreviewed":
        return ~has_decision()
    if scope == "labelled":
        return and_(or_(has_imported(), has_decision()), ~latest_says_not_a_shoe())
    raise ValueError(f"Unknown queue scope {scope!r}; choose one of: {', '.join(SCOPES)}.")


def _open_to(reviewer: str, session_id: str) -> ColumnElement[bool]:
    """Not answered by ``reviewer`` yet and not on another session's screen."""
    return and_(~answered_by(reviewer), ~claimed_elsewhere(session_id))


def _in_scope(scope: str, reviewer: str, session_id: str, stages: Sequence[QueueStage] | None = None) -> Select[Any]:
    """Queue entries of ``scope`` open to ``reviewer``, within ``stages`` (default: the scope's; none: any);
    the caller adds the order and the limit."""
    stages = SCOPE_STAGES[scope] if stages is None else stages
    query = (
        select(QueueEntry.image_id)
        .join(Image, Image.id == QueueEntry.image_id)
        .where(_scope_rules(scope), _open_to(reviewer, session_id))
    )
    return query.where(QueueEntry.stage.in_([int(s) for s in stages])) if stages else query


def _locking(query: Select[Any], claim: bool) -> Select[Any]:
    """On PostgreSQL, rows another reviewer's transaction is claiming are skipped, never waited for nor
    handed out twice (``FOR UPDATE SKIP LOCKED``); SQLite serialises writers instead."""
    return query.with_for_update(of=QueueEntry, skip_locked=True) if claim else query


def _by_score(
    session: Session, column: str, scope: str, reviewer: str, session_id: str, limit: int, claim: bool
) -> list[int]:
    """The ``limit`` photos of ``scope`` with the highest stored score: one indexed query per stage."""
    score = getattr(QueueEntry, column)
    found: list[tuple[float, int]] = []
    for stage in SCOPE_STAGES[scope]:
        query = (
            _in_scope(scope, reviewer, session_id, [stage])
            .add_columns(score)
            .order_by(score.desc(), QueueEntry.image_id)
            .limit(limit)
        )
        found += [(-value, image_id) for image_id, value in session.execute(_locking(query, claim))]
    return [image_id for _, image_id in sorted(found)[:limit]]


def _by_random_key(
    session: Session, scope: str, reviewer: str, session_id: str, limit: int, claim: bool, start: int
) -> list[int]:
    """The ``limit`` photos of ``scope`` that follow ``start`` in the fixed random order (wrapping round)."""
    found: list[tuple[int, int]] = []
    for stage in SCOPE_STAGES[scope]:
        for after in (True, False):
            where = QueueEntry.random_key >= start if after else QueueEntry.random_key < start
            query = (
                _in_scope(scope, reviewer, session_id, [stage])
                .add_columns(QueueEntry.random_key)
                .where(where)
                .order_by(QueueEntry.random_key, QueueEntry.image_id)
                .limit(limit)
            )
            found += [
                ((key - start) % RANDOM_RANGE, image_id) for image_id, key in session.execute(_locking(query, claim))
            ]
    return [image_id for _, image_id in sorted(found)[:limit]]


def _second_looks(session: Session, reviewer: str, session_id: str, scope: str, limit: int, claim: bool) -> list[int]:
    """Photos sent to ``reviewer`` for a second look (quality control), oldest first; only decided photos
    can be, so the query walks the decided ones, never the whole pool."""
    share = read_qc_share(session)
    if share <= 0 or scope not in SECOND_LOOK_SCOPES:
        return []
    query = (
        select(QueueEntry.image_id)
        .join(Image, Image.id == QueueEntry.image_id)
        .where(
            QueueEntry.stage.in_([int(QueueStage.DECIDED), int(QueueStage.NOT_A_SHOE)]),
            second_look(share),
            _open_to(reviewer, session_id),
        )
        .order_by(QueueEntry.image_id)
        .limit(limit)
    )
    return list(session.scalars(_locking(query, claim)))


def _still_open(
    session: Session, ids: Sequence[int], scope: str, reviewer: str, session_id: str, claim: bool
) -> list[int]:
    """Those of ``ids`` that ``scope`` (or a second look) may still give ``reviewer``, in the given order."""
    if not ids:
        return []
    share = read_qc_share(session)
    # By primary key, with the exact label rules: a stage filter here would steer the plan onto a stage index.
    in_scope = _in_scope(scope, reviewer, session_id, stages=()).where(QueueEntry.image_id.in_(list(ids)))
    open_ids = set(session.scalars(_locking(in_scope, claim)))
    if share > 0 and scope in SECOND_LOOK_SCOPES:
        second = select(Image.id).where(Image.id.in_(list(ids)), second_look(share), _open_to(reviewer, session_id))
        open_ids |= set(session.scalars(second))
    return [i for i in ids if i in open_ids]


# --------------------------------------------------------------------------- skipped and unsure photos

PUT_OFF = (ReviewAction.SKIP, ReviewAction.UNSURE)  # answers that leave a photo for later


def _put_off_query(reviewer: str, session_id: str, scope: str, before: datetime | None) -> Select[Any]:
    """Photos of ``scope`` that ``reviewer`` only skipped or marked unsure (no decision of theirs, nothing
    answered since ``before``), with the time of their latest such answer; driven from their answers."""
    mine, later = aliased(Review), aliased(Review)  # aliases: the scope's rules correlate on Review itself
    decided = later.action.in_(DECISIVE)
    since = decided if before is None else or_(decided, later.created_at >= before)
    latest = func.max(mine.created_at)
    return (
        select(mine.image_id, latest)
        .join(QueueEntry, QueueEntry.image_id == mine.image_id)
        .join(Image, Image.id == mine.image_id)
        .where(
            mine.reviewer == reviewer,
            mine.attribute_id == BRAND_ID,
            mine.undone_at.is_(None),
            mine.action.in_(PUT_OFF),
            _scope_rules(scope),
            ~claimed_elsewhere(session_id),
            ~exists().where(
                later.image_id == mine.image_id,
                later.reviewer == reviewer,
                later.attribute_id == BRAND_ID,
                later.undone_at.is_(None),
                since,
            ),
        )
        .group_by(mine.image_id)
    )


def _put_off(session: Session, reviewer: str, session_id: str, scope: str, before: datetime, limit: int) -> list[int]:
    """The reviewer's skipped and unsure photos answered before ``before``, the one put off longest ago first."""
    query = _put_off_query(reviewer, session_id, scope, before)
    image_id, latest = query.selected_columns
    return [found for found, _ in session.execute(query.order_by(latest, image_id).limit(limit))]


def put_off_count(
    reviewer: str, session_id: str = "", *, scope: str = "unlabelled", engine: Engine | None = None
) -> int:
    """How many photos of ``scope`` ``reviewer`` skipped or marked unsure and has not decided since."""
    reviewer = clean_reviewer(reviewer)
    query = _put_off_query(reviewer, session_id, scope, None)
    with session_scope(engine or get_engine()) as session:
        return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def scope_count(scope: str = "unlabelled", *, engine: Engine | None = None) -> int:
    """How many photos ``scope`` holds for anyone (no decision yet, for the queues of photos to decide), from
    the kept counters."""
    with session_scope(engine or get_engine()) as session:
        counts = catalogue_counts(session)
    return sum(counts.get(f"stage:{int(stage)}", 0) for stage in SCOPE_STAGES[scope])


# --------------------------------------------------------------------------- strategies that rank a slice

SLICE = 2000  # photos a slice strategy ranks at most: the most uncertain of the scope (or most contradicted)
SLICE_PICKS = 50  # photos it picks from the slice at once; its ranking is kept until used up or predictions change
_slice_rankings: dict[tuple[str, str, str, str], tuple[tuple[int, ...], list[int]]] = {}
_slice_lock = threading.Lock()


def _slice_key(session: Session, strategy: Strategy, scope: str, reviewer: str) -> tuple[str, str, str, str]:
    """Whose ranking: a slice is ranked per database, strategy, scope and reviewer (it leaves out what they
    answered)."""
    return (str(session.get_bind().url), strategy.name, scope, reviewer)


def _predictions_stamp(session: Session) -> tuple[int, ...]:
    """Changes whenever the current models or their stored predictions change."""
    versions = current_versions(session)
    latest = session.scalar(select(func.max(Prediction.id))) or 0
    return (*sorted(v.id for v in versions.values()), latest)


def _contradicted(session: Session, reviewer: str, session_id: str, limit: int) -> list[int]:
    """Labelled photos whose imported brand a current model contradicts, most confident first, plus the
    decided photos the models are least sure of: the slice in which label errors are looked for."""
    versions = current_versions(session)
    version = next((versions[a] for a in ARCHITECTURES if a in versions), None)
    if version is None:
        return []
    contradicted = (
        _in_scope("labelled", reviewer, session_id, [QueueStage.IMPORTED])
        .join(Prediction, Prediction.image_id == QueueEntry.image_id)
        .join(ImportedLabel, (ImportedLabel.image_id == QueueEntry.image_id) & (ImportedLabel.attribute_id == BRAND_ID))
        .where(
            Prediction.model_version_id == version.id,
            Prediction.kind.in_([PredictionKind.OUT_OF_FOLD, PredictionKind.MODEL]),
            Prediction.class_id != ImportedLabel.class_id,
        )
        .order_by(Prediction.confidence.desc())
        .limit(limit)
    )
    decided = (
        _in_scope("labelled", reviewer, session_id, [QueueStage.DECIDED])
        .order_by(QueueEntry.least_confidence.desc(), QueueEntry.image_id)
        .limit(limit)
    )
    return list(dict.fromkeys([*session.scalars(contradicted), *session.scalars(decided)]))


def _slice_picks(
    session: Session, strategy: Strategy, scope: str, reviewer: str, session_id: str, rng: np.random.Generator
) -> list[int]:
    """The strategy's picks from its bounded slice, ranked once and kept until they are used up or the
    predictions change (so a click costs a lookup, not a clustering)."""
    key = _slice_key(session, strategy, scope, reviewer)
    stamp = _predictions_stamp(session)
    with _slice_lock:
        cached = _slice_rankings.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    if strategy.name == "likely_mislabelled":
        ids = _contradicted(session, reviewer, session_id, SLICE)
    else:
        ids = _by_score(session, "least_confidence", scope, reviewer, session_id, SLICE, claim=False)
    if not ids:
        return []
    candidates, _ = build_candidates(session, ids, with_labels="labels" in strategy.needs)
    picks = [int(ids[p]) for p in strategy.rank(candidates, SLICE_PICKS, rng)] if candidates.class_names else []
    with _slice_lock:
        _slice_rankings[key] = (stamp, picks)
    return picks


def _ranked(
    session: Session, strategy: Strategy, scope: str, reviewer: str, session_id: str, limit: int, claim: bool
) -> list[int]:
    """Up to ``limit`` photos of ``scope`` open to ``reviewer``, in the strategy's order."""
    rng = _rng(session_id + strategy.name)
    if strategy.column == "random_key":
        start = int(rng.integers(RANDOM_RANGE))
        return _by_random_key(session, scope, reviewer, session_id, limit, claim, start)
    if strategy.column is not None:
        return _by_score(session, strategy.column, scope, reviewer, session_id, limit, claim)
    picks = _still_open(
        session, _slice_picks(session, strategy, scope, reviewer, session_id, rng), scope, reviewer, session_id, claim
    )
    if len(picks) < limit:  # used up: rank the slice again from what is open now
        with _slice_lock:
            _slice_rankings.pop(_slice_key(session, strategy, scope, reviewer), None)
        fresh = _slice_picks(session, strategy, scope, reviewer, session_id, rng)
        picks = _still_open(session, fresh, scope, reviewer, session_id, claim)
    if len(picks) < limit:  # a slice smaller than a batch: the rest by uncertainty
        more = _by_score(session, "least_confidence", scope, reviewer, session_id, limit, claim)
        picks += [i for i in more if i not in picks]
    return picks[:limit]


def _probabilities(
    session: Session, versions: dict[str, ModelVersion], ids: list[int], kind: PredictionKind
) -> tuple[list[str], dict[str, np.ndarray], dict[int, dict[str, ModelAnswer]]]:
    names = sorted({n for v in versions.values() for n in v.class_names}) or class_names(session)
    column = {n: j for j, n in enumerate(names)}
    row_of = {image_id: i for i, image_id in enumerate(ids)}
    probs = {arch: np.full((len(ids), len(names)), np.nan) for arch in versions}
    answers = stored_answers(session, versions, ids, kind)
    for image_id, by_arch in answers.items():
        for arch, answer in by_arch.items():
            target = probs[arch][row_of[image_id]]
            target[:] = 0.0
            for name, value in answer.probabilities.items():
                target[column[name]] = value
    return names, probs, answers


def build_candidates(
    session: Session, image_ids: list[int], *, with_labels: bool = False
) -> tuple[Candidates, dict[int, dict[str, ModelAnswer]]]:
    """The :class:`Candidates` a strategy ranks, from stored predictions and cached features."""
    versions = current_versions(session)
    names, probs, answers = _probabilities(session, versions, image_ids, PredictionKind.MODEL)
    candidates = Candidates(np.array(image_ids, dtype=int), names, probs)
    if "inception" in versions:
        candidates.features = _feature_loader(session, versions["inception"], image_ids)
    if with_labels:
        labels = effective_labels(session, image_ids)
        column = {n: j for j, n in enumerate(names)}
        candidates.given = np.array([column.get(labels[i].brand or "", -1) for i in image_ids])
        if "inception" in versions:
            _, oof, _ = _probabilities(
                session, {"inception": versions["inception"]}, image_ids, PredictionKind.OUT_OF_FOLD
            )
            if not np.isnan(oof["inception"]).all():
                candidates.out_of_fold = oof["inception"]
    return candidates, answers


def _feature_loader(
    session: Session, version: ModelVersion, image_ids: list[int]
) -> Callable[[np.ndarray], np.ndarray]:
    cache = inception_activation_cache(version.base_weights, version.input_size)
    shas: dict[int, str] = {}
    for chunk in _chunks(image_ids):
        shas.update((i, s) for i, s in session.execute(select(Image.id, Image.sha256).where(Image.id.in_(chunk))))
    ordered = [shas[i] for i in image_ids]

    def load(positions: np.ndarray) -> np.ndarray:
        """Pooled features; KeyError when an image has none cached yet."""
        return cache.pooled([ordered[p] for p in positions])

    return load


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def _rng(session_id: str) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha256(session_id.encode()).hexdigest()[:12], 16))


def next_items(
    reviewer: str,
    session_id: str,
    *,
    strategy: str = DEFAULT_STRATEGY,
    scope: str | None = None,
    k: int = 2,
    engine: Engine | None = None,
    claim: bool = True,
    first: int | None = None,
    again_before: datetime | None = None,
) -> list[QueueItem]:
    """The next ``k`` images for ``reviewer`` (the first is shown, the rest preloaded), claimed
    for this session so that no other reviewer gets them meanwhile. Photos sent for a second look
    (quality control, see :mod:`feedback.agreement`) come before the strategy's picks.

    With ``again_before``, the photos the reviewer skipped or marked unsure before that time (and has not
    decided since) come back at the end of the queue, the one put off longest ago first.

    ``first`` keeps an image at the front while it is still in the queue: the one
    preloaded after the last answer, or the one an undo brought back.

    Its cost does not grow with the catalogue: the strategies that rank by a stored score are an
    indexed query, the others rank a bounded slice (see :data:`SLICE`).
    """

    reviewer = clean_reviewer(reviewer)
    chosen = get_strategy(strategy)
    scope = scope or chosen.default_scope
    if scope not in chosen.scopes:
        raise ValueError(f"The strategy {strategy} ranks {' or '.join(chosen.scopes)} photos, not {scope} ones.")
    engine = engine or get_engine()
    ensure_scored(engine)
    with session_scope(engine, write=claim, row_locks=True) as session:
        seconds = _second_looks(session, reviewer, session_id, scope, k + 1, claim)
        picked = [*seconds, *_ranked(session, chosen, scope, reviewer, session_id, k + 1, claim)]
        again: list[int] = []
        if again_before is not None and len(set(picked)) < k:
            again = _put_off(session, reviewer, session_id, scope, again_before, k + 1)
            picked += again
        if first is not None and (first in again or _still_open(session, [first], scope, reviewer, session_id, claim)):
            picked = [first, *picked]
        picked = list(dict.fromkeys(picked))[:k]
        if not picked:
            return []
        if claim:
            claim_photos(session, picked, reviewer, session_id)
        return _queue_items(session, picked, set(seconds))


def _queue_items(session: Session, picked: list[int], second_looks: set[int]) -> list[QueueItem]:
    """The picked photos as a reviewer sees them: file, label now and each current model's answer."""
    images = {img.id: img for img in session.scalars(select(Image).where(Image.id.in_(picked)))}
    labels = effective_labels(session, picked)
    answers = stored_answers(session, current_versions(session), picked)
    return [
        QueueItem(
            i,
            images[i].path,
            images[i].sha256,
            images[i].width,
            images[i].height,
            labels[i],
            answers.get(i, {}),
            second_look=i in second_looks,
        )
        for i in picked
    ]


def claim_photos(session: Session, image_ids: list[int], reviewer: str, session_id: str) -> None:
    now = utcnow()
    session.execute(delete(ImageClaim).where((ImageClaim.expires_at <= now) | (ImageClaim.session_id == session_id)))
    expires = now + timedelta(minutes=CLAIM_MINUTES)
    for image_id in image_ids:
        session.merge(ImageClaim(image_id=image_id, reviewer=reviewer, session_id=session_id, expires_at=expires))


def pending_count(
    reviewer: str, session_id: str = "", *, scope: str = "unlabelled", engine: Engine | None = None
) -> int:
    """How many images are waiting for this reviewer in ``scope``: those the queue can still give them (not
    answered by them, not on another session's screen, plus the second looks sent to them). From the kept
    counters of each stage, less this reviewer's answers and the other sessions' claims (indexed counts), so
    it costs the same at a million photos as at a thousand."""
    stages = [int(s) for s in SCOPE_STAGES[scope]]
    with session_scope(engine or get_engine()) as session:
        # Driven from this reviewer's answers and the live claims (few), each checked against its photo's stage.
        in_stages = exists().where(QueueEntry.stage.in_(stages))
        answered = select(func.count(distinct(Review.image_id))).where(
            Review.reviewer == reviewer,
            Review.attribute_id == BRAND_ID,
            Review.undone_at.is_(None),
            in_stages.where(QueueEntry.image_id == Review.image_id),
        )
        claimed = select(func.count()).where(
            ImageClaim.session_id != session_id,
            ImageClaim.expires_at > utcnow(),
            in_stages.where(QueueEntry.image_id == ImageClaim.image_id),
        )
        counts = catalogue_counts(session)
        waiting = sum(counts.get(f"stage:{stage}", 0) for stage in stages)
        count = waiting - (session.scalar(answered) or 0) - (session.scalar(claimed) or 0)
        share = read_qc_share(session)
        if share > 0 and scope in SECOND_LOOK_SCOPES:
            second = (
                select(func.count())
                .select_from(QueueEntry)
                .join(Image, Image.id == QueueEntry.image_id)
                .where(
                    QueueEntry.stage.in_([int(QueueStage.DECIDED), int(QueueStage.NOT_A_SHOE)]),
                    second_look(share),
                    _open_to(reviewer, session_id),
                )
            )
            count += session.scalar(second) or 0
        return max(count, 0)


def renew_claims(session_id: str, *, engine: Engine | None = None) -> int:
    """Keep this session's claims alive while its photos are on screen; returns how many."""
    from sqlalchemy import update

    with session_scope(engine or get_engine(), write=True) as session:
        expires = utcnow() + timedelta(minutes=CLAIM_MINUTES)
        result = session.execute(
            update(ImageClaim).where(ImageClaim.session_id == session_id).values(expires_at=expires)
        )
        return result.rowcount or 0


def queue_summary(engine: Engine | None = None) -> dict[str, Any]:
    """Counts for the app's header: all images, and images by how they arrived (see :data:`SUMMARY_LABELS`),
    read from the kept counters. ``pool`` counts every photo that arrived without a brand, also those whose
    first answer held them out (``pool_held_out``, counted in ``holdout`` too)."""
    with session_scope(engine or get_engine()) as session:
        counts = catalogue_counts(session)
        held = session.scalar(select(func.count()).select_from(EvaluationDraw).where(EvaluationDraw.held_out)) or 0
    per_split = {str(split): counts.get(f"split:{split}", 0) for split in Split}
    summary = {"images": sum(per_split.values()), **{k: v for k, v in per_split.items() if v}}
    if held:
        summary |= {"pool": per_split[str(Split.POOL)] + held, "pool_held_out": held}
    return summary
