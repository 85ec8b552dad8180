"""shoelabel: label shoe photos by brand, with models that learn from every answer.

    streamlit run streamlit_app.py

Uses the database and folders named by SHOELABEL_HOME / SHOELABEL_DB (see shoelabel/settings.py).
"""

from __future__ import annotations

import streamlit as st

from ui import common, jobs

st.set_page_config(page_title="shoelabel", page_icon="👟", layout="wide")

pages = [
    st.Page("ui/pages/review.py", title="Review", icon=":material/rate_review:", default=True),
    st.Page("ui/pages/browse.py", title="Browse", icon=":material/photo_library:"),
    st.Page("ui/pages/rounds.py", title="Rounds", icon=":material/model_training:"),
    st.Page("ui/pages/predict.py", title="Predict", icon=":material/upload:"),
    st.Page("ui/pages/imports.py", title="Import", icon=":material/create_new_folder:"),
]
page = st.navigation(pages)
common.sidebar()
jobs.job_notices()
page.run()
common.settle_heap()
