"""Held-out photos for every attribute, not only brand.

The held-out set is one set of photos (a photo is held out for all its attributes). Ingest and
manifest import draw it per brand; :func:`top_up_holdout` then holds out more of the newly added
photos, rarest class first, until each class of another attribute has its share as far as the
numbers allow: a class keeps at least one photo to train on, and no brand is left with too few
photos to train on.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Collection

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.labels import IDS_PER_QUERY, MIN_PHOTOS_PER_BRAND
from db.models import BRAND_ID, Image, ImportedLabel, Split


def top_up_holdout(session: Session, attribute_id: int, fraction: float, seed: int, *, among: Collection[int]) -> int:
    """Move photos of ``among`` (just added, so no model trained on them) from training or the pool to the held-out set
    until each class of the attribute has ``fraction`` of its photos held out; returns how many moved."""
    if attribute_id == BRAND_ID or not among or fraction <= 0:
        return 0
    rows = session.execute(
        select(ImportedLabel.class_id, Image.id, Image.split, Image.sha256)
        .join(Image, Image.id == ImportedLabel.image_id)
        .where(ImportedLabel.attribute_id == attribute_id)
    )
    photos: dict[int, list[tuple[int, Split, str]]] = defaultdict(list)
    for class_id, image_id, split, sha256 in rows:
        photos[class_id].append((image_id, split, sha256))
    brand_of = dict(
        session.execute(
            select(ImportedLabel.image_id, ImportedLabel.class_id)
            .join(Image, Image.id == ImportedLabel.image_id)
            .where(ImportedLabel.attribute_id == BRAND_ID, Image.split == Split.TRAIN)
        ).all()
    )
    brand_training = Counter(brand_of.values())
    wanted = set(among)
    chosen: list[int] = []
    for class_id, members in sorted(photos.items(), key=lambda item: (len(item[1]), item[0])):  # rarest first
        have = sum(1 for _, split, _ in members if split == Split.HOLDOUT)
        target = min(math.floor(len(members) * fraction + 0.5), len(members) - 1)
        if target <= have:
            continue
        candidates = sorted(
            (sha256, image_id)
            for image_id, split, sha256 in members
            if split != Split.HOLDOUT and image_id in wanted and image_id not in chosen
        )
        random.Random(f"{seed}:{attribute_id}:{class_id}").shuffle(candidates)
        for _, image_id in candidates:
            if have >= target:
                break
            brand = brand_of.get(image_id)
            if brand is not None and brand_training[brand] <= MIN_PHOTOS_PER_BRAND:
                continue  # that brand would be left with too few photos to train on
            chosen.append(image_id)
            brand_training[brand] -= 1
            have += 1
    for start in range(0, len(chosen), IDS_PER_QUERY):
        part = chosen[start : start + IDS_PER_QUERY]
        session.execute(update(Image).where(Image.id.in_(part)).values(split=Split.HOLDOUT))
    return len(chosen)
