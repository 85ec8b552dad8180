"""A large manifest import commits in chunks: other writers get in between, and a stopped import resumes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from db import get_engine, session_scope
from db.connect import create_db_engine
from db.models import Image, QueueEntry, Review, Split
from feedback.ingest import ingest_folder
from feedback.manifest import import_manifest
from feedback.reviews import record_review
from tests.conftest import REPO, killed_at_third_chunk


def _write_manifest(brand_folder: Path, target: Path) -> Path:
    """All 36 photos, with a colour column; acme's held-out rows lie in the first and in the last chunk."""
    photos = sorted(brand_folder.glob("*/*.jpg"), key=lambda p: (p.parent.name, int(p.stem.split("_")[1])))
    last = brand_folder / "acme" / "acme_11.jpg"
    photos = [p for p in photos if p != last] + [last]
    lines = ["path,brand,split,colour"]
    for n, photo in enumerate(photos):
        split = "holdout" if photo.name in {"acme_0.jpg", "acme_1.jpg", "acme_11.jpg"} else "train"
        lines.append(f"{photo},{photo.parent.name},{split},{'red' if n % 3 else 'blue'}")
    target.write_text("\n".join(lines) + "\n")
    return target


def _count(engine, *where) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count(Image.id)).where(*where))


def _held_out(engine) -> set[str]:
    with session_scope(engine) as session:
        return set(session.scalars(select(Image.sha256).where(Image.split == Split.HOLDOUT)))


@pytest.mark.slow
def test_a_large_import_commits_in_chunks_and_another_writer_gets_in_between(
    db_engine: Engine, brand_folder: Path, pool_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import feedback.manifest as manifest_module

    engine = db_engine

    ingest_folder(pool_folder)
    with session_scope(engine) as session:
        pool_ids = list(session.scalars(select(Image.id).where(Image.split == Split.POOL).order_by(Image.id)))
    manifest = _write_manifest(brand_folder, tmp_path / "m.csv")
    monkeypatch.setenv("SHOELABEL_BUSY_TIMEOUT", "1")  # the other writer waits at most 1 s
    # another connection pool, as another process has
    other = create_db_engine(engine.url.render_as_string(hide_password=False))
    monkeypatch.setattr(manifest_module, "COMMIT_EVERY", 10)
    seen_while_running: list[int] = []  # the photos another connection sees committed as each chunk starts
    real_store = manifest_module._store_chunk

    def store(session, state, chunk) -> None:
        seen_while_running.append(_count(other) - len(pool_ids))
        real_store(session, state, chunk)

    answers: list[int] = []

    def between_chunks(done: int, total: int) -> None:
        if done < total:  # no transaction is open: an answer from another connection goes through at once
            answers.append(record_review(pool_ids[len(answers)], "ann", "correct", label="acme", engine=other))

    monkeypatch.setattr(manifest_module, "_store_chunk", store)
    report = import_manifest(manifest, engine=engine, holdout_fraction=0.25, progress=between_chunks)
    assert report.added == 36 and not report.skipped
    assert seen_while_running == [0, 10, 20, 30]  # each chunk committed before the next begins
    assert len(answers) == 3  # after the first, second and third chunk of four
    with session_scope(engine) as session:
        assert session.scalar(select(func.count(Review.id))) == 3
    other.dispose()


@pytest.mark.slow
def test_an_import_killed_with_sigkill_resumes_without_duplicates_and_draws_as_if_never_killed(
    db_engine: Engine, brand_folder: Path, tmp_path: Path
) -> None:
    engine = db_engine
    manifest = _write_manifest(brand_folder, tmp_path / "m.csv")
    killed = killed_at_third_chunk("feedback.manifest", "import", str(manifest), "--holdout-fraction", "0.25")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _count(engine) == 20  # two chunks committed, the third lost
    assert _count(engine, Image.split == Split.HOLDOUT) == 2  # acme_0 and acme_1, as the manifest says
    again = subprocess.run(
        [sys.executable, "-m", "feedback.manifest", "import", str(manifest), "--holdout-fraction", "0.25"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    assert "Photos added: 16" in again.stdout and "Already stored with the same labels: 20" in again.stdout
    assert "Held-out rows added to training instead" not in again.stdout  # acme's own rows, not a frozen set
    with session_scope(engine) as session:
        assert session.scalar(select(func.count(func.distinct(Image.sha256)))) == 36
        assert session.scalar(select(func.count(QueueEntry.image_id))) == 36
    uninterrupted = get_engine(f"sqlite:///{tmp_path / 'uninterrupted.db'}")
    import_manifest(manifest, engine=uninterrupted, holdout_fraction=0.25)
    assert _held_out(engine) == _held_out(uninterrupted)
    assert len(_held_out(engine)) > 3  # bolt and crest drawn, colour topped up
