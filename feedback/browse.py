"""Finding images by what is known about them, and everything known about one image.

Every filter (imported brand, effective label, reviews, the current model's prediction) and every order is
one SQL query that returns one page (``ORDER BY ... LIMIT ... OFFSET``); labels are derived and predictions
read for that page's photos only. The effective label is never stored: its filters are the label rules of
:mod:`db.labels` written as SQL over the reviews. Matches are counted up to :data:`COUNT_CAP`, so that the
count of a filter that matches most of a million photos costs no more than that of a small one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, exists, func, select
from sqlalchemy.orm import Session

from db import get_engine, session_scope
from db.catalog import attributes, class_names, find_attribute
from db.labels import (
    IDS_PER_QUERY,
    NOT_A_SHOE,
    Answer,
    EffectiveLabel,
    answered_images,
    decided_images,
    effective_labels,
    has_decision,
    has_imported,
    imported_images,
    in_conflict,
    labelled_as,
    labelled_not_a_shoe,
    same_classes,
    unlabelled,
)
from db.models import BRAND_ID, Image, LabelClass, ModelVersion, Prediction, PredictionKind, Review
from feedback.reviews import review_history
from modeling.answers import ModelAnswer, stored_answers
from modeling.registry import current_versions
from shoelabel.errors import UserError

NO_BRAND = "(none)"  # imported filter: images that arrived without a brand
UNLABELLED = "(unlabelled)"  # label filter: no brand from import or review
IN_CONFLICT = "(in conflict)"  # label filter: reviewers disagree
LABEL_CHOICES = (NOT_A_SHOE, UNLABELLED, IN_CONFLICT)
#: Orders of :func:`find_images`: the order photos were added (oldest or newest first), or by the confidence of
#: the model's prediction, lowest or highest first (photos it has not predicted come last either way).
SORTS = ("oldest", "newest", "least_confident", "most_confident")
#: Matches are counted up to this many; past it a page says "more than" and pages reach this far.
COUNT_CAP = 10_000


class BrowseError(UserError, ValueError):
    """A Browse request that cannot be answered as asked: an unknown order, or a page outside the matches."""


@dataclass(frozen=True)
class BrowseFilter:
    """What to look for; ``None`` means any. Confidence applies to ``model``'s prediction."""

    imported: str | None = None  # a brand, or NO_BRAND
    label: str | None = None  # a brand, NOT_A_SHOE, UNLABELLED or IN_CONFLICT
    model: str | None = None  # architecture of the current model the next two filters use
    predicted: str | None = None
    confidence: tuple[float, float] = (0.0, 1.0)
    reviewed: bool | None = None  # has a live decisive review (confirm, correct, not a shoe)
    reviewer: str | None = None  # has a live review of any kind by this reviewer
    attributes: tuple[tuple[str, str], ...] = ()  # (attribute, its label now: a class, UNLABELLED or IN_CONFLICT)

    @property
    def uses_prediction(self) -> bool:
        low, high = self.confidence
        return self.predicted is not None or low > 0.0 or high < 1.0


@dataclass(frozen=True)
class ImageRow:
    image_id: int
    path: str
    sha256: str
    split: str
    imported: str | None
    label: EffectiveLabel
    predictions: dict[str, ModelAnswer] = field(default_factory=dict)  # by architecture

    @property
    def label_text(self) -> str:
        if self.label.conflict:
            return IN_CONFLICT
        return self.label.value or UNLABELLED


@dataclass
class BrowsePage:
    rows: list[ImageRow]
    total: int  # images matching the filter, counted up to COUNT_CAP; the same on every page
    capped: bool = False  # the count stopped at COUNT_CAP: more than ``total`` images match


@dataclass(frozen=True)
class FilterOptions:
    brands: list[str]
    reviewers: list[str]
    models: list[str]  # architectures with a current model
    attributes: dict[str, list[str]] = field(default_factory=dict)  # the other attributes and their classes


def filter_options(engine: Engine | None = None) -> FilterOptions:
    with session_scope(engine or get_engine()) as session:
        brands = class_names(session)
        reviewers = list(session.scalars(select(Review.reviewer).distinct().order_by(Review.reviewer)))
        models = sorted(current_versions(session))
        others = {a.name: class_names(session, a.id) for a in attributes(session) if a.id != BRAND_ID}
    return FilterOptions(brands, reviewers, models, others)


def _class_ids(session: Session, name: str, attribute_id: int = BRAND_ID) -> list[int]:
    """The attribute's classes called ``name``, in any case (filters ignore case)."""
    query = select(LabelClass.id).where(
        LabelClass.attribute_id == attribute_id, func.lower(LabelClass.name) == name.lower()
    )
    return list(session.scalars(query))


def _attribute_label_is(session: Session, attribute: str, wanted: str) -> ColumnElement[bool] | None:
    """An attribute's label filter as SQL (a class, UNLABELLED or IN_CONFLICT); None when nothing can match."""
    found = find_attribute(session, attribute)
    if found is None:
        return None
    if wanted == IN_CONFLICT:
        return in_conflict(found.id)
    if wanted == UNLABELLED:
        return unlabelled(found.id)
    ids = _class_ids(session, wanted, found.id)
    return labelled_as(ids, found.id) if ids else None


def _label_is(session: Session, wanted: str) -> ColumnElement[bool] | None:
    """The label filter as SQL; None when no image can have that label (a brand that does not exist)."""
    if wanted == IN_CONFLICT:
        return in_conflict()
    if wanted == NOT_A_SHOE:
        return labelled_not_a_shoe()
    if wanted == UNLABELLED:
        return unlabelled()
    brand_ids = _class_ids(session, wanted)
    return labelled_as(brand_ids) if brand_ids else None


def _predicted_by(version: ModelVersion) -> ColumnElement[bool]:
    """``version``'s prediction of the image."""
    return (
        (Prediction.image_id == Image.id)
        & (Prediction.model_version_id == version.id)
        & (Prediction.kind == PredictionKind.MODEL)
    )


@dataclass(frozen=True)
class _Conditions:
    """What a filter asks, as SQL: of the image, and of the model's prediction of it."""

    version: ModelVersion | None  # the current model the prediction conditions and the confidence orders use
    on_image: list[ColumnElement[bool]]
    on_prediction: list[ColumnElement[bool]]  # empty: the filter does not look at predictions

    # Each query reads one table, whose index gives its order or its start, and tests the other table's
    # conditions per row: a database without statistics (SQLite) then cannot start from an index that looks
    # selective but holds half of a million rows (a model's predictions, the photos without a brand).

    def images(self) -> Select[tuple[int]]:
        """The matching images, read from the images: the prediction conditions a test per image."""
        query = select(Image.id).where(*self.on_image)
        if self.on_prediction:
            query = query.where(exists().where(_predicted_by(self.model()), *self.on_prediction))
        return query

    def predictions(self) -> Select[tuple[int]]:
        """The matching images the model has predicted, read from its predictions: the image conditions a test
        per prediction."""
        version = self.model()
        query = select(Prediction.image_id).where(
            Prediction.model_version_id == version.id, Prediction.kind == PredictionKind.MODEL, *self.on_prediction
        )
        if self.on_image:
            query = query.where(exists().where(Image.id == Prediction.image_id, *self.on_image))
        return query

    def model(self) -> ModelVersion:
        if self.version is None:
            raise ValueError("No current model: nothing to read predictions from.")  # _conditions prevents it
        return self.version


def _conditions(session: Session, flt: BrowseFilter, version: ModelVersion | None) -> _Conditions | None:
    """``flt`` as SQL conditions; None when nothing can match (an unknown brand, a prediction filter and no model)."""
    on_image: list[ColumnElement[bool]] = []
    if flt.imported == NO_BRAND:
        on_image.append(~has_imported())
    elif flt.imported is not None:
        imported = _class_ids(session, flt.imported)
        if not imported:
            return None
        on_image.append(Image.id.in_(imported_images(imported)))
    if flt.label is not None:
        label = _label_is(session, flt.label)
        if label is None:
            return None
        on_image.append(label)
    for attribute, wanted in flt.attributes:
        condition = _attribute_label_is(session, attribute, wanted)
        if condition is None:
            return None
        on_image.append(condition)
    if flt.reviewed is not None:  # the reviewed few are a set to start from; the rest a test per image
        on_image.append(Image.id.in_(decided_images()) if flt.reviewed else ~has_decision())
    if flt.reviewer is not None:
        on_image.append(Image.id.in_(answered_images(flt.reviewer)))
    on_prediction: list[ColumnElement[bool]] = []
    if flt.uses_prediction:
        if version is None:
            return None
        low, high = flt.confidence
        on_prediction += [Prediction.confidence >= low, Prediction.confidence <= high]
        if flt.predicted is not None:
            predicted = _class_ids(session, flt.predicted)
            if not predicted:
                return None
            on_prediction.append(Prediction.class_id.in_(same_classes(predicted)))
    return _Conditions(version, on_image, on_prediction)


def _count(session: Session, query: Select[tuple[int]], cap: int) -> int:
    """How many rows ``query`` returns, counting no further than ``cap``."""
    return session.scalar(select(func.count()).select_from(query.limit(cap).subquery())) or 0


def _start_from_predictions(session: Session, where: _Conditions) -> bool:
    """Whether to find the matches from the model's predictions rather than from the images (capped counts of
    each side alone decide): a filter that looks at predictions starts there, unless the image conditions alone
    match fewer photos."""
    if not where.on_prediction:
        return False
    if not where.on_image:
        return True
    images = _count(session, replace(where, on_prediction=[]).images(), COUNT_CAP + 1)
    if images > COUNT_CAP:
        return True
    return _count(session, replace(where, on_image=[]).predictions(), images) < images


def _page_ids(
    session: Session, where: _Conditions, *, from_predictions: bool, few: bool, sort: str, offset: int, limit: int
) -> list[int]:
    """One page of the matching ids in the order ``sort``.

    Few matches (at most :data:`COUNT_CAP`) are found from the filters and sorted. Many are found by walking
    the order's index (the images' ids, the predictions' confidence) until the page is full.
    """
    by_confidence = sort in ("least_confident", "most_confident") and where.version is not None
    if (few and from_predictions) or (not few and by_confidence):
        query = where.predictions()
        if not by_confidence:
            order = (Prediction.image_id.desc() if sort == "newest" else Prediction.image_id,)
            return list(session.scalars(query.order_by(*order).offset(offset).limit(limit)))
        confidence = Prediction.confidence.asc() if sort == "least_confident" else Prediction.confidence.desc()
        ids = list(session.scalars(query.order_by(confidence, Prediction.image_id).offset(offset).limit(limit)))
        if len(ids) == limit or where.on_prediction:
            return ids
        # The page reaches past the predicted photos: those the model has not predicted follow, in catalogue
        # order, after as many as the offset left over (all the predicted ones fit before it when none is on it).
        skip = 0 if ids else offset - _count(session, query, offset)
        unpredicted = where.images().where(~exists().where(_predicted_by(where.model())))
        return ids + list(session.scalars(unpredicted.order_by(Image.id).offset(skip).limit(limit - len(ids))))
    if by_confidence:  # few, found from the images: each one's confidence looked up, those without one last
        confidence = select(Prediction.confidence).where(_predicted_by(where.model())).scalar_subquery()
        key = confidence.asc() if sort == "least_confident" else confidence.desc()
        order = (key.nulls_last(), Image.id)
    else:
        order = (Image.id.desc() if sort == "newest" else Image.id,)
    return list(session.scalars(where.images().order_by(*order).offset(offset).limit(limit)))


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    return (ids[start : start + IDS_PER_QUERY] for start in range(0, len(ids), IDS_PER_QUERY))


def _rows(session: Session, ids: list[int], versions: dict[str, ModelVersion]) -> list[ImageRow]:
    """The images ``ids``, in that order, with their labels and the current models' predictions."""
    labels = effective_labels(session, ids)
    images: dict[int, Any] = {}
    for chunk in _chunks(ids):
        found = session.execute(select(Image.id, Image.path, Image.sha256, Image.split).where(Image.id.in_(chunk)))
        images.update((row.id, row) for row in found)
    answers = stored_answers(session, versions, ids)
    return [
        ImageRow(
            i, images[i].path, images[i].sha256, str(images[i].split), labels[i].imported, labels[i], answers.get(i, {})
        )
        for i in ids
    ]


def find_images(
    flt: BrowseFilter | None = None,
    *,
    sort: str = "oldest",
    offset: int = 0,
    limit: int = 48,
    engine: Engine | None = None,
) -> BrowsePage:
    """One page of the images matching ``flt`` in the order ``sort`` (one of :data:`SORTS`; the confidence orders
    use ``flt.model``'s prediction), with their labels and current predictions, and the count of all matches."""
    if sort not in SORTS:
        raise BrowseError(f"Unknown order {sort!r}; choose one of: {', '.join(SORTS)}.")
    if offset < 0 or limit < 1:
        raise BrowseError(f"No page starts at photo {offset} with {limit} photos; ask for at least one, from 0 on.")
    flt = flt or BrowseFilter()
    with session_scope(engine or get_engine()) as session:
        versions = current_versions(session)
        arch = flt.model or ("inception" if "inception" in versions else next(iter(sorted(versions)), None))
        version = versions.get(arch) if arch else None
        where = _conditions(session, flt, version)
        if where is None:
            return BrowsePage([], 0)
        from_predictions = _start_from_predictions(session, where)
        counted = _count(session, where.predictions() if from_predictions else where.images(), COUNT_CAP + 1)
        ids = _page_ids(
            session,
            where,
            from_predictions=from_predictions,
            few=counted <= COUNT_CAP,
            sort=sort,
            offset=offset,
            limit=limit,
        )
        rows = _rows(session, ids, versions)
    return BrowsePage(rows, min(counted, COUNT_CAP), capped=counted > COUNT_CAP)


@dataclass
class ImageDetails:
    image_id: int
    path: str
    sha256: str
    width: int
    height: int
    format: str
    file_size: int
    split: str
    source: str
    added_at: datetime
    imported: str | None
    label: EffectiveLabel
    reviews: list[dict[str, Any]]  # oldest first, undone ones included
    predictions: list[dict[str, Any]]  # every stored prediction, newest model first


def image_details(image_id: int, *, engine: Engine | None = None) -> ImageDetails | None:
    """Everything known about one image: its file, label, review history and predictions."""
    engine = engine or get_engine()
    with session_scope(engine) as session:
        image = session.get(Image, image_id)
        if image is None:
            return None
        label = effective_labels(session, [image_id])[image_id]
        rows = session.execute(
            select(Prediction, ModelVersion.arch, ModelVersion.status, LabelClass.name)
            .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
            .join(LabelClass, LabelClass.id == Prediction.class_id)
            .where(Prediction.image_id == image_id)
            .order_by(Prediction.model_version_id.desc(), Prediction.kind)
        )
        predictions = [
            {
                "model_version_id": p.model_version_id,
                "arch": arch,
                "model_status": str(status),
                "kind": str(p.kind),
                "brand": brand,
                "confidence": p.confidence,
                "probabilities": dict(p.probabilities),
                "at": p.created_at,
            }
            for p, arch, status, brand in rows
        ]
        details = ImageDetails(
            image.id,
            image.path,
            image.sha256,
            image.width,
            image.height,
            image.format,
            image.file_size,
            str(image.split),
            image.source,
            image.added_at,
            label.imported,
            label,
            [],
            predictions,
        )
    details.reviews = review_history(image_id, engine=engine)
    return details


@dataclass(frozen=True)
class Conflict:
    image_id: int
    path: str
    sha256: str
    imported: str | None
    answers: list[Answer]  # every reviewer's latest answer, oldest first


def open_conflicts(engine: Engine | None = None) -> list[Conflict]:
    """Images whose reviewers disagree, each with every reviewer's answer; found in SQL among the reviewed
    images, so the cost follows the reviews, not the catalogue."""
    with session_scope(engine or get_engine()) as session:
        found = session.execute(
            select(Image.id, Image.path, Image.sha256).where(in_conflict()).order_by(Image.id)
        ).all()
        labels = effective_labels(session, [row.id for row in found])
    return [
        Conflict(
            row.id,
            row.path,
            row.sha256,
            labels[row.id].imported,
            sorted(labels[row.id].answers.values(), key=lambda a: (a.at, a.review_id)),
        )
        for row in found
    ]
