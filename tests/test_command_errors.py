"""When the machine fails rather than the program (a damaged database file, a full disk, a file size limit,
read-only folders, a malformed SHOELABEL_DB) or the input is hostile (a NUL in a manifest path, a JSON manifest
nested 200,000 deep, a NUL in a class name), commands print one ``error:`` line and exit 2, without a
traceback; what was stored stays intact. Each is run as a fresh process, as an operator would."""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.exc import DataError

from db import session_scope
from db.models import Image, Round
from feedback.classes import class_list
from feedback.ingest import ingest_folder
from feedback.ingest import main as ingest_main
from feedback.manifest import main as manifest_main
from shoelabel.cli import machine_error, run_command
from tests.conftest import REPO, count_rows, make_brand_folder, make_brand_photo


def command(
    *args: str, env: dict[str, str] | None = None, wrap: list[str] | None = None, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """``python -m ARGS`` in a fresh process, with this test's home and database (and ``env`` on top)."""
    return subprocess.run(
        [*(wrap or []), sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        cwd=REPO,
        timeout=300,
        **kwargs,
    )


def assert_refused(done: subprocess.CompletedProcess[str], *said: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    for text in said:
        assert text in errors[0], errors[0]


def photo_folder(root: Path, n: int = 20) -> Path:
    return make_brand_folder(root, ("acme", "bolt"), per_brand=n, seed_step=100, size=96)


# --------------------------------------------------------------------------- the database


def test_a_damaged_database_file_is_named_with_what_to_do(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "shoelabel.db").write_bytes(b"this is no database, " * 200)
    done = command("feedback.classes", "list")
    assert_refused(done, str(home / "shoelabel.db"), "file is not a database", "restore it from a backup")
    assert (home / "shoelabel.db").read_bytes() == b"this is no database, " * 200


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nonsense", "'nonsense'"),
        ("postgres://ann:secret@localhost/shoes", "'postgres://ann:***@localhost/shoes'"),
        ("postgresql+psycopg://ann:secret@localhost:port/shoes", "'postgresql+psycopg://ann:***@localhost:port/shoes'"),
        ("mysql://ann@localhost/shoes", "'mysql://ann@localhost/shoes'"),
    ],
)
def test_a_malformed_shoelabel_db_is_named_without_its_password(home: Path, url: str, shown: str) -> None:
    done = command("feedback.classes", "list", env={"SHOELABEL_DB": url})
    assert_refused(done, f"SHOELABEL_DB={shown} is not a database URL", "sqlite:////")
    assert "secret" not in done.stderr


@pytest.mark.slow
def test_a_file_size_limit_stops_an_ingest_with_an_error_line_and_keeps_the_database(
    engine: Engine, tmp_path: Path
) -> None:
    folder = photo_folder(tmp_path / "brands")
    engine.dispose()  # the database exists, migrated; the command writes to it under the limit

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (48 * 1024, resource.RLIM_INFINITY))

    done = command("feedback.ingest", str(folder), preexec_fn=limited)
    assert_refused(done, "could not be written", "a file size limit")
    assert ingest_folder(folder, engine=engine).added == 40  # intact, and the ingest goes on without the limit
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def test_a_full_disk_under_the_database_is_an_error_line(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = photo_folder(tmp_path / "brands", 40)  # more rows than the free room in the pages there are
    with engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar()
    engine.dispose()

    def full(dbapi_connection: sqlite3.Connection, _record: object) -> None:  # SQLite's own "disk is full"
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(engine, "connect", full)
    try:
        assert ingest_main([str(folder)]) == 2
    finally:
        event.remove(engine, "connect", full)
        engine.dispose()
    err = capsys.readouterr().err
    assert "error: the database sqlite:///" in err
    assert "database or disk is full" in err and "free some space and run the command again" in err
    assert count_rows(engine, Image.id) == 0


def test_a_full_disk_under_a_written_file_is_an_error_line(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_folder(photo_folder(tmp_path / "brands", 2), engine=engine)
    target = tmp_path / "labels.csv"

    def full(self: Path, *_args: object, **_kwargs: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_text", full)
    assert manifest_main(["export", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {target}: No space left on device; the disk is full")
    assert "Traceback" not in err


def test_errors_of_the_program_itself_keep_their_traceback() -> None:
    def broken(_argv: list[str] | None) -> int:
        raise OSError(errno.ENOENT, "No such file or directory", "x")

    with pytest.raises(FileNotFoundError):
        run_command(broken, [])
    assert machine_error(KeyError("x")) is None
    assert machine_error(OSError(errno.EFBIG, "File too large", "m.keras")).startswith("m.keras: File too large;")


# --------------------------------------------------------------------------- folders that cannot be written


def read_only(folder: Path) -> Callable[[], list[str]]:
    """A prefix for a command that sees ``folder`` read-only: a read-only bind mount in a mount namespace of its
    own (root ignores file modes), or the folder's mode (anyone else). Skips where neither works."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return lambda: []
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: no way to make a folder read-only")
    wrap = ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder)]
    probe = subprocess.run([*wrap, "touch", str(folder / ".probe")], capture_output=True, text=True)
    if probe.returncode == 0 or "Read-only" not in probe.stderr:
        pytest.skip(f"cannot mount a folder read-only here: {probe.stderr.strip()}")
    return lambda: wrap


@pytest.mark.slow
def test_a_read_only_home_folder_is_an_error_line(engine: Engine, home: Path, tmp_path: Path) -> None:
    folder = photo_folder(tmp_path / "brands", 2)
    engine.dispose()
    wrap = read_only(home)
    try:
        listed = command("feedback.classes", "list", wrap=wrap())
        ingested = command("feedback.ingest", str(folder), wrap=wrap())
    finally:
        home.chmod(0o755)
    for done in (listed, ingested):
        assert_refused(done, "Cannot open the database sqlite:///", "must be writable", "SHOELABEL_HOME")
    assert count_rows(engine, Image.id) == 0


@pytest.mark.slow
def test_training_checks_the_models_folder_before_it_starts(engine: Engine, home: Path, tmp_path: Path) -> None:
    ingest_folder(photo_folder(tmp_path / "brands", 6), engine=engine)
    models = home / "models"
    models.mkdir(parents=True, exist_ok=True)
    engine.dispose()
    wrap = read_only(models)
    try:
        done = command("modeling.train", "--arch", "cnn", "--epochs", "1", wrap=wrap())
    finally:
        models.chmod(0o755)
    assert_refused(done, f"Cannot write to the models folder {models}", "nothing was started")
    assert count_rows(engine, Round.id) == 0


# --------------------------------------------------------------------------- hostile manifests


@pytest.mark.slow
def test_a_nul_character_in_a_manifest_path_is_refused_naming_the_row(engine: Engine, tmp_path: Path) -> None:
    make_brand_photo(tmp_path / "a.jpg", 0, seed=1)
    csv_manifest = tmp_path / "m.csv"
    csv_manifest.write_text("path,brand\na.jpg,acme\na\x00.jpg,acme\n", encoding="utf-8")
    json_manifest = tmp_path / "m.json"
    json_manifest.write_text(json.dumps({"images": [{"file": "a\x00.jpg", "brand": "acme"}]}), encoding="utf-8")
    assert_refused(command("feedback.manifest", "import", str(csv_manifest)), "m.csv, line 3: the path holds a NUL")
    assert_refused(command("feedback.manifest", "import", str(json_manifest)), "m.json, entry 1: the file holds a NUL")
    assert count_rows(engine, Image.id) == 0


@pytest.mark.slow
def test_a_json_manifest_nested_200000_deep_is_refused(engine: Engine, tmp_path: Path) -> None:
    manifest = tmp_path / "deep.json"
    manifest.write_text('{"images": [{"path": "a.jpg", "brand": ' + "[" * 200_000 + "]" * 200_000 + "}]}")
    assert_refused(command("feedback.manifest", "import", str(manifest)), "deep.json is nested too deeply")
    assert count_rows(engine, Image.id) == 0


@pytest.mark.slow
def test_a_nul_character_in_a_class_name_is_taken_out_on_every_database(db_engine: Engine, tmp_path: Path) -> None:
    make_brand_photo(tmp_path / "a.jpg", 0, seed=1)
    manifest = tmp_path / "m.json"
    images = [{"path": "a.jpg", "brand": "Ni\x00ke", "colour\x00": "Bl\x00ack"}]
    manifest.write_text(json.dumps({"images": images}), encoding="utf-8")
    done = command("feedback.manifest", "import", str(manifest))
    assert done.returncode == 0, done.stderr
    assert class_list("brand", engine=db_engine) == ["Nike"]
    assert class_list("colour", engine=db_engine) == ["Black"]
    if db_engine.dialect.name == "postgresql":  # any other value with a NUL: the database refuses it, clearly
        with pytest.raises(DataError) as refused, session_scope(db_engine, write=True) as session:
            session.add(Round(arch="cnn", trigger="a\x00b"))
        assert "a value holds a NUL character (\\x00), which PostgreSQL cannot store" in machine_error(refused.value)
