"""What every command line shares: errors meant for users are printed in one place.

Every command's ``main`` is decorated with :func:`command`: a
:class:`~shoelabel.errors.UserError` prints ``error: <message>`` without a traceback
and becomes its exit status (2, or 3 when the database or the job lock is busy);
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

from shoelabel.errors import UserError

Main = Callable[[list[str] | None], int]


def run_command(main: Main, argv: list[str] | None = None) -> int:
    """Run a command's ``main``; its exit status."""
    try:
        return main(argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: what was committed is kept; run the command again to go on", file=sys.stderr)
        return 130


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
