"""Reading manifest files: the rows of a ``.csv`` or ``.json`` manifest as plain records, bounded and checked.

A manifest has a ``path`` (or ``file``) column, optionally ``sha256``, ``split`` and ``origin``, and one column
per attribute (``brand``, ``colour``, ...). Column names are matched as class and attribute names are
(:func:`shoelabel.names.normal_name`, any case): ``Path`` is the path column, and two columns of one name
(``brand`` and ``Brand``) are refused. In a JSON manifest every label is a string (or null: unknown).
What the rows mean is for the reader: importing them (:mod:`feedback.manifest`) or evaluating on them
(:mod:`modeling.evaluate`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path

from shoelabel.csvcells import restore
from shoelabel.errors import UserError
from shoelabel.names import normal_name
from shoelabel.paths import os_error_text

FORMAT = "shoelabel-manifest"
VERSION = 1
COLUMNS = ("sha256", "path", "brand", "split", "origin")  # then one column per other attribute
NOT_ATTRIBUTES = frozenset({"sha256", "path", "file", "split", "origin"})
MAX_MANIFEST_BYTES = 200_000_000  # larger files are refused before they are read


class ManifestError(UserError, ValueError):
    """A manifest that cannot be read or written as a whole (nothing was changed)."""


def read_records(source: Path) -> list[tuple[int, object]]:
    """Each row of the manifest with its line (CSV) or entry (JSON) number."""
    kind = source.suffix.lower()
    text = _read_text(source)
    if kind not in (".json", ".csv"):
        raise ManifestError(f"Cannot tell the format of {source}: a manifest is a .csv or .json file.")
    if kind == ".json":
        records = list(enumerate(_json_records(source, text), start=1))
    else:
        records = list(csv_records(source, text))
    for number, record in records:
        _check_paths(source, number, record)
    return records


def _check_paths(source: Path, number: int, record: object) -> None:
    """Refuse a path no file can have (a NUL character), naming the row."""
    if not isinstance(record, dict):
        return
    for column in ("path", "file"):
        if "\x00" in str(record.get(column) or ""):
            where = f"{source}, {'entry' if source.suffix.lower() == '.json' else 'line'} {number}"
            raise ManifestError(
                f"{where}: the {column} holds a NUL character (\\x00), which no file name can: correct the path."
            )


def attribute_columns(record: dict[str, object]) -> list[str]:
    """The keys of a record that are attributes (as the file spells them)."""
    return [column for column in record if str(column).strip() not in NOT_ATTRIBUTES]


def _columns(where: str, names: list[object]) -> list[str]:
    """The column names of a header or a JSON entry: the manifest's own columns in lower case; two columns
    that are one name (``brand``, `` Brand``) are refused."""
    seen: dict[str, str] = {}
    columns = []
    for name in names:
        text = str(name).strip()
        key = normal_name(text).lower()
        if not key:  # an unnamed column (a trailing comma): read only if it has values
            columns.append(text)
            continue
        if key in seen:
            raise ManifestError(
                f"{where}: the columns {seen[key]!r} and {text!r} are one name (names are compared without case); "
                "keep one of them, or rename the other."
            )
        seen[key] = text
        columns.append(key if key in NOT_ATTRIBUTES else text)
    return columns


def _json_entry(source: Path, number: int, entry: object) -> object:
    """A JSON entry with its column names as :func:`_columns` gives them; every label is a string or null."""
    if not isinstance(entry, dict):
        return entry  # the reader says what it expected
    where = f"{source}, entry {number}"
    record = dict(zip(_columns(where, list(entry)), entry.values(), strict=True))
    for column, value in record.items():
        if value is not None and not isinstance(value, str):
            kind = {bool: "true or false", dict: "an object", list: "a list"}.get(type(value), "a number")
            raise ManifestError(
                f"{where}, column {column[:60]!r}: {json.dumps(value)[:60]} is {kind}, not text; "
                'write each path and label as a string ("Nike"), or null where it is unknown.'
            )
    return record


def _read_text(source: Path) -> str:
    """The manifest's text, read only from a regular file of a sane size (never a FIFO or a device)."""
    try:
        info = os.stat(source)
    except FileNotFoundError as exc:
        raise ManifestError(f"Manifest not found: {source}") from exc
    except OSError as exc:
        raise ManifestError(f"Cannot read {os_error_text(source, exc)}.") from exc
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


def csv_records(source: Path, text: str) -> list[tuple[int, dict[str, str]]]:
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
            header = _columns(f"{source}, line {line}", list(row))
            if "path" not in header and "file" not in header:
                raise ManifestError(
                    f"{source} lacks the column path (or file); a manifest has the columns {', '.join(COLUMNS)} "
                    "and one column per further attribute."
                )
            if not set(header) - NOT_ATTRIBUTES:
                raise ManifestError(f"{source} has no attribute column (brand, colour, ...): nothing to label with.")
            continue
        records.append((line, {key: restore(value) for key, value in zip(header, row, strict=False)}))
    if header is None:
        raise ManifestError(
            f"{source} lacks the columns path, brand; a manifest has the columns {', '.join(COLUMNS)} "
            "and one column per further attribute."
        )
    return records


def _json_records(source: Path, text: str) -> list[object]:
    try:
        document = json.loads(text, object_pairs_hook=_refuse_repeated_keys)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{source} is not valid JSON: {exc}") from exc
    except _RepeatedKeyError as exc:
        raise ManifestError(f"{source}: {exc}; keep one of them.") from exc
    except RecursionError as exc:
        raise ManifestError(
            f"{source} is nested too deeply to be a manifest: a manifest is an object with an 'images' list of "
            "flat entries."
        ) from exc
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
    return [_json_entry(source, n, entry) for n, entry in enumerate(document["images"], start=1)]


class _RepeatedKeyError(ValueError):
    """A JSON object with a key twice."""


def _refuse_repeated_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object, whose keys are all different (JSON would keep only the last of two)."""
    document = dict(pairs)
    if len(document) < len(pairs):
        seen: set[str] = set()
        repeated = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise _RepeatedKeyError(f"the key {repeated!r} appears twice in one object")
    return document
