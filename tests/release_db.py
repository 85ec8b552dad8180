"""A database built by the previous release, for migration tests.

:func:`build_release_database` extracts commit :data:`RELEASE` with ``git archive`` and runs a script
against that release's own public API in a separate process, on a fresh SQLite database: a labelled
folder of three brands (some held out) and a pool ingested, reviews by two reviewers (every action, an
undo, an open and a settled conflict), two CNN rounds, jobs, accounts, a sign-in session, a team setting,
an upload and claims. The script prints
a JSON summary (row counts per table and the effective labels keyed by photo hash), which a test compares
with what the new code reads after upgrading the database.

``python -m tests.release_db`` builds one in a temporary folder and prints the summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

RELEASE = "08dc28e"
REPO = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT_S = 600


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False)


def release_available() -> str | None:
    """None when commit :data:`RELEASE` is in the repository; otherwise why not (a reason for ``pytest.skip``)."""
    try:
        found = _git("cat-file", "-e", f"{RELEASE}^{{commit}}")
    except OSError as exc:
        return f"git cannot be run ({exc}); the release {RELEASE} cannot be extracted"
    if found.returncode == 0:
        return None
    if _git("rev-parse", "--git-dir").returncode != 0:
        return f"{REPO} is not a git checkout, so the release {RELEASE} cannot be extracted"
    if _git("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        return f"the release {RELEASE} is not in this shallow clone (fetch with --unshallow, or a deeper --depth)"
    return f"the release {RELEASE} is not in this repository ({found.stderr.strip() or 'git cat-file failed'})"


def extract_release(target: Path) -> Path:
    """``git archive RELEASE | tar -x`` into ``target`` (created); returns it."""
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", RELEASE], stdout=subprocess.PIPE)
    assert archive.stdout is not None
    untar = subprocess.run(["tar", "-x", "-C", str(target)], stdin=archive.stdout, capture_output=True, check=False)
    archive.stdout.close()
    if archive.wait() != 0 or untar.returncode != 0:
        raise RuntimeError(f"extracting {RELEASE} into {target} failed: {untar.stderr.decode(errors='replace')}")
    return target


def _environment(release: Path, home: Path, db_url: str) -> dict[str, str]:
    """The parent's environment without its shoelabel settings, pointed at the release and its own home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOELABEL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(release), *filter(None, [env.get("PYTHONPATH")])])
    env.update(
        SHOELABEL_HOME=str(home),
        SHOELABEL_DB=db_url,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS=env.get("JAX_PLATFORMS", "cpu"),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def build_release_database(workdir: Path) -> tuple[str, dict[str, Any]]:
    """Build a catalogue with the code of :data:`RELEASE`; returns (database URL, the script's summary).

    The release goes to ``workdir/release``, its home (database, models, reports) to ``workdir/home``,
    the generated photos to ``workdir/photos``. The script runs in a subprocess with the release first
    on ``sys.path``; it fails unless every module it loaded comes from the release.
    """
    workdir = Path(workdir).resolve()
    release = extract_release(workdir / "release")
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{home / 'shoelabel.db'}"
    script = workdir / "build_release_db.py"
    script.write_text(_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(release), str(workdir / "photos")],
        cwd=release,
        env=_environment(release, home, db_url),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"building the {RELEASE} database failed (exit {done.returncode})\n"
            f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-8000:]}"
        )
    summary: dict[str, Any] = json.loads(lines[-1])
    if not Path(summary["db_module"]).resolve().is_relative_to(release):
        raise RuntimeError(f"the build imported db from {summary['db_module']}, not from the release at {release}")
    return db_url, summary


# The script the subprocess runs, with the release's code. argv: the release folder, a folder for the photos.
_SCRIPT = r'''
import sys
from pathlib import Path

RELEASE_ROOT = Path(sys.argv[1]).resolve()
PHOTOS = Path(sys.argv[2]).resolve()
sys.path.insert(0, str(RELEASE_ROOT))  # before any editable install of the working tree

import db

print("db module:", db.__file__)
if not Path(db.__file__).resolve().is_relative_to(RELEASE_ROOT):
    raise SystemExit(f"imported db from {db.__file__}, not from the release at {RELEASE_ROOT}")

import contextlib
import io
import json

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import inspect, select, text

from db import get_engine, session_scope
from db.access import OPERATOR
from db.catalog import brand_names, get_or_create_brand
from db.labels import effective_labels
from db.migrate import current_revision
from db.models import (
    Account, Image, Job, JobKind, ModelVersion, Review, Round, Split, TeamSetting,
)
from feedback.accounts import SignInError, add_account, set_disabled, sign_in
from feedback.agreement import set_quality_control_share
from feedback.ingest import ingest_folder
from feedback.queue import next_items
from feedback.reviews import record_review, undo_last
from feedback.uploads import store_upload
from modeling.fitting import CnnConfig
from modeling.jobs import JobLock, dismiss_job, job_record, open_job
from modeling.predict import current_versions, refresh_predictions, stored_answers
from modeling.rounds import open_round, run_round

PACKAGES = ("db", "feedback", "modeling", "shoelabel")  # every module of these must come from the release
TINY_CNN = CnnConfig(input_size=32, epochs=10, round_epochs=2, batch_size=12, learning_rate=3e-3)
BRANDS = ["acme", "bolt", "crest"]
PALETTE = np.array([[220, 40, 40], [40, 200, 60], [40, 60, 220]])


def photo(path, brand_index, seed, size=48):
    """A small JPEG whose brand shows: its own colour and stripe, with noise so every photo differs."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(PALETTE[brand_index % 3] + rng.normal(0, 25, (size, size, 3)), 0, 255)
    stripe = slice(brand_index * 8 % size, brand_index * 8 % size + 8)
    pixels[stripe] = 255 - pixels[stripe]
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(pixels.astype(np.uint8)).save(path, format="JPEG", quality=90)
    return path


def cnn_round(engine, trigger):
    """A round as the app starts it: the job lock, a round row, a job row reporting on it."""
    with JobLock.acquire():
        round_id = open_round(engine, "cnn", trigger, "train")
        job_id = open_job(engine, JobKind.ROUND, round_id=round_id)
        with job_record(engine, job_id) as record:
            return run_round(
                "cnn", trigger=trigger, engine=engine, round_id=round_id, cnn_config=TINY_CNN,
                progress=record.progress,
            )


engine = get_engine()

# --- photos: three labelled brands (a quarter held out) and a flat pool
for b, brand in enumerate(BRANDS):
    for i in range(12):
        photo(PHOTOS / "brands" / brand / f"{brand}_{i:02d}.jpg", b, seed=100 * b + i)
for i in range(10):
    photo(PHOTOS / "pool" / f"new_{i:02d}.jpg", i % 3, seed=10_000 + i)
labelled = ingest_folder(PHOTOS / "brands", holdout_fraction=0.25, seed=0)
pool_report = ingest_folder(PHOTOS / "pool")
assert labelled.added == 36 and pool_report.added == 10, (labelled.summary(), pool_report.summary())

# --- accounts, a sign-in session, a wrong password, the quality-control share
add_account("ana", "reviewer", password="ana-password")
add_account("ben", "reviewer", password="ben-password", email="ben@example.com")
add_account("carla", "admin", password="carla-password")
add_account("dora", "viewer", email="dora@example.com")
set_disabled("dora")
ana = sign_in("ana", "ana-password")
with contextlib.suppress(SignInError):
    sign_in("ben", "not-his-password")  # a failed attempt is counted
set_quality_control_share(0.2, actor=OPERATOR)

# --- the first round: a current CNN with predictions for every photo
first = cnn_round(engine, "cli")
print("round 1:", first.status, first.message)

# --- an upload to the pool, predicted by a refresh job; a failed, dismissed refresh job
buffer = io.BytesIO()
PILImage.fromarray(np.full((40, 56, 3), (90, 90, 90), np.uint8)).save(buffer, format="PNG")
store_upload("from-phone.png", buffer.getvalue())
with JobLock.acquire(), job_record(engine, open_job(engine, JobKind.REFRESH)) as record:
    refresh_predictions(engine, progress=record.progress)
failed_job = open_job(engine, JobKind.REFRESH, log_path=str(PHOTOS / "refresh.log"))
with contextlib.suppress(RuntimeError), job_record(engine, failed_job):
    raise RuntimeError("the model file could not be read")
dismiss_job(engine, failed_job)

# --- reviews
with session_scope(engine) as session:
    ingested = select(Image.id).where(Image.split == Split.POOL, Image.source.startswith("ingest:"))
    pool = list(session.scalars(ingested.order_by(Image.path)))  # the upload stays unanswered
    train = list(session.scalars(select(Image.id).where(Image.split == Split.TRAIN).order_by(Image.path)))
    holdout = list(session.scalars(select(Image.id).where(Image.split == Split.HOLDOUT).order_by(Image.path)))
    shown = {i: a.get("cnn") for i, a in stored_answers(session, current_versions(session), pool).items()}
    predicted = {i: (a.brand if a else None) for i, a in shown.items()}


def other_brand(image_id):
    return next(b for b in BRANDS if b != predicted.get(image_id))


with session_scope(engine, write=True) as session:
    get_or_create_brand(session, "dash")  # a brand only a correction uses (reviews cannot add brands)

record_review(pool[0], "ana", "confirm", shown=shown[pool[0]], actor=ana.actor)
record_review(pool[1], "ana", "correct", brand=other_brand(pool[1]), shown=shown[pool[1]], actor=ana.actor)
record_review(pool[2], "ana", "correct", brand="dash", shown=shown[pool[2]], actor=ana.actor)
record_review(pool[3], "ana", "not_a_shoe", shown=shown[pool[3]], actor=ana.actor)
record_review(pool[4], "ana", "skip", actor=ana.actor)
record_review(pool[5], "ben", "unsure")
record_review(pool[6], "ana", "correct", brand="acme", actor=ana.actor)
undone = undo_last("ana", actor=ana.actor)  # takes back the answer to pool[6]
assert undone is not None and undone.image_id == pool[6]
record_review(pool[7], "ana", "correct", brand="acme", actor=ana.actor)  # an open conflict
record_review(pool[7], "ben", "correct", brand="crest")
record_review(pool[8], "ana", "correct", brand="bolt", actor=ana.actor)  # a conflict settled by an admin
record_review(pool[8], "ben", "not_a_shoe")
record_review(pool[8], "carla", "correct", brand="bolt", resolves_conflict=True)
record_review(train[0], "ben", "confirm", brand="acme")  # imported labels, confirmed and corrected
record_review(train[1], "ben", "correct", brand="bolt")
record_review(holdout[0], "ana", "confirm", brand="acme", actor=ana.actor)
record_review(holdout[1], "ana", "confirm", brand="acme", actor=ana.actor)  # two reviewers agreeing
record_review(holdout[1], "ben", "confirm", brand="acme")

# --- claims: photos on ben's screen, not answered yet
claimed = next_items("ben", "session-ben", strategy="least_confidence", k=2)
assert claimed, "the queue gave ben nothing to claim"

# --- the second round continues from the current model (accepted or rejected: both are kept)
second = cnn_round(engine, "app")
print("round 2:", second.status, second.message)

# --- the summary
with session_scope(engine) as session:
    tables = sorted(inspect(session.connection()).get_table_names())
    counts = {t: session.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one() for t in tables}
    sha = dict(session.execute(select(Image.id, Image.sha256)).all())
    labels = {
        sha[i]: {
            "value": label.value,
            "conflict": label.conflict,
            "answers": {name: answer.value for name, answer in sorted(label.answers.items())},
        }
        for i, label in effective_labels(session).items()
    }
    images = {
        image.sha256: {
            "split": str(image.split),
            "source_brand": image.source_brand.name if image.source_brand else None,
            "source": image.source,
            "path": image.path,
        }
        for image in session.scalars(select(Image))
    }
    reviews = [
        {
            "sha256": sha[r.image_id],
            "reviewer": r.reviewer,
            "action": str(r.action),
            "brand": r.brand.name if r.brand else None,
            "resolves_conflict": r.resolves_conflict,
            "undone": r.undone_at is not None,
            "model_version_id": r.model_version_id,
        }
        for r in session.scalars(select(Review).order_by(Review.id))
    ]
    versions = [
        {"id": v.id, "arch": v.arch, "status": str(v.status), "parent_id": v.parent_id, "class_names": v.class_names}
        for v in session.scalars(select(ModelVersion).order_by(ModelVersion.id))
    ]
    rounds = [
        {"id": r.id, "arch": r.arch, "trigger": r.trigger, "status": str(r.status), "candidate": r.candidate_model_id}
        for r in session.scalars(select(Round).order_by(Round.id))
    ]
    jobs = [
        {"kind": str(j.kind), "status": str(j.status), "round": j.round_id, "dismissed": bool(j.dismissed_at)}
        for j in session.scalars(select(Job).order_by(Job.id))
    ]
    accounts = {
        a.name: {"role": str(a.role), "email": a.email, "disabled": a.disabled, "failed_attempts": a.failed_attempts}
        for a in session.scalars(select(Account))
    }
    settings = {s.key: s.value for s in session.scalars(select(TeamSetting))}
    brands = brand_names(session)
    predictions_per_version = dict(
        session.execute(text("SELECT model_version_id, COUNT(*) FROM predictions GROUP BY model_version_id")).all()
    )

loaded = {
    name: getattr(module, "__file__", None)
    for name, module in list(sys.modules.items())
    if name.split(".")[0] in PACKAGES and getattr(module, "__file__", None)
}
strays = sorted(n for n, f in loaded.items() if not Path(f).resolve().is_relative_to(RELEASE_ROOT))
if strays:
    raise SystemExit(f"modules loaded from outside the release: {strays}")

print(json.dumps({
    "release_root": str(RELEASE_ROOT),
    "db_module": db.__file__,
    "revision": current_revision(engine),
    "counts": counts,
    "brands": brands,
    "labels": labels,
    "images": images,
    "reviews": reviews,
    "model_versions": versions,
    "predictions_per_version": {str(k): v for k, v in predictions_per_version.items()},
    "rounds": rounds,
    "jobs": jobs,
    "accounts": accounts,
    "team_settings": settings,
    "claims": [sha[item.image_id] for item in claimed],
}, sort_keys=True))
'''


if __name__ == "__main__":
    import tempfile
    import time

    reason = release_available()
    if reason:
        raise SystemExit(reason)
    with tempfile.TemporaryDirectory(prefix="release-db-") as tmp:
        started = time.monotonic()
        url, result = build_release_database(Path(tmp))
        elapsed = time.monotonic() - started
        print(json.dumps(result, indent=1, sort_keys=True))
        conflicts = sum(label["conflict"] for label in result["labels"].values())
        print(f"{len(result['labels'])} effective labels, {conflicts} in conflict; {url} built in {elapsed:.1f}s")
