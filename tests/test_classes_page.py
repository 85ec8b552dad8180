"""The Classes page, driven with AppTest: adding attributes and classes says what happened, a merge asks first
with the photos it relabels and can be undone, and the tabs stay where the admin was."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from feedback.classes import add_attribute, add_classes, history, schema
from tests.app_support import assert_clean, open_page, texts


def on_tab(tab: str) -> AppTest:
    at = open_page("classes")
    at.session_state["classes_tab"] = tab
    at.run()
    assert_clean(at)
    return at


def forms(at: AppTest) -> set[str]:
    """The forms drawn: the open tab's."""
    return {b.key.split("-")[0].removeprefix("FormSubmitter:") for b in at.button if b.key.startswith("FormSubmitter:")}


def submit_new_attribute(name: str, classes: str) -> AppTest:
    """The Add attribute form sent with ``name`` and ``classes`` typed in; the page drawn without a stack trace."""
    at = on_tab("Add attribute")
    at.text_input(key="new_attribute").input(name)
    at.text_input(key="new_classes").input(classes)
    at.button(key="FormSubmitter:add_attribute-Add attribute").click().run()
    assert_clean(at)
    return at


@pytest.mark.slow
def test_add_attribute_with_a_name_that_exists_adds_nothing_and_says_so(catalogue: Engine) -> None:
    add_attribute("colour", engine=catalogue)
    add_classes("colour", ["Black"], engine=catalogue)
    at = submit_new_attribute("Colour", "White")
    assert any("There is an attribute 'colour' already; nothing was added" in e for e in texts(at.error))
    assert not at.success
    assert schema(engine=catalogue)["colour"] == ["Black"]


@pytest.mark.slow
def test_a_new_attribute_reports_a_class_given_twice(catalogue: Engine) -> None:
    at = submit_new_attribute("Material", "Leather, Canvas, leather")
    assert texts(at.success) == [
        "Attribute 'material' added: choose it under Answer on the Review page. material: added 'Leather', "
        "'Canvas'. 'leather' is 'Leather' again: added once."
    ]
    assert schema(engine=catalogue)["material"] == ["Canvas", "Leather"]


@pytest.mark.slow
def test_add_classes_has_its_own_control_and_says_what_it_did(catalogue: Engine) -> None:
    at = on_tab("Add classes")
    assert forms(at) == {"add_classes"}
    at.selectbox(key="add_classes_attribute").set_value("brand")
    at.text_input(key="add_classes_names").input("Zeta, ACME, zeta")
    at.button(key="FormSubmitter:add_classes-Add classes").click().run()
    assert_clean(at)
    assert texts(at.success) == [
        "brand: added 'Zeta'. 'ACME' is the class 'acme' already. 'zeta' is 'Zeta' again: added once."
    ]
    assert schema(engine=catalogue)["brand"] == ["Zeta", "acme", "bolt", "crest"]
    at.text_input(key="add_classes_names").input("bolt")
    at.button(key="FormSubmitter:add_classes-Add classes").click().run()
    assert texts(at.info)[-1] == "brand: no class added. 'bolt' is a class already." and not at.success
    assert at.session_state["classes_tab"] == "Add classes"


@pytest.mark.slow
def test_the_tabs_stay_on_rename_after_a_rename(catalogue: Engine) -> None:
    at = on_tab("Rename")
    at.selectbox(key="rename_attribute").set_value("brand")
    at.selectbox(key="rename_old").set_value("crest")
    at.text_input(key="rename_new").input("Crest Co")
    at.button(key="FormSubmitter:rename_class-Rename").click().run()
    assert_clean(at)
    assert "Crest Co" in schema(engine=catalogue)["brand"]
    assert any("renamed 'crest' to 'Crest Co'" in s for s in texts(at.success))
    assert at.session_state["classes_tab"] == "Rename"
    assert forms(at) == {"rename_class"}  # the Rename tab is the one shown, not Add attribute


@pytest.mark.slow
def test_a_merge_asks_first_with_the_photos_it_relabels_and_can_be_undone(catalogue: Engine) -> None:
    at = on_tab("Merge")
    assert at.selectbox(key="merge_source").value is None and at.selectbox(key="merge_into").value is None
    assert at.button(key="merge_ask").disabled  # nothing chosen: nothing to merge, never a class into itself
    at.selectbox(key="merge_source").set_value("bolt").run()
    assert at.selectbox(key="merge_into").options == ["acme", "crest"]
    at.selectbox(key="merge_into").set_value("acme").run()
    at.button(key="merge_ask").click().run()
    assert_clean(at)
    assert texts(at.warning) == ["Merge 'bolt' into 'acme'? 12 photos labelled or answered 'bolt' will read as 'acme'."]
    assert schema(engine=catalogue)["brand"] == ["acme", "bolt", "crest"]  # asked, not merged
    at.button(key="merge_cancel").click().run()
    assert not at.warning and schema(engine=catalogue)["brand"] == ["acme", "bolt", "crest"]

    at.button(key="merge_ask").click().run()
    at.button(key="merge_confirm").click().run()
    assert_clean(at)
    assert schema(engine=catalogue)["brand"] == ["acme", "crest"]
    assert any("merged 'bolt' into 'acme'" in s and "12 photos now read as 'acme'" in s for s in texts(at.success))
    assert at.session_state["classes_tab"] == "Merge"
    assert at.selectbox(key="merge_undo_class").value == "bolt"  # the merge just made, ready to undo
    at.button(key="merge_undo").click().run()
    assert_clean(at)
    assert schema(engine=catalogue)["brand"] == ["acme", "bolt", "crest"]
    assert [c.kind for c in history(engine=catalogue)] == ["merge", "unmerge"]
    assert any("undid the merge of 'bolt' into 'acme'" in c.value for c in at.code)
