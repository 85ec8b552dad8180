"""A deep link on a team server, in headless Chromium: after signing in, the visitor lands on the page the
address named, not on the default page."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from feedback.accounts import add_account

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"


def sign_in_at(page: object, address: str, name: str, role: str) -> None:
    """Open ``address`` and sign in on the form shown there as ``name``, an account of ``role``."""
    page.goto(address)
    page.get_by_role("textbox", name="Name").fill(name)
    page.get_by_role("textbox", name="Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in ({role}) as:").wait_for()


def test_a_deep_link_survives_signing_in(server: str, page: object, catalogue: Engine) -> None:
    add_account("ann", "admin", password=PASSWORD, engine=catalogue)
    sign_in_at(page, f"{server}/imports", "ann", "admin")
    page.get_by_role("heading", name="Import", exact=True).wait_for(timeout=10_000)
    assert page.url.rstrip("/").endswith("/imports"), page.url
    assert page.get_by_role("heading", name="Review", exact=True).count() == 0


def test_a_deep_link_to_a_page_the_role_lacks_lands_on_the_default_page(
    server: str, page: object, catalogue: Engine
) -> None:
    add_account("ann", "admin", password=PASSWORD, engine=catalogue)
    add_account("rita", "reviewer", password=PASSWORD, engine=catalogue)
    sign_in_at(page, f"{server}/imports", "rita", "reviewer")
    page.get_by_role("heading", name="Review", exact=True).wait_for(timeout=10_000)
    assert page.get_by_role("heading", name="Import", exact=True).count() == 0
    assert page.get_by_test_id("stException").count() == 0
