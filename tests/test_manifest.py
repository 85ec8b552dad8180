"""Export of the labelled set (CSV, JSON, brand folders) and import of a manifest back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from db import get_engine, session_scope
from db.labels import effective_labels
from db.models import EvaluationDraw, Image, Split
from feedback.ingest import ingest_folder
from feedback.manifest import (
    ManifestError,
    export_folder,
    export_manifest,
    import_manifest,
    labelled_rows,
    main,
    read_manifest,
)
from feedback.reviews import record_review
from tests.conftest import make_brand_photo, without_hanging


def _image_id(engine, name: str) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(Image.id).where(Image.path.endswith(f"/{name}")))


def _catalogue(engine) -> set[tuple[str, str, str]]:
    """(hash, brand, split) of every labelled photo."""
    with session_scope(engine) as session:
        return {(r.sha256, r.brand, r.split) for r in labelled_rows(session)}


@pytest.fixture
def reviewed(engine, brand_folder: Path, pool_folder: Path):
    """A catalogue whose labels come from import and from reviews, with a conflict and a not-a-shoe."""
    ingest_folder(brand_folder, holdout_fraction=0.25)
    ingest_folder(pool_folder)
    record_review(_image_id(engine, "new_0.jpg"), "ann", "correct", label="bolt")  # pool photo labelled
    record_review(_image_id(engine, "acme_1.jpg"), "ann", "correct", label="crest")  # imported brand corrected
    record_review(_image_id(engine, "new_1.jpg"), "ann", "not_a_shoe")
    record_review(_image_id(engine, "new_2.jpg"), "ann", "correct", label="acme")
    record_review(_image_id(engine, "new_2.jpg"), "bob", "correct", label="bolt")  # reviewers disagree
    return engine


def test_export_lists_effective_labels_only(reviewed, tmp_path: Path) -> None:
    rows = export_manifest(tmp_path / "labels.csv", engine=reviewed)
    by_file = {Path(r.path).name: r for r in rows}
    assert len(rows) == 36 + 1  # 36 imported, one pool photo labelled by review
    assert by_file["new_0.jpg"].brand == "bolt" and by_file["new_0.jpg"].origin == "review"
    assert by_file["acme_1.jpg"].brand == "crest"  # the correction, not the folder name
    assert "new_1.jpg" not in by_file and "new_2.jpg" not in by_file  # not a shoe; in conflict
    with session_scope(reviewed) as session:  # a pool photo's first answer may have held it out
        new_0_held_out = session.get(EvaluationDraw, _image_id(reviewed, "new_0.jpg")).held_out
    assert by_file["new_0.jpg"].split == ("holdout" if new_0_held_out else "train")
    assert sum(r.split == "holdout" for r in rows) == 9 + new_0_held_out


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_manifest_reads_back_exactly_into_an_empty_catalogue(
    reviewed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    manifest = tmp_path / f"labels{suffix}"
    exported = export_manifest(manifest, engine=reviewed)
    assert read_manifest(manifest) == exported
    other = get_engine(f"sqlite:///{tmp_path / 'other.db'}")
    report = import_manifest(manifest, engine=other)
    assert report.added == 37 and not report.skipped and report.holdout_drawn == {}
    assert _catalogue(other) == _catalogue(reviewed)
    again = tmp_path / f"again{suffix}"
    export_manifest(again, engine=other)
    assert [(r.sha256, r.path, r.brand, r.split) for r in read_manifest(again)] == [
        (r.sha256, r.path, r.brand, r.split) for r in exported
    ]
    second = import_manifest(manifest, engine=other)  # a second import adds nothing
    assert second.added == 0 and second.unchanged == 37


def test_folder_export_ingests_back_with_the_same_brands(reviewed, tmp_path: Path) -> None:
    report = export_folder(tmp_path / "out", engine=reviewed)
    assert sum(report.copied.values()) == 37 and not report.missing
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["acme", "bolt", "crest"]
    other = get_engine(f"sqlite:///{tmp_path / 'other.db'}")
    ingest_folder(tmp_path / "out", engine=other)
    assert {(s, b) for s, b, _ in _catalogue(other)} == {(s, b) for s, b, _ in _catalogue(reviewed)}
    with pytest.raises(ManifestError, match="not empty"):
        export_folder(tmp_path / "out", engine=reviewed)


def test_import_never_overrides_a_stored_brand_or_the_frozen_holdout(
    engine, brand_folder: Path, tmp_path: Path
) -> None:
    ingest_folder(brand_folder, holdout_fraction=0.25)
    pool_photo = make_brand_photo(tmp_path / "pool" / "p.jpg", 0, seed=777)
    ingest_folder(tmp_path / "pool")
    fresh = make_brand_photo(tmp_path / "fresh" / "f.jpg", 1, seed=778)
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,brand,split\n"
        f"{brand_folder / 'acme' / 'acme_0.jpg'},bolt,train\n"  # stored as acme: reported, kept
        f"{pool_photo},acme,train\n"  # stored unlabelled: gets its brand
        "fresh/f.jpg,bolt,holdout\n"  # relative to the manifest; bolt's held-out set is frozen
        "missing.jpg,acme,train\n"
    )
    report = import_manifest(manifest, engine=engine)
    assert report.disagreements == [(str(brand_folder / "acme" / "acme_0.jpg"), "acme", "bolt")]
    assert report.labelled == 1 and report.added == 1
    assert report.moved_to_train == ["fresh/f.jpg"]
    assert [path for path, _ in report.skipped] == ["missing.jpg"]
    with session_scope(engine) as session:
        labels = effective_labels(session)
        by_name = {Path(i.path).name: i for i in session.scalars(select(Image))}
        assert labels[by_name["acme_0.jpg"].id].brand == "acme"
        assert labels[by_name["p.jpg"].id].brand == "acme" and by_name["p.jpg"].split == Split.TRAIN
        assert by_name["f.jpg"].split == Split.TRAIN and Path(by_name["f.jpg"].path) == fresh.resolve()


def test_a_changed_file_is_skipped(engine, tmp_path: Path) -> None:
    photo = make_brand_photo(tmp_path / "a" / "x.jpg", 0, seed=1)
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"images": [{"sha256": "0" * 64, "path": str(photo), "brand": "acme"}]}))
    report = import_manifest(manifest, engine=engine)
    assert not report.ok and "changed since" in report.skipped[0][1]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.csv", "name,label\nx.jpg,acme\n", "lacks the column path"),
        ("m.csv", "path,split\nx.jpg,train\n", "no attribute column"),
        ("m.csv", "path,brand,split\ngood.jpg,acme,train\nx.jpg,acme,test\n", "line 3: split 'test'"),
        ("m.csv", "path,brand\ngood.jpg,acme\nx.jpg,   \n", "line 3: every attribute is empty"),
        ("m.json", "{not json", "not valid JSON"),
        (
            "m.json",
            '{"images": [{"path": "good.jpg", "brand": "acme"}, {"brand": "acme"}]}',
            "entry 2: the path is empty",
        ),
        ("m.txt", "path,brand\n", "a .csv or .json"),
        (
            "m.json",
            '{"format": "shoelabel-manifest", "version": "2", "images": [{"path": "good.jpg", "brand": "acme"}]}',
            r"m.json is manifest version '2'; this version of shoelabel reads shoelabel-manifest version 1",
        ),
        ("m.json", '{"version": [1], "images": []}', r"version \[1\]; .* reads shoelabel-manifest version 1"),
        (
            "m.csv",
            'path,brand\ngood.jpg,acme\n"x.jpg,acme\ny.jpg,bolt\n',
            r"m.csv, line 3: unterminated quote: .* never closed",
        ),
        ("m.csv", 'path,brand\ngood.jpg,acme\n"x.jpg"y,acme\n', r"m.csv, line 3: not valid CSV"),
    ],
)
def test_bad_manifests_are_refused_with_the_line_and_change_nothing(
    engine, tmp_path: Path, name: str, text: str, message: str
) -> None:
    make_brand_photo(tmp_path / "good.jpg", 0, seed=3)  # a good row before the bad one is not imported either
    manifest = tmp_path / name
    manifest.write_text(text)
    with pytest.raises(ManifestError, match=message):
        import_manifest(manifest, engine=engine)
    assert _catalogue(engine) == set()


def test_command_line_round_trip(reviewed, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path / "labels.json")]) == 0
    assert "Wrote 37 labelled photos" in capsys.readouterr().out
    assert main(["import", str(tmp_path / "labels.json")]) == 0
    assert "Already stored with the same labels: 37" in capsys.readouterr().out
    assert main(["import", str(tmp_path / "nothing.csv")]) == 2
    assert "Manifest not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export"])  # neither a file nor --folder


def _refused_without_hanging(manifest: Path, engine) -> ManifestError:
    """Import ``manifest``; fail (and unblock it) if it blocks."""
    error = without_hanging(lambda: import_manifest(manifest, engine=engine), fifo=manifest)
    assert isinstance(error, ManifestError), error
    return error


def test_devices_fifos_and_huge_files_are_refused_as_manifests_without_being_read(engine, tmp_path: Path) -> None:
    import os
    import resource

    from shoelabel.manifest_files import MAX_MANIFEST_BYTES

    assert "/dev/zero is not a regular file" in str(_refused_without_hanging(Path("/dev/zero"), engine))
    fifo = tmp_path / "labels.csv"
    os.mkfifo(fifo)
    assert "labels.csv is not a regular file" in str(_refused_without_hanging(fifo, engine))
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as handle:
        handle.write(b"path,brand\n")
        handle.truncate(MAX_MANIFEST_BYTES + 50_000_000)  # sparse: no disk space, but too large to read
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ManifestError, match=r"huge.csv is too large for a manifest \(250 MB; the limit is 200 MB\)"):
        import_manifest(huge, engine=engine)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 100
    assert _catalogue(engine) == set()


def test_a_device_listed_in_a_manifest_is_skipped_with_the_reason(engine, tmp_path: Path) -> None:
    make_brand_photo(tmp_path / "good.jpg", 0, seed=3)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,brand\ngood.jpg,acme\n/dev/zero,acme\n")
    report = import_manifest(manifest, engine=engine)
    assert report.added == 1 and [path for path, _ in report.skipped] == ["/dev/zero"]
    assert "a device, not a photo file" in report.skipped[0][1]
