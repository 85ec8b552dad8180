"""Attributes and class hygiene: add an attribute, rename and merge classes, from the API and the command line."""

from __future__ import annotations

import csv
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from db import session_scope
from db.access import Actor, PermissionDenied
from db.catalog import ClassError, class_names, find_class, require_attribute
from db.labels import conflicts, effective_labels, labelled_set
from db.models import Image, Role
from feedback import classes
from feedback.ingest import ingest_folder
from feedback.reviews import record_review, review_history
from tests.conftest import REPO, shared_dir


def first_of(engine, brand: str) -> int:
    with session_scope(engine) as session:
        labels = effective_labels(session)
        return min(i for i, label in labels.items() if label.value == brand)


def test_merge_relabels_every_photo_and_keeps_the_answers_as_given(engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder, holdout_fraction=0.0)
    classes.add_classes("brand", ["ADIDAS"])
    bolt_photo = first_of(engine, "bolt")
    record_review(bolt_photo, "ann", "correct", label="ADIDAS", engine=engine)
    record_review(bolt_photo, "ben", "correct", label="acme", engine=engine)
    with session_scope(engine) as session:
        assert [c.image_id for c in conflicts(session)] == [bolt_photo]  # ADIDAS against acme

    change = classes.merge_classes("brand", "ADIDAS", "acme")
    assert (change.kind, change.old_name, change.new_name, change.changed_by) == ("merge", "ADIDAS", "acme", "operator")
    with session_scope(engine) as session:
        assert conflicts(session) == []  # both answers now mean acme
        assert effective_labels(session, [bolt_photo])[bolt_photo].brand == "acme"
        assert class_names(session) == ["acme", "bolt", "crest"]
        assert find_class(session, "adidas").name == "acme"
        assert labelled_set(session).counts()["acme"] == 13  # 12 imported, and the corrected one
    assert [r["class"] for r in review_history(bolt_photo)] == ["ADIDAS", "acme"]  # as answered

    classes.merge_classes("brand", "bolt", "crest")  # a whole imported class
    with session_scope(engine) as session:
        counts = labelled_set(session).counts()
    assert counts == {"acme": 13, "crest": 23}


def test_rename_keeps_the_old_name_reachable(engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder, holdout_fraction=0.0)
    classes.rename_class("brand", "crest", "Crest Co")
    with session_scope(engine) as session:
        assert class_names(session) == ["Crest Co", "acme", "bolt"]
        assert find_class(session, "CREST").name == "Crest Co"  # a model trained before still says crest
        assert labelled_set(session).counts()["Crest Co"] == 12
    photo = first_of(engine, "acme")
    record_review(photo, "ann", "correct", label="crest", engine=engine)
    with session_scope(engine) as session:
        assert effective_labels(session, [photo])[photo].brand == "Crest Co"
    assert [(c.kind, c.old_name, c.new_name) for c in classes.history()] == [("rename", "crest", "Crest Co")]


def test_bad_changes_are_refused_and_change_nothing(engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder, holdout_fraction=0.0)
    with pytest.raises(ClassError, match="merge 'acme' into it instead"):
        classes.rename_class("brand", "acme", "BOLT")
    with pytest.raises(ClassError, match=r"has no class 'zeta'\. Its classes: acme, bolt, crest"):
        classes.merge_classes("brand", "zeta", "acme")
    with pytest.raises(ClassError, match="one class of brand already"):
        classes.merge_classes("brand", "acme", "ACME")
    with pytest.raises(ClassError, match="Unknown attribute 'size'"):
        classes.rename_class("size", "a", "b")
    with pytest.raises(PermissionDenied):
        classes.merge_classes("brand", "acme", "bolt", actor=Actor("rita", Role.REVIEWER))
    assert classes.schema() == {"brand": ["acme", "bolt", "crest"]} and classes.history() == []


def test_a_new_attribute_is_answered_per_photo(engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder, holdout_fraction=0.0)
    assert classes.add_attribute("Colour") == "colour"
    assert classes.add_attribute("colour") == "colour"  # once
    classes.add_classes("colour", ["Black", "White"])
    with session_scope(engine) as session:
        colour = require_attribute(session, "colour").id
        photo = session.scalar(select(Image.id).order_by(Image.id).limit(1))
    record_review(photo, "ann", "correct", label="black", attribute_id=colour, engine=engine)
    record_review(photo, "ben", "correct", label="White", attribute_id=colour, engine=engine)
    with session_scope(engine) as session:
        by_colour = effective_labels(session, [photo], colour)[photo]
        by_brand = effective_labels(session, [photo])[photo]
        assert by_colour.conflict and {a.value for a in by_colour.answers.values()} == {"Black", "White"}
        assert not by_brand.conflict and by_brand.brand is not None  # brand is untouched
        assert [c.image_id for c in conflicts(session, colour)] == [photo] and conflicts(session) == []
    with pytest.raises(ClassError, match="Unknown colour 'red'"):
        record_review(photo, "ann", "correct", label="red", attribute_id=colour, engine=engine)
    assert classes.schema()["colour"] == ["Black", "White"]


@pytest.mark.slow
def test_command_line_in_its_own_process(engine, home: Path, brand_folder: Path) -> None:
    ingest_folder(brand_folder, holdout_fraction=0.0)
    env = {**os.environ, "SHOELABEL_HOME": str(home)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "feedback.classes", *args], env=env, capture_output=True, text=True, timeout=120
        )

    assert run("add-attribute", "gender").returncode == 0
    done = run("merge", "--attribute", "brand", "bolt", "acme")
    assert done.returncode == 0 and "merged 'bolt' into 'acme' by operator" in done.stdout
    listed = run("list")
    assert "brand (2 classes): acme, crest" in listed.stdout and "gender (0 classes)" in listed.stdout
    refused = run("rename", "--attribute", "brand", "acme", "Crest")
    assert refused.returncode == 2 and "merge 'acme' into it instead" in refused.stderr
    assert "merged 'bolt' into 'acme'" in run("history").stdout


def test_a_folder_of_colour_subfolders_labels_colour(engine, brand_folder: Path, tmp_path: Path) -> None:
    ingest_folder(brand_folder, holdout_fraction=0.0)
    colours = tmp_path / "colours"
    for n, source in enumerate(sorted(brand_folder.rglob("*.jpg"))):
        target = colours / ("Black" if n % 2 else "White") / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())  # the same photos, now labelled by colour
    report = ingest_folder(colours, attribute="colour", holdout_fraction=0.0)
    assert report.added == 0 and report.newly_labelled == 36
    with session_scope(engine) as session:
        colour = require_attribute(session, "colour").id
        values = {label.brand for label in effective_labels(session, attribute_id=colour).values()}
        assert values == {"Black", "White"}
        assert labelled_set(session).counts() == {"acme": 12, "bolt": 12, "crest": 12}  # brand untouched


def test_adding_classes_says_what_became_of_each_name(engine) -> None:
    classes.add_attribute("colour")
    first = classes.add_classes("colour", ["Black", "white", "WHITE"])
    assert (first.added, first.present, first.repeated) == (["Black", "white"], [], [("WHITE", "white")])
    assert first.describe() == "colour: added 'Black', 'white'. 'WHITE' is 'white' again: added once."
    second = classes.add_classes("colour", ["black", "Red", "white"])
    assert (second.added, second.present) == (["Red"], [("black", "Black"), ("white", "white")])
    assert second.describe() == (
        "colour: added 'Red'. 'black' is the class 'Black' already. 'white' is a class already."
    )
    nothing = classes.add_classes("colour", ["red"])
    assert nothing.describe() == "colour: no class added. 'red' is the class 'Red' already."
    assert classes.schema()["colour"] == ["Black", "Red", "white"]


def test_adding_an_attribute_that_exists_is_refused_unless_asked_to_keep_it(engine) -> None:
    assert classes.add_attribute("colour") == "colour"
    with pytest.raises(classes.AttributeExists, match=r"There is an attribute 'colour' already.*Add classes"):
        classes.add_attribute("Colour", exist_ok=False)
    assert classes.add_attribute("Colour") == "colour"  # the command line's add-attribute: nothing to do
    assert list(classes.schema()) == ["brand", "colour"]


def test_a_merge_counts_the_photos_it_relabels_and_can_be_undone(engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder, holdout_fraction=0.0)
    acme_photo = first_of(engine, "acme")
    record_review(acme_photo, "ann", "correct", label="bolt", engine=engine)  # answered bolt: affected too
    assert classes.merge_preview("brand", "bolt", "acme").photos == 13
    assert classes.merge_preview("brand", "bolt", "acme").question() == (
        "Merge 'bolt' into 'acme'? 13 photos labelled or answered 'bolt' will read as 'acme'."
    )
    with pytest.raises(ClassError, match="one class of brand already"):
        classes.merge_preview("brand", "bolt", "BOLT")
    classes.merge_classes("brand", "crest", "bolt")  # crest into bolt, then bolt into acme: crest follows
    classes.merge_classes("brand", "bolt", "acme")
    with session_scope(engine) as session:
        assert labelled_set(session).counts() == {"acme": 36}
    assert classes.merged_classes("brand") == [("bolt", "acme"), ("crest", "acme")]
    change = classes.undo_merge("brand", "bolt", actor=Actor("ann", Role.ADMIN))
    assert (change.kind, change.old_name, change.new_name, change.changed_by) == ("unmerge", "bolt", "acme", "ann")
    assert "undid the merge of 'bolt' into 'acme' by ann" in classes.describe(change)
    with session_scope(engine) as session:
        assert labelled_set(session).counts() == {"acme": 11, "bolt": 25}  # crest is still merged into bolt
        assert effective_labels(session, [acme_photo])[acme_photo].brand == "bolt"  # as answered
    assert classes.merged_classes("brand") == [("crest", "bolt")]
    classes.undo_merge("brand", "crest")
    assert classes.schema()["brand"] == ["acme", "bolt", "crest"]
    with pytest.raises(ClassError, match="'acme' is not merged into another class"):
        classes.undo_merge("brand", "acme")
    assert [c.kind for c in classes.history()] == ["merge", "merge", "unmerge", "unmerge"]


@pytest.mark.slow
def test_the_readme_merge_example_runs_on_the_catalogue_it_names(home: Path, tmp_path: Path) -> None:
    labels = shared_dir() / "data" / "catalogue-shoes" / "labels.csv"
    if not labels.is_file():
        pytest.skip(f"the catalogue manifest is not at {labels}; set SHOELABEL_SHARED to the shared folder")
    line = next(line for line in (REPO / "README.md").read_text().splitlines() if "feedback.classes merge" in line)
    command = shlex.split(line.split("#")[0])
    named = command[-2:]
    with labels.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["brand"] in named]
    part = tmp_path / "part.csv"  # the photos of the brands the example names, four of each
    with part.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "brand"])
        for brand in named:
            writer.writerows([labels.parent / r["file"], brand] for r in [r for r in rows if r["brand"] == brand][:4])
    env = {**os.environ, "SHOELABEL_HOME": str(home)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)

    imported = run("-m", "feedback.manifest", "import", str(part))
    assert imported.returncode == 0, imported.stderr
    assert command[:3] == ["python", "-m", "feedback.classes"]
    merged = run(*command[1:])
    assert merged.returncode == 0, merged.stderr
    assert f"merged {named[0]!r} into {named[1]!r}" in merged.stdout
    assert f"4 photos labelled or answered {named[0]!r} now read as {named[1]!r}" in merged.stdout
    undone = run("-m", "feedback.classes", "unmerge", "--attribute", "brand", named[0])
    assert undone.returncode == 0 and "undid the merge" in undone.stdout, undone.stderr


def test_a_class_added_with_an_answer_needs_an_admin_or_the_team_setting(engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder, holdout_fraction=0.0)
    rita, ann = Actor("rita", Role.REVIEWER), Actor("ann", Role.ADMIN)
    assert classes.known_class("brand", "BOLT") == "bolt" and classes.known_class("brand", "zeta") is None
    assert (
        classes.may_add_classes(ann)
        and not classes.may_add_classes(rita)
        and not classes.may_add_classes(Actor("vic", Role.VIEWER))
    )
    with pytest.raises(
        PermissionDenied, match="Only an admin can add a class with an answer here: ask one to add 'zeta'"
    ):
        classes.add_answer_class("brand", "zeta", actor=rita)
    with pytest.raises(PermissionDenied):
        classes.set_reviewers_add_classes(True, actor=rita)
    assert classes.set_reviewers_add_classes(True, actor=ann) is True
    assert classes.reviewers_add_classes() and classes.may_add_classes(rita)
    assert classes.add_answer_class("brand", "zeta", actor=rita) == "zeta"
    assert classes.add_answer_class("brand", "ZETA", actor=ann) == "zeta"  # the class it is already
    with pytest.raises(PermissionDenied):
        classes.add_answer_class("brand", "omega", actor=Actor("vic", Role.VIEWER))
    assert classes.schema()["brand"] == ["acme", "bolt", "crest", "zeta"]
