"""The Import page: what the catalogue holds, and ingesting another folder."""

from __future__ import annotations

import streamlit as st

from feedback.manifest import import_manifest, manifest_text
from feedback.queue import SUMMARY_LABELS
from ui import auth, common


def render() -> None:
    st.title("Import")
    counts = common.shown_or_none(common.catalogue_counts)
    if counts is None:
        return
    if counts["images"] == 0:
        common.empty_catalogue()
        return
    for col, key in zip(st.columns(4), ("images", "train", "holdout", "pool"), strict=True):
        col.metric(SUMMARY_LABELS[key].capitalize(), counts.get(key, 0))
    st.markdown(
        "Add a folder: one subfolder per brand adds labelled photos; a flat folder of photos adds them to the "
        "review pool. The same photo is never stored twice. From a terminal: `python -m feedback.ingest PATH`."
    )
    common.ingest_form("more")
    st.caption("Single photos can be added on the Predict page.")
    labels_section()


def labels_section() -> None:
    st.subheader("Labels")
    st.markdown(
        "Download every photo's effective brand (after reviews) with its held-out split, or bring a manifest "
        "back. From a terminal: `python -m feedback.manifest export labels.csv` (or `--folder DIR` for one "
        "subfolder per brand) and `python -m feedback.manifest import labels.csv`."
    )
    cols = st.columns(2)
    for col, kind in zip(cols, ("csv", "json"), strict=True):
        col.download_button(
            f"Download labels ({kind.upper()})",
            data=lambda kind=kind: manifest_text(kind, engine=common.engine()),
            file_name=f"shoelabel-labels.{kind}",
            mime="text/csv" if kind == "csv" else "application/json",
            key=f"download_{kind}",
            on_click="ignore",
            width="stretch",
        )
    with st.form("import_manifest", border=True):
        path = st.text_input("Manifest to import", placeholder="/path/to/labels.csv", key="manifest_path")
        submitted = st.form_submit_button("Import")
    if not submitted:
        if shown := st.session_state.pop("manifest_report", None):  # kept across the refresh below
            ok, headline, summary = shown
            (st.success if ok else st.warning)(headline)
            st.code(summary, language=None)
        return
    try:
        report = import_manifest(path.strip(), engine=common.engine(), actor=auth.current_actor())
        summary = report.summary()
        if report.ok:
            summary += "\n" + "\n".join(common.new_photo_predictions())
    except Exception as exc:
        common.show_error(exc)
        return
    headline = (
        f"Added {report.added} photo(s); {report.labelled} stored photo(s) got their brand."
        if report.ok
        else "Nothing in that manifest could be imported."
    )
    st.session_state["manifest_report"] = (report.ok, headline, summary)
    st.rerun()  # so the counts above and in the sidebar include what the manifest added
