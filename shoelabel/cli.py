"""What every command line shares: errors meant for users are printed in one place.

Every command's ``main`` is decorated with :func:`command`: a
:class:`~shoelabel.errors.UserError` prints ``error: <message>`` without a traceback
and becomes its exit status (2, or 3 when the database or the job lock is busy).
So does a failure of the machine rather than of the program: a full disk, a file size limit
(``ulimit -f``), a folder it may not write to, a damaged database file, a value the database cannot
store. Anything else is a bug and keeps its traceback.

While a command runs, what it prints shows control and format characters escaped (``\\x1b``,
``\\u200b``): a class or file name never moves the cursor, recolours or rewrites the operator's
terminal (see :func:`shoelabel.names.printable`).
"""

from __future__ import annotations

import errno
import functools
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from shoelabel.errors import UserError
from shoelabel.names import printable
from shoelabel.paths import shown_path

Main = Callable[[list[str] | None], int]

FULL = "nothing more was written (what was committed before is kept); free some space and run the command again."
OS_ADVICE = {
    errno.ENOSPC: f"the disk is full: {FULL}",
    errno.EDQUOT: f"the disk quota is used up: {FULL}",
    errno.EFBIG: "the file would pass the file size limit (ulimit -f): raise the limit and run the command again.",
    errno.EROFS: "the file system is read-only: make it writable, or set SHOELABEL_HOME to a folder you may write.",
    errno.EACCES: "permission denied: make it writable, or set SHOELABEL_HOME to a folder you may write.",
    errno.EPERM: "permission denied: make it writable, or set SHOELABEL_HOME to a folder you may write.",
    errno.EIO: "the disk reported an input/output error: check the disk, then run the command again.",
}
#: What SQLite and PostgreSQL say (lower case) for such failures, and the advice for each.
DATABASE_ADVICE = {
    "database or disk is full": OS_ADVICE[errno.ENOSPC],
    "could not extend file": OS_ADVICE[errno.ENOSPC],
    "no space left on device": OS_ADVICE[errno.ENOSPC],
    "disk i/o error": "the database file could not be written (a full disk, a file size limit, or a failing disk): "
    "check them, then run the command again; what was committed before is kept.",
    "readonly database": OS_ADVICE[errno.EROFS],
    "unable to open database file": "the database file or its folder cannot be opened for writing: "
    + OS_ADVICE[errno.EACCES].split(": ", 1)[1],
    "file is not a database": "the file is not a shoelabel database or is damaged: restore it from a backup, "
    "or set SHOELABEL_DB (or SHOELABEL_HOME) to another database.",
    "database disk image is malformed": "the database file is damaged: restore it from a backup (or try "
    "sqlite3's .recover), or set SHOELABEL_DB (or SHOELABEL_HOME) to another database.",
    "cannot contain nul": "a value holds a NUL character (\\x00), which PostgreSQL cannot store: remove it and "
    "try again; nothing was written.",
}


class _Shown:
    """A text stream that writes what it is given as a terminal should show it: control and format characters
    escaped, except line ends, tabs, CRLF and the carriage return a progress bar starts its line with."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        lead = "\r" if text.startswith("\r") else ""
        shown = "\r\n".join(printable(part) for part in text[len(lead) :].split("\r\n"))
        self._stream.write(lead + shown)
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def machine_error(exc: BaseException) -> str | None:
    """The message for a failure of the machine rather than of the program (see the module docstring), or
    None."""
    if isinstance(exc, OSError) and exc.errno in OS_ADVICE:
        where = f"{shown_path(str(exc.filename))}: " if exc.filename else ""
        return f"{where}{exc.strerror or exc}; {OS_ADVICE[exc.errno]}"
    cause = getattr(exc, "orig", None)  # a database driver's error, as SQLAlchemy wraps it
    if cause is None or not type(exc).__module__.startswith("sqlalchemy"):
        return None
    said = " ".join(str(cause).split())
    advice = next((text for key, text in DATABASE_ADVICE.items() if key in said.lower()), None)
    if advice is None:
        return None
    return f"the database {_database()} says {said[:200]!r}: {advice}"


def _database() -> str:
    """The configured database, as a message names it (without its password)."""
    from sqlalchemy.engine import make_url

    from shoelabel.settings import get_settings

    url = get_settings().db_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a malformed URL is reported where it is read
        return "named by SHOELABEL_DB"


def _run(main: Main, argv: list[str] | None) -> int:
    try:
        return main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: what was committed is kept; run the command again to go on", file=sys.stderr)
        return 130
    except Exception as exc:
        message = machine_error(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return UserError.exit_code


def run_command(main: Main, argv: list[str] | None = None) -> int:
    """Run a command's ``main``, its output shown safely (see the module docstring); its exit status."""
    out, err = sys.stdout, sys.stderr
    if out is not None:
        sys.stdout = _Shown(out)  # type: ignore[assignment]
    if err is not None:
        sys.stderr = _Shown(err)  # type: ignore[assignment]
    try:
        return _run(main, argv)
    finally:
        sys.stdout, sys.stderr = out, err


def command(main: Main) -> Main:
    """Decorate a command's ``main(argv) -> status`` so that user errors end it cleanly."""

    @functools.wraps(main)
    def wrapped(argv: list[str] | None = None) -> int:
        return run_command(main, argv)

    return wrapped


def require_writable(folder: Path, what: str) -> None:
    """Refuse to start work whose results go to ``folder`` when nothing can be written there: found before
    the work (a training run), not after it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(
            f"Cannot write to {what} {shown_path(folder)} ({exc.strerror or exc}), so nothing was started: make it "
            "writable (and free some space), or set SHOELABEL_HOME to a folder you may write."
        ) from exc


def fail_if_nothing(ok: bool, what: str) -> int:
    """The exit status of a command that reads many files: 1, with the reason, when none was usable."""
    if ok:
        return 0
    print(f"error: {what}", file=sys.stderr)
    return 1
