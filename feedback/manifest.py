"""Export the labelled set, and import it back.

``python -m feedback.manifest export labels.csv`` (or ``.json``, or ``--folder DIR``)
``python -m feedback.manifest import labels.csv``

A manifest lists every photo with an effective label: its content hash, file,
split (train / holdout), where the brand came from (import or review), and one
column per attribute (brand, colour, ...; an empty cell means unknown). A column
named ``file`` is read as ``path``, and any column besides sha256, path, split and
origin is an attribute: attributes the catalogue lacks are added.
Importing it into an empty catalogue gives back the same photos, labels and
held-out split: a manifest exported from there lists the same rows (labels that
came from reviews read back as imported ones). Importing into
a catalogue that already holds some of the photos never overrides a stored
label (a disagreement is reported; correct it in review) and never moves the
frozen held-out split of a brand that has one. Held-out photos are drawn per
brand, then topped up so that every class of every attribute with enough photos
has its share held out. The rows are stored in chunks, each in one short write transaction
(reviewers wait for one chunk at most); an import stopped half-way keeps its chunks, and
running it again adds the rest, nothing twice.

In a CSV manifest, a cell that a spreadsheet would run as a formula (it starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) is written with a leading quote, and the import takes that quote off.

A folder export copies each labelled photo into one subfolder per class of one
attribute (brand by default): the layout ``python -m feedback.ingest`` reads, and
what most training tools expect.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shlex
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import ColumnElement, Engine, and_, insert, not_, select
from sqlalchemy.orm import Session

from db import DatabaseBusyError, get_engine, session_scope
from db.access import OPERATOR, Actor, ImportRoots, import_roots
from db.catalog import (
    ClassError,
    attributes,
    clean_attribute_name,
    clean_class_name,
    get_or_create_attribute,
    get_or_create_class,
    require_attribute,
)
from db.labels import EffectiveLabel, Offer, effective_labels, kept_label, offer_class
from db.models import BRAND, BRAND_ID, Image, ImportedLabel, LabelClass, Split
from db.queue_entries import add_entries
from feedback.ingest import (
    COMMIT_EVERY,
    DEFAULT_HOLDOUT_FRACTION,
    WAIT_HELP,
    ProgressCallback,
    brand_lines,
    draw_holdout,
    image_values,
    imported_label,
    last_training_start,
    per_brand,
    split_counts,
)
from feedback.stratify import top_up_holdout
from modeling.arrivals import predict_arrivals_in_terminal
from shoelabel.cli import command, fail_if_nothing
from shoelabel.csvcells import neutralise
from shoelabel.images import ImageError, ImageInfo, inspect
from shoelabel.manifest_files import (
    COLUMNS,
    FORMAT,
    NOT_ATTRIBUTES,
    VERSION,
    ManifestError,
    attribute_columns,
    read_records,
)
from shoelabel.paths import file_path, shown_path

SPLITS = (Split.TRAIN.value, Split.HOLDOUT.value)
#: The pause after each chunk's commit: a writer waiting for the lock gets it before the next chunk (SQLite's
#: busy handler tries again every 100 ms at most, so it may otherwise miss the moment between two chunks).
PAUSE_BETWEEN_CHUNKS_S = 0.1


@dataclass(frozen=True)
class ManifestRow:
    sha256: str
    path: str
    brand: str  # "" when unknown
    split: str  # train | holdout
    origin: str  # import | review (of the brand)
    labels: dict[str, str] = field(default_factory=dict, compare=True, hash=False)  # other attributes' classes

    def record(self, attribute_names: Iterable[str]) -> dict[str, str]:
        """The row as one flat record: a column per attribute, empty where unknown."""
        record = {
            "sha256": self.sha256,
            "path": self.path,
            "brand": self.brand,
            "split": self.split,
            "origin": self.origin,
        }
        return record | {name: self.labels.get(name, "") for name in attribute_names}


# --------------------------------------------------------------------------- export


def other_attributes(session: Session) -> list[str]:
    """The attributes besides brand, in their order: the manifest's columns after ``origin``.

    An attribute named like a manifest's own column (made before such names were refused) would overwrite
    that column in every row: :class:`ManifestError`, naming it and the command that renames it."""
    names = [a.name for a in attributes(session) if a.id != BRAND_ID]
    for name in names:
        if clean_attribute_name(name) in NOT_ATTRIBUTES:
            raise ManifestError(
                f"The attribute {name!r} has the name of a manifest column, so a manifest cannot hold it. Rename "
                f"it, then export again: python -m feedback.classes rename-attribute {shlex.quote(name)} NEW_NAME"
            )
    return names


def labelled_rows(session: Session) -> list[ManifestRow]:
    """Every photo with an effective label for some attribute (conflicts and not-a-shoe left out), in a
    stable order."""
    brands = effective_labels(session)
    others = {a.name: effective_labels(session, attribute_id=a.id) for a in attributes(session) if a.id != BRAND_ID}
    rows = []
    for image in session.scalars(select(Image).order_by(Image.sha256)):
        label = brands[image.id]
        if label.not_a_shoe:
            continue
        known = {name: value for name, labels in others.items() if (value := labels[image.id].brand) is not None}
        if label.brand is None and not known:
            continue
        split = Split.HOLDOUT.value if image.split == Split.HOLDOUT else Split.TRAIN.value
        origin = label.origin if label.brand else "import"
        rows.append(ManifestRow(image.sha256, image.path, label.brand or "", split, origin, known))
    return sorted(rows, key=lambda r: (r.brand, r.split, r.sha256))


def manifest_csv(rows: Iterable[ManifestRow], attribute_names: list[str]) -> str:
    """The rows as CSV (RFC 4180: CRLF line ends, so a cell holding a carriage return is quoted too); a cell a
    spreadsheet would run as a formula (``=1+1``, ``@SUM(A1)``) starts with a quote, which
    :func:`read_manifest` takes off again (see :mod:`shoelabel.csvcells`)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*COLUMNS, *attribute_names], lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({k: neutralise(v) for k, v in row.record(attribute_names).items()} for row in rows)
    return out.getvalue()


def manifest_json(rows: Iterable[ManifestRow], attribute_names: list[str]) -> str:
    rows = list(rows)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "brands": sorted({row.brand for row in rows if row.brand}),
        "attributes": [BRAND, *attribute_names],
        "images": [row.record(attribute_names) for row in rows],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


WRITERS = {"csv": manifest_csv, "json": manifest_json}


def manifest_text(kind: str, *, engine: Engine | None = None) -> str:
    """The labelled set as a ``csv`` or ``json`` manifest (what the app offers for download)."""
    with session_scope(engine or get_engine()) as session:
        return WRITERS[kind](labelled_rows(session), other_attributes(session))


def export_manifest(target: str | Path, *, engine: Engine | None = None) -> list[ManifestRow]:
    """Write the labelled set to ``target`` (``.csv`` or ``.json``); returns the rows written."""
    target = Path(target)
    writer = WRITERS.get(target.suffix.lower().lstrip("."))
    if writer is None:
        raise ManifestError(f"Cannot tell the format of {target}: name it .csv or .json.")
    with session_scope(engine or get_engine()) as session:
        rows, names = labelled_rows(session), other_attributes(session)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(writer(rows, names), encoding="utf-8", newline="")  # line ends as written
    return rows


@dataclass
class FolderExport:
    copied: Counter[str] = field(default_factory=Counter)  # per brand
    missing: list[tuple[str, str]] = field(default_factory=list)  # (stored path, brand)


def export_folder(target: str | Path, *, attribute: str = BRAND, engine: Engine | None = None) -> FolderExport:
    """Copy each photo labelled for ``attribute`` to ``target/CLASS/``; photos whose file is gone are listed,
    not fatal."""
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise ManifestError(f"{target} is not empty. Export to a new or empty folder.")
    with session_scope(engine or get_engine()) as session:
        require_attribute(session, attribute)
        rows = labelled_rows(session)
    name = clean_attribute_name(attribute)
    report = FolderExport()
    for row in rows:
        label = row.brand if name == BRAND else row.labels.get(name, "")
        if not label:
            continue
        source = Path(file_path(row.path))
        if not source.is_file():
            report.missing.append((shown_path(row.path), label))
            continue
        folder = target / _safe_folder_name(label)
        folder.mkdir(parents=True, exist_ok=True)
        # the hash prefix keeps two photos called 1.jpg from overwriting each other
        shutil.copy2(source, folder / f"{row.sha256[:12]}-{source.name}")
        report.copied[label] += 1
    return report


def _safe_folder_name(brand: str) -> str:
    name = brand.replace("/", "-").replace("\\", "-").strip(". ")
    return name or "brand"


# --------------------------------------------------------------------------- import


def read_manifest(source: str | Path) -> list[ManifestRow]:
    """Rows of a ``.csv`` or ``.json`` manifest; raises :class:`ManifestError` naming the bad line."""
    source = Path(source)
    return [_row(source, number, record) for number, record in read_records(source)]


def _row(source: Path, number: int, record: object) -> ManifestRow:
    where = f"{source}, {'entry' if source.suffix.lower() == '.json' else 'line'} {number}"
    if not isinstance(record, dict):
        raise ManifestError(f"{where}: expected an object with path and brand.")
    path = str(record.get("path") or record.get("file") or "").strip()
    if not path:
        raise ManifestError(f"{where}: the path is empty.")
    labels: dict[str, str] = {}
    for column in attribute_columns(record):
        value = record[column]
        if value is None or not str(value).strip():
            continue  # an empty cell: unknown
        try:
            labels[clean_attribute_name(str(column))] = clean_class_name(str(value))
        except ClassError as exc:
            raise ManifestError(f"{where}, column {str(column)[:60]!r}: {exc}") from exc
    if not labels:
        raise ManifestError(f"{where}: every attribute is empty; give at least one label (brand, colour, ...).")
    brand = labels.pop(BRAND, "")
    split = str(record.get("split") or Split.TRAIN.value).strip().lower()
    if split not in SPLITS:
        raise ManifestError(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}.")
    sha256 = str(record.get("sha256") or "").strip().lower()
    return ManifestRow(sha256, path, brand, split, str(record.get("origin") or "import"), labels)


@dataclass
class ImportReport:
    manifest: Path
    added: int = 0
    labelled: int = 0  # stored photos that got a label they lacked
    unchanged: int = 0  # stored with the same labels already
    disagreements: list[tuple[str, str, str]] = field(default_factory=list)  # (path, stored, manifest)
    moved_to_train: list[str] = field(default_factory=list)  # held-out rows of a brand with a frozen held-out set
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    added_per_brand: Counter[str] = field(default_factory=Counter)
    holdout_drawn: dict[str, int] = field(default_factory=dict)
    holdout_topped_up: dict[str, int] = field(default_factory=dict)  # per attribute: photos held out for its classes
    attributes: list[str] = field(default_factory=list)  # the manifest's attributes besides brand
    totals_per_brand: dict[str, dict[str, int]] = field(default_factory=dict)
    added_ids: set[int] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.added + self.labelled + self.unchanged + len(self.disagreements) > 0

    def summary(self) -> str:
        lines = [
            f"Manifest: {self.manifest}",
            f"Photos added: {self.added}",
            f"Stored photos that got a label they lacked: {self.labelled}",
            f"Already stored with the same labels: {self.unchanged}",
        ]
        if self.attributes:
            lines.append(f"Attributes besides brand: {', '.join(self.attributes)}")
        if self.disagreements:
            lines.append(f"Stored with another label (kept; correct them in review): {len(self.disagreements)}")
            lines += [f"  {path}: stored as {kept!r}, manifest says {new!r}" for path, kept, new in self.disagreements]
        if self.moved_to_train:
            frozen = len(self.moved_to_train)
            lines.append(f"Held-out rows added to training instead (their brand's held-out set is frozen): {frozen}")
        for name, count in self.holdout_topped_up.items():
            lines.append(f"Held out as well, so every {name} class has its share: {count} photos")
        lines.append(f"Skipped: {len(self.skipped)}")
        lines += [f"  {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines + brand_lines(self.added_per_brand, self.holdout_drawn, self.totals_per_brand))


Checked = tuple[ManifestRow, Path, ImageInfo | None]  # a row, its file, and what reading it gave (None: stored)


@dataclass
class _Import:
    """What every chunk of one import shares."""

    report: ImportReport
    source_tag: str  # the ``source`` of the photos this manifest adds
    frozen: set[str]  # brands whose held-out set is frozen: their held-out rows go to training
    attribute_ids: dict[str, int]
    seen: set[str] = field(default_factory=set)  # hashes met so far: a row listed twice is skipped


def import_manifest(
    source: str | Path,
    *,
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
    seed: int = 0,
    engine: Engine | None = None,
    actor: Actor = OPERATOR,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Bring the photos and brands of a manifest into the catalogue; see the module docstring.

    Relative paths are read from the manifest's folder. A photo already stored
    (same hash) needs no file. A row whose file is missing, unreadable or has
    changed since the export (another hash) is reported and skipped. Brands the
    manifest leaves without held-out photos get a held-out set drawn as ingest does.
    Files are checked before the database is locked, and the rows are stored in chunks of
    :data:`COMMIT_EVERY`, one short write transaction each, so reviewers are not held up: an answer
    waits for one chunk at most. An import stopped half-way keeps the chunks it stored; running it
    again adds the rest, nothing twice, and draws the held-out photos as an import never stopped would.
    ``progress(done, total)`` is told after each chunk, outside any transaction.
    ``actor`` must be allowed to import; from the app, the manifest and every photo it names must lie
    in the import roots (see :mod:`db.access`; a photo outside is skipped unread).
    """
    roots = import_roots(actor)
    source = Path(roots.check(source)).expanduser().resolve()
    rows = read_manifest(source)
    report = ImportReport(manifest=source)
    engine = engine or get_engine()
    checked = _check_files(engine, roots, source, rows, report)
    state = _prepare(engine, report, checked)
    try:
        for done in range(0, len(checked), COMMIT_EVERY):
            with session_scope(engine, write=True) as session:
                _store_chunk(session, state, checked[done : done + COMMIT_EVERY])
            if progress:
                progress(min(done + COMMIT_EVERY, len(checked)), len(checked))
            if done + COMMIT_EVERY < len(checked):
                time.sleep(PAUSE_BETWEEN_CHUNKS_S)
        with session_scope(engine, write=True) as session:
            _draw_holdout(session, state, holdout_fraction, seed)
            report.totals_per_brand = split_counts(session)
    except DatabaseBusyError as exc:
        if not (report.added or report.labelled):
            raise
        raise DatabaseBusyError(
            f"{exc} This import had stored {report.added + report.labelled} photo(s) of {source} before, which "
            "are kept; run it again to add the rest and draw the held-out photos."
        ) from exc
    return report


def _check_files(
    engine: Engine, roots: ImportRoots, source: Path, rows: list[ManifestRow], report: ImportReport
) -> list[Checked]:
    """Read every row's file (none for a photo stored already), before any lock is taken; the rows that
    cannot be imported go to ``report.skipped``."""
    with session_scope(engine) as session:
        stored_hashes = set(session.scalars(select(Image.sha256)))
    checked: list[Checked] = []
    for row in rows:
        path = _resolve(source.parent, row.path)
        if row.sha256 and row.sha256 in stored_hashes:
            checked.append((row, path, None))
            continue
        if not roots.allows(path):  # checked before the file is read, or even looked up
            report.skipped.append((row.path, "outside the folders this server imports from"))
            continue
        try:
            info = inspect(path)
        except ImageError as exc:
            report.skipped.append((row.path, exc.reason))
            continue
        if row.sha256 and info.sha256 != row.sha256:
            report.skipped.append((row.path, "the file has changed since the manifest was written (other content)"))
            continue
        checked.append((row, path, info))
    return checked


def _prepare(engine: Engine, report: ImportReport, checked: list[Checked]) -> _Import:
    """Add the attributes the catalogue lacks, and read which brands have a frozen held-out set, once, before
    the first chunk: the chunks never change each other's rules."""
    source_tag = _source_tag(report.manifest)
    with session_scope(engine, write=True) as session:
        frozen = _frozen_brands(session, source_tag)
        names = sorted({name for row, _, _ in checked for name in row.labels})
        report.attributes = [name for name in names if name != BRAND]
        attribute_ids = {name: get_or_create_attribute(session, name).id for name in names}
    return _Import(report, source_tag, frozen, attribute_ids)


def _resolve(root: Path, stored: str) -> Path:
    path = Path(file_path(stored)).expanduser()  # a stored path may be a file:// URL (see shoelabel.paths)
    return path if path.is_absolute() else root / path


def _source_tag(manifest: Path) -> str:
    return f"manifest:{shown_path(manifest)}"[:255]  # as stored (see feedback.ingest.image_values)


def _own_untrained(session: Session, source_tag: str) -> ColumnElement[bool]:
    """Photos this manifest added that no model may have trained on yet (an import stopped half-way)."""
    cutoff = last_training_start(session)
    own = Image.source == source_tag
    return own if cutoff is None else and_(own, Image.added_at > cutoff)


def _frozen_brands(session: Session, source_tag: str) -> set[str]:
    """Brands with held-out photos already, their held-out set frozen; the held-out rows an earlier, stopped
    run of this manifest stored are its own split, not a frozen set."""
    return set(
        session.scalars(
            select(LabelClass.name)
            .join(ImportedLabel, ImportedLabel.class_id == LabelClass.id)
            .join(Image, Image.id == ImportedLabel.image_id)
            .where(ImportedLabel.attribute_id == BRAND_ID, Image.split == Split.HOLDOUT)
            .where(not_(_own_untrained(session, source_tag)))
            .distinct()
        )
    )


def _store_chunk(session: Session, state: _Import, chunk: list[Checked]) -> None:
    """Store one chunk of rows: the photos stored already looked up, and their labels read, once per chunk."""
    report = state.report
    rows: list[tuple[ManifestRow, Path, ImageInfo | None, str]] = []
    for row, path, info in chunk:
        sha = info.sha256 if info else row.sha256
        if sha in state.seen:
            report.skipped.append((row.path, "listed twice in the manifest"))
            continue
        state.seen.add(sha)
        rows.append((row, path, info, sha))
    hashes = [sha for *_, sha in rows]
    stored = {image.sha256: image for image in session.scalars(select(Image).where(Image.sha256.in_(hashes)))}
    ids = [image.id for image in stored.values()]
    wanted = {BRAND_ID, *state.attribute_ids.values()}
    labels = {attribute_id: effective_labels(session, ids, attribute_id) for attribute_id in wanted}
    classes: dict[tuple[int, str], LabelClass] = {}

    def label_class(name: str, attribute_id: int) -> LabelClass:  # looked up once per chunk, not once per row
        key = (attribute_id, name.lower())
        if key not in classes:
            classes[key] = get_or_create_class(session, name, attribute_id)
        return classes[key]

    added: list[tuple[dict[str, object], list[LabelClass]]] = []
    for row, path, info, sha in rows:
        brand = label_class(row.brand, BRAND_ID) if row.brand else None
        others = [label_class(value, state.attribute_ids[name]) for name, value in row.labels.items()]
        image = stored.get(sha)
        if image is None:
            if info is None:  # each photo not stored yet was read and checked from its file above
                raise ManifestError(f"{path}: the photo was not checked before it was to be stored; import again.")
            added.append(_new_row(state, row, path, info, brand, others))
        else:
            _offer(session, report, row, image, [brand, *others] if brand else others, labels)
    if added:
        _insert(session, report, added)


def _new_row(
    state: _Import, row: ManifestRow, path: Path, info: ImageInfo, brand: LabelClass | None, others: list[LabelClass]
) -> tuple[dict[str, object], list[LabelClass]]:
    """The catalogue row of a new photo, held out where the manifest says so (unless its brand's held-out set
    is frozen), and the classes it arrives with."""
    values = image_values(info, path.resolve(), source=state.source_tag, brand=brand)
    if row.split == Split.HOLDOUT.value:
        if brand is not None and brand.name in state.frozen:
            state.report.moved_to_train.append(row.path)
        else:
            values["split"] = Split.HOLDOUT
    if brand is not None:
        state.report.added_per_brand[brand.name] += 1
    return values, [brand, *others] if brand else others


def _insert(session: Session, report: ImportReport, added: list[tuple[dict[str, object], list[LabelClass]]]) -> None:
    """A chunk's new photos in one INSERT, their classes in another, then their queue entries (as ingest
    stores a chunk: a fraction of the time of adding ORM objects, so the write lock is held briefly)."""
    ids = list(session.scalars(insert(Image).returning(Image.id, sort_by_parameter_order=True), [v for v, _ in added]))
    labels = [imported_label(i, c) for i, (_, classes) in zip(ids, added, strict=True) for c in classes]
    if labels:
        session.execute(insert(ImportedLabel), labels)
    add_entries(session, ids)  # inserted outside the unit of work: their queue entries are added here
    report.added += len(ids)
    report.added_ids.update(ids)


def _offer(
    session: Session,
    report: ImportReport,
    row: ManifestRow,
    image: Image,
    offered: list[LabelClass],
    labels: Mapping[int, Mapping[int, EffectiveLabel]],
) -> None:
    """Offer a stored photo the row's classes: a class it lacks is taken, another is reported, never stored."""
    outcomes = []
    for label_class in offered:
        current = labels[label_class.attribute_id][image.id]
        outcome = offer_class(session, image, label_class, current)
        outcomes.append(outcome)
        if outcome == Offer.DISAGREES:
            report.disagreements.append((row.path, kept_label(current), label_class.name))
    if Offer.LABELLED in outcomes:
        report.labelled += 1
    elif all(outcome == Offer.UNCHANGED for outcome in outcomes):
        report.unchanged += 1


def _draw_holdout(session: Session, state: _Import, fraction: float, seed: int) -> None:
    """Draw held-out photos for the brands the manifest leaves without, and top up each other attribute's
    classes, among this manifest's photos that no model has trained on: the photos of this run and those an
    earlier, stopped run of it stored, so that a resumed import draws what an uninterrupted one would."""
    if fraction <= 0:
        return
    report = state.report
    among = set(session.scalars(select(Image.id).where(_own_untrained(session, state.source_tag)))) | report.added_ids
    # the manifest's held-out rows are its split: only brands it leaves without one get a draw
    report.holdout_drawn = draw_holdout(session, fraction, seed, among=among, top_up=False)
    for name, attribute_id in state.attribute_ids.items():
        moved = top_up_holdout(session, attribute_id, fraction, seed, among=among)
        if moved:
            report.holdout_topped_up[name] = moved


# --------------------------------------------------------------------------- command line


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m feedback.manifest", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the labelled set as a manifest or a folder of brand subfolders")
    export.add_argument("target", type=Path, nargs="?", help="a .csv or .json file")
    export.add_argument("--folder", type=Path, help="copy the photos into FOLDER/CLASS/ instead")
    export.add_argument(
        "--attribute", default=BRAND, help="the attribute whose classes name the folders (default brand)"
    )
    imported = commands.add_parser("import", help="bring a .csv or .json manifest into the catalogue")
    imported.add_argument("manifest", type=Path)
    imported.add_argument(
        "--holdout-fraction",
        type=float,
        default=DEFAULT_HOLDOUT_FRACTION,
        help="held-out share drawn for brands the manifest leaves without one (default 0.15)",
    )
    imported.add_argument("--seed", type=int, default=0)
    imported.add_argument("--wait", action="store_true", help=WAIT_HELP)
    args = parser.parse_args(argv)
    if args.command == "export":
        return _export(args, parser)
    report = import_manifest(args.manifest, holdout_fraction=args.holdout_fraction, seed=args.seed)
    print(report.summary())
    if report.ok:
        predict_arrivals_in_terminal(wait=args.wait)
    return fail_if_nothing(report.ok, f"nothing in {report.manifest} could be imported")


def _export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if (args.target is None) == (args.folder is None):
        parser.error("export needs either a .csv/.json file or --folder FOLDER")
    if args.folder is not None:
        report = export_folder(args.folder, attribute=args.attribute)
        total = sum(report.copied.values())
        print(f"Copied {total} photos to {args.folder}: {per_brand(report.copied)}")
        for path, brand in report.missing:
            print(f"  missing file, not copied: {path} ({brand})", file=sys.stderr)
        return 0 if total or not report.missing else 1
    rows = export_manifest(args.target)
    print(f"Wrote {len(rows)} labelled photos to {args.target}: {per_brand(Counter(row.brand for row in rows))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
