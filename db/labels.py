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
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, Exists, Select, case, distinct, exists, func, select, union_all
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.util import AliasedClass

from db.models import Brand, Image, Review, ReviewAction, Split

NOT_A_SHOE = "(not a shoe)"
MIN_PHOTOS_PER_BRAND = 2  # fewer labelled photos than this, and a brand cannot be trained on
IDS_PER_QUERY = 900  # image ids bound in one statement (SQLite's limit on parameters was 999 before 3.32)
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
    query = select(Image.id, Brand.name).outerjoin(Brand, Brand.id == Image.source_brand_id)
    if image_ids is None:
        reviews = review_rows(session)
        return {iid: derive(iid, imported, reviews.get(iid, [])) for iid, imported in session.execute(query)}
    ids = list(image_ids)
    labels: dict[int, EffectiveLabel] = {}
    for start in range(0, len(ids), IDS_PER_QUERY):  # bounded statements, however many photos
        part = ids[start : start + IDS_PER_QUERY]
        reviews = review_rows(session, part)
        rows = session.execute(query.where(Image.id.in_(part)))
        labels.update({iid: derive(iid, imported, reviews.get(iid, [])) for iid, imported in rows})
    return labels


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
    """Everything a round trains and evaluates on, from the effective labels (of the photos that have a
    brand or a decision: the unanswered pool, however large, is never read)."""
    with_label = select(Image).where(Image.source_brand_id.is_not(None) | has_decision()).order_by(Image.id)
    images = list(session.scalars(with_label))
    labels = effective_labels(session, [image.id for image in images])
    train: list[LabelledImage] = []
    holdout: list[LabelledImage] = []
    excluded = not_shoe = 0
    for image in images:
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


# The effective label as SQL, for Browse: each filter below matches exactly the images whose derived label
# (:func:`derive`) says so. Sets of images (those reviewers decided, those imported with a brand) are written
# ``Image.id IN (...)``, so that a query can start from them instead of scanning the catalogue; whether the
# reviewers of an image disagree is a test per image, which reads that image's reviews only.


def _live_decisive(review: AliasedClass[Review]) -> ColumnElement[bool]:
    return review.undone_at.is_(None) & review.action.in_(DECISIVE)


def _after(later: AliasedClass[Review], earlier: AliasedClass[Review]) -> ColumnElement[bool]:
    """``later`` comes after ``earlier`` in the order :func:`derive` reads reviews in (time, then id)."""
    return (later.created_at > earlier.created_at) | (
        (later.created_at == earlier.created_at) & (later.id > earlier.id)
    )


def decided_images() -> Select[tuple[int]]:
    """Ids of the images with a live decisive review (the set :func:`has_decision` tests for)."""
    return select(Review.image_id).where(Review.undone_at.is_(None), Review.action.in_(DECISIVE))


def answered_images(reviewer: str) -> Select[tuple[int]]:
    """Ids of the images ``reviewer`` has a live answer for (the set :func:`answered_by` tests for)."""
    return select(Review.image_id).where(Review.reviewer == reviewer, Review.undone_at.is_(None))


def _latest_decisions(says: Callable[[AliasedClass[Review]], ColumnElement[bool]]) -> Select[tuple[int]]:
    """Ids of the images whose latest live decisive review ``says`` so."""
    flag, later = aliased(Review), aliased(Review)
    overtaken = exists().where(later.image_id == flag.image_id, _live_decisive(later), _after(later, flag))
    return select(flag.image_id).where(_live_decisive(flag), says(flag), ~overtaken)


def _disputed() -> ColumnElement[bool]:
    """The image's reviewers' latest answers since the last resolution differ (:attr:`EffectiveLabel.conflict`),
    tested per image: it reads that image's reviews only."""
    answer, resolution, newer = aliased(Review), aliased(Review), aliased(Review)
    settled_later = exists().where(
        resolution.image_id == answer.image_id,
        _live_decisive(resolution),
        resolution.resolves_conflict.is_(True),
        _after(resolution, answer),
    )
    replaced = exists().where(
        newer.image_id == answer.image_id,
        newer.reviewer == answer.reviewer,
        _live_decisive(newer),
        _after(newer, answer),
    )
    value = case((answer.action == ReviewAction.NOT_A_SHOE, -1), else_=func.coalesce(answer.brand_id, 0))
    answers = (
        select(func.count(distinct(value)))
        .where(answer.image_id == Image.id, _live_decisive(answer), ~settled_later, ~replaced)
        .scalar_subquery()
    )
    return answers > 1


def in_conflict() -> ColumnElement[bool]:
    """An image whose reviewers disagree (:attr:`EffectiveLabel.conflict`), looked for among the images that
    more than one reviewer decided."""
    contested = (
        select(Review.image_id)
        .where(Review.undone_at.is_(None), Review.action.in_(DECISIVE))
        .group_by(Review.image_id)
        .having(func.count(distinct(Review.reviewer)) > 1)
    )
    return Image.id.in_(contested) & _disputed()


def labelled_as(brand_ids: Collection[int]) -> ColumnElement[bool]:
    """An image whose effective label is one of these brands, its reviewers agreeing: the latest decisive
    review gives it, or no reviewer decided and it was imported with it."""
    decided = _latest_decisions(lambda r: (r.action != ReviewAction.NOT_A_SHOE) & r.brand_id.in_(brand_ids))
    image = aliased(Image)
    imported = select(image.id).where(image.source_brand_id.in_(brand_ids), image.id.not_in(decided_images()))
    return Image.id.in_(union_all(decided, imported)) & ~_disputed()


def labelled_not_a_shoe() -> ColumnElement[bool]:
    """An image whose effective label is not a shoe, its reviewers agreeing (:attr:`EffectiveLabel.not_a_shoe`)."""
    flagged = _latest_decisions(lambda r: r.action == ReviewAction.NOT_A_SHOE)
    return Image.id.in_(flagged) & ~_disputed()


def unlabelled() -> ColumnElement[bool]:
    """An image with no label at all: imported without a brand, and no reviewer decided it."""
    return Image.source_brand_id.is_(None) & ~has_decision()
