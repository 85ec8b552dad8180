"""The evaluation part that follows the data.

Photos that arrive with a class are split at import (``feedback.ingest``). Photos that arrive without
one wait in the review pool; when one gets its first decisive answer, a seeded share of them (default
15%, ``SHOELABEL_REVIEW_HOLDOUT``) goes to the evaluation part instead of training: its split becomes
holdout, and it is never trained on. The draw is stratified by the answered class: a photo is held out
when its class (of the attribute answered) has fewer held-out photos than its share of the photos drawn
so far, plus a seeded fraction of one, so every class keeps its share as far as the numbers allow and
the photos drawn first are not always the ones held out. A photo is drawn once: a later answer may
change its label, never its part. Rounds score the two sources of held-out photos apart
(:data:`IMPORTED`, :data:`REVIEWED`; see :mod:`modeling.promotion`).
"""

from __future__ import annotations

import hashlib
import math

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from db.models import EvaluationDraw, Image, Split

IMPORTED = "imported"  # held out at import: the photos arrived with their class
REVIEWED = "reviewed"  # held out from the review pool: the class is a reviewer's answer
SOURCES = (IMPORTED, REVIEWED)
SEED = 0


def seeded_fraction(sha256: str, seed: int = SEED) -> float:
    """A fixed number in [0, 1) per photo and seed."""
    digest = hashlib.sha256(f"{seed}:{sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def draw_part(
    session: Session, image: Image, attribute_id: int, class_id: int | None, share: float, seed: int = SEED
) -> bool | None:
    """Draw the part of a review-pool photo on its first decisive answer (of ``class_id`` for
    ``attribute_id``; None for "not a shoe"). Returns whether it was held out; None when the photo is not
    in the pool or was drawn before. Call it inside the write transaction that stores the answer."""
    if image.split != Split.POOL or session.get(EvaluationDraw, image.id) is not None:
        return None
    same_class = (EvaluationDraw.attribute_id == attribute_id) & (
        EvaluationDraw.class_id.is_(None) if class_id is None else EvaluationDraw.class_id == class_id
    )
    drawn, held = session.execute(
        select(func.count(), func.coalesce(func.sum(case((EvaluationDraw.held_out, 1), else_=0)), 0)).where(same_class)
    ).one()
    held_out = share > 0 and held < math.floor(share * (drawn + 1) + seeded_fraction(image.sha256, seed))
    session.add(EvaluationDraw(image_id=image.id, attribute_id=attribute_id, class_id=class_id, held_out=held_out))
    if held_out:
        image.split = Split.HOLDOUT
    return held_out
