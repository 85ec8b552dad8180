"""Faults from the outside: another process holding the database while a command runs."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db import session_scope
from db.models import Image, LabelClass
from tests.conftest import REPO, make_brand_photo


def _run_while_locked(home: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ARGS`` while this test holds the write lock of the catalogue, as a round would."""
    env = {**os.environ, "SHOELABEL_HOME": str(home), "SHOELABEL_BUSY_TIMEOUT": "1"}
    env.pop("SHOELABEL_DB", None)
    holder = sqlite3.connect(home / "shoelabel.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        return subprocess.run(
            [sys.executable, "-m", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.parametrize("command", ["ingest", "manifest import"])
@pytest.mark.slow
def test_commands_say_the_database_is_locked_and_write_nothing(
    engine, home: Path, tmp_path: Path, command: str
) -> None:
    folder = tmp_path / "photos"
    for i in range(3):
        make_brand_photo(folder / "acme" / f"a{i}.jpg", 0, seed=i)
    if command == "ingest":
        args = ["feedback.ingest", str(folder)]
    else:
        manifest = tmp_path / "labels.csv"
        manifest.write_text("path,brand\n" + "".join(f"photos/acme/a{i}.jpg,acme\n" for i in range(3)))
        args = ["feedback.manifest", "import", str(manifest)]
    done = _run_while_locked(home, args)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert "is locked by another process (waited 1s). Nothing was written; try again" in done.stderr
    with session_scope(engine) as session:
        assert session.scalar(select(func.count(Image.id))) == 0
        assert session.scalar(select(func.count(LabelClass.id))) == 0


def test_an_ingest_locked_out_half_way_says_what_it_kept(
    engine, brand_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import feedback.ingest as ingest
    from db import DatabaseBusyError

    real_scope, calls = ingest.session_scope, []

    def scope(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:  # a round takes the lock after the first chunk
            raise DatabaseBusyError("The database is locked by another process (waited 1s). Nothing was written;")
        return real_scope(*args, **kwargs)

    monkeypatch.setattr(ingest, "COMMIT_EVERY", 10)
    monkeypatch.setattr(ingest, "session_scope", scope)
    with pytest.raises(DatabaseBusyError, match=r"had stored 10 photo\(s\) of .* which are kept; run it again"):
        ingest.ingest_folder(brand_folder)
    monkeypatch.setattr(ingest, "session_scope", real_scope)
    report = ingest.ingest_folder(brand_folder, holdout_fraction=0.25)
    assert report.added == 26 and report.totals_per_brand["acme"] == {"train": 9, "holdout": 3}


def test_evaluating_a_folder_reads_it_as_ingest_does(brand_folder: Path) -> None:
    """A symlink loop beside the brand subfolders is no brand for evaluation either."""
    from modeling.evaluate import read_labelled_folder

    (brand_folder / "dotloop").symlink_to(".")
    (brand_folder / "acme" / "up").symlink_to("..")
    files, brands = read_labelled_folder(brand_folder)
    assert sorted(set(brands)) == ["acme", "bolt", "crest"] and len(files) == 36
