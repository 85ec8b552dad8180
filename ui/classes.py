"""The Classes page: the attributes and their classes; admins add attributes and classes, rename and merge."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from db.access import Permission
from feedback.classes import add_attribute, add_classes, describe, history, merge_classes, rename_class, schema
from ui import auth, common


def _schema_table(found: dict[str, list[str]]) -> None:
    rows = [{"attribute": name, "classes": len(names), "names": ", ".join(names)} for name, names in found.items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True)  # a data grid shows names as text, never as HTML


def _done(text: str) -> None:
    st.session_state["classes_done"] = text


def _edit(found: dict[str, list[str]]) -> None:
    actor = auth.current_actor()
    engine = common.engine()
    new, rename, merge = st.tabs(["Add", "Rename", "Merge"])
    with new, st.form("add_attribute", clear_on_submit=True, border=False):
        name = st.text_input("New attribute", placeholder="colour, gender, material...")
        classes = st.text_input("Its classes (optional)", placeholder="Black, White, Red (answers can add more)")
        if st.form_submit_button("Add attribute") and name.strip():
            with common.guard():
                added = add_attribute(name, engine=engine, actor=actor)
                names = [c for c in classes.split(",") if c.strip()]
                if names:
                    add_classes(added, names, engine=engine, actor=actor)
                _done(f"Attribute {added!r} added: choose it under Answer on the Review page.")
                st.rerun()
    with rename, st.form("rename_class", border=False):
        attribute = st.selectbox("Attribute", list(found), key="rename_attribute")
        old = st.selectbox("Class", found.get(attribute, []), key="rename_old")
        new_name = st.text_input("New name")
        if st.form_submit_button("Rename") and old and new_name.strip():
            with common.guard():
                _done(describe(rename_class(attribute, old, new_name, engine=engine, actor=actor)))
                st.rerun()
    with merge, st.form("merge_classes", border=False):
        attribute = st.selectbox("Attribute", list(found), key="merge_attribute")
        names = found.get(attribute, [])
        source = st.selectbox("Merge this class", names, key="merge_source")
        into = st.selectbox("into this one", names, key="merge_into")
        st.caption(
            "Every photo labelled with the first is labelled with the second from now on; answers keep their "
            "history, and the models learn the change at their next round."
        )
        if st.form_submit_button("Merge") and source and into:
            with common.guard():
                _done(describe(merge_classes(attribute, source, into, engine=engine, actor=actor)))
                st.rerun()


def render() -> None:
    st.title("Classes")
    found = common.shown_or_none(schema, engine=common.engine())
    if found is None:
        return
    if done := st.session_state.pop("classes_done", None):
        st.success(common.plain(done), icon=":material/check:")
    _schema_table(found)
    if auth.allowed(Permission.SCHEMA):
        _edit(found)
    changes = common.shown_or_none(history, engine=common.engine())
    st.subheader("Renames and merges")
    if changes:
        st.code("\n".join(describe(c) for c in changes), language=None)
    else:
        st.caption("No class has been renamed or merged.")
