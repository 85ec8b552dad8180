"""The multi-attribute catalogue: ``../shared/data/catalogue-shoes/labels.csv`` (2,418 photos, five attributes)
imported by the command a user runs, held out per attribute, exported and imported again."""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from db import get_engine, session_scope
from db.catalog import attributes
from db.labels import effective_labels
from db.models import Image, Split
from tests.conftest import shared_dir

ATTRIBUTES = ["brand", "colour", "gender", "usage", "season"]


@pytest.fixture(scope="module")
def labels_csv() -> Path:
    path = shared_dir() / "data" / "catalogue-shoes" / "labels.csv"
    if not path.is_file():
        pytest.skip(f"the catalogue manifest is not at {path}; set SHOELABEL_SHARED to the shared folder")
    return path


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOELABEL_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "feedback.manifest", *args], env=env, capture_output=True, text=True, timeout=900
    )


@pytest.mark.slow
def test_catalogue_imports_with_every_attribute_and_round_trips(labels_csv: Path, home: Path, tmp_path: Path) -> None:
    with labels_csv.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    contents = {hashlib.sha256((labels_csv.parent / r["file"]).read_bytes()).hexdigest() for r in rows}
    done = run(home, "import", str(labels_csv))
    assert done.returncode == 0, done.stderr
    assert f"Photos added: {len(contents)}" in done.stdout  # a photo listed twice (same content) is stored once
    assert f"Skipped: {len(rows) - len(contents)}" in done.stdout
    assert "Attributes besides brand: colour, gender, season, usage" in done.stdout

    engine = get_engine()
    with session_scope(engine) as session:
        assert [a.name for a in attributes(session)] == ["brand", "colour", "gender", "season", "usage"]
        by_path = {Path(p).name: (i, s) for i, p, s in session.execute(select(Image.id, Image.path, Image.split))}
        for attribute in attributes(session):
            labels = effective_labels(session, attribute_id=attribute.id)
            wanted = {Path(r["file"]).name: r[attribute.name] for r in rows if r[attribute.name]}
            wanted = {name: value for name, value in wanted.items() if name in by_path}
            got = {name: labels[i].brand for name, (i, _) in by_path.items() if labels[i].brand}
            assert got == wanted, attribute.name
            # held out per class, as far as the numbers allow
            per_class = Counter(wanted.values())
            held = Counter(v for name, v in wanted.items() if by_path[name][1] == Split.HOLDOUT)
            short = [c for c, n in per_class.items() if n >= 7 and held[c] == 0]
            assert not short, (attribute.name, short)
    held_out = sum(1 for _, split in by_path.values() if split == Split.HOLDOUT)
    assert 0.13 * len(rows) <= held_out <= 0.2 * len(rows)

    exported = tmp_path / "catalogue.json"
    assert run(home, "export", str(exported)).returncode == 0
    other_home = tmp_path / "other"
    again = run(other_home, "import", str(exported))
    assert again.returncode == 0, again.stderr
    exported_again = tmp_path / "again.json"
    assert run(other_home, "export", str(exported_again)).returncode == 0
    first, second = exported.read_text(encoding="utf-8"), exported_again.read_text(encoding="utf-8")
    assert first == second and '"colour": "Black"' in first
