"""Words a reader knows where the interface showed the code's names (``least_confidence``,
``likely_mislabelled``, ``not_a_shoe``), and a photo's details as tables rather than a monospace dump."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from feedback.reviews import record_review
from tests.app_support import assert_clean, new_app, open_page

CODE_NAMES = ("least_confidence", "likely_mislabelled", "not_a_shoe", "out_of_fold")


@pytest.mark.slow
def test_the_strategy_choice_reads_as_words(catalogue: Engine) -> None:
    at = new_app().run()
    at.text_input(key="reviewer_name").input("ann")
    at.button(key="FormSubmitter:reviewer_form-Start").click().run()
    assert_clean(at)
    strategy = at.selectbox(key="strategy")
    assert "Least confident" in strategy.options and "Likely mislabelled" in strategy.options
    assert not any(name in option for option in strategy.options for name in CODE_NAMES)
    assert not any(name in (strategy.help or "") for name in CODE_NAMES)


@pytest.mark.slow
def test_photo_details_are_tables_in_words(catalogue: Engine) -> None:
    at = open_page("browse")
    photo = next(int(b.key.removeprefix("open_")) for b in at.button if b.key and b.key.startswith("open_"))
    record_review(photo, "ann", "not_a_shoe", engine=catalogue)
    at.button(key=f"open_{photo}").click().run()
    assert_clean(at)
    assert not at.code  # no monospace dump
    cells = [str(v) for table in at.table for v in table.value.to_numpy().ravel()]
    assert "not a shoe" in cells
    assert any(cell.startswith("InceptionV3 v") for cell in cells) and "model" in cells
    assert not any(name in cell for cell in cells for name in CODE_NAMES)
