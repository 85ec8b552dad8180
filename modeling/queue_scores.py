"""The queue scores of each photo, computed once when predictions are stored.

A queue ranks photos by how unsure the current models are of them together (their mean
probabilities, and their disagreement). Those scores are computed here, from the stored
predictions, and kept in the photo's :class:`~db.models.QueueEntry`, so that answering a
reviewer is an indexed ``ORDER BY score DESC LIMIT k`` whatever the size of the catalogue:

* when a current model's predictions are stored, for those photos (:func:`score_images`);
* when the current models change (a promotion), for every photo, in committed chunks
  (:func:`rescore_all`); :func:`ensure_scored` does it for a database whose scores are behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sqlalchemy import Engine, bindparam, func, select, update
from sqlalchemy.orm import Session

from db import session_scope
from db.labels import IDS_PER_QUERY
from db.models import SCORE_COLUMNS, UNSCORED, ModelVersion, Prediction, PredictionKind, QueueEntry, QueueScoring
from db.queue_entries import add_all_missing
from modeling import uncertainty
from modeling.registry import current_versions
from shoelabel.progress import Progress, silent

RESCORE_CHUNK = 2000


def scored_key(versions: Mapping[str, ModelVersion]) -> list[str]:
    """What the stored scores depend on: the current version of each architecture."""
    return sorted(f"{arch}:{v.id}" for arch, v in versions.items())


def score_rows(
    session: Session, versions: Mapping[str, ModelVersion], image_ids: Sequence[int]
) -> list[dict[str, float | int]]:
    """Each photo's queue scores from the stored predictions of ``versions`` (higher: less sure)."""
    names = sorted({n for v in versions.values() for n in v.class_names})
    if not names:
        return [{"iid": image_id, **{f"new_{name}": UNSCORED for name in SCORE_COLUMNS}} for image_id in image_ids]
    column = {n: j for j, n in enumerate(names)}
    row_of = {image_id: i for i, image_id in enumerate(image_ids)}
    arch_of = {v.id: arch for arch, v in versions.items()}
    probs = {arch: np.full((len(image_ids), len(names)), np.nan) for arch in versions}
    for start in range(0, len(image_ids), IDS_PER_QUERY):
        rows = session.execute(
            select(Prediction.image_id, Prediction.model_version_id, Prediction.probabilities).where(
                Prediction.model_version_id.in_(list(arch_of)),
                Prediction.kind == PredictionKind.MODEL,
                Prediction.image_id.in_(list(image_ids[start : start + IDS_PER_QUERY])),
            )
        )
        for image_id, version_id, stored in rows:
            target = probs[arch_of[version_id]][row_of[image_id]]
            target[:] = 0.0
            for name, value in stored.items():
                target[column[name]] = value
    scores = queue_scores(list(probs.values()))
    return [
        {"iid": image_id, **{f"new_{name}": float(values[i]) for name, values in scores.items()}}
        for i, image_id in enumerate(image_ids)
    ]


def queue_scores(models: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Each queue score, by its column (:data:`~db.models.SCORE_COLUMNS`), from every model's probabilities
    (rows of NaN: that model has not predicted the photo); :data:`~db.models.UNSCORED` where none has."""
    mean = uncertainty.consensus(models)
    seen = ~np.isnan(mean).any(axis=1)
    filled = np.nan_to_num(mean)
    scores = {
        "least_confidence": uncertainty.least_confidence_scores(filled),
        "margin": uncertainty.margin_scores(filled),
        "entropy": uncertainty.entropy_scores(filled),
        "disagreement": uncertainty.committee_scores(models),
    }
    return {name: np.where(seen, values, UNSCORED) for name, values in scores.items()}


_UPDATE = (
    update(QueueEntry)
    .where(QueueEntry.image_id == bindparam("iid"))
    .values({name: bindparam(f"new_{name}") for name in SCORE_COLUMNS})
)


def score_images(session: Session, image_ids: Sequence[int], versions: Mapping[str, ModelVersion] | None = None) -> int:
    """Store the queue scores of these photos from the current models' stored predictions."""
    versions = current_versions(session) if versions is None else versions
    ids = list(image_ids)
    if not ids:
        return 0
    session.connection().execute(_UPDATE, score_rows(session, versions, ids))
    return len(ids)


def rescore_all(engine: Engine, *, chunk: int = RESCORE_CHUNK, progress: Progress = silent) -> int:
    """Score every photo for the current models, in committed chunks (keyset order), then record
    which models the scores are for. Returns the number of photos scored."""
    with session_scope(engine, write=True) as session:
        add_all_missing(session)
        versions = current_versions(session)
        key = scored_key(versions)
        total = session.scalar(select(func.count()).select_from(QueueEntry)) or 0
    done, last = 0, -1
    while True:
        with session_scope(engine, write=True) as session:
            ids = list(
                session.scalars(
                    select(QueueEntry.image_id)
                    .where(QueueEntry.image_id > last)
                    .order_by(QueueEntry.image_id)
                    .limit(chunk)
                )
            )
            if not ids:
                break
            score_images(session, ids, current_versions(session))
        done, last = done + len(ids), ids[-1]
        progress(min(done / max(total, 1), 1.0), f"queue scores: {done:,} of {total:,} photos")
    with session_scope(engine, write=True) as session:
        row = session.get(QueueScoring, 1)
        if row is None:
            session.add(QueueScoring(id=1, version_ids=key))
        else:
            row.version_ids = key
    return done


def scores_are_current(session: Session) -> bool:
    row = session.get(QueueScoring, 1)
    return row is not None and list(row.version_ids) == scored_key(current_versions(session))


def ensure_scored(engine: Engine, progress: Progress = silent) -> bool:
    """Rescore every photo if the stored scores are not those of the current models; True if it did."""
    with session_scope(engine) as session:
        if scores_are_current(session):
            return False
    rescore_all(engine, progress=progress)
    return True
