"""The CNN taught by InceptionV3: soft targets over the labelled photos and the unlabelled pool.

The CNN is the fast model (it predicts on arrival); InceptionV3 is the better one. A CNN round
learns from the current InceptionV3's calibrated probabilities as well as from the labels: a
labelled photo's target mixes its label with the teacher's answer, and pool photos (no label
for the attribute, never held out) are learned from the teacher's answer alone, so the CNN sees
every photo the catalogue has. The teacher's answers are the predictions already stored for
each photo: its network never runs during CNN training.

Pool photos taken: the ``SHOELABEL_DISTILL_POOL`` most recent (default 20,000).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.labels import LabelledSet
from db.models import Image, ModelVersion, Prediction, PredictionKind, Split
from modeling.answers import stored_answers
from modeling.registry import current
from shoelabel.settings import number_setting

DEFAULT_POOL = 20_000
LABEL_WEIGHT = 0.5  # of a labelled photo's target: the rest is the teacher's answer


def pool_limit() -> int:
    return int(
        number_setting(
            "SHOELABEL_DISTILL_POOL",
            DEFAULT_POOL,
            lambda v: v >= 0 and float(v).is_integer(),
            ": give a whole number of pool photos (0: distil over the labelled photos only).",
        )
    )


@dataclass
class Teacher:
    """The teacher's answers in the student's class order (rows sum to 1, or 0 where it had none)."""

    version_id: int
    labelled: np.ndarray  # (labelled photos, classes)
    pool_paths: list[str]
    pool: np.ndarray  # (pool photos, classes)

    def details(self) -> dict[str, int]:
        return {
            "teacher_version": self.version_id,
            "taught_labelled": int((self.labelled.sum(axis=1) > 0).sum()),
            "pool_photos": len(self.pool_paths),
        }


def in_class_order(probabilities: Mapping[str, float], class_names: Sequence[str]) -> np.ndarray:
    """A stored answer over the student's classes, renormalised (classes the teacher lacks get 0)."""
    row = np.array([float(probabilities.get(name, 0.0)) for name in class_names])
    total = row.sum()
    return row / total if total > 1e-6 else np.zeros(len(class_names))


def targets(
    labels: np.ndarray, teacher: np.ndarray | None, n_classes: int, smoothing: float, label_weight: float = LABEL_WEIGHT
) -> np.ndarray:
    """Soft targets of labelled photos: the smoothed label, mixed with the teacher's answer where it has one."""
    one_hot = np.full((len(labels), n_classes), smoothing / n_classes)
    one_hot[np.arange(len(labels)), labels] += 1.0 - smoothing
    if teacher is None:
        return one_hot.astype("float32")
    known = teacher.sum(axis=1, keepdims=True) > 0
    mixed = label_weight * one_hot + (1.0 - label_weight) * teacher
    return np.where(known, mixed, one_hot).astype("float32")


def _pool(session: Session, version_id: int, labelled: LabelledSet, limit: int) -> list[tuple[int, str, dict]]:
    """The most recent photos the teacher answered that have no label here and are not held out."""
    known = {i.image_id for part in (labelled.train, labelled.holdout, labelled.rejected_train) for i in part}
    known |= {i.image_id for i in labelled.rejected_holdout}
    query = (
        select(Image.id, Image.path, Prediction.probabilities)
        .join(Prediction, Prediction.image_id == Image.id)
        .where(
            Prediction.model_version_id == version_id,
            Prediction.kind == PredictionKind.MODEL,
            Image.split != Split.HOLDOUT,
        )
        .order_by(Image.id.desc())
    )
    picked = []
    for image_id, path, probabilities in session.execute(query.execution_options(yield_per=1000)):
        if len(picked) >= limit:
            break
        if image_id not in known:
            picked.append((image_id, path, probabilities))
    return picked


def teacher_for(
    session: Session, attribute_id: int, labelled: LabelledSet, class_names: Sequence[str], limit: int | None = None
) -> Teacher | None:
    """The current InceptionV3's answers for the CNN's training photos and pool, or None without one."""
    version: ModelVersion | None = current(session, "inception", attribute_id)
    if version is None:
        return None
    stored = stored_answers(session, {"teacher": version}, [i.image_id for i in labelled.train])
    answered = {image_id: answers["teacher"].probabilities for image_id, answers in stored.items()}
    labelled_rows = (
        np.stack([in_class_order(answered.get(i.image_id, {}), class_names) for i in labelled.train])
        if labelled.train
        else np.zeros((0, len(class_names)))
    )
    pool = _pool(session, version.id, labelled, pool_limit() if limit is None else limit)
    pool_rows = [in_class_order(p, class_names) for _, _, p in pool]
    keep = [k for k, row in enumerate(pool_rows) if row.sum() > 0]
    return Teacher(
        version.id,
        labelled_rows,
        [pool[k][1] for k in keep],
        np.stack([pool_rows[k] for k in keep]) if keep else np.zeros((0, len(class_names))),
    )
