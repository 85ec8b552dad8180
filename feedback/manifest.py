"""Export the labelled set, and import it back.

``python -m feedback.manifest export labels.csv`` (or ``.json``, or ``--folder DIR``)
``python -m feedback.manifest import labels.csv``

A manifest lists every photo with an effective brand: its content hash, file,
brand, split (train / holdout) and where the brand came from (import or review).
Importing it into an empty catalogue gives back the same photos, brands and
held-out split: a manifest exported from there lists the same rows (brands that
came from reviews read back as imported ones). Importing into
a catalogue that already holds some of the photos never overrides a stored
brand (a disagreement is reported; correct it in review) and never moves the
frozen held-out split of a brand that has one.

In a CSV manifest, a cell that a spreadsheet would run as a formula (it starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return) is written with a leading quote, and the import takes that quote off.

A folder export copies each labelled photo into one subfolder per brand: the
layout ``python -m feedback.ingest`` reads, and what most training tools expect.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import stat
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from db import get_engine, session_scope
from db.access import OPERATOR, Actor, import_roots
from db.catalog import BrandError, clean_brand_name, get_or_create_brand, image_by_hash
from db.labels import EffectiveLabel, Offer, effective_labels, kept_label, offer_brand
from db.models import Brand, Image, Split
from feedback.ingest import (
    DEFAULT_HOLDOUT_FRACTION,
    WAIT_HELP,
    brand_lines,
    draw_holdout,
    new_image,
    per_brand,
    split_counts,
)
from modeling.arrivals import predict_arrivals_in_terminal
from shoelabel.cli import command, fail_if_nothing
from shoelabel.csvcells import neutralise, restore
from shoelabel.errors import UserError
from shoelabel.images import ImageError, ImageInfo, inspect

FORMAT = "shoelabel-manifest"
VERSION = 1
COLUMNS = ("sha256", "path", "brand", "split", "origin")
SPLITS = (Split.TRAIN.value, Split.HOLDOUT.value)
MAX_MANIFEST_BYTES = 200_000_000  # larger files are refused before they are read


class ManifestError(UserError, ValueError):
    """A manifest that cannot be read or written as a whole (nothing was changed)."""


@dataclass(frozen=True)
class ManifestRow:
    sha256: str
    path: str
    brand: str
    split: str  # train | holdout
    origin: str  # import | review


# --------------------------------------------------------------------------- export


def labelled_rows(session: Session) -> list[ManifestRow]:
    """Every photo with an effective brand (conflicts and not-a-shoe left out), in a stable order."""
    labels = effective_labels(session)
    rows = []
    for image in session.scalars(select(Image).order_by(Image.sha256)):
        label = labels[image.id]
        if label.brand is None:
            continue
        split = Split.HOLDOUT.value if image.split == Split.HOLDOUT else Split.TRAIN.value
        rows.append(ManifestRow(image.sha256, image.path, label.brand, split, label.origin))
    return sorted(rows, key=lambda r: (r.brand, r.split, r.sha256))


def manifest_csv(rows: Iterable[ManifestRow]) -> str:
    """The rows as CSV (RFC 4180: CRLF line ends, so a cell holding a carriage return is quoted too); a cell a
    spreadsheet would run as a formula (``=1+1``, ``@SUM(A1)``) starts with a quote, which
    :func:`read_manifest` takes off again (see :mod:`shoelabel.csvcells`)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({key: neutralise(value) for key, value in asdict(row).items()} for row in rows)
    return out.getvalue()


def manifest_json(rows: Iterable[ManifestRow]) -> str:
    rows = list(rows)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "brands": sorted({row.brand for row in rows}),
        "images": [asdict(row) for row in rows],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


WRITERS = {"csv": manifest_csv, "json": manifest_json}


def manifest_text(kind: str, *, engine: Engine | None = None) -> str:
    """The labelled set as a ``csv`` or ``json`` manifest (what the app offers for download)."""
    with session_scope(engine or get_engine()) as session:
        return WRITERS[kind](labelled_rows(session))


def export_manifest(target: str | Path, *, engine: Engine | None = None) -> list[ManifestRow]:
    """Write the labelled set to ``target`` (``.csv`` or ``.json``); returns the rows written."""
    target = Path(target)
    writer = WRITERS.get(target.suffix.lower().lstrip("."))
    if writer is None:
        raise ManifestError(f"Cannot tell the format of {target}: name it .csv or .json.")
    with session_scope(engine or get_engine()) as session:
        rows = labelled_rows(session)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(writer(rows), encoding="utf-8", newline="")  # line ends as written
    return rows


@dataclass
class FolderExport:
    copied: Counter[str] = field(default_factory=Counter)  # per brand
    missing: list[tuple[str, str]] = field(default_factory=list)  # (stored path, brand)


def export_folder(target: str | Path, *, engine: Engine | None = None) -> FolderExport:
    """Copy each labelled photo to ``target/BRAND/``; photos whose file is gone are listed, not fatal."""
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise ManifestError(f"{target} is not empty. Export to a new or empty folder.")
    with session_scope(engine or get_engine()) as session:
        rows = labelled_rows(session)
    report = FolderExport()
    for row in rows:
        source = Path(row.path)
        if not source.is_file():
            report.missing.append((row.path, row.brand))
            continue
        folder = target / _safe_folder_name(row.brand)
        folder.mkdir(parents=True, exist_ok=True)
        # the hash prefix keeps two photos called 1.jpg from overwriting each other
        shutil.copy2(source, folder / f"{row.sha256[:12]}-{source.name}")
        report.copied[row.brand] += 1
    return report


def _safe_folder_name(brand: str) -> str:
    name = brand.replace("/", "-").replace("\\", "-").strip(". ")
    return name or "brand"


# --------------------------------------------------------------------------- import


def read_manifest(source: str | Path) -> list[ManifestRow]:
    """Rows of a ``.csv`` or ``.json`` manifest; raises :class:`ManifestError` naming the bad line."""
    source = Path(source)
    kind = source.suffix.lower()
    text = _read_text(source)
    if kind not in (".json", ".csv"):
        raise ManifestError(f"Cannot tell the format of {source}: a manifest is a .csv or .json file.")
    json_rows = kind == ".json"
    numbered = list(enumerate(_json_records(source, text), start=1)) if json_rows else _csv_records(source, text)
    return [_row(source, number, record) for number, record in numbered]


def _read_text(source: Path) -> str:
    """The manifest's text, read only from a regular file of a sane size (never a FIFO or a device)."""
    try:
        info = os.stat(source)
    except FileNotFoundError as exc:
        raise ManifestError(f"Manifest not found: {source}") from exc
    except OSError as exc:
        raise ManifestError(f"Cannot read {source}: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(info.st_mode):
        raise ManifestError(
            f"{source} is a folder, not a manifest: give a .csv or .json file "
            "(a folder of brand subfolders is brought in with python -m feedback.ingest)."
        )
    if not stat.S_ISREG(info.st_mode):
        raise ManifestError(f"{source} is not a regular file (a device, FIFO or socket): give a .csv or .json file.")
    if info.st_size > MAX_MANIFEST_BYTES:
        raise _too_large(source, info.st_size)
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # replaced since the stat above
                raise ManifestError(f"{source} is not a regular file: give a .csv or .json file.")
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestError(f"Cannot read {source}: {exc.strerror or exc}") from exc
    if len(data) > MAX_MANIFEST_BYTES:  # grew while being read
        raise _too_large(source, len(data))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"Cannot read {source}: it is not UTF-8 text ({exc}); save it as UTF-8.") from exc


def _too_large(source: Path, size: int) -> ManifestError:
    return ManifestError(
        f"{source} is too large for a manifest ({size / 1e6:.0f} MB; the limit is {MAX_MANIFEST_BYTES / 1e6:.0f} MB): "
        "split it into smaller manifests and import them one by one."
    )


def _csv_records(source: Path, text: str) -> list[tuple[int, dict[str, str]]]:
    """Each CSV row as a dict of the header's columns, with the line it starts on; cells an export
    neutralised (``'=1+1``) read back as they were (``=1+1``)."""
    reader = csv.reader(io.StringIO(text), strict=True)
    header: list[str] | None = None
    records: list[tuple[int, dict[str, str]]] = []
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise ManifestError(
                    f'{source}, line {line}: unterminated quote: a field on this line opens a quote (") that is '
                    "never closed; close the quote or remove it, then import again."
                ) from exc
            raise ManifestError(f"{source}, line {reader.line_num}: not valid CSV ({exc}).") from exc
        if not row:
            continue
        if header is None:
            header = row
            missing = [c for c in ("path", "brand") if c not in header]
            if missing:
                raise ManifestError(
                    f"{source} lacks the column(s) {', '.join(missing)}; "
                    f"a manifest has the columns {', '.join(COLUMNS)}."
                )
            continue
        records.append((line, {key: restore(value) for key, value in zip(header, row, strict=False)}))
    if header is None:
        raise ManifestError(f"{source} lacks the columns path, brand; a manifest has the columns {', '.join(COLUMNS)}.")
    return records


def _json_records(source: Path, text: str) -> list[object]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{source} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise ManifestError(f"{source} is not a {FORMAT} file: it needs an 'images' list.")
    version = document.get("version", VERSION)
    if isinstance(version, str) and version.strip().isdigit():
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= VERSION:
        raise ManifestError(
            f"{source} is manifest version {document.get('version')!r}; this version of shoelabel reads "
            f"{FORMAT} version {VERSION}. Export it again with this version, or import it with the version "
            "that wrote it."
        )
    return document["images"]


def _row(source: Path, number: int, record: object) -> ManifestRow:
    where = f"{source}, {'entry' if source.suffix.lower() == '.json' else 'line'} {number}"
    if not isinstance(record, dict):
        raise ManifestError(f"{where}: expected an object with path and brand.")
    path, brand = str(record.get("path") or "").strip(), str(record.get("brand") or "")
    if not path:
        raise ManifestError(f"{where}: the path is empty.")
    try:
        brand = clean_brand_name(brand)
    except BrandError as exc:
        raise ManifestError(f"{where}: {exc}") from exc
    split = str(record.get("split") or Split.TRAIN.value).strip().lower()
    if split not in SPLITS:
        raise ManifestError(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}.")
    sha256 = str(record.get("sha256") or "").strip().lower()
    return ManifestRow(sha256, path, brand, split, str(record.get("origin") or "import"))


@dataclass
class ImportReport:
    manifest: Path
    added: int = 0
    labelled: int = 0  # stored unlabelled photos that got their brand
    unchanged: int = 0  # stored with the same brand already
    disagreements: list[tuple[str, str, str]] = field(default_factory=list)  # (path, stored, manifest)
    moved_to_train: list[str] = field(default_factory=list)  # held-out rows of a brand with a frozen held-out set
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    added_per_brand: Counter[str] = field(default_factory=Counter)
    holdout_drawn: dict[str, int] = field(default_factory=dict)
    totals_per_brand: dict[str, dict[str, int]] = field(default_factory=dict)
    added_ids: set[int] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.added + self.labelled + self.unchanged + len(self.disagreements) > 0

    def summary(self) -> str:
        lines = [
            f"Manifest: {self.manifest}",
            f"Photos added: {self.added}",
            f"Stored photos that got their brand: {self.labelled}",
            f"Already stored with the same brand: {self.unchanged}",
        ]
        if self.disagreements:
            lines.append(f"Stored with another brand (kept; correct them in review): {len(self.disagreements)}")
            lines += [f"  {path}: stored as {kept!r}, manifest says {new!r}" for path, kept, new in self.disagreements]
        if self.moved_to_train:
            frozen = len(self.moved_to_train)
            lines.append(f"Held-out rows added to training instead (their brand's held-out set is frozen): {frozen}")
        lines.append(f"Skipped: {len(self.skipped)}")
        lines += [f"  {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines + brand_lines(self.added_per_brand, self.holdout_drawn, self.totals_per_brand))


def import_manifest(
    source: str | Path,
    *,
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
    seed: int = 0,
    engine: Engine | None = None,
    actor: Actor = OPERATOR,
) -> ImportReport:
    """Bring the photos and brands of a manifest into the catalogue; see the module docstring.

    Relative paths are read from the manifest's folder. A photo already stored
    (same hash) needs no file. A row whose file is missing, unreadable or has
    changed since the export (another hash) is reported and skipped. Brands the
    manifest leaves without held-out photos get a held-out set drawn as ingest does.
    Files are checked before the database is locked, so reviewers are not held up.
    ``actor`` must be allowed to import; from the app, the manifest and every photo it names must lie
    in the import roots (see :mod:`db.access`; a photo outside is skipped unread).
    """
    roots = import_roots(actor)
    source = roots.check(source)
    source = Path(source).expanduser().resolve()
    rows = read_manifest(source)
    report = ImportReport(manifest=source)
    engine = engine or get_engine()
    with session_scope(engine) as session:
        stored_hashes = set(session.scalars(select(Image.sha256)))
    checked: list[tuple[ManifestRow, Path, ImageInfo | None]] = []
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
    with session_scope(engine, write=True) as session:
        frozen = set(
            session.scalars(
                select(Brand.name).join(Image, Image.source_brand_id == Brand.id).where(Image.split == Split.HOLDOUT)
            )
        )
        labels = effective_labels(session)  # once: rows never change each other's stored labels
        seen: set[str] = set()
        for row, path, info in checked:
            sha = info.sha256 if info else row.sha256
            if sha in seen:
                report.skipped.append((row.path, "listed twice in the manifest"))
                continue
            seen.add(sha)
            _apply(session, report, row, path, info, sha, frozen, labels)
        if holdout_fraction > 0:
            # the manifest's held-out rows are its split: only brands it leaves without one get a draw
            report.holdout_drawn = draw_holdout(session, holdout_fraction, seed, among=report.added_ids, top_up=False)
        report.totals_per_brand = split_counts(session)
    return report


def _resolve(root: Path, stored: str) -> Path:
    path = Path(stored).expanduser()
    return path if path.is_absolute() else root / path


def _apply(
    session: Session,
    report: ImportReport,
    row: ManifestRow,
    path: Path,
    info: ImageInfo | None,
    sha: str,
    frozen: set[str],
    labels: Mapping[int, EffectiveLabel],
) -> None:
    brand = get_or_create_brand(session, row.brand)
    stored = image_by_hash(session, sha)
    if stored is None:
        assert info is not None, "a photo not stored was checked from its file"
        image = new_image(info, path.resolve(), source=f"manifest:{report.manifest}", brand=brand)
        if row.split == Split.HOLDOUT.value:
            if brand.name in frozen:
                report.moved_to_train.append(row.path)
            else:
                image.split = Split.HOLDOUT
        session.add(image)
        session.flush()
        report.added_ids.add(image.id)
        report.added += 1
        report.added_per_brand[brand.name] += 1
        return
    current = labels[stored.id]
    outcome = offer_brand(stored, brand, current)
    if outcome == Offer.LABELLED:
        report.labelled += 1
    elif outcome == Offer.UNCHANGED:
        report.unchanged += 1
    else:
        report.disagreements.append((row.path, kept_label(current), brand.name))


# --------------------------------------------------------------------------- command line


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m feedback.manifest", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the labelled set as a manifest or a folder of brand subfolders")
    export.add_argument("target", type=Path, nargs="?", help="a .csv or .json file")
    export.add_argument("--folder", type=Path, help="copy the photos into FOLDER/BRAND/ instead")
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
        report = export_folder(args.folder)
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
