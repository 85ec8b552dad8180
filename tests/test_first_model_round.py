"""A new attribute's automatic first model on a catalogue with no InceptionV3 model: the background round
starts with arguments ``modeling.retrain`` accepts, a failing one is not started again on every answer, and a
failed job's notice gives the reason its log gives."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
from sqlalchemy import Engine, func, select
from streamlit.testing.v1 import AppTest

import modeling.background as background
from db import session_scope
from db.catalog import require_attribute
from db.models import Image, Job, JobKind, JobStatus, ModelStatus, ModelVersion, Round, RoundStatus, Split
from feedback.attribute_queue import first_model_due, start_first_model
from feedback.classes import add_attribute, add_classes
from feedback.ingest import ingest_folder
from feedback.reviews import record_review
from modeling.jobs import dismiss_job, failed_jobs, open_job, running_jobs
from modeling.registry import promote, register
from modeling.retrain import argument_parser
from modeling.rounds import open_round
from tests.app_support import REPO
from tests.test_jobs import wait_for_job

COLOURS = ["Red", "Green", "Blue"]
ARGUMENT_ERROR = (
    "usage: python -m modeling.retrain [-h] [--arch {inception,cnn,both}]\n"
    "python -m modeling.retrain: error: argument --mode: invalid choice: 'train' (choose from finetune, head)\n"
)


def cnn_only_catalogue(engine: Engine, brand_folder: Path, pool_folder: Path, model_file: Path) -> int:
    """The fixtures' photos, a current brand CNN (no InceptionV3 model), and a colour attribute answered until
    its first model is due; the colour attribute's id."""
    ingest_folder(brand_folder, holdout_fraction=0.25)
    ingest_folder(pool_folder)
    with session_scope(engine, write=True) as session:
        version = register(
            session, arch="cnn", path=model_file, class_names=["acme", "bolt", "crest"], input_size=32, parent_id=None
        )
        promote(session, version)
    add_attribute("colour")
    add_classes("colour", COLOURS)
    with session_scope(engine) as session:
        colour = require_attribute(session, "colour").id
        photos = list(session.scalars(select(Image.id).where(Image.split != Split.HOLDOUT).order_by(Image.id)))
    for n, image_id in enumerate(photos):
        if first_model_due("colour", engine=engine):
            break
        record_review(image_id, "ann", "correct", label=COLOURS[n % 3], attribute_id=colour)
    assert first_model_due("colour", engine=engine)
    return colour


class FakePopen:
    """Records the command lines the app would start; starts nothing."""

    started: ClassVar[list[list[str]]] = []

    def __init__(self, args: list[str], **kwargs: object) -> None:
        FakePopen.started.append(list(args))
        self.pid = 999_999


@pytest.fixture
def fake_spawn(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    FakePopen.started = []
    fake = SimpleNamespace(Popen=FakePopen, DEVNULL=subprocess.DEVNULL, STDOUT=subprocess.STDOUT)
    monkeypatch.setattr(background, "subprocess", fake)
    return FakePopen.started


def test_the_first_model_round_of_a_cnn_only_catalogue_passes_arguments_retrain_accepts(
    engine: Engine, brand_folder: Path, pool_folder: Path, home: Path, fake_spawn: list[list[str]]
) -> None:
    cnn_only_catalogue(engine, brand_folder, pool_folder, home / "models" / "cnn.keras")
    assert start_first_model("colour", engine=engine)
    (command,) = fake_spawn
    assert command[1:3] == ["-m", "modeling.retrain"]
    args = argument_parser().parse_args(command[3:])  # exits with status 2 on an argument it does not accept
    assert args.arch == "cnn" and args.attribute == "colour" and args.trigger == "first model"
    with session_scope(engine) as session:
        (row,) = session.scalars(select(Round)).all()
    assert (row.arch, row.mode) == ("cnn", "train")


def test_a_failed_first_model_round_is_not_started_again_until_its_notice_is_dismissed(
    engine: Engine, brand_folder: Path, pool_folder: Path, home: Path, fake_spawn: list[list[str]]
) -> None:
    colour = cnn_only_catalogue(engine, brand_folder, pool_folder, home / "models" / "cnn.keras")
    round_id = open_round(engine, "cnn", "first model", "train", colour)
    log = home / "logs" / f"round-{round_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(ARGUMENT_ERROR)
    job_id = open_job(engine, JobKind.ROUND, log_path=log, round_id=round_id)  # its process exited at once
    for _ in range(3):  # answer after answer: no new round while the failure's notice is up
        assert not start_first_model("colour", engine=engine)
    assert fake_spawn == []
    (notice,) = failed_jobs(engine)
    assert notice.id == job_id and "invalid choice: 'train'" in notice.message
    dismiss_job(engine, job_id)
    assert start_first_model("colour", engine=engine)  # dismissed: the next answer tries again
    assert len(fake_spawn) == 1


def test_a_failed_jobs_notice_gives_the_error_its_log_ends_on(engine: Engine, home: Path) -> None:
    log = home / "logs" / "round-1.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(ARGUMENT_ERROR)
    job_id = open_job(engine, JobKind.ROUND, log_path=log)  # the process ended before reporting to its row
    traceback_log = home / "logs" / "refresh-2.log"
    traceback_log.write_text('Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad batch\n')
    crashed = open_job(engine, JobKind.REFRESH, log_path=traceback_log)
    silent = open_job(engine, JobKind.REFRESH)  # no log line to go by: killed
    assert running_jobs(engine) == []  # nothing holds the job lock: their processes are gone
    messages = {job.id: job.message for job in failed_jobs(engine)}
    assert "error: argument --mode: invalid choice: 'train'" in messages[job_id]
    assert "killed" not in messages[job_id]
    assert messages[crashed].endswith("ValueError: bad batch")
    assert "killed, or out of memory?" in messages[silent]
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("invalid choice" in e.value and "killed" not in e.value for e in at.error)


#: Shrinks the CNN a background round trains (the app passes no configuration), as the in-process tests do.
TINY_CHILD = """
import functools, sys
sys.path.insert(0, {repo!r})
import modeling.fitting as fitting
fitting.CnnConfig = functools.partial(
    fitting.CnnConfig, input_size=32, epochs=4, round_epochs=2, batch_size=12, learning_rate=3e-3
)
"""


@pytest.mark.slow
def test_a_new_attribute_gets_its_first_cnn_model_from_a_background_process(
    engine: Engine, brand_folder: Path, pool_folder: Path, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started the way the Review page starts it: a fresh process, on a catalogue with only a CNN."""
    from modeling.architectures import build_cnn

    model_file = home / "models" / "cnn-tiny.keras"
    model_file.parent.mkdir(parents=True, exist_ok=True)
    build_cnn(3, input_size=32, widths=(8, 8, 8, 8)).save(model_file)
    colour = cnn_only_catalogue(engine, brand_folder, pool_folder, model_file)
    child = tmp_path / "child"
    child.mkdir()
    (child / "sitecustomize.py").write_text(textwrap.dedent(TINY_CHILD.format(repo=str(REPO))))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(child), *filter(None, [os.environ.get("PYTHONPATH")])]))
    assert start_first_model("colour", engine=engine)
    with session_scope(engine) as session:
        job_id = session.scalar(select(func.max(Job.id)))
    row = wait_for_job(engine, job_id, timeout=300)
    log = Path(row.log_path).read_text()
    assert row.status == JobStatus.DONE, f"{row.message}\n{log}"
    with session_scope(engine) as session:
        (first,) = session.scalars(select(Round).where(Round.attribute_id == colour)).all()
        model = session.get(ModelVersion, first.candidate_model_id)
        assert first.status == RoundStatus.ACCEPTED and first.arch == "cnn"
        assert model.status == ModelStatus.CURRENT and model.attribute_id == colour
    assert not start_first_model("colour", engine=engine)  # it has its model: no further round
