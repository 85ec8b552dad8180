"""Background jobs and predictions on arrival: a failed job is visible with its reason and log until
dismissed, a killed one is noticed, and photos that join the catalogue get the current models'
predictions without a further command."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from streamlit.testing.v1 import AppTest

from db import session_scope
from db.models import Image, Job, JobKind, JobStatus, Prediction, Split
from feedback.ingest import ingest_folder
from modeling.jobs import JobLock, dismiss_job, failed_jobs, job_record, log_tail, open_job, running_jobs
from modeling.predict import ModelHandle
from tests.app_support import REPO
from tests.conftest import make_brand_photo
from tests.refresh_support import current_cnn


def wait_for_job(engine: Engine, job_id: int, timeout: float = 120) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(engine) as session:
            row = session.get(Job, job_id)
            if row.status != JobStatus.RUNNING:
                return row
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still running after {timeout}s")


def test_job_record_ends_done_or_failed_with_the_reason(engine: Engine) -> None:
    ok, told, raised = (open_job(engine, JobKind.REFRESH) for _ in range(3))
    with job_record(engine, ok) as job:
        job.progress(1.0, "finished")
    with job_record(engine, told) as job:
        job.fail("cnn v3 could not predict: broken file")
    with pytest.raises(RuntimeError), job_record(engine, raised):
        raise RuntimeError("the weights file is gone")
    with session_scope(engine) as session:
        rows = {row.id: row for row in session.scalars(select(Job))}
    assert rows[ok].status == JobStatus.DONE and rows[ok].finished_at is not None
    assert rows[told].status == JobStatus.FAILED and rows[told].message == "cnn v3 could not predict: broken file"
    assert rows[raised].status == JobStatus.FAILED and rows[raised].message == "the weights file is gone"
    assert [j.id for j in failed_jobs(engine)] == [raised, told]
    dismiss_job(engine, told)
    assert [j.id for j in failed_jobs(engine)] == [raised]


def test_a_job_whose_process_died_is_marked_failed(engine: Engine) -> None:
    job_id = open_job(engine, JobKind.REFRESH)
    with JobLock.acquire():  # its process still holds the lock: it is running
        assert [j.id for j in running_jobs(engine)] == [job_id]
    assert running_jobs(engine) == []  # nothing holds the lock any more: the process is gone
    (failed,) = failed_jobs(engine)
    assert failed.id == job_id and "ended before it finished" in failed.message


def test_log_tail_reads_the_end_only_and_keeps_a_progress_bar_s_last_state(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    log.write_text("x" * 100_000 + "\nstarting\npredicting 10%\rpredicting 50%\rpredicting 90%\nTraceback: boom\n")
    assert log_tail(log, lines=3) == "starting\npredicting 90%\nTraceback: boom"
    assert log_tail(tmp_path / "missing.log") == ""


@pytest.mark.slow
def test_a_failed_background_refresh_names_the_model_and_its_log(catalogue: Engine) -> None:
    """The fake models' files do not exist: the refresh fails for each, names it, and shows the log."""
    from modeling.background import start_refresh

    started = start_refresh(all_images=True, engine=catalogue)
    row = wait_for_job(catalogue, started.job_id)
    assert row.status == JobStatus.FAILED
    assert "cnn v" in row.message and "inception v" in row.message and "Model file missing" in row.message
    (notice,) = failed_jobs(catalogue)
    assert "could not predict" in notice.log_tail()


@pytest.mark.slow
def test_the_app_shows_a_failed_job_until_it_is_dismissed(catalogue: Engine, home: Path) -> None:
    log = home / "logs" / "refresh-1.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("refreshing predictions\nerror: cnn v2 could not predict: Model file missing: /x.keras\n")
    job_id = open_job(catalogue, JobKind.REFRESH, log_path=log)
    with job_record(catalogue, job_id) as job:
        job.fail("cnn v2 could not predict: Model file missing: /x.keras")
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("Prediction refresh failed" in e.value and "Model file missing" in e.value for e in at.error)
    assert any("error: cnn v2 could not predict" in c.value for c in at.code)
    at.button(key=f"dismiss_job_{job_id}").click().run()
    assert not any("Prediction refresh failed" in e.value for e in at.error)
    at.switch_page("ui/pages/browse.py").run()  # and it stays dismissed on every page
    assert not any("Prediction refresh failed" in e.value for e in at.error)


@pytest.fixture
def real_cnn(engine: Engine, home: Path, brand_folder: Path) -> ModelHandle:
    """A tiny real CNN, saved as a .keras file and current: the only model of the catalogue."""
    from modeling.architectures import build_cnn

    ingest_folder(brand_folder, engine=engine)
    return current_cnn(engine, home, build_cnn(3, input_size=32, widths=(8, 8, 8, 8)))


def cnn_predicted(engine: Engine, handle: ModelHandle) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count(Prediction.id)).where(Prediction.model_version_id == handle.id))


@pytest.mark.slow
def test_photos_ingested_in_the_app_are_predicted_at_once(engine: Engine, real_cnn: ModelHandle, tmp_path: Path):
    pool = tmp_path / "arrivals"
    for i in range(5):
        make_brand_photo(pool / f"new_{i}.jpg", i % 3, seed=777 + i)
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=120).run()
    at.switch_page("ui/pages/imports.py").run()
    at.text_input(key="ingest_path_more").input(str(pool))
    at.button(key="FormSubmitter:ingest_more-Ingest").click().run()
    assert not at.exception
    with session_scope(engine) as session:
        n_images = session.scalar(select(func.count(Image.id)))
        pooled = session.scalar(select(func.count(Image.id)).where(Image.split == Split.POOL))
    assert pooled == 5
    assert cnn_predicted(engine, real_cnn) == n_images  # the new ones and, on the way, any the model missed
    assert any(f"Predicted {n_images} new photo(s) with cnn v{real_cnn.id}" in c.value for c in at.code)


@pytest.mark.slow
def test_ingest_command_predicts_new_photos_in_a_new_process(engine: Engine, real_cnn: ModelHandle, home: Path):
    pool = home.parent / "arrivals"
    for i in range(4):
        make_brand_photo(pool / f"new_{i}.jpg", i % 3, seed=999 + i)
    before = cnn_predicted(engine, real_cnn)
    done = subprocess.run(
        [sys.executable, "-m", "feedback.ingest", str(pool)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "Predicted" in done.stdout and f"cnn v{real_cnn.id}" in done.stdout
    assert cnn_predicted(engine, real_cnn) == before + 4 + 36  # the 36 labelled photos had none yet


def test_a_running_job_shows_its_progress_elapsed_time_and_estimate(catalogue: Engine) -> None:
    from datetime import timedelta

    from db.models import utcnow

    job_id = open_job(catalogue, JobKind.REFRESH)
    with session_scope(catalogue, write=True) as session:
        row = session.get(Job, job_id)
        row.started_at, row.progress, row.progress_text = utcnow() - timedelta(seconds=60), 0.25, "predicting 10/40"
    with JobLock.acquire():  # its process holds the lock
        at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=60).run()
    assert not at.exception
    [line] = [c.value for c in at.sidebar.caption if "Prediction refresh" in c.value]
    assert "25%" in line and "1m 0" in line and "about 3m" in line and "predicting 10/40" in line.replace("\\", "")
