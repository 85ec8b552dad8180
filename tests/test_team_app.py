"""The app as a team server, driven with AppTest: the safe default without accounts, sign-in, single sign-on
by e-mail, and pages and buttons by role (the services' own checks are in tests/test_access.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from streamlit import config
from streamlit.testing.v1 import AppTest

from db import session_scope
from db.models import Image, Review, SignInSession
from feedback.accounts import add_account, set_disabled
from tests.app_support import assert_clean, new_app, pool_ids, submit_sign_in, texts
from tests.conftest import conflicting_answers

PASSWORD = "correct horse battery"
SECRETS = {
    "auth": {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "a long random secret",
        "client_id": "shoelabel",
        "client_secret": "secret",
        "server_metadata_url": "https://id.example.invalid/.well-known/openid-configuration",
    }
}


def everything_shown(at: AppTest) -> str:
    """Every text of the page, the sidebar included."""
    parts = [e.value for kind in ("markdown", "caption", "info", "error", "success", "warning", "code", "text")
             for e in getattr(at, kind)]  # fmt: skip
    return "\n".join(str(p) for p in parts)


def registered(at: AppTest, page: str) -> bool:
    """Whether ``st.navigation`` lists ``page`` for this session."""
    try:
        at.switch_page(page)
    except ValueError:
        return False
    at.switch_page("ui/pages/browse.py")  # back to a page every role has
    return True


@pytest.fixture
def team(catalogue: Engine) -> Engine:
    for name, role in (("ann", "admin"), ("rita", "reviewer"), ("vic", "viewer")):
        add_account(name, role, password=PASSWORD, email=f"{name}@example.com", engine=catalogue)
    return catalogue


@pytest.fixture
def all_interfaces() -> Iterator[None]:
    """The server as ``--server.address 0.0.0.0`` starts it."""
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        yield
    finally:
        config.set_option("server.address", before)


def sign_in(at: AppTest, name: str, password: str = PASSWORD) -> AppTest:
    submit_sign_in(at, name, password)
    assert_clean(at)
    return at


def test_a_server_without_sign_in_shows_how_to_set_it_up_and_nothing_else(
    catalogue: Engine, all_interfaces: None
) -> None:
    at = new_app().run()
    assert_clean(at)
    assert any("sign-in is not set up" in e.value for e in at.error)
    assert any("python -m feedback.accounts add NAME --role admin" in c.value for c in at.code)
    assert not at.image and not at.sidebar.caption and not at.button and not at.text_input
    at.switch_page("ui/pages/review.py").run()  # a page's own address shows no more
    assert not at.image and not at.button and any("sign-in is not set up" in e.value for e in at.error)
    assert reviews(catalogue) == []


def test_localhost_without_accounts_keeps_the_single_user_flow(catalogue: Engine) -> None:
    at = new_app().run()
    assert_clean(at)
    assert at.text_input(key="reviewer_name") is not None  # a name, no password
    assert registered(at, "ui/pages/imports.py")


@pytest.mark.slow
def test_an_anonymous_visitor_sees_only_the_sign_in_form(team: Engine) -> None:
    at = new_app().run()
    assert_clean(at)
    assert [t.key for t in at.text_input] == ["sign_in_name", "sign_in_password"]
    assert not at.image and not at.sidebar.caption and not at.metric
    assert "photo" not in everything_shown(at).lower()
    at.switch_page("ui/pages/browse.py").run()  # a page's own address shows no more
    assert not at.image and [t.key for t in at.text_input] == ["sign_in_name", "sign_in_password"]
    sign_in(at, "rita", "wrong password")
    assert texts(at.error) == ["Wrong name or password."]
    assert not [b for b in at.button if b.key.startswith("confirm_")]


@pytest.mark.slow
def test_a_reviewer_reviews_under_their_account_and_sees_no_admin_actions(team: Engine) -> None:
    at = sign_in(new_app().run(), "rita")
    assert not [t for t in at.text_input if t.key in ("reviewer_name", "sign_in_name")]  # no free-text name
    image = at.session_state["review_queue"][0].image_id
    at.button(key=f"confirm_{image}").click().run()
    assert_clean(at)
    assert [(r.image_id, r.reviewer) for r in reviews(team)] == [(image, "rita")]
    assert any(t.value == "rita" for t in at.sidebar.text)
    assert not registered(at, "ui/pages/imports.py")
    assert registered(at, "ui/pages/predict.py")
    at.switch_page("ui/pages/rounds.py").run()
    assert_clean(at)
    assert not [b for b in at.button if b.key in ("retrain", "refresh")]


@pytest.mark.slow
def test_a_viewer_browses_but_neither_reviews_nor_settles(team: Engine) -> None:
    image = pool_ids(team)[0]
    conflicting_answers(team, image, "ann", "rita")
    at = sign_in(new_app().run(), "vic")
    assert not registered(at, "ui/pages/review.py") and not registered(at, "ui/pages/predict.py")
    at.switch_page("ui/pages/browse.py").run()
    at.session_state["browse_tab"] = "Conflicts"
    at.run()
    assert_clean(at)
    assert any("have reviewers who disagree" in m.value for m in at.markdown)
    assert not [b for b in at.button if b.key.startswith("resolve_")]


@pytest.mark.slow
def test_an_admin_settles_and_imports_only_inside_the_roots(
    team: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOELABEL_IMPORT_ROOTS", str(tmp_path / "imports"))
    at = sign_in(new_app().run(), "ann")
    at.switch_page("ui/pages/imports.py").run()
    assert_clean(at)
    messages = []
    for path in (tmp_path / "brands", tmp_path / "no-such-folder", tmp_path / "imports" / ".." / "pool"):
        at.text_input(key="ingest_path_more").input(str(path))
        at.button(key="FormSubmitter:ingest_more-Ingest").click().run()
        assert_clean(at)
        messages.append([e.value for e in at.error])
    assert messages[0] == messages[1] == messages[2] and len(messages[0]) == 1
    assert "Only paths inside the import folders" in messages[0][0]
    at.text_input(key="manifest_path").input(str(tmp_path / "brands" / "labels.csv"))
    at.button(key="FormSubmitter:import_manifest-Import").click().run()
    assert "Only paths inside the import folders" in at.error[0].value
    with session_scope(team) as session:
        assert session.scalar(select(func.count(Image.id))) == 44


@pytest.mark.slow
def test_an_ended_session_returns_to_the_sign_in_form(team: Engine) -> None:
    at = sign_in(new_app().run(), "rita")
    assert at.session_state["reviewer"] == "rita"
    set_disabled("rita", engine=team)
    at.run()
    assert_clean(at)
    assert any("sign-in has ended" in i.value for i in at.info)
    assert [t.key for t in at.text_input] == ["sign_in_name", "sign_in_password"]
    assert not at.image


@pytest.mark.slow
def test_sign_out_ends_the_session(team: Engine) -> None:
    at = sign_in(new_app().run(), "rita")
    with session_scope(team) as session:
        assert session.scalar(select(func.count()).select_from(SignInSession)) == 1
    at.sidebar.button(key="sign_out").click().run()
    assert_clean(at)
    assert [t.key for t in at.text_input] == ["sign_in_name", "sign_in_password"]
    with session_scope(team) as session:
        assert session.scalar(select(func.count()).select_from(SignInSession)) == 0


@pytest.mark.slow
def test_single_sign_on_maps_the_email_to_an_account(team: Engine) -> None:
    at = new_app()
    at.secrets = SECRETS
    at.user = {"is_logged_in": False}
    at.run()
    assert_clean(at)
    assert at.button(key="sso_sign_in").label == "Sign in with single sign-on"

    at.user = {"is_logged_in": True, "email": "Rita@Example.com", "email_verified": True}
    at.run()
    assert_clean(at)
    assert at.session_state["reviewer"] == "rita"
    assert registered(at, "ui/pages/review.py") and not registered(at, "ui/pages/imports.py")

    stranger = new_app()
    stranger.secrets = SECRETS
    stranger.user = {"is_logged_in": True, "email": "eve@example.com"}
    stranger.run()
    assert_clean(stranger)
    assert any("No account has this e-mail address" in e for e in texts(stranger.error))
    assert any(t.value == "eve@example.com" for t in stranger.text)
    assert not stranger.image and "reviewer" not in stranger.session_state


def reviews(engine: Engine) -> list[Review]:
    with session_scope(engine) as session:
        return list(session.scalars(select(Review).order_by(Review.id)))
