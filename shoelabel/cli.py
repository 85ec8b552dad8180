"""What every command line shares: errors meant for users are printed in one place.

Every command's ``main`` is decorated with :func:`command`: a
:class:`~shoelabel.errors.UserError` prints ``error: <message>`` without a traceback
and becomes its exit status (2, or 3 when the database or the job lock is busy);
anything else is a bug and keeps its traceback.

While a command runs, what it prints shows control and format characters escaped (``\\x1b``,
``\\u200b``): a class or file name never moves the cursor, recolours or rewrites the operator's
terminal (see :func:`shoelabel.names.printable`).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TextIO

from shoelabel.errors import UserError
from shoelabel.names import printable

Main = Callable[[list[str] | None], int]


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


def _run(main: Main, argv: list[str] | None) -> int:
    try:
        return main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: what was committed is kept; run the command again to go on", file=sys.stderr)
        return 130


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


def fail_if_nothing(ok: bool, what: str) -> int:
    """The exit status of a command that reads many files: 1, with the reason, when none was usable."""
    if ok:
        return 0
    print(f"error: {what}", file=sys.stderr)
    return 1
