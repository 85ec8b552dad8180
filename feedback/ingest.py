"""Bring a folder of photos into the catalogue.

``python -m feedback.ingest PATH [--holdout-fraction 0.15] [--seed 0]``

A folder of class subfolders is labelled (the subfolder name is the brand); a flat
folder is unlabelled and goes to the review pool. Files are decoded by content;
bad ones are reported by name with the reason and skipped; the same photo twice
is stored once. A stratified, seeded held-out split is drawn per brand and its
photos never go back to training, so rounds stay comparable; a brand short of its
share (an ingest stopped half-way, more photos arriving later) is topped up from
photos that arrived labelled and that no model has trained on yet. Symlinks that
are broken, loop, or lead outside the folder are reported and skipped.

Exit status: 0 when something could be ingested, 1 when nothing could, 2 for a
folder that cannot be used, 3 when another process kept the database locked
(nothing more was written; run it again later).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from tqdm import tqdm

from db import DatabaseBusyError, get_engine, session_scope
from db.access import OPERATOR, Actor, import_roots
from db.catalog import BrandError, clean_brand_name, get_or_create_brand, image_by_hash
from db.labels import Offer, effective_labels, kept_label, offer_brand
from db.models import Brand, Image, ModelVersion, Round, Split
from modeling.arrivals import predict_arrivals_in_terminal
from shoelabel.cli import command, fail_if_nothing
from shoelabel.errors import UserError
from shoelabel.images import FolderError, ImageError, ImageInfo, inspect, scan_folder

DEFAULT_HOLDOUT_FRACTION = 0.15
WAIT_HELP = (
    "predict the new photos with every current model before returning "
    "(by default the CNN predicts them at once and InceptionV3 in the background)"
)
COMMIT_EVERY = 200

ProgressCallback = Callable[[int, int], None]
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

    @property
    def usable(self) -> int:
        return self.added + self.already_stored + len(self.duplicates_in_folder) + self.newly_labelled

    @property
    def ok(self) -> bool:
        """True when at least one file could be ingested (or was stored already)."""
        return self.usable > 0

    def summary(self) -> str:
        lines = [
            f"Folder: {self.folder} ({LAYOUTS[self.labelled]})",
            f"Images added: {self.added}",
            f"Already stored (same content): {self.already_stored}",
            f"Duplicates within the folder: {len(self.duplicates_in_folder)}",
        ]
        lines += [f"  {name} is the same photo as {first}" for name, first in self.duplicates_in_folder]
        if self.newly_labelled:
            lines.append(f"Stored unlabelled images that got a brand: {self.newly_labelled}")
        for name, kept, offered in self.label_conflicts:
            lines.append(f"  {name}: stored as {kept!r}, folder says {offered!r}; kept {kept!r} (correct it in review)")
        lines.append(f"Skipped: {len(self.skipped)}")
        lines += [f"  {name}: {reason}" for name, reason in self.skipped]
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


def _inspect_all(
    plan: list[tuple[Path, str | None]], progress: ProgressCallback | None, show_bar: bool
) -> list[ImageInfo | ImageError]:
    def attempt(path: Path) -> ImageInfo | ImageError:
        try:
            return inspect(path)
        except ImageError as exc:
            return exc

    results: list[ImageInfo | ImageError] = []
    with (
        ThreadPoolExecutor(max_workers=2) as pool,
        tqdm(total=len(plan), desc="Reading images", unit="img", disable=not show_bar, file=sys.stderr) as bar,
    ):
        for result in pool.map(attempt, (path for path, _ in plan)):
            results.append(result)
            bar.update()
            if progress:
                progress(len(results), len(plan))
    return results


def ingest_folder(
    folder: str | Path,
    *,
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
    seed: int = 0,
    engine: Engine | None = None,
    progress: ProgressCallback | None = None,
    show_bar: bool = False,
    actor: Actor = OPERATOR,
) -> IngestReport:
    """Ingest ``folder``; see the module docstring. Never raises for a single bad file.

    ``actor`` must be allowed to import; from the app, ``folder`` must lie in the import roots
    (checked before anything is read: see :mod:`db.access`).
    """
    folder = import_roots(actor).check(folder)
    if not 0.0 <= holdout_fraction < 1.0:
        raise IngestError(f"--holdout-fraction must be in [0, 1), got {holdout_fraction}")
    folder = Path(folder).expanduser().resolve()
    try:
        scan = scan_folder(folder)
    except FolderError as exc:
        raise IngestError(str(exc).replace("per class", "per brand")) from exc
    labelled, plan, left_out = scan.labelled, scan.files, scan.skipped
    for _, brand in plan:
        if brand is not None:
            try:
                clean_brand_name(brand)
            except BrandError as exc:
                raise IngestError(f"Subfolder {brand!r} of {folder} is not a usable brand name: {exc}") from exc
    engine = engine or get_engine()
    report = IngestReport(folder=folder, labelled=labelled)
    report.skipped += [(str(path.relative_to(folder)), reason) for path, reason in left_out]
    results = _inspect_all(plan, progress, show_bar)
    first_seen: dict[str, str] = {}
    pending = list(zip(plan, results, strict=True))
    committed = 0
    try:
        for start in range(0, len(pending), COMMIT_EVERY):
            with session_scope(engine, write=True) as session:
                for (path, brand_name), result in pending[start : start + COMMIT_EVERY]:
                    relative = str(path.relative_to(folder))
                    if isinstance(result, ImageError):
                        report.skipped.append((relative, result.reason))
                        continue
                    if result.sha256 in first_seen:
                        report.duplicates_in_folder.append((relative, first_seen[result.sha256]))
                        continue
                    first_seen[result.sha256] = relative
                    brand = get_or_create_brand(session, brand_name) if brand_name else None
                    _store(session, report, path, relative, result, brand)
            committed = report.added + report.newly_labelled
        with session_scope(engine, write=True) as session:
            if holdout_fraction > 0:
                report.holdout_drawn = draw_holdout(session, holdout_fraction, seed)
            report.totals_per_brand = split_counts(session)
    except DatabaseBusyError as exc:
        if not committed:
            raise
        raise DatabaseBusyError(
            f"{exc} This ingest had stored {committed} photo(s) of {folder} before, which are kept; "
            "run it again to add the rest and draw the held-out photos."
        ) from exc
    return report


def _store(
    session: Session, report: IngestReport, path: Path, relative: str, info: ImageInfo, brand: Brand | None
) -> None:
    existing = image_by_hash(session, info.sha256)
    if existing is None:
        image = new_image(info, path, source=f"ingest:{report.folder}", brand=brand)
        session.add(image)
        session.flush()
        report.added_ids.add(image.id)
        report.added += 1
        if brand:
            report.added_per_brand[brand.name] += 1
        return
    if brand is None:
        report.already_stored += 1
        return
    label = effective_labels(session, [existing.id])[existing.id]
    outcome = offer_brand(existing, brand, label)
    if outcome == Offer.LABELLED:
        report.newly_labelled += 1
        return
    if outcome == Offer.DISAGREES:
        report.label_conflicts.append((relative, kept_label(label), brand.name))
    report.already_stored += 1


def new_image(info: ImageInfo, path: Path, *, source: str, brand: Brand | None = None) -> Image:
    """A catalogue row for a checked photo: labelled photos train, the others wait in the pool."""
    return Image(
        sha256=info.sha256,
        path=str(path),
        width=info.width,
        height=info.height,
        format=info.format,
        file_size=info.file_size,
        split=Split.TRAIN if brand else Split.POOL,
        source_brand_id=brand.id if brand else None,
        source=source[:255],
    )


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
    for brand in session.scalars(select(Brand).order_by(Brand.name)):
        counts = dict(
            session.execute(
                select(Image.split, func.count(Image.id)).where(Image.source_brand_id == brand.id).group_by(Image.split)
            ).all()
        )
        have = counts.get(Split.HOLDOUT, 0)
        if have and not top_up:
            continue
        query = select(Image).where(Image.source_brand_id == brand.id, Image.split == Split.TRAIN)
        if cutoff is not None:
            query = query.where(Image.added_at > cutoff)
        candidates = list(session.scalars(query.order_by(Image.sha256)))
        if among is not None:
            candidates = [image for image in candidates if image.id in among]
        arrived = have + counts.get(Split.TRAIN, 0) if top_up else len(candidates)
        target = math.floor(arrived * fraction + 0.5)
        count = min(target - have, len(candidates))
        if count <= 0 or target >= arrived:
            continue
        rng = random.Random(f"{seed}:{brand.name}" if have == 0 else f"{seed}:{brand.name}:{have}")
        for image in rng.sample(candidates, count):
            image.split = Split.HOLDOUT
        drawn[brand.name] = count
    return drawn


def last_training_start(session: Session) -> datetime | None:
    """The latest moment a model may have collected its training photos (round start or registration)."""
    times = [
        session.scalar(select(func.max(Round.started_at))),
        session.scalar(select(func.max(ModelVersion.created_at))),
    ]
    return max((t for t in times if t is not None), default=None)


def split_counts(session: Session) -> dict[str, dict[str, int]]:
    rows = session.execute(
        select(Brand.name, Image.split, func.count(Image.id))
        .join(Image, Image.source_brand_id == Brand.id)
        .group_by(Brand.name, Image.split)
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
    parser.add_argument("--wait", action="store_true", help=WAIT_HELP)
    args = parser.parse_args(argv)
    report = ingest_folder(args.folder, holdout_fraction=args.holdout_fraction, seed=args.seed, show_bar=True)
    print(report.summary())
    if report.ok:
        predict_arrivals_in_terminal(wait=args.wait)
    return fail_if_nothing(report.ok, f"nothing in {report.folder} could be ingested")


if __name__ == "__main__":
    raise SystemExit(main())
