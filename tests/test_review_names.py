"""The Review page names a model's classes as they are today, and says what an answer did in words that
are true: a first answer on a new attribute corrected nothing."""

from __future__ import annotations

from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from db import session_scope
from db.models import Review
from feedback.classes import add_attribute, add_classes, merge_classes, rename_class
from tests.app_support import assert_clean, reviewing_as_ann, texts


def bars(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown if "border-radius" in m.value)


def test_the_models_bars_name_the_classes_after_a_rename_and_a_merge(catalogue: Engine) -> None:
    rename_class("brand", "bolt", "Bolt", engine=catalogue)
    merge_classes("brand", "crest", "acme", engine=catalogue)
    at = reviewing_as_ann()
    shown = bars(at)
    assert "Bolt</span>" in shown and "bolt</span>" not in shown and "crest" not in shown
    item = at.session_state["review_queue"][0]
    for answer in item.predictions.values():
        assert set(answer.probabilities) == {"Bolt", "acme"}  # crest's share is acme's now
        assert abs(sum(answer.probabilities.values()) - 1.0) < 1e-6
    tops = [m for m in texts(at.markdown) if m.startswith("**InceptionV3**") or m.startswith("**CNN**")]
    assert len(tops) == 2 and all("**acme**" in m for m in tops)  # acme's and crest's shares together
    at.button(key=f"confirm_{item.image_id}").click().run()
    assert_clean(at)
    with session_scope(catalogue) as session:
        review = session.scalars(select(Review)).one()
        assert review.label_class.name == "acme"


def test_a_first_answer_on_a_new_attribute_is_not_called_a_correction(catalogue: Engine) -> None:
    add_attribute("material")
    add_classes("material", ["Canvas", "Leather"])
    at = reviewing_as_ann()
    at.selectbox(key="review_attribute").set_value("material").run()
    first = at.session_state["review_queue"][0].image_id
    at.button(key=f"brand_{first}_1").click().run()
    assert_clean(at)
    last = [m for m in texts(at.markdown) if "last:" in m]
    assert last and f"Photo #{first} answered Canvas" in last[0] and "corrected" not in last[0]
