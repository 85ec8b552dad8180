"""File names that are not valid UTF-8 (Latin-1 names from Windows disks and ZIP files): ingested, predicted,
exported and imported again on every database, shown with U+FFFD where the name cannot be read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from db import session_scope
from db.models import Image, Prediction
from feedback.ingest import ingest_folder
from feedback.manifest import export_manifest, import_manifest, read_manifest
from modeling.predict import update_predictions
from shoelabel.paths import file_path, shown_path, stored_path
from tests.conftest import make_brand_folder, make_brand_photo
from tests.refresh_support import tiny_cnn

BAD = b"bad_\xff\xfe.jpg"  # Latin-1 "bad_ÿþ.jpg": not UTF-8


def bytes_path(folder: Path, name: bytes) -> Path:
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + name))


@pytest.fixture
def odd_folder(tmp_path: Path) -> Path:
    """Three brands of four photos; one acme photo and one file that is no photo have names that are not UTF-8."""
    root = make_brand_folder(tmp_path / "brands", ["acme", "bolt", "crest"], per_brand=4, seed_step=10)
    make_brand_photo(bytes_path(root / "acme", BAD), 0, seed=99)
    bytes_path(root / "acme", b"notes_\xe9.jpg").write_bytes(b"not a photo")
    return root


def test_stored_paths_reopen_the_file_and_show_unreadable_bytes_as_replacement_characters(tmp_path: Path) -> None:
    odd = bytes_path(tmp_path, BAD)
    stored = stored_path(odd)
    stored.encode("ascii")  # any database takes it
    assert Path(file_path(stored)) == odd
    assert shown_path(stored).endswith("bad_\ufffd\ufffd.jpg")
    plain = tmp_path / "Ünïcode 100% ok.jpg"
    assert stored_path(plain) == str(plain)  # a readable name is stored as it is
    assert file_path(str(plain)) == str(plain)
    assert shown_path(str(plain)) == str(plain)


@pytest.mark.slow
def test_a_name_that_is_not_utf8_is_ingested_predicted_exported_and_imported_again(
    db_engine: Engine, home: Path, odd_folder: Path, tmp_path: Path
) -> None:
    report = ingest_folder(odd_folder, engine=db_engine, holdout_fraction=0)
    assert report.added == 13
    assert report.skipped == [("acme/notes_\ufffd.jpg", report.skipped[0][1])]
    summary = report.summary()
    summary.encode("utf-8")  # printable as it is
    assert "acme/notes_\ufffd.jpg" in summary
    odd = bytes_path(odd_folder / "acme", BAD)
    with session_scope(db_engine) as session:
        image = session.scalar(select(Image).where(Image.path == stored_path(odd)))
        assert image is not None
        image_id = image.id

    handle = tiny_cnn(db_engine, home)
    stored, unreadable = update_predictions(db_engine, handle)
    assert stored == 13
    assert not unreadable
    with session_scope(db_engine) as session:
        assert session.scalar(select(Prediction.id).where(Prediction.image_id == image_id)) is not None

    for kind in ("csv", "json"):
        target = tmp_path / f"labels.{kind}"
        rows = export_manifest(target, engine=db_engine)
        assert len(rows) == 13
        written = target.read_text(encoding="utf-8")
        if kind == "json":
            json.loads(written)
        (row,) = [row for row in read_manifest(target) if Path(file_path(row.path)) == odd]
        assert row.brand == "acme"

    again = ingest_folder(odd_folder, engine=db_engine, holdout_fraction=0)
    assert (again.added, again.already_stored, again.duplicates_in_folder) == (0, 13, [])
    by_path = tmp_path / "by_path.csv"  # no hash: the import must open the file by the exported path
    by_path.write_text(f"path,brand\n{row.path},acme\n", encoding="utf-8")
    imported = import_manifest(by_path, engine=db_engine, holdout_fraction=0)
    assert (imported.unchanged, imported.skipped) == (1, [])
