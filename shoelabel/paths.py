"""File paths as the catalogue stores them: text every database takes, that opens the same file again.

A path whose name is valid UTF-8 is stored as it is. A name that is not (Latin-1 names from Windows disks
and ZIP files: ``bad_\\xff\\xfe.jpg``) reaches Python with lone surrogates in it, which no database can
store; such a path is stored as a ``file://`` URL whose bytes outside ASCII are percent-escaped
(``file:///photos/bad_%FF%FE.jpg``). ``str(Path(...))`` never begins with ``file://`` (a path collapses
``//``), so the two forms cannot be confused. Manifests write the stored form, and read either.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

URL = "file://"
REPLACEMENT = "\ufffd"


def stored_path(path: str | Path) -> str:
    """The text the catalogue stores for ``path``: the path itself, or its ``file://`` URL when the name is not
    valid UTF-8."""
    text = os.fspath(path)
    if _encodable(text):
        return text
    return URL + quote(os.fsencode(text), safe="/")


def file_path(stored: str) -> str:
    """The path to open for a stored path (either form)."""
    if stored.startswith(URL):
        return os.fsdecode(unquote_to_bytes(stored[len(URL) :]))
    return stored


def shown_text(text: str) -> str:
    """``text`` with every byte that is not UTF-8 (a lone surrogate) shown as U+FFFD."""
    if _encodable(text):
        return text
    return "".join(REPLACEMENT if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def shown_path(path: str | Path) -> str:
    """A stored path (either form) or a path as people read it: bytes that are not UTF-8 become U+FFFD."""
    return shown_text(file_path(os.fspath(path)))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def short_path(path: str | Path, longest: int = 120) -> str:
    """``path`` for a message, its middle left out when it is longer than ``longest`` characters."""
    text = shown_path(path)
    if len(text) <= longest:
        return text
    return f"{text[: longest * 2 // 3]}...{text[-(longest // 3) :]}"


def os_error_text(path: str | Path, exc: OSError) -> str:
    """``'<path>: <reason>'`` for a message about a file or folder that cannot be used; a path too long for the
    system is shortened and said to be too long."""
    if exc.errno == errno.ENAMETOOLONG:
        longest = max((len(os.fsencode(part)) for part in Path(path).parts), default=0)
        return (
            f"{short_path(path)}: the path is too long for this system ({len(os.fspath(path)):,} characters, "
            f"its longest name {longest:,} bytes; the limits are usually 4,096 and 255): check the path"
        )
    return f"{short_path(path, 400)}: {exc.strerror or exc}"
