"""Ingest: labelled and flat folders, dedupe, bad files, frozen stratified held-out split, streaming, resuming."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db import get_engine, session_scope
from db.labels import effective_labels
from db.models import Image, ImportedLabel, LabelClass, ModelStatus, ModelVersion, QueueEntry, Split
from feedback.ingest import IngestError, ingest_folder, main
from shoelabel.progress import Rate
from tests.conftest import REPO, killed_at_third_chunk, make_brand_photo, make_photo


def _counts(engine) -> dict[str, int]:
    with session_scope(engine) as session:
        return {str(split): n for split, n in session.execute(select(Image.split, func.count()).group_by(Image.split))}


def test_labelled_folder_gets_brands_and_a_stratified_holdout(engine, brand_folder: Path) -> None:
    report = ingest_folder(brand_folder, holdout_fraction=0.25, seed=1)
    assert report.labelled and report.added == 36 and not report.skipped
    assert report.holdout_drawn == {"acme": 3, "bolt": 3, "crest": 3}
    with session_scope(engine) as session:
        assert sorted(session.scalars(select(LabelClass.name))) == ["acme", "bolt", "crest"]
        rows = session.execute(
            select(LabelClass.name, Image.split)
            .join(ImportedLabel, ImportedLabel.class_id == LabelClass.id)
            .join(Image, Image.id == ImportedLabel.image_id)
        ).all()
    per_brand = {b: sum(1 for name, s in rows if name == b and s == Split.HOLDOUT) for b in ("acme", "bolt", "crest")}
    assert per_brand == {"acme": 3, "bolt": 3, "crest": 3}


def test_second_run_adds_nothing_and_held_out_photos_never_move(engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder, holdout_fraction=0.25)
    with session_scope(engine) as session:
        holdout_before = set(session.scalars(select(Image.sha256).where(Image.split == Split.HOLDOUT)))
    for i in range(12, 24):  # more data arrives later: acme's held-out share is topped up to 6 of 24
        make_brand_photo(brand_folder / "acme" / f"late_{i}.jpg", 0, seed=5000 + i)
    again = ingest_folder(brand_folder, holdout_fraction=0.25)
    assert again.added == 12 and again.already_stored == 36 and again.holdout_drawn == {"acme": 3}
    assert again.totals_per_brand["acme"] == {"train": 18, "holdout": 6}
    with session_scope(engine) as session:
        holdout_after = set(session.scalars(select(Image.sha256).where(Image.split == Split.HOLDOUT)))
    assert holdout_before < holdout_after and len(holdout_after) == 12
    third = ingest_folder(brand_folder, holdout_fraction=0.25)
    assert third.added == 0 and third.already_stored == 48 and third.ok and third.holdout_drawn == {}


def test_holdout_is_drawn_for_a_brand_that_arrives_later(engine, brand_folder: Path, tmp_path: Path) -> None:
    ingest_folder(brand_folder, holdout_fraction=0.25)
    extra = tmp_path / "more"
    for i in range(8):
        make_brand_photo(extra / "delta" / f"d{i}.jpg", 3, seed=9000 + i)
    report = ingest_folder(extra, holdout_fraction=0.25)
    assert report.holdout_drawn == {"delta": 2}
    assert report.totals_per_brand["acme"] == {"train": 9, "holdout": 3}


def test_bad_files_are_reported_by_name_and_the_rest_ingested(engine, brand_folder: Path) -> None:
    nike = brand_folder / "acme"
    good = (nike / "acme_0.jpg").read_bytes()
    (nike / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (nike / "notes.jpg").write_text("not a photo at all")
    (nike / "empty.jpg").write_bytes(b"")
    make_photo(nike / "tiny.png", size=(10, 10), fmt="PNG")
    report = ingest_folder(brand_folder)
    skipped = dict(report.skipped)
    assert set(skipped) == {"acme/truncated.jpg", "acme/notes.jpg", "acme/empty.jpg", "acme/tiny.png"}
    assert "truncated" in skipped["acme/truncated.jpg"]
    assert "not an image" in skipped["acme/notes.jpg"]
    assert "empty" in skipped["acme/empty.jpg"]
    assert "too small" in skipped["acme/tiny.png"]
    assert report.added == 36
    assert "acme/notes.jpg: not an image" in report.summary()


def test_same_photo_twice_is_one_image(engine, tmp_path: Path) -> None:
    folder = tmp_path / "flat"
    make_photo(folder / "a.jpg", seed=1, fmt="JPEG")
    shutil.copy(folder / "a.jpg", folder / "a_copy.jpg")
    make_photo(folder / "b.png", seed=2, fmt="PNG")
    report = ingest_folder(folder)
    assert not report.labelled and report.added == 2
    assert report.duplicates_in_folder == [("a_copy.jpg", "a.jpg")]
    assert _counts(engine) == {"pool": 2}


def test_unlabelled_image_gets_its_brand_when_a_labelled_folder_has_it(
    engine, brand_folder: Path, tmp_path: Path
) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(brand_folder / "bolt" / "bolt_3.jpg", flat / "mystery.jpg")
    ingest_folder(flat)
    report = ingest_folder(brand_folder, holdout_fraction=0.0)
    assert report.newly_labelled == 1 and report.added == 35
    with session_scope(engine) as session:
        image = session.scalar(select(Image).where(Image.path.like("%mystery.jpg")))
        assert image.split == Split.TRAIN and effective_labels(session, [image.id])[image.id].imported == "bolt"


def test_empty_and_missing_folders_are_clear_errors(home: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match="No files in"):
        ingest_folder(tmp_path / "empty")
    with pytest.raises(IngestError, match="Folder not found"):
        ingest_folder(tmp_path / "missing")


def test_cli_exit_status_is_nonzero_only_when_nothing_could_be_ingested(home: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_text("text")
    assert main([str(bad)]) == 1
    assert "x.jpg: not an image" in capsys.readouterr().out
    good = tmp_path / "good"
    make_photo(good / "p.jpg", fmt="JPEG")
    assert main([str(good)]) == 0
    assert main([str(good)]) == 0  # everything already stored is not a failure
    assert main([str(tmp_path / "nowhere")]) == 2


def test_real_photos_ingest_into_three_brands_with_holdout(engine, photos_dir: Path) -> None:
    report = ingest_folder(photos_dir)
    assert report.added == 711 and not report.skipped
    assert report.totals_per_brand == {b: {"train": 201, "holdout": 36} for b in ("adidas", "converse", "nike")}
    assert ingest_folder(photos_dir).added == 0


def _a_model_trains(engine) -> None:
    """Record a model version, as a round does: every photo stored so far may be in its training data."""
    with session_scope(engine, write=True) as session:
        session.add(
            ModelVersion(arch="cnn", path="m.keras", status=ModelStatus.CURRENT, class_names=["x"], input_size=32)
        )


def test_a_late_held_out_set_is_drawn_only_from_photos_no_model_trained_on(engine, tmp_path: Path) -> None:
    first = tmp_path / "first"
    for i in range(3):  # too few to hold any out: all three train, and a model learns from them
        make_brand_photo(first / "delta" / f"d{i}.jpg", 3, seed=7000 + i)
    assert ingest_folder(first, holdout_fraction=0.15).holdout_drawn == {}
    _a_model_trains(engine)
    later = tmp_path / "later"
    for i in range(12):
        make_brand_photo(later / "delta" / f"e{i}.jpg", 3, seed=7100 + i)
    assert ingest_folder(later, holdout_fraction=0.15).holdout_drawn == {"delta": 2}
    with session_scope(engine) as session:
        held_out = list(session.scalars(select(Image.path).where(Image.split == Split.HOLDOUT)))
    assert len(held_out) == 2 and all("/later/" in path for path in held_out)


def test_an_ingest_killed_after_its_first_commit_reaches_the_held_out_target_when_run_again(
    engine, brand_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import feedback.ingest as ingest

    real_store, stored = ingest._store_chunk, []

    def store_then_die(session, report, chunk) -> None:
        real_store(session, report, chunk)
        stored.append(len(chunk))
        if len(stored) == 2:  # the first chunk of 10 is committed; the process dies in the second
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(ingest, "COMMIT_EVERY", 10)
    monkeypatch.setattr(ingest, "_store_chunk", store_then_die)
    with pytest.raises(KeyboardInterrupt):
        ingest_folder(brand_folder, holdout_fraction=0.25)
    assert _counts(engine) == {"train": 10}  # acme's first 10 photos, no held-out draw yet
    monkeypatch.setattr(ingest, "_store_chunk", real_store)
    report = ingest_folder(brand_folder, holdout_fraction=0.25)
    assert report.added == 26 and report.already_stored == 10
    assert report.holdout_drawn == {"acme": 3, "bolt": 3, "crest": 3}  # round(12 * 0.25) each, not 1 for acme
    assert report.totals_per_brand == {b: {"train": 9, "holdout": 3} for b in ("acme", "bolt", "crest")}
    other = get_engine(f"sqlite:///{tmp_path / 'uninterrupted.db'}")
    ingest_folder(brand_folder, holdout_fraction=0.25, engine=other)
    assert _held_out(engine) == _held_out(other)  # the same draw as an ingest that was never killed


def _held_out(engine) -> set[str]:
    with session_scope(engine) as session:
        return set(session.scalars(select(Image.sha256).where(Image.split == Split.HOLDOUT)))


def test_a_short_held_out_set_is_topped_up_only_from_photos_no_model_trained_on(
    engine, brand_folder: Path, tmp_path: Path
) -> None:
    ingest_folder(brand_folder, holdout_fraction=0.25)
    before = _held_out(engine)
    _a_model_trains(engine)
    more = tmp_path / "more"
    for i in range(12):
        make_brand_photo(more / "acme" / f"m{i}.jpg", 0, seed=8000 + i)
    report = ingest_folder(more, holdout_fraction=0.25)
    assert report.holdout_drawn == {"acme": 3}
    with session_scope(engine) as session:
        new = session.scalars(select(Image.path).where(Image.sha256.in_(_held_out(engine) - before))).all()
    assert len(new) == 3 and all("/more/" in path for path in new)
    assert before < _held_out(engine)


def test_symlinks_that_loop_or_lead_outside_are_reported_and_skipped(
    engine, brand_folder: Path, tmp_path: Path
) -> None:
    import os

    (brand_folder / "dotloop").symlink_to(".")  # would be a brand "dotloop" holding every photo again
    (brand_folder / "acme" / "up").symlink_to("..")
    elsewhere = make_brand_photo(tmp_path / "elsewhere" / "e.jpg", 1, seed=4242)
    (brand_folder / "bolt" / "outside.jpg").symlink_to(elsewhere)
    (brand_folder / "bolt" / "gone.jpg").symlink_to("nothing-here.jpg")
    hidden = make_brand_photo(brand_folder / ".store" / "h.jpg", 2, seed=4343)
    (brand_folder / "crest" / "linked.jpg").symlink_to(hidden)  # inside the folder: fine
    os.mkfifo(brand_folder / "pipe")
    report = ingest_folder(brand_folder)
    skipped = dict(report.skipped)
    assert set(skipped) == {"dotloop", "acme/up", "bolt/outside.jpg", "bolt/gone.jpg", "pipe"}
    assert "symlink loop" in skipped["dotloop"] and "symlink loop" in skipped["acme/up"]
    assert "outside" in skipped["bolt/outside.jpg"] and "broken symlink" in skipped["bolt/gone.jpg"]
    assert "named pipe" in skipped["pipe"]
    assert report.added == 37 and report.added_per_brand == {"acme": 12, "bolt": 12, "crest": 13}
    assert "dotloop: symlink loop" in report.summary()
    with session_scope(engine) as session:
        assert sorted(session.scalars(select(LabelClass.name))) == ["acme", "bolt", "crest"]
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "dotloop").symlink_to(".")
    with pytest.raises(IngestError, match="dotloop: symlink loop"):
        ingest_folder(lonely)


@pytest.mark.parametrize("route", ["folder", "manifest"])
def test_a_brand_offered_again_follows_one_rule_on_every_route(engine, pool_folder: Path, tmp_path: Path, route: str):
    """A pool photo a reviewer labelled keeps the reviewer's brand when a folder or a manifest names
    another: the disagreement is reported, nothing is overridden; an unreviewed one takes the brand."""
    from feedback.manifest import import_manifest
    from feedback.reviews import record_review

    ingest_folder(pool_folder)
    with session_scope(engine) as session:
        reviewed_id, fresh_id = list(session.scalars(select(Image.id).order_by(Image.id)))[:2]
        session.add(LabelClass(name="acme"))
    record_review(reviewed_id, "ann", "correct", label="acme")
    files = sorted(pool_folder.iterdir())[:2]
    if route == "folder":
        offered = tmp_path / "offered"
        for f in files:
            shutil.copy(f, (offered / "bolt").mkdir(parents=True, exist_ok=True) or offered / "bolt" / f.name)
        report = ingest_folder(offered)
        disagreements, labelled = report.label_conflicts, report.newly_labelled
    else:
        manifest = tmp_path / "offered.csv"
        manifest.write_text("path,brand\n" + "".join(f"{f},bolt\n" for f in files))
        report = import_manifest(manifest)
        disagreements, labelled = report.disagreements, report.labelled
    assert [(kept, offered) for _, kept, offered in disagreements] == [("acme", "bolt")]
    assert labelled == 1
    with session_scope(engine) as session:
        labels = effective_labels(session, [reviewed_id, fresh_id])
        fresh = session.get(Image, fresh_id)
        assert labels[reviewed_id].value == "acme" and labels[reviewed_id].imported is None
        assert labels[fresh_id].value == "bolt" and fresh.split == Split.TRAIN


def test_a_folder_of_many_chunks_is_read_and_stored_chunk_by_chunk(
    engine, brand_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder is streamed: a chunk is stored before the files two chunks later are read."""
    import feedback.ingest as ingest

    real_inspect, real_store = ingest.inspect, ingest._store_chunk
    read: list[Path] = []
    stored: list[tuple[int, int]] = []  # (files in the chunk, files read when it was stored)

    def store(session, report, chunk) -> None:
        stored.append((len(chunk), len(read)))
        real_store(session, report, chunk)

    monkeypatch.setattr(ingest, "COMMIT_EVERY", 5)
    monkeypatch.setattr(ingest, "inspect", lambda path: read.append(path) or real_inspect(path))
    monkeypatch.setattr(ingest, "_store_chunk", store)
    calls: list[tuple[int, int]] = []
    report = ingest_folder(brand_folder, holdout_fraction=0.25, progress=lambda done, n: calls.append((done, n)))
    assert report.added == 36 and report.holdout_drawn == {"acme": 3, "bolt": 3, "crest": 3}
    assert [size for size, _ in stored] == [5] * 7 + [1]
    assert all(seen <= 5 * (i + 2) for i, (_, seen) in enumerate(stored))  # this chunk and the next, no more
    assert calls[0] == (0, 36) and calls[-1] == (36, 36)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    with session_scope(engine) as session:  # every new photo has its place in the review queues
        assert session.scalar(select(func.count(QueueEntry.image_id))) == 36


def test_photos_offered_a_brand_again_have_their_labels_read_once_per_chunk(
    engine, brand_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import feedback.ingest as ingest

    flat = tmp_path / "flat"
    flat.mkdir()
    for brand in ("acme", "bolt", "crest"):
        for photo in (brand_folder / brand).iterdir():
            shutil.copy(photo, flat / photo.name)
    ingest_folder(flat)
    reads: list[int] = []
    real = ingest.effective_labels
    monkeypatch.setattr(
        ingest, "effective_labels", lambda session, ids, *rest: reads.append(len(ids)) or real(session, ids, *rest)
    )
    monkeypatch.setattr(ingest, "COMMIT_EVERY", 12)
    report = ingest_folder(brand_folder, holdout_fraction=0.0)
    assert report.newly_labelled == 36 and report.added == 0
    assert reads == [12, 12, 12]
    assert report.totals_per_brand == {b: {"train": 12} for b in ("acme", "bolt", "crest")}


def test_the_same_photo_in_two_chunks_is_stored_once_and_named_as_a_duplicate(
    engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import feedback.ingest as ingest

    monkeypatch.setattr(ingest, "COMMIT_EVERY", 2)
    folder = tmp_path / "flat"
    for i in range(4):
        make_photo(folder / f"p{i}.jpg", seed=i, fmt="JPEG")
    shutil.copy(folder / "p0.jpg", folder / "z_copy.jpg")  # three chunks later
    report = ingest_folder(folder)
    assert report.added == 4 and report.duplicates_in_folder == [("z_copy.jpg", "p0.jpg")]
    again = ingest_folder(folder)
    assert again.added == 0 and again.already_stored == 4 and again.duplicates_in_folder == [("z_copy.jpg", "p0.jpg")]
    (folder / "p0.jpg").rename(folder / "p0_renamed.jpg")  # the stored file is gone: no duplicate any more
    renamed = ingest_folder(folder)
    assert renamed.already_stored == 5 and renamed.duplicates_in_folder == []
    assert _counts(engine) == {"pool": 4}


def test_a_run_with_nothing_to_hold_out_reads_no_candidates(
    engine, brand_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import feedback.ingest as ingest

    ingest_folder(brand_folder, holdout_fraction=0.25)
    monkeypatch.setattr(ingest, "_holdout_candidates", lambda *args: pytest.fail("read every training photo"))
    assert ingest_folder(brand_folder, holdout_fraction=0.25).holdout_drawn == {}


def test_progress_text_has_the_rate_and_the_time_left() -> None:
    clock = iter([100.0, 104.0, 108.0])
    rate = Rate("photos", clock=lambda: next(clock))
    assert rate.text(0, 1000) == "0/1,000 photos"
    assert rate.text(200, 1000) == "200/1,000 photos, 50 photos/s, about 16s left"
    assert rate.text(1000, 1000) == "1,000/1,000 photos, 125 photos/s"


@pytest.mark.slow
def test_an_ingest_killed_with_sigkill_resumes_without_duplicates(engine, brand_folder: Path, tmp_path: Path) -> None:
    killed = killed_at_third_chunk("feedback.ingest", str(brand_folder), "--holdout-fraction", "0.25")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _counts(engine) == {"train": 20}  # two chunks committed, the third lost, nothing held out yet
    again = subprocess.run(
        [sys.executable, "-m", "feedback.ingest", str(brand_folder), "--holdout-fraction", "0.25"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    assert "Images added: 16" in again.stdout and "Already stored (same content): 20" in again.stdout
    assert "36/36" in again.stderr and "photos/s" in again.stderr  # the bar: count, rate
    with session_scope(engine) as session:
        assert session.scalar(select(func.count(func.distinct(Image.sha256)))) == 36
        assert session.scalar(select(func.count(QueueEntry.image_id))) == 36
    assert _counts(engine) == {"train": 27, "holdout": 9}
    other = get_engine(f"sqlite:///{tmp_path / 'uninterrupted.db'}")
    ingest_folder(brand_folder, holdout_fraction=0.25, engine=other)
    assert _held_out(engine) == _held_out(other)
