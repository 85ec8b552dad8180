"""Accounts on the Team page, with AppTest: an admin unlocks a name slowed down by wrong passwords, resets a
password and adds an account; nobody else sees these controls."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from feedback import accounts
from feedback.accounts import FREE_TRIES, SignInError, add_account, list_accounts, sign_in
from tests.app_support import assert_clean, new_app, submit_sign_in, texts

PASSWORD = "correct horse battery"


@pytest.fixture
def team(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setattr(accounts, "sleep", lambda seconds: None)  # the waits after wrong passwords
    add_account("ann", "admin", password=PASSWORD, engine=engine)
    add_account("rita", "reviewer", password=PASSWORD, engine=engine)
    return engine


def team_page_as(name: str) -> AppTest:
    at = submit_sign_in(new_app().run(), name, PASSWORD)
    at.switch_page("ui/pages/team.py").run()
    assert_clean(at)
    return at


def state_of(engine: Engine, name: str) -> str:
    return next(a.state() for a in list_accounts(engine=engine) if a.name == name)


@pytest.mark.slow
def test_an_admin_unlocks_resets_and_adds_accounts(team: Engine) -> None:
    for _ in range(FREE_TRIES + 1):
        with pytest.raises(SignInError):
            sign_in("rita", "a wrong password", engine=team)
    at = team_page_as("ann")
    table = next(d.value for d in at.dataframe if "signs in with" in d.value.columns)
    assert list(table["name"]) == ["ann", "rita"]
    assert "sign-ins wait 4 s" in table.set_index("name").loc["rita", "state"]

    at.selectbox(key="account_unlock").set_value("rita")
    at.button(key="FormSubmitter:account_unlock_form-Unlock").click().run()
    assert_clean(at)
    assert state_of(team, "rita") == "active"
    assert any("rita can sign in at once" in text for text in texts(at.success))

    at.selectbox(key="account_reset").set_value("rita")
    at.text_input(key="account_reset_password").input("a brand new password")
    at.text_input(key="account_reset_password_again").input("a brand new password")
    at.button(key="FormSubmitter:account_reset_form-Set the new password").click().run()
    assert_clean(at)
    assert sign_in("rita", "a brand new password", engine=team).actor.name == "rita"

    at.text_input(key="account_add_name").input("vic")
    at.selectbox(key="account_add_role").set_value("viewer")
    at.text_input(key="account_add_password").input("vic's long password")
    at.text_input(key="account_add_password_again").input("not the same one")
    at.button(key="FormSubmitter:account_add_form-Add").click().run()
    assert any("differ" in text for text in texts(at.error))
    assert "vic" not in [a.name for a in list_accounts(engine=team)]
    at.text_input(key="account_add_name").input("vic")
    at.text_input(key="account_add_password").input("vic's long password")
    at.text_input(key="account_add_password_again").input("vic's long password")
    at.button(key="FormSubmitter:account_add_form-Add").click().run()
    assert_clean(at)
    assert sign_in("vic", "vic's long password", engine=team).actor.role.value == "viewer"


@pytest.mark.slow
def test_a_reviewer_sees_no_account_controls(team: Engine) -> None:
    at = team_page_as("rita")
    assert not [w for w in at.text_input if w.key.startswith("account_")]
    assert not [w for w in at.selectbox if str(w.key).startswith("account_")]
    assert any("Only an admin can add accounts" in text for text in texts(at.caption))


@pytest.mark.slow
def test_the_first_account_added_by_the_single_user_is_an_admin(engine: Engine) -> None:
    at = new_app().run()
    at.switch_page("ui/pages/team.py").run()
    assert at.selectbox(key="account_add_role").options == ["admin"]
    at.text_input(key="account_add_name").input("ann")
    at.text_input(key="account_add_password").input(PASSWORD)
    at.text_input(key="account_add_password_again").input(PASSWORD)
    at.button(key="FormSubmitter:account_add_form-Add").click().run()
    assert_clean(at)
    assert [(a.name, a.role.value) for a in list_accounts(engine=engine)] == [("ann", "admin")]
    assert [t.key for t in at.text_input] == ["sign_in_name", "sign_in_password"]  # sign-in is on now
