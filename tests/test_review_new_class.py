"""A new class typed in the Review page's type-ahead: added after a confirmation that names it, by an admin, or
by a reviewer when the team setting (Classes page) allows it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from db import session_scope
from db.models import Review
from feedback.accounts import add_account
from feedback.classes import schema
from feedback.ingest import ingest_folder
from tests.app_support import assert_clean, fake_models, new_app, reviewing_as_ann, submit_sign_in, texts

BRANDS = ["acme", "bolt", "crest", "delta", "echo", "fox", "golf", "hotel", "india", "juliet", "kilo", "lima"]
PASSWORD = "correct horse battery"


@pytest.fixture
def many_brands(engine: Engine, home: Path, brand_folder: Path, pool_folder: Path) -> Engine:
    """Twelve brands (more than the keys, so the page has its type-ahead), predicted for every photo."""
    ingest_folder(brand_folder, engine=engine)
    ingest_folder(pool_folder, engine=engine)
    fake_models(engine, home, class_names=BRANDS)
    return engine


def shown(at: AppTest) -> int:
    return at.session_state["review_queue"][0].image_id


def typed(at: AppTest, name: str) -> AppTest:
    """The type-ahead holding ``name``, a name it does not list, as the browser keeps it when the box accepts new
    options (AppTest sends only listed values: the name is listed for it before each run)."""
    box = at.selectbox(key=f"typeahead_{shown(at)}")
    assert box.proto.accept_new_options
    box.options.append(name)
    return at


def type_new(at: AppTest, name: str) -> AppTest:
    """Type a name the type-ahead does not list and press Enter."""
    typed(at, name).selectbox(key=f"typeahead_{shown(at)}").set_value(name).run()
    assert_clean(at)
    return at


def answers(engine: Engine) -> list[tuple[int, str, str]]:
    with session_scope(engine) as session:
        return [
            (r.image_id, r.reviewer, r.label_class.name) for r in session.scalars(select(Review).order_by(Review.id))
        ]


def test_an_admin_adds_a_new_class_after_a_confirmation_naming_it(many_brands: Engine) -> None:
    at = reviewing_as_ann()
    first = shown(at)
    type_new(at, "Zeta")
    assert texts(at.warning) == ["'Zeta' is not a brand yet. Add the new brand 'Zeta' and answer this photo with it?"]
    assert "Zeta" not in schema(engine=many_brands)["brand"] and answers(many_brands) == []  # nothing yet
    typed(at, "Zeta").button(key=f"newclass_add_{first}").click().run()
    assert_clean(at)
    assert "Zeta" in schema(engine=many_brands)["brand"]
    assert answers(many_brands) == [(first, "ann", "Zeta")]
    assert shown(at) != first and not at.warning


@pytest.mark.slow
def test_a_new_class_can_be_cancelled(many_brands: Engine) -> None:
    at = reviewing_as_ann()
    first = shown(at)
    type_new(at, "Zeta")
    typed(at, "Zeta").button(key=f"newclass_cancel_{first}").click().run()
    assert_clean(at)
    assert not at.warning and shown(at) == first
    assert at.selectbox(key=f"typeahead_{first}").value is None
    assert "Zeta" not in schema(engine=many_brands)["brand"] and answers(many_brands) == []


def test_a_class_typed_in_another_case_is_the_class_it_names(many_brands: Engine) -> None:
    at = reviewing_as_ann()
    first = shown(at)
    type_new(at, "BOLT")
    assert not at.warning
    assert answers(many_brands) == [(first, "ann", "bolt")]


def sign_in(name: str) -> AppTest:
    at = submit_sign_in(new_app().run(), name, PASSWORD)
    assert_clean(at)
    return at


@pytest.mark.slow
def test_a_reviewer_adds_a_class_only_when_an_admin_allows_it(many_brands: Engine) -> None:
    for name, role in (("ann", "admin"), ("rita", "reviewer")):
        add_account(name, role, password=PASSWORD, engine=many_brands)
    rita = sign_in("rita")
    assert not rita.selectbox(key=f"typeahead_{shown(rita)}").proto.accept_new_options
    rita.switch_page("ui/pages/classes.py").run()
    assert not [c for c in rita.checkbox if c.key == "reviewers_add_classes"]  # only an admin changes it
    assert any("by admins, after a confirmation" in c for c in texts(rita.caption))

    ann = sign_in("ann")
    ann.switch_page("ui/pages/classes.py").run()
    ann.checkbox(key="reviewers_add_classes").check().run()
    assert_clean(ann)
    assert texts(ann.success) == ["Reviewers may now add a class with their answers."]

    rita.switch_page("ui/pages/review.py").run()
    first = shown(rita)
    type_new(rita, "Zeta")
    typed(rita, "Zeta").button(key=f"newclass_add_{first}").click().run()
    assert_clean(rita)
    assert answers(many_brands) == [(first, "rita", "Zeta")]
