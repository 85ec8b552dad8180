"""shoelabel: label shoe photos by brand, colour and any other attribute, with models that learn from every answer.

    streamlit run streamlit_app.py

Uses the database and folders named by SHOELABEL_HOME / SHOELABEL_DB (see shoelabel/settings.py).
Listens on localhost only (.streamlit/config.toml); a team server needs accounts (see ui/auth.py).
"""

from __future__ import annotations

import streamlit as st

from db.access import Permission
from ui import auth, common, jobs, predict

st.set_page_config(page_title="shoelabel", page_icon="👟", layout="wide")

actor = auth.gate()  # a visitor who has not signed in sees the sign-in form, and nothing else, from here

pages = [  # each page with what its viewer must be allowed; a page a role cannot use is not listed
    (st.Page("ui/pages/review.py", title="Review", icon=":material/rate_review:", default=True), Permission.REVIEW),
    (st.Page("ui/pages/browse.py", title="Browse", icon=":material/photo_library:"), Permission.BROWSE),
    (st.Page("ui/pages/rounds.py", title="Rounds", icon=":material/model_training:"), Permission.BROWSE),
    (st.Page("ui/pages/predict.py", title="Predict", icon=":material/upload:"), Permission.REVIEW),
    (st.Page("ui/pages/imports.py", title="Import", icon=":material/create_new_folder:"), Permission.IMPORT),
    (st.Page("ui/pages/classes.py", title="Classes", icon=":material/label:"), Permission.BROWSE),
    (st.Page("ui/pages/team.py", title="Team", icon=":material/groups:"), Permission.BROWSE),
]
page = st.navigation([p for p, need in pages if auth.allowed(need)])
auth.sidebar(actor)
draw_counts = common.sidebar(show_reviewer=not actor.signed_in)
jobs.job_notices()
page.run()
draw_counts()  # again: what the page added is counted in this run, not after the next page change
predict.warmup()  # the models get ready in the background once the first page is on screen
common.settle_heap()
