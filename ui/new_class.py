"""A class the Review page's type-ahead does not know yet: added, after a confirmation that names it, by an
admin, or by a reviewer when the team allows it (see :func:`feedback.classes.may_add_classes`)."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from db.models import ReviewAction
from feedback.classes import add_answer_class, known_class, may_add_classes
from ui import auth, common

PENDING = "review_new_class"  # (photo, attribute, name) of a new class waiting for the confirmation
Answer = Callable[[int, ReviewAction, str | None], None]


def allowed() -> bool:
    """Whether this session may answer with a class nobody has used yet (the type-ahead then accepts one)."""
    try:
        return may_add_classes(auth.actor(), engine=common.engine())
    except Exception:  # the page draws without it; the error shows where the page reads the database
        return False


def ask(image_id: int, attribute: str, name: str) -> bool:
    """For the type-ahead's callback: True when ``name`` is not a class of ``attribute`` yet; then nothing is
    answered until the reviewer confirms it (see :func:`confirmation`)."""
    if known_class(attribute, name, engine=common.engine()) is not None:
        return False
    st.session_state[PENDING] = (image_id, attribute, name)
    return True


def confirmation(image_id: int, answer: Answer) -> None:
    """The question for the new class typed for this photo, if one was: add it and answer, or cancel."""
    pending = st.session_state.get(PENDING)
    if not pending or pending[0] != image_id:
        return
    _, attribute, name = pending
    st.warning(
        common.plain(
            f"{name!r} is not a {attribute} yet. Add the new {attribute} {name!r} and answer this photo with it?"
        ),
        icon=":material/new_label:",
    )
    with st.container(horizontal=True, gap="small"):
        st.button(
            common.plain(f"Add {attribute} {name!r} and answer"),
            key=f"newclass_add_{image_id}",
            type="primary",
            on_click=_add,
            args=(image_id, answer),
        )
        st.button("Cancel", key=f"newclass_cancel_{image_id}", on_click=_cancel, args=(image_id,))


def _add(image_id: int, answer: Answer) -> None:
    pending = st.session_state.pop(PENDING, None)
    if not pending or pending[0] != image_id:
        return
    _, attribute, name = pending
    try:
        stored = add_answer_class(attribute, name, engine=common.engine(), actor=auth.current_actor())
    except Exception as exc:
        st.session_state["review_error"] = common.error_text(exc)
        return
    answer(image_id, ReviewAction.CORRECT, stored)


def _cancel(image_id: int) -> None:
    st.session_state.pop(PENDING, None)
    st.session_state[f"typeahead_{image_id}"] = None
