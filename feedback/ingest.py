"""Bring a folder of photos into the catalogue.

``python -m feedback.ingest PATH [--holdout-fraction 0.15] [--seed 0]``

A folder of class subfolders is labelled (the subfolder name is the brand); a flat
folder is unlabelled and goes to the review pool. Files are decoded by content;
bad ones are reported by name with the reason and skipped; the same photo twice
is stored once. A stratified, seeded held-out split is drawn once per brand and
then stays frozen, so rounds stay comparable.
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
from pathlib import Path

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from tqdm import tqdm

from db import get_engine, session_scope
from db.catalog import BrandError, clean_brand_name, get_or_create_brand, image_by_hash
from db.models import Brand, Image, Split
from modeling.images import ImageError, ImageInfo, inspect, list_images

DEFAULT_HOLDOUT_FRACTION = 0.15
COMMIT_EVERY = 200

ProgressCallback = Callable[[int, int], None]
LAYOUTS = {True: "labelled, one subfolder per brand", False: "unlabelled, to the review pool"}


class IngestError(ValueError):
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
    added_ids: set[int] = field(default_factory=set)  # only these may be drawn into a new held-out set

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


def _plan(folder: Path) -> tuple[bool, list[tuple[Path, str | None]]]:
    """Files to ingest, each with its brand (None for the pool), and whether the folder is labelled."""
    if not folder.exists():
        raise IngestError(f"Folder not found: {folder}")
    if not folder.is_dir():
        raise IngestError(f"Not a folder: {folder}. Give a folder of photos, or of one subfolder per brand.")
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    top_files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    plan: list[tuple[Path, str | None]] = [(p, None) for p in top_files]
    for sub in subfolders:
        plan += [(p, sub.name) for p in list_images(sub)]
    if not plan:
        raise IngestError(f"No files in {folder}. Put photos in it (unlabelled) or one subfolder per brand (labelled).")
    return bool(subfolders), plan


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
) -> IngestReport:
    """Ingest ``folder``; see the module docstring. Never raises for a single bad file."""
    if not 0.0 <= holdout_fraction < 1.0:
        raise IngestError(f"--holdout-fraction must be in [0, 1), got {holdout_fraction}")
    folder = Path(folder).expanduser().resolve()
    labelled, plan = _plan(folder)
    for _, brand in plan:
        if brand is not None:
            try:
                clean_brand_name(brand)
            except BrandError as exc:
                raise IngestError(f"Subfolder {brand!r} of {folder} is not a usable brand name: {exc}") from exc
    engine = engine or get_engine()
    report = IngestReport(folder=folder, labelled=labelled)
    results = _inspect_all(plan, progress, show_bar)
    first_seen: dict[str, str] = {}
    pending = list(zip(plan, results, strict=True))
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
    with session_scope(engine, write=True) as session:
        if holdout_fraction > 0:
            report.holdout_drawn = draw_holdout(session, holdout_fraction, seed, among=report.added_ids)
        report.totals_per_brand = split_counts(session)
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
    if brand is not None and existing.source_brand_id is None and existing.split == Split.POOL:
        existing.source_brand_id = brand.id
        existing.split = Split.TRAIN
        report.newly_labelled += 1
    elif brand is not None and existing.source_brand_id not in (None, brand.id):
        kept = existing.source_brand.name if existing.source_brand else "?"
        report.label_conflicts.append((relative, kept, brand.name))
        report.already_stored += 1
    else:
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


def draw_holdout(session: Session, fraction: float, seed: int, among: Collection[int] | None = None) -> dict[str, int]:
    """Draw held-out images for each brand that has none yet; existing ones never move.

    Only images that arrived labelled are eligible: reviewed pool images were
    picked by the queue, so they would bias the evaluation. ``among`` limits the
    draw to the images just added, which no model has been trained on yet.
    """
    drawn: dict[str, int] = {}
    for brand in session.scalars(select(Brand).order_by(Brand.name)):
        has_holdout = session.scalar(
            select(Image.id).where(Image.source_brand_id == brand.id, Image.split == Split.HOLDOUT).limit(1)
        )
        if has_holdout is not None:
            continue
        candidates = list(
            session.scalars(
                select(Image)
                .where(Image.source_brand_id == brand.id, Image.split == Split.TRAIN)
                .order_by(Image.sha256)
            )
        )
        if among is not None:
            candidates = [image for image in candidates if image.id in among]
        count = math.floor(len(candidates) * fraction + 0.5)
        if count == 0 or count >= len(candidates):
            continue
        for image in random.Random(f"{seed}:{brand.name}").sample(candidates, count):
            image.split = Split.HOLDOUT
        drawn[brand.name] = count
    return drawn


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
    args = parser.parse_args(argv)
    try:
        report = ingest_folder(args.folder, holdout_fraction=args.holdout_fraction, seed=args.seed, show_bar=True)
    except (IngestError, BrandError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    if not report.ok:
        print(f"error: nothing in {report.folder} could be ingested", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
