"""Who the app remembers: the single user's name survives a reload, and a new reviewer in the same tab
starts afresh."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from tests.app_support import assert_clean, new_app


def start_as(at: AppTest, name: str) -> AppTest:
    at.text_input(key="reviewer_name").input(name)
    at.button(key="FormSubmitter:reviewer_form-Start").click().run()
    assert_clean(at)
    return at


def session_line(at: AppTest) -> str:
    return next(m.value for m in at.markdown if "Reviewed this session" in m.value)


def test_the_single_users_name_survives_a_reload(catalogue: Engine) -> None:
    at = start_as(new_app().run(), "Ann Lee")
    assert at.query_params.get("reviewer") == "Ann Lee"
    reloaded = new_app()
    reloaded.query_params = dict(at.query_params)  # a reload keeps the address
    reloaded.run()
    assert_clean(reloaded)
    assert not [t for t in reloaded.text_input if t.key == "reviewer_name"]
    assert reloaded.session_state["reviewer"] == "Ann Lee"


@pytest.mark.slow
def test_a_new_reviewer_starts_with_their_own_count_and_last_answer(catalogue: Engine) -> None:
    at = start_as(new_app().run(), "ann")
    first = at.session_state["review_queue"][0].image_id
    at.button(key=f"confirm_{first}").click().run()
    assert "**1**" in session_line(at) and "last:" in session_line(at)
    at.button(key="change_reviewer").click().run()
    start_as(at, "bob")
    assert "Reviewed this session: **0**" in session_line(at)
    assert "last:" not in session_line(at)
    assert "reviewer" not in at.query_params or at.query_params["reviewer"] == "bob"
