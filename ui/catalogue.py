"""The Import page: what the catalogue holds, and ingesting another folder."""

from __future__ import annotations

import streamlit as st

from ui import common


def render() -> None:
    st.title("Import")
    try:
        counts = common.catalogue_counts()
    except Exception as exc:
        common.show_error(exc)
        return
    if counts["images"] == 0:
        common.empty_catalogue()
        return
    cols = st.columns(4)
    cols[0].metric("Photos", counts["images"])
    cols[1].metric("Labelled for training", counts.get("train", 0))
    cols[2].metric("Held out for evaluation", counts.get("holdout", 0))
    cols[3].metric("In the review pool", counts.get("pool", 0))
    st.markdown(
        "Add a folder: one subfolder per brand adds labelled photos; a flat folder of photos adds them to the "
        "review pool. The same photo is never stored twice. From a terminal: `python -m feedback.ingest PATH`."
    )
    common.ingest_form("more")
    st.caption("Single photos can be added on the Predict page.")
