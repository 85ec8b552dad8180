"""One heavy job at a time: a lock file under the home folder.

Rounds and prediction refreshes take it. The operating system releases it when
the holding process ends, however it ends, so a crash never leaves it stuck. The
app hands its lock to the background process it starts, so two clicks cannot
start two rounds.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from shoelabel.settings import get_settings

LOCK_FD_ENV = "SHOELABEL_JOB_LOCK_FD"


class JobBusyError(RuntimeError):
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
