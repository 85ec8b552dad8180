"""Names from users as they are compared, and as a terminal shows them.

Class and attribute names (and a manifest's column names) are compared after NFKC normalisation with
control and format characters (Unicode Cc and Cf: escape sequences, zero-width spaces, direction marks)
taken out, so ``(not a\\u200b shoe)`` is ``(not a shoe)`` and ``ＮＩＫＥ`` is ``NIKE``. A terminal shows
such characters escaped (``\\x1b``, ``\\u200b``), never acted upon.
"""

from __future__ import annotations

import unicodedata

from shoelabel.paths import REPLACEMENT, shown_text

HIDDEN_CATEGORIES = frozenset({"Cc", "Cf"})  # control and format characters: never part of a name
SHOWN_ESCAPED = HIDDEN_CATEGORIES | {"Cs"}  # and lone surrogates: bytes of a file name that are not UTF-8
LINE_ENDS = "\n\t"  # the control characters a terminal is meant to act on


def normal_name(name: object) -> str:
    """``name`` as names are compared and stored: NFKC, without control or format characters, with single
    spaces and none at either end (bytes that were not UTF-8 become U+FFFD)."""
    text = unicodedata.normalize("NFKC", shown_text(str(name)))
    text = " ".join(text.split())  # tabs and line breaks are spaces
    text = "".join(c for c in text if unicodedata.category(c) not in HIDDEN_CATEGORIES)
    return " ".join(text.split())


def _escaped(c: str) -> str:
    code = ord(c)
    if 0xD800 <= code <= 0xDFFF:  # a byte of a file name that is not UTF-8
        return REPLACEMENT
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: str, keep: str = LINE_ENDS) -> str:
    """``text`` for a terminal: control and format characters (but those in ``keep``) written as escapes, bytes
    that are not UTF-8 as U+FFFD."""
    return "".join(c if c in keep or unicodedata.category(c) not in SHOWN_ESCAPED else _escaped(c) for c in text)
