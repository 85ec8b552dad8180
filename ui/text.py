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


#: Words a reader understands for the names the code and the database use (strategies, answers, training
#: modes, prediction kinds, splits). Only fixed names: never a name from users.
READABLE = {
    "least_confidence": "least confident",
    "margin": "smallest margin",
    "entropy": "highest entropy",
    "disagreement": "models disagree",
    "diverse": "diverse",
    "random": "random",
    "likely_mislabelled": "likely mislabelled",
    "confirm": "confirmed",
    "correct": "corrected",
    "skip": "skipped",
    "not_a_shoe": "not a shoe",
    "unsure": "unsure",
    "finetune": "fine-tune",
    "head": "head only",
    "train": "training",
    "model": "model",
    "out_of_fold": "label check (out of fold)",
    "holdout": "held out",
    "pool": "review pool",
    "current": "current",
    "retired": "retired",
    "candidate": "candidate",
    "rejected": "rejected",
    "inception": "InceptionV3",
    "cnn": "CNN",
    "both": "both",
}


def readable(name: object) -> str:
    """A fixed name (``least_confidence``, ``not_a_shoe``) as words ("least confident", "not a shoe")."""
    text = str(name)
    return READABLE.get(text, text.replace("_", " "))


def first_model_hint(can_train: bool) -> str:
    """How models get trained, for who has the Retrain button (``can_train``) and for everyone else."""
    if can_train:
        return "press Retrain on the Rounds page to train the first ones from the labelled photos."
    return "an admin trains them on the Rounds page; predictions show here once they are trained."
