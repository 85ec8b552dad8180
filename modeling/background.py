"""Starting rounds and prediction refreshes in a background process (for the app).

The app takes the job lock, records the round, and hands the lock to the child
process it starts, so a second click (from any tab) is refused at once and the
round goes on if the page is reloaded or closed. Progress lives in the
``rounds`` table; the child's output goes to a log file under the home folder.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select

from db import get_engine, session_scope
from db.access import OPERATOR, Actor, Permission, require
from db.catalog import require_attribute
from db.models import BRAND_ID, Job, JobKind, JobStatus, Round, RoundStatus
from modeling.jobs import (
    LOCK_FD_ENV,
    JobBusyError,
    JobLock,
    finish_job,
    job_running,
    mark_abandoned_jobs,
    open_job,
)
from modeling.registry import ARCHITECTURES, DEFAULT_INCEPTION_MODE
from modeling.rounds import mark_abandoned_rounds, open_round
from shoelabel.settings import get_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
    return StartedJob(round_id, process.pid, log, job_id)  # the child records its pid (job_record)


def start_round(
    arch: str = "both",
    mode: str = DEFAULT_INCEPTION_MODE,
    *,
    attribute: str | None = None,
    trigger: str = "app",
    engine: Engine | None = None,
    actor: Actor = OPERATOR,
) -> StartedJob:
    """Start ``python -m modeling.retrain`` in the background for one attribute (default: every attribute
    with labels, brand first); ``actor`` must be allowed to train. Raises JobBusyError if a job runs."""
    require(actor, Permission.TRAIN)
    if arch not in (*ARCHITECTURES, "both"):
        raise ValueError(f"Unknown architecture {arch!r}.")
    engine = engine or get_engine()
    attribute_id = BRAND_ID
    if attribute is not None:
        with session_scope(engine) as session:
            attribute_id = require_attribute(session, attribute).id
    lock = JobLock.acquire()
    try:
        mark_abandoned_rounds(engine)
        mark_abandoned_jobs(engine)
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
