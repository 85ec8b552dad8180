"""Starting rounds and prediction refreshes in a background process (for the app).

The app takes the job lock, records the round, and hands the lock to the child
process it starts, so a second click (from any tab) is refused at once and the
round goes on if the page is reloaded or closed. Progress lives in the
``rounds`` table; the child's output goes to a log file under the home folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select

from db import get_engine, session_scope
from db.access import OPERATOR, Actor, Permission, require
from db.catalog import require_attribute
from db.models import BRAND_ID, Job, JobKind, JobStatus, Round, RoundStatus, utcnow
from modeling.jobs import (
    LOCK_FD_ENV,
    JobBusyError,
    JobLock,
    finish_job,
    job_running,
    mark_abandoned_jobs,
    open_job,
    set_job_pid,
)
from modeling.registry import ARCHITECTURES, DEFAULT_INCEPTION_MODE, INCEPTION_MODES
from modeling.rounds import mark_abandoned_rounds, open_round
from shoelabel.errors import UserError
from shoelabel.settings import get_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: How InceptionV3 trains in a round (``python -m modeling.retrain --mode``); the CNN always trains as a whole.


class FailedBeforeError(UserError):
    """The attribute's last automatic round failed, and nobody has dismissed its notice yet."""


@dataclass(frozen=True)
class StartedJob:
    round_id: int | None
    pid: int
    log: Path
    job_id: int


def _spawn(engine: Engine, args: list[str], lock: JobLock, kind: JobKind, round_id: int | None = None) -> StartedJob:
    """Start ``python ARGS --job-id N`` holding ``lock``, recorded as job N with its log file."""
    logs = get_settings().home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    job_id = open_job(engine, kind, round_id=round_id)
    log = logs / (f"round-{round_id}.log" if round_id is not None else f"{kind}-{job_id}.log")
    with session_scope(engine, write=True) as session:
        session.get(Job, job_id).log_path = str(log)
    # absolute settings: the child runs from the project root, the app may not
    env = {**os.environ, **get_settings().environment(), LOCK_FD_ENV: str(lock.fd), "PYTHONUNBUFFERED": "1"}
    try:
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, *args, "--job-id", str(job_id)],
                cwd=PROJECT_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                pass_fds=(lock.fd,),
                start_new_session=True,
            )
    except OSError as exc:
        finish_job(engine, job_id, JobStatus.FAILED, f"Could not start the process: {exc}")
        raise
    set_job_pid(engine, job_id, process.pid)  # so that it can be cancelled before it reports (job_record)
    return StartedJob(round_id, process.pid, log, job_id)


def start_round(
    arch: str = "both",
    mode: str = DEFAULT_INCEPTION_MODE,
    *,
    attribute: str | None = None,
    trigger: str = "app",
    engine: Engine | None = None,
    actor: Actor = OPERATOR,
    retry_failed: bool = True,
) -> StartedJob:
    """Start ``python -m modeling.retrain`` in the background for one attribute (default: every attribute
    with labels, brand first); ``mode`` is InceptionV3's (:data:`INCEPTION_MODES`); ``actor`` must be allowed
    to train. Raises JobBusyError if a job runs; without ``retry_failed``, FailedBeforeError when the last
    round of this trigger and attribute failed and its notice is still up (so a failing automatic round
    is not started again on every answer)."""
    require(actor, Permission.TRAIN)
    if arch not in (*ARCHITECTURES, "both"):
        raise ValueError(f"Unknown architecture {arch!r}.")
    if mode not in INCEPTION_MODES:
        raise ValueError(f"Unknown training mode {mode!r}; choose one of: {', '.join(INCEPTION_MODES)}.")
    engine = engine or get_engine()
    attribute_id = BRAND_ID
    if attribute is not None:
        with session_scope(engine) as session:
            attribute_id = require_attribute(session, attribute).id
    lock = JobLock.acquire()
    try:
        mark_abandoned_rounds(engine)
        mark_abandoned_jobs(engine)
        if not retry_failed and failed_round_notice(engine, attribute_id, trigger):
            raise FailedBeforeError(
                f"The last {trigger} round failed (its notice is on every page): dismiss it to try again."
            )
        first = "inception" if arch in ("both", "inception") else "cnn"
        round_id = open_round(engine, first, trigger, mode if first == "inception" else "train", attribute_id)
        args = ["-m", "modeling.retrain", "--arch", arch, "--mode", mode, "--trigger", trigger]
        args += ["--attribute", attribute] if attribute is not None else []
        job = _spawn(engine, [*args, "--round-id", str(round_id)], lock, JobKind.ROUND, round_id)
    except BaseException:
        lock.release()
        raise
    lock.close_without_release()
    return job


def failed_round_notice(engine: Engine, attribute_id: int, trigger: str) -> bool:
    """Whether the attribute's latest round started by ``trigger`` failed and its job's notice is still up."""
    with session_scope(engine) as session:
        latest = session.scalar(
            select(Round)
            .where(Round.attribute_id == attribute_id, Round.trigger == trigger)
            .order_by(Round.id.desc())
            .limit(1)
        )
        if latest is None:
            return False
        job = session.scalar(select(Job).where(Job.round_id == latest.id).order_by(Job.id.desc()).limit(1))
        if job is not None:
            return job.status == JobStatus.FAILED and job.dismissed_at is None
        return latest.status == RoundStatus.FAILED


def start_refresh(*, all_images: bool = False, engine: Engine | None = None, actor: Actor = OPERATOR) -> StartedJob:
    """Predict catalogue photos the current models have not seen (every photo with ``all_images``),
    in the background (``actor`` must be allowed to train); raises JobBusyError if a job runs."""
    require(actor, Permission.TRAIN)
    engine = engine or get_engine()
    lock = JobLock.acquire()
    try:
        mark_abandoned_jobs(engine)
        args = ["-m", "modeling.predict", "--refresh"] + (["--all"] if all_images else [])
        job = _spawn(engine, args, lock, JobKind.REFRESH)
    except BaseException:
        lock.release()
        raise
    lock.close_without_release()
    return job


CANCEL_WAIT_S = 10.0  # how long a cancelled job has to end on SIGTERM before it is killed


class NothingToCancelError(UserError):
    """No job of this machine is running."""


def cancel_job(engine: Engine | None = None, *, actor: Actor = OPERATOR) -> int:
    """Stop the running round or refresh (its whole process group), record who cancelled it, and discard
    what it left half done; the cancelled job's id. ``actor`` must be allowed to train."""
    require(actor, Permission.TRAIN)
    engine = engine or get_engine()
    with session_scope(engine) as session:
        job = session.scalar(select(Job).where(Job.status == JobStatus.RUNNING).order_by(Job.id.desc()).limit(1))
        target = (job.id, job.pid, job.host, job.round_id) if job is not None else None
    if target is None or target[1] is None or target[2] != socket.gethostname():
        raise NothingToCancelError("No round or prediction refresh started on this machine is running.")
    job_id, pid, _, round_id = target
    _stop_group(pid)
    lock = JobLock.acquire()  # free now: the process is gone
    with lock:
        reason = f"Cancelled by {actor.name}." if actor.name else "Cancelled."
        with session_scope(engine, write=True) as session:
            row = session.get(Job, job_id)
            row.status, row.message, row.finished_at, row.dismissed_at = JobStatus.FAILED, reason, utcnow(), utcnow()
            row.progress_text = "cancelled"
            if round_id is not None and (round_row := session.get(Round, round_id)) is not None:
                round_row.status, round_row.message, round_row.finished_at = RoundStatus.FAILED, reason, utcnow()
        mark_abandoned_rounds(engine)  # any candidate model it registered is discarded
        mark_abandoned_jobs(engine)
    return job_id


def _stop_group(pid: int) -> None:
    """SIGTERM to the job's process group (it runs in its own session), SIGKILL if it has not ended soon."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + CANCEL_WAIT_S
    while job_running() and time.monotonic() < deadline:
        time.sleep(0.1)
    if job_running():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while job_running() and time.monotonic() < deadline + CANCEL_WAIT_S:
            time.sleep(0.1)


@dataclass(frozen=True)
class JobState:
    running: bool  # a process holds the job lock
    round: Round | None  # the round in progress, if the job is a round that has reported


def job_state(engine: Engine | None = None) -> JobState:
    """Whether a job runs, and the round it is running (None for a prediction refresh)."""

    engine = engine or get_engine()
    with session_scope(engine) as session:
        row = session.scalar(select(Round).where(Round.status == RoundStatus.RUNNING).order_by(Round.id.desc()))
    if row is not None and not job_running():
        try:
            lock = JobLock.acquire()
        except JobBusyError:  # a job started just now
            return JobState(True, row)
        with lock:  # nothing runs, so rounds still marked running were left by a process that died
            mark_abandoned_rounds(engine)
            mark_abandoned_jobs(engine)
        return JobState(False, None)
    running = job_running() if row is None else True
    return JobState(running, row if row is not None and _process_alive(row) else None)


def _process_alive(row: Round) -> bool:
    """False when the round's process is known to be gone (same machine, no such process)."""
    if row.pid is None or row.host != socket.gethostname():
        return True
    try:
        os.kill(row.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
