"""Turning reviews into labels.

The effective label of an image, for one attribute, is derived, never stored: the
latest decisive review of that attribute wins (confirm, correct, not-a-shoe; skip and
unsure decide nothing, and undone reviews do not count), else the class the image was
imported with. "Not a shoe" is answered on brand, the first attribute. A class merged
into another reads as that other class everywhere (see :class:`db.models.LabelClass`).
Every function takes the attribute's id and defaults to brand.

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

from sqlalchemy import ColumnElement, Exists, Select, case, distinct, exists, func, or_, select, union_all
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.util import AliasedClass

from db.evaluation_part import IMPORTED, REVIEWED
from db.models import (
    BRAND_ID,
    NOT_A_SHOE,
    EvaluationDraw,
    Image,
    ImportedLabel,
    LabelClass,
    Review,
    ReviewAction,
    Split,
)

MIN_PHOTOS_PER_BRAND = 2  # fewer labelled photos than this, and a brand cannot be trained on
IDS_PER_QUERY = 900  # image ids bound in one statement (SQLite's limit on parameters was 999 before 3.32)
DECISIVE = (ReviewAction.CONFIRM, ReviewAction.CORRECT, ReviewAction.NOT_A_SHOE)


@dataclass(frozen=True)
class Answer:
    reviewer: str
    value: str  # a class name, or NOT_A_SHOE
    at: datetime
    review_id: int


@dataclass
class EffectiveLabel:
    image_id: int
    value: str | None  # class name, NOT_A_SHOE, or None (no label yet)
    origin: str  # "review", "import" or "none"
    imported: str | None  # the class it was imported with
    answers: dict[str, Answer] = field(default_factory=dict)  # latest per reviewer since the last resolution

    @property
    def conflict(self) -> bool:
        return len({a.value for a in self.answers.values()}) > 1

    @property
    def brand(self) -> str | None:
        """The class to train and evaluate on: None when unlabelled, not a shoe, or in conflict."""
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
    """The effective label from an image's imported class and its live (not undone) reviews."""
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


def class_name_now(
    label_class: type[LabelClass] | AliasedClass[LabelClass],
) -> tuple[ColumnElement[str], AliasedClass[LabelClass]]:
    """The name ``label_class`` reads as today (its own, or that of the class it was merged into), and the
    class to outer-join on ``merged_into_id`` for it."""
    survivor = aliased(LabelClass)
    return func.coalesce(survivor.name, label_class.name), survivor


def review_rows(
    session: Session, image_ids: Iterable[int] | None = None, attribute_id: int = BRAND_ID
) -> dict[int, list[ReviewRow]]:
    name, survivor = class_name_now(LabelClass)
    query = (
        select(
            Review.id,
            Review.image_id,
            Review.reviewer,
            Review.action,
            name,
            Review.created_at,
            Review.resolves_conflict,
        )
        .outerjoin(LabelClass, LabelClass.id == Review.class_id)
        .outerjoin(survivor, survivor.id == LabelClass.merged_into_id)
        .where(Review.undone_at.is_(None), Review.attribute_id == attribute_id)
    )
    if image_ids is not None:
        query = query.where(Review.image_id.in_(list(image_ids)))
    rows: dict[int, list[ReviewRow]] = defaultdict(list)
    for rid, iid, reviewer, action, brand, at, resolves in session.execute(query):
        rows[iid].append(ReviewRow(rid, iid, reviewer, ReviewAction(action), brand, at, bool(resolves)))
    return rows


def effective_labels(
    session: Session, image_ids: Iterable[int] | None = None, attribute_id: int = BRAND_ID
) -> dict[int, EffectiveLabel]:
    """Effective labels of the given images (default: all) for one attribute (default: brand)."""
    name, survivor = class_name_now(LabelClass)
    query = (
        select(Image.id, name)
        .outerjoin(ImportedLabel, (ImportedLabel.image_id == Image.id) & (ImportedLabel.attribute_id == attribute_id))
        .outerjoin(LabelClass, LabelClass.id == ImportedLabel.class_id)
        .outerjoin(survivor, survivor.id == LabelClass.merged_into_id)
    )
    if image_ids is None:
        reviews = review_rows(session, attribute_id=attribute_id)
        return {iid: derive(iid, imported, reviews.get(iid, [])) for iid, imported in session.execute(query)}
    ids = list(image_ids)
    labels: dict[int, EffectiveLabel] = {}
    for start in range(0, len(ids), IDS_PER_QUERY):  # bounded statements, however many photos
        part = ids[start : start + IDS_PER_QUERY]
        reviews = review_rows(session, part, attribute_id)
        rows = session.execute(query.where(Image.id.in_(part)))
        labels.update({iid: derive(iid, imported, reviews.get(iid, [])) for iid, imported in rows})
    return labels


class Offer(enum.StrEnum):
    """What became of a class offered again for a stored photo (see :func:`offer_class`)."""

    LABELLED = "labelled"  # it had no class at all: it takes this one (and, for brand, joins training)
    UNCHANGED = "unchanged"  # it has this class already
    DISAGREES = "disagrees"  # it has another class (or reviewers disagree on it): kept, and reported


def offer_class(session: Session, image: Image, label_class: LabelClass, label: EffectiveLabel) -> Offer:
    """The relabelling rule for photos that arrive again with a class (a labelled folder, a manifest).

    ``label`` is the photo's effective label for the class's attribute. A stored class is never
    overridden by an import, whether it came from an earlier import or a review: a disagreement
    is reported for a reviewer to settle. A photo with no class at all takes the offered one;
    given a brand, a pool photo then moves to training (a held-out photo stays held out: the
    held-out set is frozen).
    """
    if label.origin == "none":
        session.add(ImportedLabel(image_id=image.id, attribute_id=label_class.attribute_id, class_id=label_class.id))
        if label_class.attribute_id == BRAND_ID and image.split == Split.POOL:
            image.split = Split.TRAIN
        return Offer.LABELLED
    if label.value == label_class.name and not label.conflict:
        return Offer.UNCHANGED
    return Offer.DISAGREES


def kept_label(label: EffectiveLabel) -> str:
    """How a stored label reads in a disagreement report."""
    return "(in conflict)" if label.conflict else (label.value or "(none)")


def conflicts(session: Session, attribute_id: int = BRAND_ID) -> list[EffectiveLabel]:
    """Images whose reviewers disagree, with every reviewer's answer."""
    return [label for label in effective_labels(session, attribute_id=attribute_id).values() if label.conflict]


@dataclass(frozen=True)
class LabelledImage:
    image_id: int
    sha256: str
    path: str
    brand: str  # the class of the attribute the set is for
    source: str = IMPORTED  # of a held-out photo: held out at import, or from the review pool


@dataclass
class LabelledSet:
    train: list[LabelledImage]
    holdout: list[LabelledImage]
    excluded_conflicts: int
    not_a_shoe: int
    # brand only: the photos answered "not a shoe", labelled NOT_A_SHOE, by part (a round may learn to reject them)
    rejected_train: list[LabelledImage] = field(default_factory=list)
    rejected_holdout: list[LabelledImage] = field(default_factory=list)

    def counts(self, part: str = "train") -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for item in getattr(self, part):
            counts[item.brand] += 1
        return dict(sorted(counts.items()))


def labelled_set(session: Session, attribute_id: int = BRAND_ID) -> LabelledSet:
    """Everything a round trains and evaluates on, from the effective labels (of the photos that have a
    class or a decision: the unanswered pool, however large, is never read)."""
    with_label = select(Image).where(has_imported(attribute_id) | has_decision(attribute_id)).order_by(Image.id)
    images = list(session.scalars(with_label))
    labels = effective_labels(session, [image.id for image in images], attribute_id)
    if attribute_id != BRAND_ID:  # "not a shoe" is answered on brand, and rules the photo out of every attribute
        brands = effective_labels(session, [image.id for image in images])
        flagged = {i for i, label in brands.items() if label.not_a_shoe}
    else:
        flagged = set()
    train: list[LabelledImage] = []
    holdout: list[LabelledImage] = []
    excluded = not_shoe = 0
    rejected_train: list[LabelledImage] = []
    rejected_holdout: list[LabelledImage] = []
    reviewed = reviewed_holdout(session, [image.id for image in images if image.split == Split.HOLDOUT])
    for image in images:
        label = labels[image.id]
        if label.conflict:
            excluded += 1
            continue
        source = REVIEWED if image.id in reviewed else IMPORTED
        if label.not_a_shoe or image.id in flagged:
            not_shoe += 1
            if label.not_a_shoe:
                item = LabelledImage(image.id, image.sha256, image.path, NOT_A_SHOE, source)
                (rejected_holdout if image.split == Split.HOLDOUT else rejected_train).append(item)
            continue
        if label.brand is None:
            continue
        item = LabelledImage(image.id, image.sha256, image.path, label.brand, source)
        (holdout if image.split == Split.HOLDOUT else train).append(item)
    return LabelledSet(train, holdout, excluded, not_shoe, rejected_train, rejected_holdout)


def reviewed_holdout(session: Session, image_ids: Collection[int]) -> set[int]:
    """The ids among ``image_ids`` of the photos held out from the review pool (see :mod:`db.evaluation_part`)."""
    ids, found = list(image_ids), set()
    for start in range(0, len(ids), IDS_PER_QUERY):
        part = ids[start : start + IDS_PER_QUERY]
        found.update(
            session.scalars(
                select(EvaluationDraw.image_id).where(EvaluationDraw.held_out, EvaluationDraw.image_id.in_(part))
            )
        )
    return found


# --------------------------------------------------------------------------- the same rules as SQL filters


def has_imported(attribute_id: int = BRAND_ID) -> Exists:
    """An image that arrived with a class of the attribute."""
    imported = aliased(ImportedLabel)  # never correlated with a query that joins imported labels itself
    return exists().where(imported.image_id == Image.id, imported.attribute_id == attribute_id)


def imported_images(class_ids: Collection[int], attribute_id: int = BRAND_ID) -> Select[tuple[int]]:
    """Ids of the images that arrived with one of these classes (or a class merged into one of them)."""
    return select(ImportedLabel.image_id).where(
        ImportedLabel.attribute_id == attribute_id, ImportedLabel.class_id.in_(same_classes(class_ids))
    )


def same_classes(class_ids: Collection[int]) -> Select[tuple[int]]:
    """These classes and those merged into them: every id that reads as one of them."""
    return select(LabelClass.id).where(
        or_(LabelClass.id.in_(list(class_ids)), LabelClass.merged_into_id.in_(list(class_ids)))
    )


def has_decision(attribute_id: int = BRAND_ID) -> Exists:
    """An image with a live decisive review (the queues' and Browse's "reviewed")."""
    return exists().where(
        Review.image_id == Image.id,
        Review.attribute_id == attribute_id,
        Review.undone_at.is_(None),
        Review.action.in_(DECISIVE),
    )


def answered_by(reviewer: str, attribute_id: int = BRAND_ID) -> Exists:
    """An image ``reviewer`` has a live answer for, decisive or not."""
    return exists().where(
        Review.image_id == Image.id,
        Review.attribute_id == attribute_id,
        Review.undone_at.is_(None),
        Review.reviewer == reviewer,
    )


def latest_says_not_a_shoe() -> Exists:
    """An image whose latest live decisive review (of brand, where it is answered) flags it as not a shoe."""
    flag, later = aliased(Review), aliased(Review)
    overtaken = exists().where(later.image_id == flag.image_id, _live_decisive(later), _after(later, flag))
    return exists().where(
        flag.image_id == Image.id, _live_decisive(flag), flag.action == ReviewAction.NOT_A_SHOE, ~overtaken
    )


# The effective label as SQL, for Browse: each filter below matches exactly the images whose derived label
# (:func:`derive`) says so. Sets of images (those reviewers decided, those imported with a class) are written
# ``Image.id IN (...)``, so that a query can start from them instead of scanning the catalogue; whether the
# reviewers of an image disagree is a test per image, which reads that image's reviews only.


def _live_decisive(review: AliasedClass[Review], attribute_id: int = BRAND_ID) -> ColumnElement[bool]:
    return (review.attribute_id == attribute_id) & review.undone_at.is_(None) & review.action.in_(DECISIVE)


def _after(later: AliasedClass[Review], earlier: AliasedClass[Review]) -> ColumnElement[bool]:
    """``later`` comes after ``earlier`` in the order :func:`derive` reads reviews in (time, then id)."""
    return (later.created_at > earlier.created_at) | (
        (later.created_at == earlier.created_at) & (later.id > earlier.id)
    )


def decided_images(attribute_id: int = BRAND_ID) -> Select[tuple[int]]:
    """Ids of the images with a live decisive review (the set :func:`has_decision` tests for)."""
    return select(Review.image_id).where(
        Review.attribute_id == attribute_id, Review.undone_at.is_(None), Review.action.in_(DECISIVE)
    )


def answered_images(reviewer: str, attribute_id: int = BRAND_ID) -> Select[tuple[int]]:
    """Ids of the images ``reviewer`` has a live answer for (the set :func:`answered_by` tests for)."""
    return select(Review.image_id).where(
        Review.reviewer == reviewer, Review.attribute_id == attribute_id, Review.undone_at.is_(None)
    )


def _latest_decisions(
    says: Callable[[AliasedClass[Review]], ColumnElement[bool]], attribute_id: int = BRAND_ID
) -> Select[tuple[int]]:
    """Ids of the images whose latest live decisive review ``says`` so."""
    flag, later = aliased(Review), aliased(Review)
    overtaken = exists().where(
        later.image_id == flag.image_id, _live_decisive(later, attribute_id), _after(later, flag)
    )
    return select(flag.image_id).where(_live_decisive(flag, attribute_id), says(flag), ~overtaken)


def _disputed(attribute_id: int = BRAND_ID) -> ColumnElement[bool]:
    """The image's reviewers' latest answers since the last resolution differ (:attr:`EffectiveLabel.conflict`),
    tested per image: it reads that image's reviews only."""
    answer, resolution, newer = aliased(Review), aliased(Review), aliased(Review)
    settled_later = exists().where(
        resolution.image_id == answer.image_id,
        _live_decisive(resolution, attribute_id),
        resolution.resolves_conflict.is_(True),
        _after(resolution, answer),
    )
    replaced = exists().where(
        newer.image_id == answer.image_id,
        newer.reviewer == answer.reviewer,
        _live_decisive(newer, attribute_id),
        _after(newer, answer),
    )
    merged_into = select(LabelClass.merged_into_id).where(LabelClass.id == answer.class_id).scalar_subquery()
    value = case((answer.action == ReviewAction.NOT_A_SHOE, -1), else_=func.coalesce(merged_into, answer.class_id, 0))
    answers = (
        select(func.count(distinct(value)))
        .where(answer.image_id == Image.id, _live_decisive(answer, attribute_id), ~settled_later, ~replaced)
        .scalar_subquery()
    )
    return answers > 1


def in_conflict(attribute_id: int = BRAND_ID) -> ColumnElement[bool]:
    """An image whose reviewers disagree (:attr:`EffectiveLabel.conflict`), looked for among the images that
    more than one reviewer decided."""
    contested = (
        select(Review.image_id)
        .where(Review.attribute_id == attribute_id, Review.undone_at.is_(None), Review.action.in_(DECISIVE))
        .group_by(Review.image_id)
        .having(func.count(distinct(Review.reviewer)) > 1)
    )
    return Image.id.in_(contested) & _disputed(attribute_id)


def labelled_as(class_ids: Collection[int], attribute_id: int = BRAND_ID) -> ColumnElement[bool]:
    """An image whose effective label is one of these classes, its reviewers agreeing: the latest decisive
    review gives it, or no reviewer decided and it was imported with it."""
    decided = _latest_decisions(
        lambda r: (r.action != ReviewAction.NOT_A_SHOE) & r.class_id.in_(same_classes(class_ids)), attribute_id
    )
    imported = imported_images(class_ids, attribute_id).where(
        ImportedLabel.image_id.not_in(decided_images(attribute_id))
    )
    return Image.id.in_(union_all(decided, imported)) & ~_disputed(attribute_id)


def labelled_not_a_shoe() -> ColumnElement[bool]:
    """An image whose effective label is not a shoe, its reviewers agreeing (:attr:`EffectiveLabel.not_a_shoe`)."""
    flagged = _latest_decisions(lambda r: r.action == ReviewAction.NOT_A_SHOE)
    return Image.id.in_(flagged) & ~_disputed()


def unlabelled(attribute_id: int = BRAND_ID) -> ColumnElement[bool]:
    """An image with no label at all for the attribute: imported without one, and no reviewer decided it."""
    return ~has_imported(attribute_id) & ~has_decision(attribute_id)
