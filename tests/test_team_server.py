"""A team server end to end: the real app server with accounts, in headless Chromium.

An anonymous visitor gets the sign-in form and no photo (not even by a page's own address); a reviewer
signs in, reviews under their account and is offered no admin action; an admin's import path outside
the import roots is refused with one message, whether the path exists or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from db.models import ReviewAction
from feedback.accounts import add_account
from tests.app_support import AppServerError, pool_ids, running_app, seed_catalogue
from tests.conftest import make_brand_photo
from tests.test_browser import SETTLE_MS, assert_one_review

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
#: The source of every image on the page.
IMAGES = "() => [...document.querySelectorAll('img')].map(i => i.currentSrc || i.src)"


@pytest.fixture
def tab(page: object) -> object:
    """A page of headless Chromium."""
    return page


@pytest.fixture
def team(engine: Engine, home: Path, brand_folder: Path, pool_folder: Path) -> Engine:
    seed_catalogue(engine, home, brand_folder, pool_folder)
    add_account("ann", "admin", password=PASSWORD, engine=engine)
    add_account("rita", "reviewer", password=PASSWORD, engine=engine)
    return engine


@pytest.fixture
def import_roots(tmp_path: Path) -> tuple[Path, Path]:
    """An import root, and a private folder of photos beside it."""
    root, private = tmp_path / "imports", tmp_path / "private"
    make_brand_photo(root / "new" / "a.jpg", 0, seed=7001)
    for i in range(2):
        make_brand_photo(private / f"secret_{i}.jpg", i, seed=7100 + i)
    return root, private


@pytest.fixture
def server(home: Path, team: Engine, import_roots: tuple[Path, Path]) -> Iterator[str]:
    """``streamlit run streamlit_app.py`` with accounts in its database and one import root."""
    try:
        env = {"SHOELABEL_IMPORT_ROOTS": str(import_roots[0])}
        with running_app(home, log=home.parent / "server.log", env=env) as url:
            yield url
    except AppServerError as exc:
        pytest.fail(str(exc))


def sign_in(tab: object, url: str, name: str) -> None:
    tab.goto(url)
    tab.get_by_label("Name", exact=True).fill(name)
    tab.get_by_label("Password", exact=True).fill(PASSWORD)
    tab.get_by_role("button", name="Sign in", exact=True).click()
    tab.get_by_role("button", name="Sign out").wait_for()


def navigation(tab: object) -> list[str]:
    links = tab.get_by_test_id("stSidebarNav").get_by_role("link")
    links.first.wait_for()
    return [text.split()[-1] for text in links.all_inner_texts()]  # the title, after the icon's name


def open_page(tab: object, title: str) -> None:
    """Open a page from the sidebar (a reload would start a new session, which signs in again)."""
    tab.get_by_test_id("stSidebarNav").get_by_role("link").filter(has_text=title).click()
    tab.get_by_role("heading", name=title).wait_for()


def test_an_anonymous_visitor_gets_the_sign_in_form_and_no_photo(server: str, tab: object) -> None:
    media: list[str] = []  # photos are served under /media/ (the app's own fonts under /static/media/)
    tab.on("request", lambda r: media.append(r.url) if "/media/" in r.url and "/static/" not in r.url else None)
    for address in (server, f"{server}/browse", f"{server}/imports"):
        tab.goto(address)
        tab.get_by_role("button", name="Sign in", exact=True).wait_for()
        tab.wait_for_timeout(SETTLE_MS)
        assert (
            tab.get_by_label("Name", exact=True).is_visible() and tab.get_by_label("Password", exact=True).is_visible()
        )
        assert tab.evaluate(IMAGES) == []
        assert tab.get_by_test_id("stImage").count() == 0 and tab.get_by_test_id("stSidebarNav").count() == 0
        text = tab.get_by_test_id("stMain").inner_text()
        assert "Photo #" not in text and "Folder to ingest" not in text
    tab.get_by_label("Name", exact=True).fill("rita")
    tab.get_by_label("Password", exact=True).fill("not the password")
    tab.get_by_role("button", name="Sign in", exact=True).click()
    tab.get_by_text("Wrong name or password.").wait_for()
    assert tab.evaluate(IMAGES) == [] and media == []


def test_a_reviewer_reviews_as_themselves_and_is_offered_no_admin_action(
    team: Engine, server: str, tab: object
) -> None:
    pool = pool_ids(team)
    sign_in(tab, server, "rita")
    assert tab.get_by_label("Your name").count() == 0  # no free-text name
    tab.get_by_text(f"Photo #{pool[0]} ·").wait_for()
    tab.locator(f".st-key-skip_{pool[0]}").wait_for()
    tab.wait_for_timeout(SETTLE_MS)
    tab.keyboard.press("2")  # correct to brand 2 (bolt)
    tab.get_by_text(f"Photo #{pool[1]} ·").wait_for()
    assert_one_review(team, (pool[0], "rita", ReviewAction.CORRECT, "bolt"))
    pages = navigation(tab)
    assert {"Review", "Browse", "Rounds"} <= set(pages) and "Import" not in pages
    open_page(tab, "Rounds")
    tab.wait_for_timeout(SETTLE_MS)
    assert tab.get_by_role("button", name="Retrain").count() == 0
    assert tab.get_by_role("button", name="Refresh predictions").count() == 0


def test_an_import_path_outside_the_roots_is_refused_with_one_message(
    team: Engine, server: str, tab: object, import_roots: tuple[Path, Path]
) -> None:
    root, private = import_roots
    sign_in(tab, server, "ann")
    open_page(tab, "Import")
    box = tab.get_by_role("textbox", name="Folder to ingest")
    messages = []
    errors = tab.get_by_test_id("stAlertContentError")
    for path in (private, private / "no-such-folder", f"{root}/../private"):
        box.fill(" ")  # another message first, so that each refusal read below is a fresh one
        box.press("Enter")
        errors.filter(has_text="Give the path of a folder").wait_for()
        box.fill(str(path))
        box.press("Enter")
        refusal = errors.filter(has_text="Only paths inside")
        refusal.wait_for()
        messages.append(refusal.inner_text())
    assert len(set(messages)) == 1 and "secret" not in messages[0]
    assert "Skipped" not in tab.get_by_test_id("stMain").inner_text()
    box.fill(str(root / "new"))
    box.press("Enter")
    tab.get_by_text("Added 1 image(s).").wait_for()
