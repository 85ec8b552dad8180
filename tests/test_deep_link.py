"""A deep link on a team server, in headless Chromium: after signing in, the visitor lands on the page the
address named, not on the default page."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from feedback.accounts import add_account
from tests.app_support import seed_catalogue

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"


def test_a_deep_link_survives_signing_in(
    engine: Engine, home: Path, brand_folder: Path, pool_folder: Path, server: str, page: object
) -> None:
    seed_catalogue(engine, home, brand_folder, pool_folder)
    add_account("ann", "admin", password=PASSWORD, engine=engine)
    page.goto(f"{server}/imports")
    page.get_by_role("textbox", name="Name").fill("ann")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in (admin) as:").wait_for()
    page.get_by_role("heading", name="Import", exact=True).wait_for(timeout=10_000)
    assert page.url.rstrip("/").endswith("/imports"), page.url
    assert page.get_by_role("heading", name="Review", exact=True).count() == 0


def test_a_deep_link_to_a_page_the_role_lacks_lands_on_the_default_page(
    engine: Engine, home: Path, brand_folder: Path, pool_folder: Path, server: str, page: object
) -> None:
    seed_catalogue(engine, home, brand_folder, pool_folder)
    add_account("ann", "admin", password=PASSWORD, engine=engine)
    add_account("rita", "reviewer", password=PASSWORD, engine=engine)
    page.goto(f"{server}/imports")
    page.get_by_role("textbox", name="Name").fill("rita")
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in (reviewer) as:").wait_for()
    page.get_by_role("heading", name="Review", exact=True).wait_for(timeout=10_000)
    assert page.get_by_role("heading", name="Import", exact=True).count() == 0
    assert page.get_by_test_id("stException").count() == 0
