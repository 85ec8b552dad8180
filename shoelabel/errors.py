"""The one base class of errors meant for users.

Its message says what went wrong, naming the file or value, and what to do. Command
lines print it without a traceback (:func:`shoelabel.cli.run_command`); the app shows it
as a message. Anything else is a bug: logged with its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """An error whose message is for the user: nothing was half-done, and the message says what to do."""

    exit_code = 2  # of a command line that stops on it


class BusyError(UserError):
    """Another process holds what this one needs (the database, the job lock): try again later."""

    exit_code = 3
