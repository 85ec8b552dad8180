"""A synthetic catalogue built directly in the schema, for benchmarks at up to millions of photos.

No image files: rows only (photos, two current models with stored predictions, their queue
entries and scores, some reviews), written in bulk so that a million photos take a few minutes
on SQLite or PostgreSQL. The queue scores are computed with the same measures as
:mod:`modeling.queue_scores`, vectorised over each chunk.
"""

from __future__ import annotations

import enum
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, Table, insert, select, text

from db.models import (
    BRAND_ID,
    Image,
    ImportedLabel,
    LabelClass,
    ModelStatus,
    ModelVersion,
    Prediction,
    PredictionKind,
    QueueEntry,
    QueueScoring,
    QueueStage,
    Review,
    ReviewAction,
    Split,
    utcnow,
)
from db.queue_entries import RANDOM_MULTIPLIER, RANDOM_RANGE
from modeling import uncertainty
from modeling.queue_scores import queue_scores, scored_key

CHUNK = 20_000


@dataclass
class SyntheticCatalogue:
    pool: int
    labelled: int
    reviewed: int
    brands: list[str]
    seconds: float


def _probabilities(rng: np.random.Generator, n: int, classes: int) -> np.ndarray:
    """Peaked like a trained model's: most photos sure of one class, some torn between two or three."""
    concentration = rng.choice([0.05, 0.3, 1.0], size=n, p=[0.6, 0.3, 0.1])
    probs = rng.gamma(np.repeat(concentration[:, None], classes, axis=1))
    probs = np.maximum(probs, 1e-9)
    return probs / probs.sum(axis=1, keepdims=True)


def build_synthetic_catalogue(
    engine: Engine,
    n_pool: int,
    *,
    n_labelled: int = 2_000,
    n_reviewed: int = 1_000,
    n_brands: int = 20,
    seed: int = 0,
    progress: bool = True,
) -> SyntheticCatalogue:
    """Fill an empty, migrated database: ``n_labelled`` photos with an imported brand (15% held out),
    ``n_pool`` pool photos of which ``n_reviewed`` are decided by a review, two current models
    (InceptionV3 and CNN) with a stored prediction for every photo, and the photos' queue entries."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    brands = [f"brand-{b:02d}" for b in range(n_brands)]
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(insert(LabelClass), [{"name": name, "created_at": now} for name in brands])
        brand_ids = dict(conn.execute(select(LabelClass.name, LabelClass.id)).all())
        versions = {}
        for arch, size in (("inception", 299), ("cnn", 128)):
            conn.execute(
                insert(ModelVersion),
                [
                    {
                        "arch": arch,
                        "path": f"/synthetic/{arch}.keras",
                        "status": ModelStatus.CURRENT,
                        "class_names": brands,
                        "input_size": size,
                        "base_weights": "",
                        "training": {},
                        "metrics": {},
                        "created_at": now,
                    }
                ],
            )
            versions[arch] = conn.execute(select(ModelVersion.id).where(ModelVersion.arch == arch)).scalar_one()
    total = n_labelled + n_pool
    reviewed = set(rng.choice(np.arange(n_labelled, total), size=min(n_reviewed, n_pool), replace=False).tolist())
    ordered_brand_ids = [brand_ids[b] for b in brands]
    for start in range(0, total, CHUNK):
        stop = min(start + CHUNK, total)
        _write_chunk(engine, rng, start, stop, n_labelled, ordered_brand_ids, versions, reviewed, now)
        if progress:
            elapsed = time.perf_counter() - started
            eta = elapsed * (total - stop) / stop
            print(f"\r  synthetic catalogue: {stop:,}/{total:,} photos, {elapsed:.0f}s, ETA {eta:.0f}s", end="")
    if progress:
        print()
    with engine.begin() as conn:
        with_versions = {arch: _Version(vid) for arch, vid in versions.items()}
        conn.execute(insert(QueueScoring), [{"id": 1, "version_ids": scored_key(with_versions), "updated_at": now}])
        if engine.dialect.name == "postgresql":  # ids were given explicitly: move the sequence past them
            conn.execute(text("SELECT setval(pg_get_serial_sequence('images', 'id'), (SELECT max(id) FROM images))"))
    return SyntheticCatalogue(n_pool, n_labelled, len(reviewed), brands, time.perf_counter() - started)


@dataclass(frozen=True)
class _Version:
    id: int


def _write_chunk(
    engine: Engine,
    rng: np.random.Generator,
    start: int,
    stop: int,
    n_labelled: int,
    brand_ids: list[int],
    versions: dict[str, int],
    reviewed: set[int],
    now: object,
) -> None:
    n, classes = stop - start, len(brand_ids)
    positions = np.arange(start, stop)
    labels = rng.integers(0, classes, size=n)
    images, imported = [], []
    for i, position in enumerate(positions.tolist()):
        labelled = position < n_labelled
        split = (Split.HOLDOUT if position % 7 == 0 else Split.TRAIN) if labelled else Split.POOL
        images.append(
            {
                "id": position + 1,
                "sha256": hashlib.sha256(f"synthetic-{position}".encode()).hexdigest(),
                "path": f"/synthetic/photos/{position:08d}.jpg",
                "width": 240,
                "height": 240,
                "format": "JPEG",
                "file_size": 14_000,
                "added_at": now,
                "split": split,
                "source": "synthetic",
            }
        )
        if labelled:
            imported.append({"image_id": position + 1, "attribute_id": BRAND_ID, "class_id": brand_ids[labels[i]]})
    probs = {arch: _probabilities(rng, n, classes) for arch in versions}
    predictions = []
    for arch, version_id in versions.items():
        p = probs[arch]
        top = p.argmax(axis=1)
        confidence, margin, entropy = uncertainty.confidence(p), uncertainty.margin(p), uncertainty.entropy(p)
        rounded = np.round(p, 6).tolist()
        predictions += [
            {
                "image_id": int(positions[i]) + 1,
                "model_version_id": version_id,
                "kind": PredictionKind.MODEL,
                "probabilities": dict(zip(_names(classes), rounded[i], strict=True)),
                "attribute_id": BRAND_ID,
                "class_id": brand_ids[top[i]],
                "confidence": float(confidence[i]),
                "margin": float(margin[i]),
                "entropy": float(entropy[i]),
                "created_at": now,
            }
            for i in range(n)
        ]
    scores = queue_scores([probs[arch] for arch in versions])
    reviews, entries = [], []
    for i, position in enumerate(positions.tolist()):
        decided = position in reviewed
        if decided:
            reviews.append(
                {
                    "image_id": position + 1,
                    "reviewer": f"reviewer-{position % 5}",
                    "action": ReviewAction.CORRECT,
                    "attribute_id": BRAND_ID,
                    "class_id": brand_ids[labels[i]],
                    "model_version_id": versions["inception"],
                    "probabilities": None,
                    "resolves_conflict": False,
                    "created_at": now,
                }
            )
        stage = QueueStage.DECIDED if decided else QueueStage.IMPORTED if position < n_labelled else QueueStage.OPEN
        entries.append(
            {
                "image_id": position + 1,
                "stage": int(stage),
                **{name: float(values[i]) for name, values in scores.items()},
                "random_key": ((position + 1) * RANDOM_MULTIPLIER) % RANDOM_RANGE,
            }
        )
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":  # a big page cache: the indexes take random inserts
            conn.exec_driver_sql("PRAGMA cache_size = -1000000")
        tables = ((Image, images), (ImportedLabel, imported), (Prediction, predictions), (Review, reviews))
        for table, rows in (*tables, (QueueEntry, entries)):
            _bulk_insert(conn, table.__table__, rows)


def _bulk_insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Rows straight through the driver: COPY on PostgreSQL, one prepared statement on SQLite (the ORM's
    conversions, done here once per value, would take most of the time at a million photos)."""
    if not rows:
        return
    columns = list(rows[0])
    values = [[_raw(row[c], conn.dialect.name) for c in columns] for row in rows]
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
                for value in values:
                    copy.write_row(value)
        else:
            marks = ", ".join("?" for _ in columns)
            cursor.executemany(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})", values)
    finally:
        cursor.close()


def _raw(value: Any, dialect: str) -> Any:
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime) and dialect == "sqlite":
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")  # how SQLAlchemy stores a DateTime in SQLite
    return value


_NAMES: dict[int, list[str]] = {}


def _names(classes: int) -> list[str]:
    if classes not in _NAMES:
        _NAMES[classes] = [f"brand-{b:02d}" for b in range(classes)]
    return _NAMES[classes]


def describe(catalogue: SyntheticCatalogue) -> str:
    return json.dumps(
        {
            "pool": catalogue.pool,
            "labelled": catalogue.labelled,
            "reviewed": catalogue.reviewed,
            "brands": len(catalogue.brands),
            "built_s": round(catalogue.seconds, 1),
        }
    )
