"""Text from users (names, classes, paths, messages that hold them) shown as text, never as formatting."""

from __future__ import annotations

import re

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>:$&=^])")
#: Where GitHub-flavoured Markdown turns bare text into a link (``https://``, ``www.``, ``name@host``): it finds
#: them in the text after escapes are read, so no escape stops it; an invisible word joiner there does.
_AUTOLINK = re.compile(r"(?<=[a-z])(?=://)|(?<=www)(?=\.)|(?<=@)", re.IGNORECASE)
WORD_JOINER = "\u2060"


def plain(text: object) -> str:
    """``text`` with every Markdown and HTML special character escaped, and bare web and e-mail addresses kept
    from becoming links (an invisible word joiner after ``https``, ``www`` and ``@``), so names and paths from
    users can go into ``st.markdown``, captions and labels as they are, never as formatting, markup or links."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _AUTOLINK.sub(WORD_JOINER, " ".join(str(text).split())))
