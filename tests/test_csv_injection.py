"""CSV exports never hand a spreadsheet a formula (OWASP's CSV-injection guidance), and read back as they were."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from db import get_engine, session_scope
from db.catalog import class_names
from feedback.ingest import ingest_folder
from feedback.manifest import (
    ManifestRow,
    export_manifest,
    import_manifest,
    main,
    manifest_csv,
    manifest_text,
    read_manifest,
)
from shoelabel.csvcells import neutralise, restore
from shoelabel.manifest_files import csv_records
from tests.conftest import make_brand_photo

FORMULAS = ["=1+1", "@SUM(A1)", "-2", "+3", '=HYPERLINK("https://example.invalid","x")']
RISKY_STARTS = ("=", "+", "-", "@", "\t", "\r")


@pytest.mark.parametrize(
    "value", [*FORMULAS, "\tTab", "\rCR", "'=already quoted", "''@twice", "'plain quote", "plain", "", "'"]
)
def test_a_cell_is_neutralised_and_restored(value: str) -> None:
    cell = neutralise(value)
    assert not str(cell).startswith(RISKY_STARTS)
    assert restore(str(cell)) == value
    assert (cell == value) == (not value.lstrip("'").startswith(RISKY_STARTS))  # safe text is left alone


def test_numbers_are_left_alone() -> None:
    assert neutralise(-2) == -2 and neutralise(0.5) == 0.5


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))[1:]


@pytest.fixture
def formula_brands(engine, tmp_path: Path) -> list[str]:
    """A catalogue whose brands (folder names) are formulas, three photos each."""
    root = tmp_path / "formulas"
    names = [*FORMULAS[:4], "'=quoted"]
    for b, name in enumerate(names):
        for i in range(3):
            make_brand_photo(root / name / f"p{i}.jpg", b, seed=50 * b + i)
    ingest_folder(root, engine=engine)
    with session_scope(engine) as session:
        assert sorted(class_names(session)) == sorted(names)
    return names


def test_cli_export_and_app_download_start_formula_cells_with_a_quote(
    formula_brands: list[str], tmp_path: Path
) -> None:
    target = tmp_path / "labels.csv"
    assert main(["export", str(target)]) == 0  # python -m feedback.manifest export labels.csv
    for text in (target.read_text(encoding="utf-8"), manifest_text("csv")):  # the CLI file, the app's download
        brands = {row[2] for row in _cells(text)}
        assert brands == {"'=1+1", "'@SUM(A1)", "'-2", "'+3", "''=quoted"}
        assert not any(cell.startswith(RISKY_STARTS) for row in _cells(text) for cell in row)


def test_formula_brands_round_trip_through_export_and_import(formula_brands: list[str], engine, tmp_path: Path) -> None:
    manifest = tmp_path / "labels.csv"
    exported = export_manifest(manifest, engine=engine)
    assert {row.brand for row in read_manifest(manifest)} == set(formula_brands)
    assert read_manifest(manifest) == exported
    other = get_engine(f"sqlite:///{tmp_path / 'other.db'}")
    report = import_manifest(manifest, engine=other)
    assert report.added == len(exported) and not report.skipped
    with session_scope(other) as session:
        assert sorted(class_names(session)) == sorted(formula_brands)
    again = tmp_path / "again.csv"
    export_manifest(again, engine=other)
    assert again.read_text(encoding="utf-8") == manifest.read_text(encoding="utf-8")  # the same file again


def test_json_manifests_keep_names_as_they_are(formula_brands: list[str], tmp_path: Path) -> None:
    target = tmp_path / "labels.json"
    export_manifest(target)
    assert {row["brand"] for row in json.loads(target.read_text())["images"]} == set(formula_brands)


def test_tab_and_carriage_return_led_cells_read_back_unchanged(tmp_path: Path) -> None:
    """Brand names never start with white space (it is trimmed when a brand is made), but paths and hand-made
    rows can: every column is neutralised and restored the same way."""
    rows = [
        ManifestRow("a" * 64, "\tphoto.jpg", "\tTab", "train", "import"),
        ManifestRow("b" * 64, "\rphoto.jpg", "\rCR", "holdout", "review"),
        ManifestRow("c" * 64, "-photo.jpg", "@brand", "train", "=origin", {"colour": "+Red"}),
    ]
    text = manifest_csv(rows, ["colour"])
    assert not any(cell.startswith(RISKY_STARTS) for row in _cells(text) for cell in row)
    records = [record for _, record in csv_records(tmp_path / "m.csv", text)]
    assert [(r["path"], r["brand"], r["origin"], r["colour"]) for r in records] == [
        ("\tphoto.jpg", "\tTab", "import", ""),
        ("\rphoto.jpg", "\rCR", "review", ""),
        ("-photo.jpg", "@brand", "=origin", "+Red"),
    ]


def test_prediction_csv_neutralises_names(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from modeling.predict import _print_rows

    rows = [
        {
            "path": "=cmd|' /C calc'!A0",
            "model": "cnn v1",
            "attribute": "brand",
            "class": "@SUM(A1)",
            "confidence": 0.5,
            "p_+3": 0.5,
        }
    ]
    _print_rows(rows, argparse.Namespace(json=False, csv=True))
    [cells] = _cells(capsys.readouterr().out)
    assert cells == ["'=cmd|' /C calc'!A0", "cnn v1", "brand", "'@SUM(A1)", "0.5", "0.5"]
