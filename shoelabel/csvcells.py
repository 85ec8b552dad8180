"""CSV cells a spreadsheet would run as formulas, made inert, and read back as they were.

OWASP's CSV-injection guidance: a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is a formula (or becomes one) in Excel, LibreOffice and Google Sheets; a leading single quote makes
it text. :func:`neutralise` adds that quote (also before text that already starts with quotes followed by
one of those characters, so that :func:`restore` can tell an added quote from one of the value's own) and
:func:`restore` takes exactly that one quote off again.
"""

from __future__ import annotations

import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_RISKY = re.compile(r"'*[=+\-@\t\r]")  # a formula character, after any quotes


def neutralise(value: object) -> object:
    """``value`` safe for a CSV cell: text that a spreadsheet would read as a formula gets a leading quote;
    anything else (numbers, other text) is returned as it is."""
    if isinstance(value, str) and _RISKY.match(value):
        return "'" + value
    return value


def restore(text: str) -> str:
    """The text a cell written by :func:`neutralise` held: its added leading quote taken off."""
    if text.startswith("'") and _RISKY.match(text, 1):
        return text[1:]
    return text
