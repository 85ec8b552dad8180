"""The Classes page: the attributes and their classes; admins add attributes and classes, rename and merge (and
undo a merge)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from db.access import Permission
from feedback.classes import (
    MergePreview,
    add_attribute,
    add_classes,
    describe,
    history,
    merge_classes,
    merge_preview,
    merged_classes,
    rename_class,
    reviewers_add_classes,
    schema,
    set_reviewers_add_classes,
    undo_merge,
)
from ui import auth, common

TABS = ["Add attribute", "Add classes", "Rename", "Merge"]


def _schema_table(found: dict[str, list[str]]) -> None:
    rows = [{"attribute": name, "classes": len(names), "names": ", ".join(names)} for name, names in found.items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True)  # a data grid shows names as text, never as HTML


def _done(text: str, *, changed: bool = True) -> None:
    """Say what the last change did, after the rerun that shows it (``changed=False``: nothing changed)."""
    st.session_state["classes_done"] = (text, changed)


def _names(text: str) -> list[str]:
    return [name for name in text.split(",") if name.strip()]


def _add_attribute(found: dict[str, list[str]]) -> None:
    with st.form("add_attribute", clear_on_submit=True, border=False):
        name = st.text_input("New attribute", placeholder="colour, gender, material...", key="new_attribute")
        classes = st.text_input("Its classes (optional)", placeholder="Black, White, Red", key="new_classes")
        st.caption("To give an attribute that exists more classes, use Add classes.")
        if st.form_submit_button("Add attribute") and name.strip():
            with common.guard():
                engine, actor = common.engine(), auth.current_actor()
                added = add_attribute(name, engine=engine, actor=actor, exist_ok=False)
                text = f"Attribute {added!r} added: choose it under Answer on the Review page."
                if names := _names(classes):
                    text += " " + add_classes(added, names, engine=engine, actor=actor).describe()
                _done(text)
                st.rerun()


def _add_classes(found: dict[str, list[str]]) -> None:
    with st.form("add_classes", clear_on_submit=True, border=False):
        attribute = st.selectbox("Attribute", list(found), key="add_classes_attribute")
        classes = st.text_input("New classes", placeholder="Black, White, Red", key="add_classes_names")
        if st.form_submit_button("Add classes") and attribute and _names(classes):
            with common.guard():
                outcome = add_classes(attribute, _names(classes), engine=common.engine(), actor=auth.current_actor())
                _done(outcome.describe(), changed=bool(outcome.added))
                st.rerun()


def _rename(found: dict[str, list[str]]) -> None:
    with st.form("rename_class", border=False):
        attribute = st.selectbox("Attribute", list(found), key="rename_attribute")
        old = st.selectbox("Class", found.get(attribute, []), key="rename_old")
        new_name = st.text_input("New name", key="rename_new")
        if st.form_submit_button("Rename") and old and new_name.strip():
            with common.guard():
                _done(
                    describe(rename_class(attribute, old, new_name, engine=common.engine(), actor=auth.current_actor()))
                )
                st.rerun()


def _merge(found: dict[str, list[str]]) -> None:
    """Choose two classes, see how many photos the merge relabels, then confirm; a merge can be undone below."""
    attribute = st.selectbox("Attribute", list(found), key="merge_attribute")
    names = found.get(attribute, [])
    source = st.selectbox("Merge this class", names, index=None, placeholder="Choose a class", key="merge_source")
    into = st.selectbox(
        "into this one",
        [name for name in names if name != source],
        index=None,
        placeholder="Choose the class it joins",
        key="merge_into",
    )
    st.caption(
        "Every photo labelled with the first is labelled with the second from now on; answers keep their "
        "history, the models learn the change at their next round, and the merge can be undone."
    )
    pending: MergePreview | None = st.session_state.get("merge_pending")
    if pending is not None and (pending.attribute, pending.source, pending.into) != (attribute, source, into):
        st.session_state.pop("merge_pending")  # the choice changed: ask again
        pending = None
    if pending is None:
        if st.button("Merge…", key="merge_ask", disabled=not (source and into)):
            with common.guard():
                st.session_state["merge_pending"] = merge_preview(attribute, source, into, engine=common.engine())
                st.rerun()
    else:
        _confirm_merge(pending)
    _undo_merge(attribute)


def _confirm_merge(pending: MergePreview) -> None:
    st.warning(common.plain(pending.question()), icon=":material/merge:")
    merge, cancel = st.columns(2)
    if merge.button(f"Merge, relabelling {pending.photos} photos", key="merge_confirm", type="primary"):
        st.session_state.pop("merge_pending", None)
        with common.guard():
            change = merge_classes(
                pending.attribute, pending.source, pending.into, engine=common.engine(), actor=auth.current_actor()
            )
            _done(f"{describe(change)}: {change.photos} photos now read as {change.new_name!r}. Undo it below.")
            st.session_state["merge_undo_class"] = change.old_name
            st.rerun()
    if cancel.button("Cancel", key="merge_cancel"):
        st.session_state.pop("merge_pending", None)
        st.rerun()


def _undo_merge(attribute: str) -> None:
    merged = common.shown_or_none(merged_classes, attribute, engine=common.engine())
    if not merged:
        return
    into = dict(merged)
    if st.session_state.get("merge_undo_class") not in into:
        st.session_state.pop("merge_undo_class", None)
    st.markdown("**Undo a merge**")
    name = st.selectbox(
        "Merged class",
        list(into),
        format_func=lambda n: f"{n} (reads as {into[n]})",
        key="merge_undo_class",
    )
    if st.button("Undo merge", key="merge_undo") and name:
        with common.guard():
            _done(describe(undo_merge(attribute, name, engine=common.engine(), actor=auth.current_actor())))
            st.rerun()


def _save_answer_classes() -> None:
    """The checkbox's callback: runs before the page is drawn, so the page shows the setting stored."""
    allowed = bool(st.session_state.get("reviewers_add_classes"))
    try:
        set_reviewers_add_classes(allowed, actor=auth.current_actor(), engine=common.engine())
    except Exception as exc:
        _done(common.error_text(exc), changed=False)
        return
    _done(
        "Reviewers may now add a class with their answers."
        if allowed
        else "Only admins may add a class with an answer."
    )


def _answer_classes() -> None:
    """Who may answer with a new class on the Review page (typed in its type-ahead, after a confirmation)."""
    allowed = common.shown_or_none(reviewers_add_classes, engine=common.engine())
    if allowed is None:
        return
    text = "Reviewers may add classes with their answers (typed in the Review page's type-ahead, after a confirmation)"
    if auth.allowed(Permission.MANAGE):
        st.session_state["reviewers_add_classes"] = allowed
        st.checkbox(text, key="reviewers_add_classes", on_change=_save_answer_classes)
    else:
        who = "admins and reviewers" if allowed else "admins"
        st.caption(f"A new class can be typed in the Review page's type-ahead by {who}, after a confirmation.")


def _edit(found: dict[str, list[str]]) -> None:
    """The tabs keep their choice across the reruns a change makes (only the open tab is drawn)."""
    drawers: list[Callable[[dict[str, list[str]]], None]] = [_add_attribute, _add_classes, _rename, _merge]
    for tab, draw in zip(st.tabs(TABS, key="classes_tab", on_change="rerun"), drawers, strict=True):
        if tab.open:
            with tab:
                draw(found)


def render() -> None:
    st.title("Classes")
    found = common.shown_or_none(schema, engine=common.engine())
    if found is None:
        return
    if done := st.session_state.pop("classes_done", None):
        text, changed = done
        if changed:
            st.success(common.plain(text), icon=":material/check:")
        else:
            st.info(common.plain(text), icon=":material/info:")
    _schema_table(found)
    _answer_classes()
    if auth.allowed(Permission.SCHEMA):
        _edit(found)
    changes = common.shown_or_none(history, engine=common.engine())
    st.subheader("Renames and merges")
    if changes:
        st.code("\n".join(describe(c) for c in changes), language=None)
    else:
        st.caption("No class has been renamed or merged.")
