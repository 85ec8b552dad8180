"""Review queues: what a reviewer sees next.

Answered from stored predictions alone (no model runs on the request path). A
queue never shows an image the reviewer already handled, skips images judged
not to be shoes, and claims what it hands out for a few minutes, so two
reviewers working at once never get the same image at the same time.
With a quality-control share set (see :mod:`feedback.agreement`), photos one
reviewer decided (not-a-shoe ones included) come first for the other reviewers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, Exists, Select, and_, delete, exists, or_, select
from sqlalchemy.orm import Session

from db import get_engine, session_scope
from db.labels import EffectiveLabel, answered_by, effective_labels, has_decision, latest_says_not_a_shoe
from db.models import (
    Brand,
    Image,
    ImageClaim,
    ModelVersion,
    PredictionKind,
    Split,
    utcnow,
)
from feedback.agreement import read_qc_share, second_look
from feedback.reviews import clean_reviewer
from feedback.strategies import SCOPES, Candidates, get_strategy
from modeling.feature_cache import inception_activation_cache
from modeling.predict import ModelAnswer, stored_answers
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


def _claimed_elsewhere(session_id: str) -> Exists:
    return exists().where(
        ImageClaim.image_id == Image.id, ImageClaim.session_id != session_id, ImageClaim.expires_at > utcnow()
    )


def _candidate_query(reviewer: str, session_id: str, scope: str, qc_share: float = 0.0) -> Select[tuple[int]]:
    """The images ``reviewer`` may get in ``scope``; the undecided scopes also hold the photos picked for a
    second look at ``qc_share`` (decided by one other reviewer, see :mod:`feedback.agreement`)."""
    decided = has_decision()
    query = select(Image.id).where(~answered_by(reviewer), ~_claimed_elsewhere(session_id))
    second = second_look(qc_share) if qc_share > 0 and scope in SECOND_LOOK_SCOPES else None
    if scope == "unlabelled":
        undecided = and_(Image.source_brand_id.is_(None), ~decided)
        query = query.where(undecided if second is None else or_(undecided, second))
    elif scope == "unreviewed":
        query = query.where(~decided if second is None else or_(~decided, second))
    elif scope == "labelled":
        query = query.where(and_(Image.source_brand_id.is_not(None)) | decided, ~latest_says_not_a_shoe())
    else:
        raise ValueError(f"Unknown queue scope {scope!r}; choose one of: {', '.join(SCOPES)}.")
    return query.order_by(Image.id)


def _second_looks(session: Session, reviewer: str, session_id: str, scope: str, ids: list[int]) -> list[int]:
    """Which of the candidates ``ids`` are second looks for quality control, oldest first."""
    share = read_qc_share(session)
    if share <= 0 or scope not in SECOND_LOOK_SCOPES or not ids:
        return []
    query = (
        select(Image.id)
        .where(~answered_by(reviewer), ~_claimed_elsewhere(session_id), second_look(share))
        .order_by(Image.id)
    )
    candidates = set(ids)
    return [i for i in session.scalars(query) if i in candidates]


def _probabilities(
    session: Session, versions: dict[str, ModelVersion], ids: list[int], kind: PredictionKind
) -> tuple[list[str], dict[str, np.ndarray], dict[int, dict[str, ModelAnswer]]]:
    names = sorted({n for v in versions.values() for n in v.class_names}) or list(
        session.scalars(select(Brand.name).order_by(Brand.name))
    )
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
) -> list[QueueItem]:
    """The next ``k`` images for ``reviewer`` (the first is shown, the rest preloaded), claimed
    for this session so that no other reviewer gets them meanwhile. Photos sent for a second look
    (quality control, see :mod:`feedback.agreement`) come before the strategy's picks.

    ``first`` keeps an image at the front while it is still in the queue: the one
    preloaded after the last answer, or the one an undo brought back.
    """

    reviewer = clean_reviewer(reviewer)
    chosen = get_strategy(strategy)
    scope = scope or chosen.default_scope
    if scope not in chosen.scopes:
        raise ValueError(f"The strategy {strategy} ranks {' or '.join(chosen.scopes)} photos, not {scope} ones.")
    engine = engine or get_engine()
    with session_scope(engine, write=claim) as session:
        ids = list(session.scalars(_candidate_query(reviewer, session_id, scope, read_qc_share(session))))
        if not ids:
            return []
        candidates, answers = build_candidates(session, ids, with_labels="labels" in chosen.needs)
        if candidates.class_names:
            picked = [int(ids[p]) for p in chosen.rank(candidates, k + 1, _rng(session_id + strategy))]
        else:  # no brands yet, so no predictions either: oldest first
            picked = ids[: k + 1]
        seconds = _second_looks(session, reviewer, session_id, scope, ids)
        picked = [*seconds[: k + 1], *(i for i in picked if i not in seconds)]
        if first is not None and first in ids:
            picked = [first, *(i for i in picked if i != first)]
        picked = picked[:k]
        if claim:
            _claim(session, picked, reviewer, session_id)
        images = {img.id: img for img in session.scalars(select(Image).where(Image.id.in_(picked)))}
        labels = effective_labels(session, picked)
        return [
            QueueItem(
                i,
                images[i].path,
                images[i].sha256,
                images[i].width,
                images[i].height,
                labels[i],
                answers.get(i, {}),
                second_look=i in seconds,
            )
            for i in picked
        ]


def _claim(session: Session, image_ids: list[int], reviewer: str, session_id: str) -> None:
    now = utcnow()
    session.execute(delete(ImageClaim).where((ImageClaim.expires_at <= now) | (ImageClaim.session_id == session_id)))
    expires = now + timedelta(minutes=CLAIM_MINUTES)
    for image_id in image_ids:
        session.merge(ImageClaim(image_id=image_id, reviewer=reviewer, session_id=session_id, expires_at=expires))


def pending_count(
    reviewer: str, session_id: str = "", *, scope: str = "unlabelled", engine: Engine | None = None
) -> int:
    """How many images are waiting for this reviewer in ``scope``: those the queue can still give them (not
    answered by them, not decided when the scope says so, not on another session's screen)."""
    from sqlalchemy import func

    with session_scope(engine or get_engine()) as session:
        query = _candidate_query(reviewer, session_id, scope, read_qc_share(session)).order_by(None)
        return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def renew_claims(session_id: str, *, engine: Engine | None = None) -> int:
    """Keep this session's claims alive while its photos are on screen; returns how many."""
    from sqlalchemy import update

    with session_scope(engine or get_engine(), write=True) as session:
        expires = utcnow() + timedelta(minutes=CLAIM_MINUTES)
        result = session.execute(
            update(ImageClaim).where(ImageClaim.session_id == session_id).values(expires_at=expires)
        )
        return result.rowcount or 0


def release_claims(session_id: str, *, engine: Engine | None = None) -> None:
    with session_scope(engine or get_engine(), write=True) as session:
        session.execute(delete(ImageClaim).where(ImageClaim.session_id == session_id))


def queue_summary(engine: Engine | None = None) -> dict[str, Any]:
    """Counts for the app's header: all images, and images per split (see :data:`SUMMARY_LABELS`)."""
    from sqlalchemy import func

    with session_scope(engine or get_engine()) as session:
        per_split = dict(session.execute(select(Image.split, func.count()).group_by(Image.split)).all())
        return {"images": sum(per_split.values()), **{str(Split(k)): v for k, v in per_split.items()}}
