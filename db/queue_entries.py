"""Each photo's queue entry: its stage, kept up to date as photos and answers are stored.

Every photo has one :class:`~db.models.QueueEntry`. Its ``stage`` says which queues may show it
(no brand at all, an imported brand nobody decided yet, decided, not a shoe), so that a queue is an
index range ordered by a score rather than a scan of the catalogue. The entry follows the photo's
stored rows by itself: a flush that adds photos adds their entries, and a flush that adds or undoes
a review, or gives a photo a class, recomputes the stage of those photos, in the same transaction.
Bulk inserts that bypass the ORM call :func:`add_entries` themselves.

The photos in each stage and each split are counted by database triggers (migration 0004) into
:class:`~db.models.CatalogueCount`, so the app's counters never count a million rows.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable
from itertools import chain

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Insert,
    case,
    cast,
    event,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session

from db.labels import IDS_PER_QUERY, has_decision, has_imported, latest_says_not_a_shoe
from db.models import UNSCORED, CatalogueCount, Image, ImportedLabel, QueueEntry, QueueStage, Review, Split

RANDOM_MULTIPLIER = 2654435761  # Knuth's multiplicative hash: a fixed, well-spread order of image ids
RANDOM_RANGE = 2**31

#: The stages each queue scope draws from, in the order they are merged.
SCOPE_STAGES: dict[str, tuple[QueueStage, ...]] = {
    "unlabelled": (QueueStage.OPEN,),
    "unreviewed": (QueueStage.OPEN, QueueStage.IMPORTED),
    "labelled": (QueueStage.IMPORTED, QueueStage.DECIDED),
}


@functools.cache
def stage_of_image() -> ColumnElement[int]:
    """The stage of ``Image`` as SQL, from the same label rules as :mod:`db.labels` (built once: an
    expression is immutable, and building it is most of the cost of a flush that stores one answer)."""
    return case(
        (latest_says_not_a_shoe(), literal(int(QueueStage.NOT_A_SHOE))),
        (has_decision(), literal(int(QueueStage.DECIDED))),
        (has_imported(), literal(int(QueueStage.IMPORTED))),
        else_=literal(int(QueueStage.OPEN)),
    )


def random_key_of_image() -> ColumnElement[int]:
    return (cast(Image.id, BigInteger) * RANDOM_MULTIPLIER) % RANDOM_RANGE  # 64-bit: PostgreSQL's integer overflows


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    ordered = sorted(set(ids))
    return (ordered[start : start + IDS_PER_QUERY] for start in range(0, len(ordered), IDS_PER_QUERY))


_ENTRY_COLUMNS = ["image_id", "stage", "least_confidence", "margin", "entropy", "disagreement", "random_key"]


def _new_entries(*where: ColumnElement[bool]) -> Insert:
    """``INSERT ... SELECT`` of an unscored entry for each photo matching ``where`` that has none."""
    missing = select(Image.id, stage_of_image(), *(literal(UNSCORED) for _ in range(4)), random_key_of_image()).where(
        *where, ~exists().where(QueueEntry.image_id == Image.id)
    )
    return insert(QueueEntry).from_select(_ENTRY_COLUMNS, missing)


def add_entries(connection: Connection | Session, image_ids: Collection[int]) -> None:
    """Give these photos their queue entries (those that have none yet), unscored."""
    for part in _chunks(image_ids):
        connection.execute(_new_entries(Image.id.in_(part)))


def add_all_missing(connection: Connection | Session) -> None:
    """Entries for every photo that has none (photos inserted in bulk outside the ORM, say)."""
    connection.execute(_new_entries())


def refresh_stages(connection: Connection | Session, image_ids: Collection[int]) -> None:
    """Recompute the stage of these photos from their stored brand and reviews."""
    for part in _chunks(image_ids):
        stages = select(stage_of_image()).where(Image.id == QueueEntry.image_id).scalar_subquery()
        connection.execute(update(QueueEntry).where(QueueEntry.image_id.in_(part)).values(stage=stages))


def catalogue_counts(session: Session) -> dict[str, int]:
    """The kept counters: photos per queue stage (``stage:0`` ...) and per split (``split:pool`` ...)."""
    return dict(session.execute(select(CatalogueCount.key, CatalogueCount.photos)).all())


def count_afresh(connection: Connection | Session) -> dict[str, int]:
    """What the counters of :func:`catalogue_counts` should hold, counted by scanning (for checks)."""
    stages = dict(connection.execute(select(QueueEntry.stage, func.count()).group_by(QueueEntry.stage)).all())
    splits = dict(connection.execute(select(Image.split, func.count()).group_by(Image.split)).all())
    counts = {f"stage:{int(s)}": stages.get(int(s), 0) for s in QueueStage}
    return counts | {f"split:{s}": splits.get(s, 0) for s in Split}


@event.listens_for(Session, "after_flush")
def _follow_flush(session: Session, _context: object) -> None:
    """Keep entries in step with what the flush wrote (new photos, answers, undos, imported classes)."""
    new_images = [o.id for o in session.new if isinstance(o, Image)]
    touched = {o.image_id for o in chain(session.new, session.dirty) if isinstance(o, Review | ImportedLabel)}
    touched |= {o.id for o in session.dirty if isinstance(o, Image) and session.is_modified(o)}
    if not new_images and not touched:
        return
    connection = session.connection()
    if new_images:
        add_entries(connection, new_images)
    if touched - set(new_images):
        refresh_stages(connection, touched - set(new_images))
