"""One heavy job at a time: a lock file under the home folder.

Rounds and prediction refreshes take it. The operating system releases it when
the holding process ends, however it ends, so a crash never leaves it stuck. The
app hands its lock to the background process it starts, so two clicks cannot
start two rounds.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, select

from db import DatabaseBusyError, session_scope
from db.access import OPERATOR, Actor, Permission, require
from db.models import Job, JobKind, JobStatus, Round, utcnow
from shoelabel.errors import BusyError
from shoelabel.progress import Progress, Throttled, silent, time_left
from shoelabel.settings import get_settings

log = logging.getLogger(__name__)

LOCK_FD_ENV = "SHOELABEL_JOB_LOCK_FD"


class JobBusyError(BusyError, RuntimeError):
    """Another round or refresh is running."""


def lock_path() -> Path:
    home = get_settings().home
    home.mkdir(parents=True, exist_ok=True)
    return home / "jobs.lock"


class JobLock:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def acquire(cls) -> JobLock:
        """Take the lock now or raise :class:`JobBusyError`; adopts a lock handed over by the app."""
        inherited = os.environ.pop(LOCK_FD_ENV, None)
        if inherited is not None:
            fd = int(inherited)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # already ours: succeeds at once
                return cls(fd)
            except OSError:
                pass
        fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JobBusyError(
                "Another training round or prediction refresh is running; wait for it to finish "
                "(its progress is on the Rounds page)."
            ) from None
        os.set_inheritable(fd, False)
        return cls(fd)

    def release(self) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1

    def close_without_release(self) -> None:
        """Drop this process's handle after handing the lock to a child (the child keeps it)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> JobLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def job_running() -> bool:
    """True when some process holds the job lock."""
    fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- job records (the ``jobs`` table)

LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 16_384  # the end of a log is read, never the whole file


def open_job(engine: Engine, kind: JobKind, *, log_path: Path | str = "", round_id: int | None = None) -> int:
    """Record a background job about to start; returns its id."""
    with session_scope(engine, write=True) as session:
        row = Job(
            kind=kind,
            status=JobStatus.RUNNING,
            log_path=str(log_path),
            round_id=round_id,
            host=socket.gethostname(),
            progress_text="starting",
        )
        session.add(row)
        session.flush()
        return row.id


def set_job_pid(engine: Engine, job_id: int, pid: int) -> None:
    with session_scope(engine, write=True) as session:
        row = session.get(Job, job_id)
        if row is not None:
            row.pid = pid


def finish_job(engine: Engine, job_id: int, status: JobStatus, message: str = "") -> None:
    with session_scope(engine, write=True) as session:
        row = session.get(Job, job_id)
        if row is None or row.status != JobStatus.RUNNING:
            return
        row.status, row.message, row.finished_at = status, message[:4000], utcnow()
        row.progress = 1.0 if status == JobStatus.DONE else row.progress
        row.progress_text = "done" if status == JobStatus.DONE else "failed"


class JobRecord:
    """The job row a background process reports to (a no-op without one: a command run by hand)."""

    def __init__(self, engine: Engine, job_id: int | None) -> None:
        self.engine, self.job_id, self.failures = engine, job_id, []
        self.progress: Progress = Throttled(self._write, interval=1.0) if job_id is not None else silent

    def _write(self, fraction: float, text: str) -> None:
        try:
            with session_scope(self.engine, write=True) as session:
                row = session.get(Job, self.job_id)
                if row is not None:
                    row.progress, row.progress_text = float(fraction), text[:500]
        except DatabaseBusyError:  # progress is best effort; the job itself goes on
            log.debug("job %s: progress not written, the database is busy", self.job_id)

    def fail(self, message: str) -> None:
        """Say why the job failed (it may go on with other work; it ends as failed)."""
        self.failures.append(message)


@contextmanager
def job_record(engine: Engine, job_id: int | None) -> Iterator[JobRecord]:
    """Report a background process's progress and outcome into its job row.

    Failures told with :meth:`JobRecord.fail`, and any exception, end the job as failed with the
    reason (the exception still propagates, so its traceback is in the log).
    """
    record = JobRecord(engine, job_id)
    if job_id is not None:
        set_job_pid(engine, job_id, os.getpid())
    try:
        yield record
    except BaseException as exc:
        if job_id is not None:
            reason = str(exc) or type(exc).__name__
            if not isinstance(exc, Exception):
                reason = f"stopped ({type(exc).__name__})"
            finish_job(engine, job_id, JobStatus.FAILED, "\n".join([*record.failures, reason]))
        raise
    if job_id is not None:
        if record.failures:
            finish_job(engine, job_id, JobStatus.FAILED, "\n".join(record.failures))
        else:
            finish_job(engine, job_id, JobStatus.DONE)


DIED = "The process running this job ended before it finished"
#: A line of a log that says why a process stopped: ``error: ...`` (a command's or argparse's message) or the
#: last line of a traceback (``ValueError: ...``).
ERROR_LINE = re.compile(r"(?:^|: )error: |^[A-Za-z_][\w.]*(?:Error|Exception)(?::|$)")


def log_error(path: str | Path) -> str:
    """The last line of a log that says what went wrong ('' when none does)."""
    for line in reversed(log_tail(path, lines=LOG_TAIL_LINES * 5).splitlines()):
        if ERROR_LINE.search(line.strip()):
            return line.strip()
    return ""


def mark_abandoned_jobs(engine: Engine) -> int:
    """Jobs left 'running' by a process that is gone become 'failed', with the error its log ends on (a
    process that stops on a wrong argument or an early error never reports to its row). Call only while
    holding the job lock, or when no process holds it (then none can really be running)."""
    with session_scope(engine, write=True) as session:
        rows = list(session.scalars(select(Job).where(Job.status == JobStatus.RUNNING)))
        for row in rows:
            reason = log_error(row.log_path)
            row.status, row.finished_at, row.progress_text = JobStatus.FAILED, utcnow(), "failed"
            row.message = f"{DIED}: {reason}" if reason else f"{DIED} (killed, or out of memory?)."
            round_row = session.get(Round, row.round_id) if row.round_id is not None else None
            if reason and round_row is not None and reason not in round_row.message:
                round_row.message = (round_row.message + "\n" if round_row.message else "") + reason
        return len(rows)


@dataclass(frozen=True)
class JobView:
    """A job as the app shows it."""

    id: int
    kind: JobKind
    status: JobStatus
    started_at: datetime
    finished_at: datetime | None
    progress: float
    progress_text: str
    message: str
    log_path: str
    round_id: int | None

    @property
    def title(self) -> str:
        return f"Round {self.round_id}" if self.kind == JobKind.ROUND and self.round_id else "Prediction refresh"

    def elapsed_s(self, now: datetime | None = None) -> float:
        return ((self.finished_at or now or utcnow()) - self.started_at).total_seconds()

    def eta_s(self, now: datetime | None = None) -> float | None:
        """Seconds left, extrapolated from the progress so far (None until there is some)."""
        if self.status != JobStatus.RUNNING:
            return None
        return time_left(self.elapsed_s(now), self.progress)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return log_tail(self.log_path, lines)


def _view(row: Job) -> JobView:
    return JobView(
        row.id,
        row.kind,
        row.status,
        row.started_at,
        row.finished_at,
        row.progress,
        row.progress_text,
        row.message,
        row.log_path,
        row.round_id,
    )


def running_jobs(engine: Engine) -> list[JobView]:
    """Jobs in progress; rows left by a process that died are marked failed on the way."""
    with session_scope(engine) as session:
        rows = [_view(r) for r in session.scalars(select(Job).where(Job.status == JobStatus.RUNNING))]
    if rows and not job_running():
        try:
            with JobLock.acquire():
                mark_abandoned_jobs(engine)
        except JobBusyError:  # one started just now
            return rows
        return []
    return rows


def failed_jobs(engine: Engine) -> list[JobView]:
    """Failed jobs nobody has dismissed yet, newest first."""
    with session_scope(engine) as session:
        rows = session.scalars(
            select(Job)
            .where(Job.status == JobStatus.FAILED, Job.dismissed_at.is_(None))
            .order_by(Job.id.desc())
            .limit(10)
        )
        return [_view(r) for r in rows]


def dismiss_job(engine: Engine, job_id: int, *, actor: Actor = OPERATOR) -> None:
    """Take a failed job's notice off every page (``actor`` must be allowed to start jobs)."""
    require(actor, Permission.TRAIN)
    with session_scope(engine, write=True) as session:
        row = session.get(Job, job_id)
        if row is not None and row.dismissed_at is None:
            row.dismissed_at = utcnow()


def log_tail(path: str | Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file (reading at most its last 16 KiB); '' when there is none."""
    if not path:
        return ""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            data = handle.read(LOG_TAIL_BYTES)
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    # a progress bar redraws its line with carriage returns: keep what it showed last
    kept = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    kept = [line for line in kept if line.strip()]
    return "\n".join(kept[-lines:])
