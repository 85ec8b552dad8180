"""Recording reviewers' decisions. Every decision is a new row; undo marks, never deletes."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, delete, select

from db import get_engine, session_scope
from db.access import OPERATOR, Actor, Permission, answer_as, require
from db.catalog import require_class
from db.evaluation_part import draw_part
from db.labels import DECISIVE
from db.models import BRAND_ID, NOT_A_SHOE, Attribute, Image, ImageClaim, Review, ReviewAction, utcnow
from modeling.answers import ModelAnswer
from shoelabel.errors import UserError
from shoelabel.settings import get_settings

MAX_REVIEWER_LENGTH = 120
UNDO_DEPTH = 20  # how many of a reviewer's latest answers Undo can reach back through, from any tab
UNDO_WINDOW = timedelta(hours=24)  # ... given at most this long ago


class ReviewError(UserError, ValueError):
    """A review that cannot be recorded as asked (nothing was written)."""


def clean_reviewer(name: str) -> str:
    cleaned = " ".join(str(name or "").split())
    if not cleaned:
        raise ReviewError("A reviewer name is needed before reviewing.")
    if len(cleaned) > MAX_REVIEWER_LENGTH:
        raise ReviewError(f"Reviewer name is longer than {MAX_REVIEWER_LENGTH} characters.")
    return cleaned


def _what_was_answered(
    action: ReviewAction | str, label: str | None, shown: ModelAnswer | None
) -> tuple[ReviewAction, str | None]:
    """The action and class to store: a confirm takes the class shown, "not a shoe" confirmed or picked
    is that action, and only confirmations and corrections carry a class."""
    try:
        action = ReviewAction(action)
    except ValueError as exc:
        choices = ", ".join(a.value for a in ReviewAction)
        raise ReviewError(f"Unknown review action {action!r}; use one of: {choices}.") from exc
    if action == ReviewAction.CONFIRM and label is None:
        label = shown.brand if shown and shown.probabilities else None
        if label is None:
            raise ReviewError("Nothing to confirm: no prediction was shown. Pick the class instead.")
    if action == ReviewAction.CORRECT and label is None:
        raise ReviewError("A correction needs the class the image really shows.")
    if action in (ReviewAction.CONFIRM, ReviewAction.CORRECT) and label == NOT_A_SHOE:
        action = ReviewAction.NOT_A_SHOE  # the brand models' "not a shoe", confirmed or picked
    if action not in (ReviewAction.CONFIRM, ReviewAction.CORRECT):
        label = None
    return action, label


def record_review(
    image_id: int,
    reviewer: str,
    action: ReviewAction | str,
    *,
    label: str | None = None,
    attribute_id: int = BRAND_ID,
    shown: ModelAnswer | None = None,
    resolves_conflict: bool = False,
    engine: Engine | None = None,
    actor: Actor = OPERATOR,
) -> int:
    """Store one answer about one attribute of an image (default: brand) and release the reviewer's claim
    on the image; returns the review id.

    ``label`` is the class answered: ``confirm`` without one confirms the top class that was shown,
    ``correct`` needs one of the attribute's classes. "Not a shoe" is about the photo, so it is
    stored on brand whatever attribute is being answered. The row is committed before this returns.
    ``actor`` must be allowed to review (to settle a conflict: an admin); a signed-in
    account answers under its own name only.
    """
    require(actor, Permission.SETTLE if resolves_conflict else Permission.REVIEW)
    answer_as(actor, reviewer)
    reviewer = clean_reviewer(reviewer)
    action, label = _what_was_answered(action, label, shown)
    if action == ReviewAction.NOT_A_SHOE:
        attribute_id = BRAND_ID
    with session_scope(engine or get_engine(), write=True) as session:
        image = session.get(Image, image_id)
        if image is None:
            raise ReviewError(f"No image with id {image_id}.")
        if session.get(Attribute, attribute_id) is None:
            raise ReviewError(f"No attribute with id {attribute_id}.")
        label_class = require_class(session, label, attribute_id) if label is not None else None
        review = Review(
            image_id=image_id,
            attribute_id=attribute_id,
            reviewer=reviewer,
            action=action,
            class_id=label_class.id if label_class else None,
            model_version_id=shown.model_version_id if shown else None,
            probabilities=dict(shown.probabilities) if shown and shown.probabilities else None,
            resolves_conflict=resolves_conflict,
        )
        session.add(review)
        if action in DECISIVE:  # a review-pool photo's first decisive answer draws its part, once
            draw_part(session, image, attribute_id, review.class_id, get_settings().review_holdout)
        session.execute(delete(ImageClaim).where(ImageClaim.image_id == image_id, ImageClaim.reviewer == reviewer))
        session.flush()
        return review.id


def undo_last(
    reviewer: str,
    *,
    among: Collection[int] | None = None,
    recent: bool = False,
    engine: Engine | None = None,
    actor: Actor = OPERATOR,
) -> Review | None:
    """Mark the reviewer's latest live review as undone; returns it (or None if there is none).

    ``among`` limits undo to the given review ids (the app passes those its browser tab
    recorded, so undo in one tab takes back its own answers first). ``recent`` limits it to the
    reviewer's :data:`UNDO_DEPTH` latest answers of the last :data:`UNDO_WINDOW` (undone ones counted),
    which the app reaches from any tab, so Undo survives a reload. ``actor``
    must be allowed to review, and a signed-in account undoes its own answers only.
    """
    require(actor, Permission.REVIEW)
    answer_as(actor, reviewer)
    reviewer = clean_reviewer(reviewer)
    query = select(Review).where(Review.reviewer == reviewer, Review.undone_at.is_(None))
    if among is not None:
        query = query.where(Review.id.in_(list(among)))
    if recent:
        latest = (
            select(Review.id)
            .where(Review.reviewer == reviewer, Review.created_at >= utcnow() - UNDO_WINDOW)
            .order_by(Review.created_at.desc(), Review.id.desc())
            .limit(UNDO_DEPTH)
        )
        query = query.where(Review.id.in_(latest.scalar_subquery()))
    with session_scope(engine or get_engine(), write=True) as session:
        review = session.scalar(query.order_by(Review.created_at.desc(), Review.id.desc()).limit(1))
        if review is None:
            return None
        review.undone_at = utcnow()
        return review


def send_to_review(image_id: int, reviewer: str, *, engine: Engine | None = None, actor: Actor = OPERATOR) -> int:
    """Put a photo's brand back in the review queue: its live decisions are undone (they stay in its history)
    and an "unsure" answer of ``reviewer`` records who sent it back and when; returns that review's id.

    A reviewer may send back the photos only they decided; others' decisions need an admin (who settles).
    """
    require(actor, Permission.REVIEW)
    answer_as(actor, reviewer)
    reviewer = clean_reviewer(reviewer)
    with session_scope(engine or get_engine(), write=True) as session:
        if session.get(Image, image_id) is None:
            raise ReviewError(f"No image with id {image_id}.")
        decisions = list(
            session.scalars(
                select(Review).where(
                    Review.image_id == image_id,
                    Review.attribute_id == BRAND_ID,
                    Review.undone_at.is_(None),
                    Review.action.in_(DECISIVE),
                )
            )
        )
        if any(r.reviewer != reviewer for r in decisions):
            require(actor, Permission.SETTLE)
        now = utcnow()
        for decision in decisions:
            decision.undone_at = now
        review = Review(image_id=image_id, attribute_id=BRAND_ID, reviewer=reviewer, action=ReviewAction.UNSURE)
        session.add(review)
        session.flush()
        return review.id


def review_history(image_id: int, *, engine: Engine | None = None) -> list[dict[str, Any]]:
    """Every review of an image, undone ones included, oldest first."""
    with session_scope(engine or get_engine()) as session:
        reviews = session.scalars(
            select(Review).where(Review.image_id == image_id).order_by(Review.created_at, Review.id)
        )
        return [
            {
                "id": r.id,
                "at": r.created_at,
                "reviewer": r.reviewer,
                "action": r.action.value,
                "attribute": r.attribute.name,
                "class": r.label_class.name if r.label_class else None,
                "model_version_id": r.model_version_id,
                "probabilities": r.probabilities,
                "resolves_conflict": r.resolves_conflict,
                "undone_at": r.undone_at,
            }
            for r in reviews
        ]
