"""Turning reviews into labels.

The effective label of an image is derived, never stored: the latest decisive
review wins (confirm, correct, not-a-shoe; skip and unsure decide nothing, and
undone reviews do not count), else the brand the image was imported with.

Reviewers can disagree. Each reviewer's latest decisive answer is kept; when
those answers differ the image is *in conflict*: it stays visible with every
answer, is left out of training and evaluation, and is settled by a later
review marked as a resolution (or when the reviewers themselves come to agree),
never silently.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Exists, exists, select
from sqlalchemy.orm import Session, aliased

from db.models import Brand, Image, Review, ReviewAction, Split

NOT_A_SHOE = "(not a shoe)"
MIN_PHOTOS_PER_BRAND = 2  # fewer labelled photos than this, and a brand cannot be trained on
DECISIVE = (ReviewAction.CONFIRM, ReviewAction.CORRECT, ReviewAction.NOT_A_SHOE)


@dataclass(frozen=True)
class Answer:
    reviewer: str
    value: str  # a brand name, or NOT_A_SHOE
    at: datetime
    review_id: int


@dataclass
class EffectiveLabel:
    image_id: int
    value: str | None  # brand name, NOT_A_SHOE, or None (no label yet)
    origin: str  # "review", "import" or "none"
    imported: str | None  # the brand it was imported with
    answers: dict[str, Answer] = field(default_factory=dict)  # latest per reviewer since the last resolution

    @property
    def conflict(self) -> bool:
        return len({a.value for a in self.answers.values()}) > 1

    @property
    def brand(self) -> str | None:
        """The brand to train and evaluate on: None when unlabelled, not a shoe, or in conflict."""
        if self.value in (None, NOT_A_SHOE) or self.conflict:
            return None
        return self.value

    @property
    def not_a_shoe(self) -> bool:
        return self.value == NOT_A_SHOE and not self.conflict


@dataclass(frozen=True)
class ReviewRow:
    """The parts of a review that labels depend on (a plain record keeps derivation testable)."""

    review_id: int
    image_id: int
    reviewer: str
    action: ReviewAction
    brand: str | None
    at: datetime
    resolves_conflict: bool = False


def derive(image_id: int, imported: str | None, reviews: Sequence[ReviewRow]) -> EffectiveLabel:
    """The effective label from an image's imported brand and its live (not undone) reviews."""
    decisive = sorted((r for r in reviews if r.action in DECISIVE), key=lambda r: (r.at, r.review_id))
    if not decisive:
        origin = "import" if imported else "none"
        return EffectiveLabel(image_id, imported, origin, imported)
    last_resolution = max((i for i, r in enumerate(decisive) if r.resolves_conflict), default=0)
    answers: dict[str, Answer] = {}
    for r in decisive[last_resolution:]:
        value = NOT_A_SHOE if r.action == ReviewAction.NOT_A_SHOE else (r.brand or "")
        answers[r.reviewer] = Answer(r.reviewer, value, r.at, r.review_id)
    latest = decisive[-1]
    value = NOT_A_SHOE if latest.action == ReviewAction.NOT_A_SHOE else latest.brand
    return EffectiveLabel(image_id, value, "review", imported, answers)


def review_rows(session: Session, image_ids: Iterable[int] | None = None) -> dict[int, list[ReviewRow]]:
    query = (
        select(
            Review.id,
            Review.image_id,
            Review.reviewer,
            Review.action,
            Brand.name,
            Review.created_at,
            Review.resolves_conflict,
        )
        .outerjoin(Brand, Brand.id == Review.brand_id)
        .where(Review.undone_at.is_(None))
    )
    if image_ids is not None:
        query = query.where(Review.image_id.in_(list(image_ids)))
    rows: dict[int, list[ReviewRow]] = defaultdict(list)
    for rid, iid, reviewer, action, brand, at, resolves in session.execute(query):
        rows[iid].append(ReviewRow(rid, iid, reviewer, ReviewAction(action), brand, at, bool(resolves)))
    return rows


def effective_labels(session: Session, image_ids: Iterable[int] | None = None) -> dict[int, EffectiveLabel]:
    """Effective labels of the given images (default: all)."""
    ids = None if image_ids is None else list(image_ids)
    query = select(Image.id, Brand.name).outerjoin(Brand, Brand.id == Image.source_brand_id)
    if ids is not None:
        query = query.where(Image.id.in_(ids))
    reviews = review_rows(session, ids)
    return {iid: derive(iid, imported, reviews.get(iid, [])) for iid, imported in session.execute(query)}


class Offer(enum.StrEnum):
    """What became of a brand offered again for a stored photo (see :func:`offer_brand`)."""

    LABELLED = "labelled"  # it had no brand at all: it takes this one and joins training
    UNCHANGED = "unchanged"  # it has this brand already
    DISAGREES = "disagrees"  # it has another brand (or reviewers disagree on it): kept, and reported


def offer_brand(image: Image, brand: Brand, label: EffectiveLabel) -> Offer:
    """The relabelling rule for photos that arrive again with a brand (a labelled folder, a manifest).

    A stored brand is never overridden by an import, whether it came from an earlier import
    or a review: a disagreement is reported for a reviewer to settle. A photo with no brand
    at all takes the offered one; a pool photo then moves to training (a held-out photo
    stays held out: the held-out set is frozen).
    """
    if image.source_brand_id is None and label.value is None:
        image.source_brand_id = brand.id
        if image.split == Split.POOL:
            image.split = Split.TRAIN
        return Offer.LABELLED
    if label.value == brand.name and not label.conflict:
        return Offer.UNCHANGED
    return Offer.DISAGREES


def kept_label(label: EffectiveLabel) -> str:
    """How a stored label reads in a disagreement report."""
    return "(in conflict)" if label.conflict else (label.value or "(none)")


def conflicts(session: Session) -> list[EffectiveLabel]:
    """Images whose reviewers disagree, with every reviewer's answer."""
    return [label for label in effective_labels(session).values() if label.conflict]


@dataclass(frozen=True)
class LabelledImage:
    image_id: int
    sha256: str
    path: str
    brand: str


@dataclass
class LabelledSet:
    train: list[LabelledImage]
    holdout: list[LabelledImage]
    excluded_conflicts: int
    not_a_shoe: int

    def counts(self, part: str = "train") -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for item in getattr(self, part):
            counts[item.brand] += 1
        return dict(sorted(counts.items()))


def labelled_set(session: Session) -> LabelledSet:
    """Everything a round trains and evaluates on, from the effective labels."""
    labels = effective_labels(session)
    train: list[LabelledImage] = []
    holdout: list[LabelledImage] = []
    excluded = not_shoe = 0
    for image in session.scalars(select(Image).order_by(Image.id)):
        label = labels[image.id]
        if label.conflict:
            excluded += 1
            continue
        if label.not_a_shoe:
            not_shoe += 1
            continue
        if label.brand is None:
            continue
        item = LabelledImage(image.id, image.sha256, image.path, label.brand)
        (holdout if image.split == Split.HOLDOUT else train).append(item)
    return LabelledSet(train, holdout, excluded, not_shoe)


# --------------------------------------------------------------------------- the same rules as SQL filters


def has_decision() -> Exists:
    """An image with a live decisive review (the queues' and Browse's "reviewed")."""
    return exists().where(Review.image_id == Image.id, Review.undone_at.is_(None), Review.action.in_(DECISIVE))


def answered_by(reviewer: str) -> Exists:
    """An image ``reviewer`` has a live answer for, decisive or not."""
    return exists().where(Review.image_id == Image.id, Review.undone_at.is_(None), Review.reviewer == reviewer)


def latest_says_not_a_shoe() -> Exists:
    """An image whose latest live decisive review flags it as not a shoe."""
    flag, later = aliased(Review), aliased(Review)
    overtaken = exists().where(
        later.image_id == flag.image_id,
        later.undone_at.is_(None),
        later.action.in_(DECISIVE),
        (later.created_at > flag.created_at) | ((later.created_at == flag.created_at) & (later.id > flag.id)),
    )
    return exists().where(
        flag.image_id == Image.id, flag.undone_at.is_(None), flag.action == ReviewAction.NOT_A_SHOE, ~overtaken
    )
