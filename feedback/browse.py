"""Finding images by what is known about them, and everything known about one image.

Filters on stored columns (imported brand, reviews, the current model's
prediction) run in SQL; the effective-label filter runs on the derived labels
(:mod:`db.labels`), since labels are never stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, aliased

from db import get_engine, session_scope
from db.labels import NOT_A_SHOE, Answer, EffectiveLabel, answered_by, conflicts, effective_labels, has_decision
from db.models import Brand, Image, ModelVersion, Prediction, PredictionKind, Review
from feedback.reviews import review_history
from modeling.predict import ModelAnswer, stored_answers
from modeling.registry import current_versions

NO_BRAND = "(none)"  # imported filter: images that arrived without a brand
UNLABELLED = "(unlabelled)"  # label filter: no brand from import or review
IN_CONFLICT = "(in conflict)"  # label filter: reviewers disagree
LABEL_CHOICES = (NOT_A_SHOE, UNLABELLED, IN_CONFLICT)
#: Orders of :func:`find_images`: catalogue order, newest added first, or by the confidence of the model's
#: prediction, lowest or highest first (photos it has not predicted come last either way).
SORTS = ("oldest", "newest", "least_confident", "most_confident")
MAX_IN = 900  # ids per IN (...) list; beyond it labels are derived for the whole catalogue


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
    total: int  # images matching the filter, on every page


@dataclass(frozen=True)
class FilterOptions:
    brands: list[str]
    reviewers: list[str]
    models: list[str]  # architectures with a current model


def filter_options(engine: Engine | None = None) -> FilterOptions:
    with session_scope(engine or get_engine()) as session:
        brands = list(session.scalars(select(Brand.name).order_by(Brand.name)))
        reviewers = list(session.scalars(select(Review.reviewer).distinct().order_by(Review.reviewer)))
        models = sorted(current_versions(session))
    return FilterOptions(brands, reviewers, models)


def brand_list(engine: Engine | None = None) -> list[str]:
    """Every brand, sorted by name (the order the review keys 1-9 follow)."""
    return filter_options(engine).brands


def _filtered_ids(session: Session, flt: BrowseFilter, version: ModelVersion | None, sort: str = "oldest") -> list[int]:
    if sort not in SORTS:
        raise ValueError(f"Unknown order {sort!r}; choose one of: {', '.join(SORTS)}.")
    query = select(Image.id)
    if flt.imported == NO_BRAND:
        query = query.where(Image.source_brand_id.is_(None))
    elif flt.imported is not None:
        imported = aliased(Brand)
        query = query.join(imported, imported.id == Image.source_brand_id).where(
            func.lower(imported.name) == flt.imported.lower()
        )
    if flt.reviewed is not None:
        query = query.where(has_decision() if flt.reviewed else ~has_decision())
    if flt.reviewer is not None:
        query = query.where(answered_by(flt.reviewer))
    by_confidence = sort in ("least_confident", "most_confident") and version is not None
    if flt.uses_prediction:
        if version is None:
            return []
        low, high = flt.confidence
        query = query.join(
            Prediction,
            (Prediction.image_id == Image.id)
            & (Prediction.model_version_id == version.id)
            & (Prediction.kind == PredictionKind.MODEL),
        ).where(Prediction.confidence >= low, Prediction.confidence <= high)
        if flt.predicted is not None:
            predicted = aliased(Brand)
            query = query.join(predicted, predicted.id == Prediction.brand_id).where(
                func.lower(predicted.name) == flt.predicted.lower()
            )
    elif by_confidence:
        query = query.outerjoin(
            Prediction,
            (Prediction.image_id == Image.id)
            & (Prediction.model_version_id == version.id)
            & (Prediction.kind == PredictionKind.MODEL),
        )
    if by_confidence:
        confidence = Prediction.confidence.asc() if sort == "least_confident" else Prediction.confidence.desc()
        query = query.order_by(Prediction.confidence.is_(None), confidence, Image.id)
    elif sort == "newest":
        query = query.order_by(Image.added_at.desc(), Image.id.desc())
    else:
        query = query.order_by(Image.id)
    return list(session.scalars(query))


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[start : start + MAX_IN] for start in range(0, len(ids), MAX_IN)]


def _label_matches(label: EffectiveLabel, wanted: str) -> bool:
    if wanted == IN_CONFLICT:
        return label.conflict
    if label.conflict:
        return False
    if wanted == UNLABELLED:
        return label.value is None
    return (label.value or "").lower() == wanted.lower()


def find_images(
    flt: BrowseFilter | None = None,
    *,
    sort: str = "oldest",
    offset: int = 0,
    limit: int | None = 48,
    engine: Engine | None = None,
) -> BrowsePage:
    """Images matching ``flt`` in the order ``sort`` (one of :data:`SORTS`; the confidence orders use
    ``flt.model``'s prediction), one page of them, with labels and current predictions."""
    flt = flt or BrowseFilter()
    with session_scope(engine or get_engine()) as session:
        versions = current_versions(session)
        arch = flt.model or ("inception" if "inception" in versions else next(iter(sorted(versions)), None))
        ids = _filtered_ids(session, flt, versions.get(arch) if arch else None, sort)
        if flt.label is not None and ids:
            labels = effective_labels(session, ids if len(ids) <= MAX_IN else None)
            ids = [i for i in ids if _label_matches(labels[i], flt.label)]
        total = len(ids)
        page = ids[offset : offset + limit] if limit is not None else ids[offset:]
        if not page:
            return BrowsePage([], total)
        labels = effective_labels(session, page if len(page) <= MAX_IN else None)
        answers = stored_answers(session, versions, page)
        imported = aliased(Brand)
        images = {
            row.id: row
            for chunk in _chunks(page)
            for row in session.execute(
                select(Image.id, Image.path, Image.sha256, Image.split, imported.name.label("imported"))
                .outerjoin(imported, imported.id == Image.source_brand_id)
                .where(Image.id.in_(chunk))
            )
        }
    rows = [
        ImageRow(
            i, images[i].path, images[i].sha256, str(images[i].split), images[i].imported, labels[i], answers.get(i, {})
        )
        for i in page
    ]
    return BrowsePage(rows, total)


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
            select(Prediction, ModelVersion.arch, ModelVersion.status, Brand.name)
            .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
            .join(Brand, Brand.id == Prediction.brand_id)
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
            image.source_brand.name if image.source_brand else None,
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
    """Images whose reviewers disagree, each with every reviewer's answer."""
    with session_scope(engine or get_engine()) as session:
        found = conflicts(session)
        ids = [label.image_id for label in found]
        paths = {
            row.id: row
            for chunk in _chunks(ids)
            for row in session.execute(select(Image.id, Image.path, Image.sha256).where(Image.id.in_(chunk)))
        }
    return [
        Conflict(
            label.image_id,
            paths[label.image_id].path,
            paths[label.image_id].sha256,
            label.imported,
            sorted(label.answers.values(), key=lambda a: (a.at, a.review_id)),
        )
        for label in sorted(found, key=lambda lab: lab.image_id)
    ]
