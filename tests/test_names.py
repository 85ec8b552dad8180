"""The rules for class and attribute names, and for manifest columns and labels: names are NFKC-normalised with
control and format characters taken out before they are compared; the manifests' own columns (path, sha256,
split, origin, file) are never attributes; labels are text; names reach a terminal with escapes shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from db import session_scope
from db.catalog import ClassError, clean_class_name, get_or_create_class
from db.models import Attribute, Image, LabelClass
from feedback.classes import add_attribute, add_classes, class_list, rename_attribute, schema
from feedback.classes import main as classes_main
from feedback.ingest import ingest_folder
from feedback.ingest import main as ingest_main
from feedback.manifest import export_manifest, import_manifest, read_manifest
from shoelabel.manifest_files import ManifestError
from tests.app_support import assert_clean, new_app, unescaped
from tests.conftest import REPO, count_rows, make_brand_folder, make_brand_photo

RESERVED = ["path", "sha256", "split", "origin", "file"]


def _photos(root: Path, brands: tuple[str, ...] = ("acme", "bolt")) -> Path:
    return make_brand_folder(root, brands, per_brand=3, seed_step=10)


def _attributes(engine: Engine) -> list[str]:
    with session_scope(engine) as session:
        return list(session.scalars(select(Attribute.name).order_by(Attribute.id)))


# --------------------------------------------------------------------------- reserved attribute names


@pytest.mark.parametrize("name", [*RESERVED, " Path ", "SHA256", "ｓｐｌｉｔ", "ori\u200bgin", "(not a shoe)"])
def test_the_manifests_own_columns_and_not_a_shoe_are_no_attribute_names(db_engine: Engine, name: str) -> None:
    with pytest.raises(ClassError, match="cannot be an attribute name"):
        add_attribute(name, engine=db_engine)  # the Classes page's service
    assert _attributes(db_engine) == ["brand"]


def test_the_classes_command_and_ingest_refuse_a_reserved_attribute(
    db_engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _photos(tmp_path / "brands")
    assert classes_main(["add-attribute", "Split"]) == 2
    assert "error: 'split' cannot be an attribute name" in capsys.readouterr().err
    assert ingest_main([str(folder), "--attribute", "file"]) == 2
    assert "error: 'file' cannot be an attribute name" in capsys.readouterr().err
    assert ingest_main([str(folder), "--attribute", "(not a\u200b shoe)"]) == 2
    assert "error: '(not a shoe)' cannot be an attribute name" in capsys.readouterr().err
    assert _attributes(db_engine) == ["brand"]
    assert count_rows(db_engine, Image.id) == 0


def test_a_manifest_column_spelled_like_its_own_columns_is_read_as_that_column(engine: Engine, tmp_path: Path) -> None:
    make_brand_photo(tmp_path / "a.jpg", 0, seed=1)
    manifest = tmp_path / "m.csv"
    manifest.write_text("PATH,Brand,Split,Origin\na.jpg,acme,holdout,import\n", encoding="utf-8")
    (row,) = read_manifest(manifest)
    assert (row.path, row.brand, row.split, row.labels) == ("a.jpg", "acme", "holdout", {})
    assert import_manifest(manifest, engine=engine, holdout_fraction=0).added == 1
    assert _attributes(engine) == ["brand"]


def test_an_export_refuses_a_catalogue_with_a_reserved_attribute_until_it_is_renamed(
    db_engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest_folder(_photos(tmp_path / "brands"), engine=db_engine, holdout_fraction=0)
    with session_scope(db_engine, write=True) as session:  # made before such names were refused
        session.add(Attribute(name="path", position=5))
    target = tmp_path / "labels.csv"
    with pytest.raises(ManifestError, match=r"'path' .* rename-attribute path NEW_NAME"):
        export_manifest(target, engine=db_engine)
    from feedback.manifest import main as manifest_main

    assert manifest_main(["export", str(target)]) == 2
    assert "rename-attribute path NEW_NAME" in capsys.readouterr().err
    assert not target.exists()

    with pytest.raises(ClassError, match="cannot be an attribute name"):
        rename_attribute("path", "sha256", engine=db_engine)
    with pytest.raises(ClassError, match="brand cannot be renamed"):
        rename_attribute("brand", "maker", engine=db_engine)
    assert classes_main(["rename-attribute", "path", "Path Label"]) == 0
    assert "'path label'" in capsys.readouterr().out
    rows = export_manifest(target, engine=db_engine)
    assert len(rows) == 6
    assert all(Path(row.path).is_file() and len(row.sha256) == 64 for row in read_manifest(target))


# --------------------------------------------------------------------------- one rule for every name


def test_names_are_compared_after_nfkc_without_control_or_format_characters(db_engine: Engine) -> None:
    for hidden in ["(not a\u200b shoe)", "(not a shoe\u202e)", "(ｎｏｔ a shoe)", "(not\ta\x1b shoe)"]:
        with pytest.raises(ClassError, match="is not a class name"):
            clean_class_name(hidden)
    added = add_classes("brand", ["Nike", "Ni\u200bke", "ＮＩＫＥ", "Ni\x00ke", "\u2066Nike\u2069"], engine=db_engine)
    assert added.added == ["Nike"] and len(added.repeated) == 4
    assert schema(engine=db_engine)["brand"] == ["Nike"]
    with pytest.raises(ClassError, match="is not a class name"):
        add_classes("brand", ["(not a\u200b shoe)"], engine=db_engine)
    add_attribute("Col\u200bour", engine=db_engine)
    assert list(schema(engine=db_engine)) == ["brand", "colour"]
    with session_scope(db_engine, write=True) as session:
        assert get_or_create_class(session, "Red\x1b[0m").name == "Red[0m"


def test_a_subfolder_is_a_class_whatever_its_name_and_the_summary_says_so(engine: Engine, tmp_path: Path) -> None:
    root = _photos(tmp_path / "brands", ("acme", "x.jpg"))
    (root / "y.png").write_bytes(b"not a photo")  # a file named like a photo stays a file
    report = ingest_folder(root, engine=engine, holdout_fraction=0)
    assert class_list("brand", engine=engine) == ["acme", "x.jpg"]
    assert report.added == 6
    assert [name for name, _ in report.skipped] == ["y.png"]
    assert "Note: 'x.jpg' is a subfolder, so its photos are labelled 'x.jpg'" in report.summary()
    assert "'acme' is a subfolder" not in report.summary()


# --------------------------------------------------------------------------- manifest labels and columns


@pytest.mark.parametrize(
    ("value", "kind"),
    [({"a": 1}, "an object"), (["Nike"], "a list"), (True, "true or false"), (42, "a number")],
)
def test_json_labels_must_be_text(engine: Engine, tmp_path: Path, value: object, kind: str) -> None:
    make_brand_photo(tmp_path / "a.jpg", 0, seed=1)
    manifest = tmp_path / "m.json"
    images = [{"path": "a.jpg", "brand": "acme"}, {"path": "a.jpg", "brand": "acme", "colour": value}]
    manifest.write_text(json.dumps({"images": images}), encoding="utf-8")
    with pytest.raises(ManifestError, match=rf"m.json, entry 2, column 'colour': .* is {kind}, not text"):
        import_manifest(manifest, engine=engine)
    assert count_rows(engine, Image.id) == 0
    assert count_rows(engine, LabelClass.id) == 0


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.csv", "path,brand,Brand\na.jpg,acme,bolt\n", r"m.csv, line 1: the columns 'brand' and 'Brand' are one"),
        ("m.csv", "path,brand, brand\u200b\na.jpg,acme,bolt\n", r"the columns 'brand' and 'brand\\u200b' are one"),
        ("m.csv", "path,Path,brand\na.jpg,a.jpg,acme\n", r"the columns 'path' and 'Path' are one name"),
        ("m.json", '{"images": [{"path": "a.jpg", "brand": "acme", "BRAND": "bolt"}]}', r"entry 1: the columns"),
        ("m.json", '{"images": [{"path": "a.jpg", "brand": "acme", "brand": "bolt"}]}', r"'brand' appears twice"),
    ],
)
def test_two_columns_of_one_name_are_refused(
    engine: Engine, tmp_path: Path, name: str, text: str, message: str
) -> None:
    make_brand_photo(tmp_path / "a.jpg", 0, seed=1)
    manifest = tmp_path / name
    manifest.write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError, match=message):
        import_manifest(manifest, engine=engine)
    assert count_rows(engine, Image.id) == 0


# --------------------------------------------------------------------------- what a terminal shows


@pytest.mark.slow
def test_names_printed_to_a_terminal_show_control_characters_escaped(engine: Engine, tmp_path: Path) -> None:
    root = _photos(tmp_path / "brands")
    (root / "acme" / "\x1b]0;owned\x07\x1b[2J.jpg").write_bytes(b"not a photo")
    (root / "acme" / "evil\u202egpj.exe.jpg").write_bytes(b"not a photo")
    with session_scope(engine, write=True) as session:  # made before such names were cleaned
        session.add(LabelClass(name="Red\x1b[31m\r\x08", attribute_id=1))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ingested = subprocess.run(
        [sys.executable, "-m", "feedback.ingest", str(root), "--holdout-fraction", "0"],
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    listed = subprocess.run(
        [sys.executable, "-m", "feedback.classes", "list"], capture_output=True, env=env, cwd=REPO, timeout=300
    )
    assert ingested.returncode == 0, ingested.stderr.decode()
    assert listed.returncode == 0, listed.stderr.decode()
    out = ingested.stdout.decode() + listed.stdout.decode()
    assert "acme/\\x1b]0;owned\\x07\\x1b[2J.jpg: " in out
    assert "acme/evil\\u202egpj.exe.jpg: " in out
    assert "Red\\x1b[31m\\x0d\\x08" in out
    assert not any(c in out for c in "\x1b\x07\x08\r\u202e")


# --------------------------------------------------------------------------- the Import page


@pytest.mark.slow
def test_a_path_too_long_for_the_system_gets_a_clear_message_on_the_import_page(engine: Engine, tmp_path: Path) -> None:
    ingest_folder(_photos(tmp_path / "brands"), engine=engine)
    at = new_app().run()
    at.switch_page("ui/pages/imports.py").run()
    long = "/" + "a" * 5000
    at.text_input(key="ingest_path_more").input(long)
    at.button(key="FormSubmitter:ingest_more-Ingest").click().run()
    assert_clean(at)
    assert any("the path is too long for this system (5,001 characters" in unescaped(e.value) for e in at.error)
    at.text_input(key="manifest_path").input(long + ".csv")
    at.button(key="FormSubmitter:import_manifest-Import").click().run()
    assert_clean(at)
    assert any("the path is too long for this system (5,005 characters" in unescaped(e.value) for e in at.error)
    assert not any("Something went wrong" in e.value for e in at.error)
