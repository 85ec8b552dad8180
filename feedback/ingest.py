"""Bring a folder of photos into the catalogue.

``python -m feedback.ingest PATH [--holdout-fraction 0.15] [--seed 0]``

A folder of class subfolders is labelled (the subfolder name is the brand: any
folder is a subfolder, even one called ``x.jpg``, which the summary points out); a flat
folder is unlabelled and goes to the review pool. Files are decoded by content;
bad ones are reported by name with the reason and skipped; the same photo twice
is stored once. A stratified, seeded held-out split is drawn per brand and its
photos never go back to training, so rounds stay comparable; a brand short of its
share (an ingest stopped half-way, more photos arriving later) is topped up from
photos that arrived labelled and that no model has trained on yet. Symlinks that
are broken, loop, or lead outside the folder are reported and skipped.

Any number of photos: the folder is streamed in chunks (memory does not grow with
it, nor the time per photo with the catalogue), with a progress bar showing the
rate and the time left. An ingest stopped half-way keeps the chunks it stored;
running it again adds the rest, nothing twice.

Exit status: 0 when something could be ingested, 1 when nothing could, 2 for a
folder that cannot be used, 3 when another process kept the database locked
(nothing more was written; run it again later).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.orm import Session
from tqdm import tqdm

from db import DatabaseBusyError, get_engine, session_scope
from db.access import OPERATOR, Actor, import_roots
from db.catalog import ClassError, clean_class_name, get_or_create_attribute, get_or_create_class
from db.labels import (
    IDS_PER_QUERY,
    EffectiveLabel,
    Offer,
    effective_labels,
    imported_images,
    kept_label,
    offer_class,
)
from db.models import BRAND, BRAND_ID, Image, ImportedLabel, LabelClass, ModelVersion, Round, Split
from db.queue_entries import add_entries
from feedback.stratify import top_up_holdout
from modeling.arrivals import predict_arrivals_in_terminal
from shoelabel.cli import command, fail_if_nothing
from shoelabel.errors import UserError
from shoelabel.images import (
    IMAGE_SUFFIXES,
    FolderError,
    FolderListing,
    ImageError,
    ImageInfo,
    inspect,
    open_folder,
)
from shoelabel.paths import file_path, os_error_text, shown_path, stored_path

DEFAULT_HOLDOUT_FRACTION = 0.15
WAIT_HELP = (
    "predict the new photos with every current model before returning "
    "(by default the CNN predicts them at once and InceptionV3 in the background)"
)
COMMIT_EVERY = 500  # photos per write transaction: what a stopped ingest can lose; two chunks are held at most
READERS = min(8, os.cpu_count() or 2)  # threads decoding and hashing (Pillow and hashlib release the GIL)
PROGRESS_EVERY_S = 0.25  # the caller's progress is told at most this often
LISTING_QUIET_S = 0.5  # a listing done sooner shows no count of the files found

ProgressCallback = Callable[[int, int], None]
Checked = tuple[Path, str | None, ImageInfo | ImageError]  # a file, its brand subfolder, and what reading it gave
LAYOUTS = {True: "labelled, one subfolder per brand", False: "unlabelled, to the review pool"}


class IngestError(UserError, ValueError):
    """The folder as a whole cannot be ingested (missing, empty, not a folder)."""


@dataclass
class IngestReport:
    folder: Path
    labelled: bool
    added: int = 0
    already_stored: int = 0
    duplicates_in_folder: list[tuple[str, str]] = field(default_factory=list)  # (file, same as)
    newly_labelled: int = 0
    label_conflicts: list[tuple[str, str, str]] = field(default_factory=list)  # (file, kept, offered)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    added_per_brand: Counter[str] = field(default_factory=Counter)
    totals_per_brand: dict[str, dict[str, int]] = field(default_factory=dict)  # brand -> split -> n
    holdout_drawn: dict[str, int] = field(default_factory=dict)
    added_ids: set[int] = field(default_factory=set)  # the images this ingest added
    attribute_id: int = BRAND_ID  # the attribute a labelled folder's subfolders are classes of
    holdout_topped_up: int = 0  # photos held out for the classes of an attribute other than brand
    named_like_files: list[str] = field(default_factory=list)  # class subfolders called like photos (x.jpg)

    @property
    def usable(self) -> int:
        return self.added + self.already_stored + len(self.duplicates_in_folder) + self.newly_labelled

    @property
    def ok(self) -> bool:
        """True when at least one file could be ingested (or was stored already)."""
        return self.usable > 0

    def summary(self) -> str:
        lines = [
            f"Folder: {shown_path(self.folder)} ({LAYOUTS[self.labelled]})",
            f"Images added: {self.added}",
            f"Already stored (same content): {self.already_stored}",
            f"Duplicates within the folder: {len(self.duplicates_in_folder)}",
        ]
        lines += [f"  {name} is the same photo as {first}" for name, first in self.duplicates_in_folder]
        if self.newly_labelled:
            lines.append(f"Stored images that got a label they lacked: {self.newly_labelled}")
        if self.holdout_topped_up:
            lines.append(f"Held out so that every class has its share: {self.holdout_topped_up}")
        for name, kept, offered in self.label_conflicts:
            lines.append(f"  {name}: stored as {kept!r}, folder says {offered!r}; kept {kept!r} (correct it in review)")
        lines.append(f"Skipped: {len(self.skipped)}")
        lines += [f"  {name}: {reason}" for name, reason in self.skipped]
        lines += [
            f"Note: {name!r} is a subfolder, so its photos are labelled {name!r}; rename the folder if that is "
            "not a class."
            for name in self.named_like_files
        ]
        return "\n".join(lines + brand_lines(self.added_per_brand, self.holdout_drawn, self.totals_per_brand))


def per_brand(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{brand} {n}" for brand, n in sorted(counts.items()))


def brand_lines(
    added: Mapping[str, int], holdout_drawn: Mapping[str, int], totals: Mapping[str, Mapping[str, int]]
) -> list[str]:
    """The per-brand part of an import summary."""
    lines = []
    if added:
        lines.append(f"Added per brand: {per_brand(added)}")
    if holdout_drawn:
        lines.append(f"Held-out images drawn (frozen): {per_brand(holdout_drawn)}")
    if totals:
        lines.append("Catalogue per brand (train / holdout):")
        for brand, splits in sorted(totals.items()):
            lines.append(f"  {brand:<20} {splits.get('train', 0):>6} / {splits.get('holdout', 0):>6}")
    return lines


class _Meter:
    """Progress of one ingest: a terminal bar (the files found while listing, then the photos read, with the
    rate and the time left) and the caller's ``progress(done, total)``, at most every
    :data:`PROGRESS_EVERY_S` seconds and for the last photo."""

    def __init__(self, progress: ProgressCallback | None, show_bar: bool) -> None:
        self.progress, self.done, self.total, self.reported = progress, 0, 0, 0.0
        self.bar = tqdm(desc="Listing", unit=" files", delay=LISTING_QUIET_S, disable=not show_bar, file=sys.stderr)

    def found(self) -> None:
        self.bar.update()

    def start(self, total: int) -> None:
        self.total = total
        self.bar.delay, self.bar.unit = 0, " photos"
        self.bar.set_description("Ingesting", refresh=False)
        self.bar.reset(total=total)
        if self.progress:
            self.progress(0, total)

    def advance(self) -> None:
        self.done += 1
        self.bar.update()
        now = time.monotonic()
        if self.progress and (self.done >= self.total or now - self.reported >= PROGRESS_EVERY_S):
            self.reported = now
            self.progress(self.done, max(self.total, self.done))  # files added since the listing count too

    def close(self) -> None:
        self.bar.close()


def _check(path: Path) -> ImageInfo | ImageError:
    try:
        return inspect(path)
    except ImageError as exc:
        return exc


def _checked_chunks(files: Iterator[tuple[Path, str | None]], meter: _Meter) -> Iterator[list[Checked]]:
    """The files in chunks of :data:`COMMIT_EVERY`, decoded and hashed by :data:`READERS` threads.

    The next chunk is read while the caller stores the last one; no more than two chunks are held.
    """
    pool = ThreadPoolExecutor(max_workers=READERS)

    def submit() -> list[tuple[Path, str | None, Future[ImageInfo | ImageError]]]:
        return [(path, brand, pool.submit(_check, path)) for path, brand in islice(files, COMMIT_EVERY)]

    try:
        pending = submit()
        while pending:
            chunk = []
            for path, brand, future in pending:
                chunk.append((path, brand, future.result()))
                meter.advance()
            pending = submit()
            yield chunk
    finally:
        pool.shutdown(cancel_futures=True)  # stopped early: what is queued is not read


def ingest_folder(
    folder: str | Path,
    *,
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
    seed: int = 0,
    attribute: str = BRAND,
    engine: Engine | None = None,
    progress: ProgressCallback | None = None,
    show_bar: bool = False,
    actor: Actor = OPERATOR,
) -> IngestReport:
    """Ingest ``folder``; see the module docstring. Never raises for a single bad file.

    The subfolders of a labelled folder are classes of ``attribute`` (brand by default; another
    attribute is added if the catalogue lacks it). Photos that arrive without a brand wait in the pool.

    The folder is streamed: listed lazily, read in chunks of :data:`COMMIT_EVERY` photos, each chunk
    stored in one short write transaction, so memory does not grow with the folder and a stopped ingest
    keeps its chunks (run it again for the rest). ``progress(done, total)`` follows the photos read.
    ``actor`` must be allowed to import; from the app, ``folder`` must lie in the import roots
    (checked before anything is read: see :mod:`db.access`).
    """
    folder = import_roots(actor).check(folder)
    if not 0.0 <= holdout_fraction < 1.0:
        raise IngestError(f"--holdout-fraction must be in [0, 1), got {holdout_fraction}")
    listing = _listing(Path(folder), attribute)
    folder = listing.folder
    engine = engine or get_engine()
    attribute_id = _attribute_id(engine, attribute)
    report = IngestReport(folder=folder, labelled=listing.labelled, attribute_id=attribute_id)
    report.named_like_files = [name for name in listing.classes if Path(name).suffix.lower() in IMAGE_SUFFIXES]
    meter = _Meter(progress, show_bar)
    committed = 0
    try:
        left_out: list[tuple[Path, str]] = []
        try:
            total = listing.count(left_out, found=meter.found)
        except FolderError as exc:
            raise _folder_error(exc) from exc
        report.skipped += [(shown_path(path.relative_to(folder)), reason) for path, reason in left_out]
        meter.start(total)
        with closing(_checked_chunks(listing.files(), meter)) as chunks:
            for chunk in chunks:
                with session_scope(engine, write=True) as session:
                    _store_chunk(session, report, chunk)
                committed = report.added + report.newly_labelled
        with session_scope(engine, write=True) as session:
            _hold_out(session, report, holdout_fraction, seed)
    except DatabaseBusyError as exc:
        if not committed:
            raise
        raise DatabaseBusyError(
            f"{exc} This ingest had stored {committed} photo(s) of {folder} before, which are kept; "
            "run it again to add the rest and draw the held-out photos."
        ) from exc
    finally:
        meter.close()
    return report


def _attribute_id(engine: Engine, attribute: str) -> int:
    """The id of the attribute a labelled folder's subfolders are classes of (added if the catalogue lacks it)."""
    if attribute == BRAND:
        return BRAND_ID
    with session_scope(engine, write=True) as session:
        return get_or_create_attribute(session, attribute).id


def _hold_out(session: Session, report: IngestReport, fraction: float, seed: int) -> None:
    """Draw the held-out photos once every chunk is stored (topped up for an attribute besides brand)."""
    if fraction > 0 and report.attribute_id == BRAND_ID:
        report.holdout_drawn = draw_holdout(session, fraction, seed)
    elif fraction > 0:
        report.holdout_topped_up = top_up_holdout(session, report.attribute_id, fraction, seed, among=report.added_ids)
    report.totals_per_brand = split_counts(session)


def _listing(folder: Path, attribute: str) -> FolderListing:
    """The folder's listing, its subfolders checked as class names (nothing is read yet)."""
    try:
        folder = folder.expanduser().resolve()
        listing = open_folder(folder)
    except FolderError as exc:
        raise _folder_error(exc) from exc
    except OSError as exc:  # a path too long for the system, a folder that may not be read
        raise IngestError(f"Cannot read the folder {os_error_text(folder, exc)}.") from exc
    for brand in listing.classes:
        try:
            clean_class_name(brand)
        except ClassError as exc:
            raise IngestError(
                f"Subfolder {brand!r} of {shown_path(folder)} is not a usable {attribute} name: {exc}"
            ) from exc
    return listing


def _folder_error(exc: FolderError) -> IngestError:
    return IngestError(str(exc).replace("per class", "per brand"))


def _store_chunk(session: Session, report: IngestReport, chunk: list[Checked]) -> None:
    """Store one chunk of checked files: the new photos in one INSERT; the photos stored already looked up,
    and their labels read, in one query each, whatever the size of the catalogue.

    A photo stored from another file of this folder that is still there (by this run or an earlier,
    stopped one) is a duplicate within the folder; a renamed or moved file is a photo stored already."""
    folder = report.folder
    readable: list[tuple[Path, str, ImageInfo, str | None]] = []
    for path, brand_name, result in chunk:
        relative = shown_path(path.relative_to(folder))
        if isinstance(result, ImageError):
            report.skipped.append((relative, result.reason))
        else:
            readable.append((path, relative, result, brand_name))
    hashes = {info.sha256 for _, _, info, _ in readable}
    stored = {image.sha256: image for image in session.scalars(select(Image).where(Image.sha256.in_(hashes)))}
    names = sorted({b for *_, b in readable if b})
    brands = {name: get_or_create_class(session, name, report.attribute_id) for name in names}
    offered = {stored[info.sha256].id for _, _, info, brand in readable if brand and info.sha256 in stored}
    labels = effective_labels(session, offered, report.attribute_id) if offered else {}
    first_in_chunk: dict[str, str] = {}
    added: list[dict[str, object]] = []
    added_brands: list[LabelClass | None] = []
    for path, relative, info, brand_name in readable:
        brand = brands[brand_name] if brand_name else None
        if info.sha256 in first_in_chunk:
            report.duplicates_in_folder.append((relative, first_in_chunk[info.sha256]))
            continue
        first_in_chunk[info.sha256] = relative
        existing = stored.get(info.sha256)
        if existing is None:
            added.append(image_values(info, path, source=f"ingest:{shown_path(folder)}", brand=brand))
            added_brands.append(brand)
            if brand and brand.attribute_id == BRAND_ID:
                report.added_per_brand[brand.name] += 1
        elif _other_file_here(existing.path, path, folder):
            first = Path(file_path(existing.path)).relative_to(folder)
            report.duplicates_in_folder.append((relative, shown_path(first)))
        elif brand is None:
            report.already_stored += 1
        else:
            _offer(session, report, relative, existing, brand, labels[existing.id])
    if added:  # one multi-row INSERT, a third of the time of adding ORM objects
        ids = list(session.scalars(insert(Image).returning(Image.id, sort_by_parameter_order=True), added))
        imported = [imported_label(i, brand) for i, brand in zip(ids, added_brands, strict=True) if brand]
        if imported:
            session.execute(insert(ImportedLabel), imported)
        add_entries(session, ids)  # inserted outside the unit of work: their queue entries are added here
        report.added += len(ids)
        report.added_ids.update(ids)


def _other_file_here(stored: str, path: Path, folder: Path) -> bool:
    other = file_path(stored)
    return stored != stored_path(path) and Path(other).is_relative_to(folder) and os.path.lexists(other)


def _offer(
    session: Session, report: IngestReport, relative: str, image: Image, brand: LabelClass, label: EffectiveLabel
) -> None:
    """The relabelling rule for a stored photo that arrives again with a brand (see :func:`offer_class`)."""
    outcome = offer_class(session, image, brand, label)
    if outcome == Offer.LABELLED:
        report.newly_labelled += 1
        return
    if outcome == Offer.DISAGREES:
        report.label_conflicts.append((relative, kept_label(label), brand.name))
    report.already_stored += 1


def image_values(info: ImageInfo, path: Path, *, source: str, brand: LabelClass | None = None) -> dict[str, object]:
    """The catalogue row of a checked photo: labelled photos train, the others wait in the pool."""
    return {
        "sha256": info.sha256,
        "path": stored_path(path),  # a name that is not UTF-8 as a file:// URL (see shoelabel.paths)
        "width": info.width,
        "height": info.height,
        "format": info.format,
        "file_size": info.file_size,
        "split": Split.TRAIN if brand is not None and brand.attribute_id == BRAND_ID else Split.POOL,
        "source": source[:255],
    }


def imported_label(image_id: int, label_class: LabelClass) -> dict[str, int]:
    """The row saying a photo arrived with this class."""
    return {"image_id": image_id, "attribute_id": label_class.attribute_id, "class_id": label_class.id}


def new_image(session: Session, info: ImageInfo, path: Path, *, source: str, brand: LabelClass | None = None) -> Image:
    """A catalogue row for a checked photo, added to ``session`` with its brand (see :func:`image_values`)."""
    image = Image(**image_values(info, path, source=source, brand=brand))
    if brand is not None:  # inserted with the photo, in the same flush
        image.imported_labels.append(ImportedLabel(attribute_id=brand.attribute_id, class_id=brand.id))
    session.add(image)
    return image


def draw_holdout(
    session: Session, fraction: float, seed: int, among: Collection[int] | None = None, *, top_up: bool = True
) -> dict[str, int]:
    """Hold out ``fraction`` of the images each brand arrived with; held-out images never move back.

    Only images that arrived labelled are eligible: reviewed pool images were
    picked by the queue, so they would bias the evaluation. Of those, only images
    no model may have trained on (added after the last round started and the last
    model was registered). A brand short of its target is topped up: an ingest
    stopped half-way, or more photos of the brand arriving later. With
    ``top_up=False`` only brands with no held-out image yet get a draw (a
    manifest's held-out rows are its split); ``among`` limits the draw to those ids.
    """
    cutoff = last_training_start(session)
    drawn: dict[str, int] = {}
    brands = select(LabelClass).where(LabelClass.attribute_id == BRAND_ID, LabelClass.merged_into_id.is_(None))
    for brand in session.scalars(brands.order_by(LabelClass.name)):
        counts = dict(
            session.execute(
                select(Image.split, func.count(Image.id))
                .where(Image.id.in_(imported_images([brand.id])))
                .group_by(Image.split)
            ).all()
        )
        have = counts.get(Split.HOLDOUT, 0)
        if have and not top_up:
            continue
        candidates = None if top_up else _holdout_candidates(session, brand, cutoff, among)
        arrived = have + counts.get(Split.TRAIN, 0) if candidates is None else len(candidates)
        target = math.floor(arrived * fraction + 0.5)
        if target <= have or target >= arrived:  # nothing to draw: the candidates are not even read
            continue
        if candidates is None:
            candidates = _holdout_candidates(session, brand, cutoff, among)
        count = min(target - have, len(candidates))
        if count <= 0:
            continue
        rng = random.Random(f"{seed}:{brand.name}" if have == 0 else f"{seed}:{brand.name}:{have}")
        chosen = rng.sample(candidates, count)
        for start in range(0, count, IDS_PER_QUERY):
            part = chosen[start : start + IDS_PER_QUERY]
            session.execute(update(Image).where(Image.id.in_(part)).values(split=Split.HOLDOUT))
        drawn[brand.name] = count
    return drawn


def _holdout_candidates(
    session: Session, brand: LabelClass, cutoff: datetime | None, among: Collection[int] | None
) -> list[int]:
    """The ids of the brand's training photos no model may have trained on, in a fixed order (by hash)."""
    query = select(Image.id).where(Image.id.in_(imported_images([brand.id])), Image.split == Split.TRAIN)
    if cutoff is not None:
        query = query.where(Image.added_at > cutoff)
    ids = session.scalars(query.order_by(Image.sha256))
    return [image_id for image_id in ids if among is None or image_id in among]


def last_training_start(session: Session) -> datetime | None:
    """The latest moment a model may have collected its training photos (round start or registration)."""
    times = [
        session.scalar(select(func.max(Round.started_at))),
        session.scalar(select(func.max(ModelVersion.created_at))),
    ]
    return max((t for t in times if t is not None), default=None)


def split_counts(session: Session) -> dict[str, dict[str, int]]:
    rows = session.execute(
        select(LabelClass.name, Image.split, func.count(Image.id))
        .join(ImportedLabel, ImportedLabel.class_id == LabelClass.id)
        .join(Image, Image.id == ImportedLabel.image_id)
        .where(ImportedLabel.attribute_id == BRAND_ID)
        .group_by(LabelClass.name, Image.split)
    )
    totals: dict[str, dict[str, int]] = {}
    for name, split, count in rows:
        totals.setdefault(name, {})[str(split)] = count
    return totals


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m feedback.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder of photos, or of one subfolder per brand")
    parser.add_argument(
        "--holdout-fraction",
        type=float,
        default=DEFAULT_HOLDOUT_FRACTION,
        help="share of each brand's labelled images held out for evaluation, drawn once (default 0.15)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out draw")
    parser.add_argument(
        "--attribute", default=BRAND, help="the attribute the subfolders are classes of (default brand)"
    )
    parser.add_argument("--wait", action="store_true", help=WAIT_HELP)
    args = parser.parse_args(argv)
    report = ingest_folder(
        args.folder, holdout_fraction=args.holdout_fraction, seed=args.seed, attribute=args.attribute, show_bar=True
    )
    print(report.summary())
    if report.ok:
        predict_arrivals_in_terminal(wait=args.wait)
    return fail_if_nothing(report.ok, f"nothing in {report.folder} could be ingested")


if __name__ == "__main__":
    raise SystemExit(main())
