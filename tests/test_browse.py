"""Browse queries: each filter returns exactly the right photos; one photo's full history; conflicts.

Each filter and order runs in SQL; the tests compare what they return with the labels derived in Python
(:func:`db.labels.effective_labels`), the reviews and the stored predictions, page by page, both when the
matches are few and when there are more than the count stops at (the plans differ).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from streamlit.testing.v1 import AppTest

import feedback.browse
import ui.browse
from db import session_scope
from db.catalog import find_attribute
from db.labels import DECISIVE, NOT_A_SHOE, EffectiveLabel, conflicts, effective_labels, review_rows
from db.models import (
    EvaluationDraw,
    Image,
    ImportedLabel,
    LabelClass,
    ModelStatus,
    ModelVersion,
    Prediction,
    PredictionKind,
    ReviewAction,
)
from feedback.browse import (
    IN_CONFLICT,
    LABEL_CHOICES,
    NO_BRAND,
    SORTS,
    UNLABELLED,
    BrowseError,
    BrowseFilter,
    filter_options,
    find_images,
    image_details,
    open_conflicts,
)
from feedback.ingest import ingest_folder
from feedback.reviews import record_review, undo_last
from shoelabel.errors import UserError
from tests.app_support import assert_clean, new_app, pool_ids, seed_catalogue
from tests.conftest import make_brand_photo


def ids(flt: BrowseFilter, engine: Engine, sort: str = "oldest") -> list[int]:
    """Every match, on one page."""
    page = find_images(flt, sort=sort, limit=1000, engine=engine)
    assert page.total == len(page.rows) and not page.capped
    return [row.image_id for row in page.rows]


def imported_as(engine: Engine, brand: str) -> list[int]:
    with session_scope(engine) as session:
        return list(
            session.scalars(
                select(Image.id)
                .join(ImportedLabel, ImportedLabel.image_id == Image.id)
                .join(LabelClass, LabelClass.id == ImportedLabel.class_id)
                .where(LabelClass.name == brand)
                .order_by(Image.id)
            )
        )


def test_no_filter_returns_every_photo_in_catalogue_order(catalogue: Engine) -> None:
    found = ids(BrowseFilter(), catalogue)
    assert len(found) == 44 and found == sorted(found)


def test_filters_by_any_attribute(catalogue: Engine) -> None:
    from feedback.classes import add_attribute, add_classes

    add_attribute("colour")
    add_classes("colour", ["Black", "White"])
    photos = ids(BrowseFilter(), catalogue)
    with session_scope(catalogue) as session:
        colour = find_attribute(session, "colour").id
    record_review(photos[0], "ann", "correct", label="Black", attribute_id=colour, engine=catalogue)
    record_review(photos[1], "ann", "correct", label="white", attribute_id=colour, engine=catalogue)
    record_review(photos[1], "ben", "correct", label="Black", attribute_id=colour, engine=catalogue)
    assert ids(BrowseFilter(attributes=(("colour", "black"),)), catalogue) == [photos[0]]
    assert ids(BrowseFilter(attributes=(("colour", IN_CONFLICT),)), catalogue) == [photos[1]]
    assert ids(BrowseFilter(attributes=(("colour", UNLABELLED),)), catalogue) == photos[2:]
    assert ids(BrowseFilter(label="acme", attributes=(("colour", "Black"),)), catalogue) == (
        [photos[0]] if photos[0] in imported_as(catalogue, "acme") else []
    )
    assert ids(BrowseFilter(attributes=(("colour", "Red"),)), catalogue) == []
    assert ids(BrowseFilter(attributes=(("size", "42"),)), catalogue) == []


def test_imported_brand_filter(catalogue: Engine) -> None:
    assert ids(BrowseFilter(imported="acme"), catalogue) == imported_as(catalogue, "acme")
    assert ids(BrowseFilter(imported="ACME"), catalogue) == imported_as(catalogue, "acme")
    assert ids(BrowseFilter(imported=NO_BRAND), catalogue) == pool_ids(catalogue)


def test_effective_label_filter_follows_reviews(catalogue: Engine) -> None:
    pool = pool_ids(catalogue)
    acme = imported_as(catalogue, "acme")
    record_review(pool[0], "ann", "correct", label="crest", engine=catalogue)
    record_review(acme[0], "ann", "correct", label="crest", engine=catalogue)  # relabelled away from acme
    record_review(pool[1], "ann", "not_a_shoe", engine=catalogue)
    record_review(pool[2], "ann", "correct", label="acme", engine=catalogue)
    record_review(pool[2], "bob", "correct", label="bolt", engine=catalogue)  # a conflict
    record_review(pool[3], "ann", "skip", engine=catalogue)  # decides nothing

    assert ids(BrowseFilter(label="crest"), catalogue) == sorted([pool[0], acme[0], *imported_as(catalogue, "crest")])
    assert ids(BrowseFilter(label="acme"), catalogue) == acme[1:]
    assert ids(BrowseFilter(label=NOT_A_SHOE), catalogue) == [pool[1]]
    assert ids(BrowseFilter(label=IN_CONFLICT), catalogue) == [pool[2]]
    assert ids(BrowseFilter(label=UNLABELLED), catalogue) == pool[3:]
    row = find_images(BrowseFilter(label=IN_CONFLICT), engine=catalogue).rows[0]
    assert row.label_text == IN_CONFLICT and row.imported is None


def test_predicted_brand_and_confidence_filters(catalogue: Engine) -> None:
    pool = pool_ids(catalogue)
    assert ids(BrowseFilter(predicted="bolt"), catalogue) == pool  # labelled photos are predicted acme
    assert ids(BrowseFilter(predicted="crest"), catalogue) == []
    # InceptionV3 (the default model) is 0.40, 0.45, 0.50, ... sure of the pool photos; the CNN 0.02 more
    assert ids(BrowseFilter(confidence=(0.0, 0.46)), catalogue) == pool[:2]
    assert ids(BrowseFilter(model="cnn", confidence=(0.0, 0.46)), catalogue) == pool[:1]
    assert ids(BrowseFilter(predicted="bolt", confidence=(0.6, 1.0)), catalogue) == pool[4:]
    assert len(ids(BrowseFilter(predicted="acme", confidence=(0.79, 0.81)), catalogue)) == 36
    row = find_images(BrowseFilter(imported=NO_BRAND), limit=1, engine=catalogue).rows[0]
    assert set(row.predictions) == {"inception", "cnn"}
    assert row.predictions["inception"].brand == "bolt"
    assert row.predictions["inception"].confidence == pytest.approx(0.40)


def test_prediction_filters_without_a_model_match_nothing(engine: Engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder, engine=engine)
    assert ids(BrowseFilter(predicted="acme"), engine) == []
    assert ids(BrowseFilter(confidence=(0.5, 1.0)), engine) == []
    assert len(ids(BrowseFilter(), engine)) == 36


def test_reviewed_and_reviewer_filters(catalogue: Engine) -> None:
    pool = pool_ids(catalogue)
    record_review(pool[0], "ann", "confirm", label="bolt", engine=catalogue)
    record_review(pool[1], "bob", "skip", engine=catalogue)
    record_review(pool[2], "bob", "correct", label="acme", engine=catalogue)
    record_review(pool[3], "bob", "not_a_shoe", engine=catalogue)
    undo_last("bob", engine=catalogue)  # the not-a-shoe answer on pool[3] no longer counts

    assert ids(BrowseFilter(reviewed=True), catalogue) == [pool[0], pool[2]]
    assert len(ids(BrowseFilter(reviewed=False), catalogue)) == 42
    assert ids(BrowseFilter(reviewer="bob"), catalogue) == [pool[1], pool[2]]
    assert ids(BrowseFilter(reviewer="bob", reviewed=False), catalogue) == [pool[1]]
    assert ids(BrowseFilter(reviewer="nobody"), catalogue) == []
    options = filter_options(catalogue)
    assert options.reviewers == ["ann", "bob"]
    assert options.brands == ["acme", "bolt", "crest"]
    assert options.models == ["cnn", "inception"]


def test_pages_split_the_matches(catalogue: Engine) -> None:
    everything = ids(BrowseFilter(), catalogue)
    first = find_images(BrowseFilter(), offset=0, limit=20, engine=catalogue)
    last = find_images(BrowseFilter(), offset=40, limit=20, engine=catalogue)
    assert first.total == last.total == 44
    assert [r.image_id for r in first.rows] == everything[:20]
    assert [r.image_id for r in last.rows] == everything[40:]


def test_image_details_have_every_review_and_prediction(catalogue: Engine) -> None:
    image_id = pool_ids(catalogue)[0]
    record_review(image_id, "ann", "correct", label="acme", engine=catalogue)
    undo_last("ann", engine=catalogue)
    record_review(image_id, "ann", ReviewAction.CONFIRM, label="bolt", engine=catalogue)
    details = image_details(image_id, engine=catalogue)
    assert details is not None
    assert [(r["action"], r["class"], r["undone_at"] is not None) for r in details.reviews] == [
        ("correct", "acme", True),
        ("confirm", "bolt", False),
    ]
    with session_scope(catalogue) as session:  # its first answer drew its part: training (pool) or held out
        held_out = session.get(EvaluationDraw, image_id).held_out
    assert details.label.value == "bolt" and details.imported is None
    assert details.split == ("holdout" if held_out else "pool")
    assert sorted((p["arch"], p["brand"], p["model_status"]) for p in details.predictions) == [
        ("cnn", "bolt", "current"),
        ("inception", "bolt", "current"),
    ]
    assert image_details(10_000, engine=catalogue) is None


def test_open_conflicts_list_every_reviewers_answer(catalogue: Engine) -> None:
    pool = pool_ids(catalogue)
    record_review(pool[0], "ann", "correct", label="acme", engine=catalogue)
    record_review(pool[0], "bob", "not_a_shoe", engine=catalogue)
    record_review(pool[1], "ann", "correct", label="acme", engine=catalogue)
    record_review(pool[1], "bob", "confirm", label="acme", engine=catalogue)  # agreement is no conflict
    [conflict] = open_conflicts(catalogue)
    assert conflict.image_id == pool[0]
    assert [(a.reviewer, a.value) for a in conflict.answers] == [("ann", "acme"), ("bob", NOT_A_SHOE)]
    record_review(pool[0], "carol", "correct", label="bolt", resolves_conflict=True, engine=catalogue)
    assert open_conflicts(catalogue) == []


def test_sort_by_newest_and_by_confidence(catalogue: Engine) -> None:
    pool = pool_ids(catalogue)
    everything = ids(BrowseFilter(), catalogue)
    labelled = [i for i in everything if i not in pool]
    assert ids(BrowseFilter(), catalogue, "newest") == everything[::-1]
    # InceptionV3 is 0.40, 0.45, ... sure of the pool photos and 0.80 of every labelled one (ties: catalogue order)
    assert ids(BrowseFilter(), catalogue, "least_confident") == pool + labelled
    assert ids(BrowseFilter(), catalogue, "most_confident") == labelled + pool[::-1]
    assert ids(BrowseFilter(model="cnn"), catalogue, "least_confident") == pool + labelled
    # with the filters: the order applies to what matches
    assert ids(BrowseFilter(imported=NO_BRAND), catalogue, "most_confident") == pool[::-1]
    assert ids(BrowseFilter(confidence=(0.0, 0.46)), catalogue, "most_confident") == [pool[1], pool[0]]
    page = find_images(BrowseFilter(), sort="least_confident", offset=2, limit=3, engine=catalogue)
    assert [r.image_id for r in page.rows] == pool[2:5] and page.total == 44
    with pytest.raises(ValueError, match="Unknown order"):
        find_images(BrowseFilter(), sort="sideways", engine=catalogue)


def test_photos_no_model_has_predicted_come_last_in_confidence_order(catalogue: Engine, tmp_path: Path) -> None:
    make_brand_photo(tmp_path / "late" / "late.jpg", 1, seed=777)
    [late] = ingest_folder(tmp_path / "late", engine=catalogue).added_ids  # no prediction yet
    for sort in ("least_confident", "most_confident"):
        assert ids(BrowseFilter(), catalogue, sort)[-1] == late


def test_confidence_order_without_a_model_is_catalogue_order(engine: Engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder, engine=engine)
    assert ids(BrowseFilter(), engine, "least_confident") == ids(BrowseFilter(), engine)


# --------------------------------------------------------------------------- SQL filters against the derivation


@pytest.fixture
def disputed(db_engine: Engine, home: Path, brand_folder: Path, pool_folder: Path, tmp_path: Path) -> Engine:
    """The catalogue, on each database backend, with every kind of review history, and one photo no model has
    predicted yet."""
    catalogue = db_engine
    seed_catalogue(catalogue, home, brand_folder, pool_folder)
    pool = pool_ids(catalogue)
    acme, bolt, crest = (imported_as(catalogue, b) for b in ("acme", "bolt", "crest"))

    def answer(image_id: int, reviewer: str, action: str, brand: str | None = None, **kw: object) -> None:
        record_review(image_id, reviewer, action, label=brand, engine=catalogue, **kw)

    answer(pool[0], "ann", "correct", "crest")  # decided
    answer(acme[0], "ann", "correct", "crest")  # relabelled away from its imported brand
    answer(pool[1], "ann", "not_a_shoe")
    answer(pool[2], "ann", "correct", "acme")
    answer(pool[2], "bob", "correct", "bolt")  # in conflict
    answer(pool[3], "ann", "skip")  # decides nothing
    answer(pool[4], "ann", "not_a_shoe")
    answer(pool[4], "bob", "correct", "bolt")  # in conflict: not a shoe against a brand
    answer(pool[5], "ann", "correct", "acme")
    answer(pool[5], "bob", "correct", "bolt")
    answer(pool[5], "carol", "correct", "acme", resolves_conflict=True)  # settled
    answer(pool[6], "ann", "correct", "acme")
    answer(pool[6], "bob", "correct", "bolt")
    answer(pool[6], "carol", "correct", "bolt", resolves_conflict=True)
    answer(pool[6], "ann", "correct", "acme")  # disputed again after the settlement
    answer(bolt[0], "bob", "not_a_shoe")
    undo_last("bob", engine=catalogue)  # back to its imported brand
    answer(crest[0], "ann", "confirm", "crest")
    answer(crest[0], "bob", "confirm", "crest")  # agreement is no conflict
    answer(crest[1], "ann", "correct", "acme")
    answer(crest[1], "ann", "correct", "bolt")  # one reviewer changing their mind is no conflict
    answer(pool[7], "bob", "not_a_shoe")
    answer(pool[7], "ann", "correct", "acme")
    answer(pool[7], "ann", "not_a_shoe")  # both say not a shoe in the end
    answer(acme[1], "dan", "unsure")  # an answer by dan, deciding nothing
    make_brand_photo(tmp_path / "late" / "late.jpg", 1, seed=777)
    ingest_folder(tmp_path / "late", engine=catalogue)  # no prediction yet
    return catalogue


@pytest.fixture(params=["few", "many"])
def count_cap(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Matches are either all counted, or more than the count stops at (the plans that walk an index)."""
    if request.param == "many":
        monkeypatch.setattr(feedback.browse, "COUNT_CAP", 3)
    return feedback.browse.COUNT_CAP


def every_page(flt: BrowseFilter, engine: Engine, sort: str, size: int = 5) -> list[int]:
    """Every match, read page by page; each page states the same count."""
    found: list[int] = []
    totals = set()
    while True:
        page = find_images(flt, sort=sort, offset=len(found), limit=size, engine=engine)
        totals.add((page.total, page.capped))
        found += [row.image_id for row in page.rows]
        if len(page.rows) < size:
            break
    [(total, capped)] = totals
    assert (total, capped) == (min(len(found), feedback.browse.COUNT_CAP), len(found) > feedback.browse.COUNT_CAP)
    assert len(set(found)) == len(found)  # no photo on two pages
    return found


@dataclass
class Known:
    """What Python knows of each photo: its derived label, its live reviews and the current models' predictions."""

    labels: dict[int, EffectiveLabel]
    decided: set[int]
    answered: dict[str, set[int]]
    predicted: dict[str, dict[int, tuple[str, float]]]  # by architecture and photo: brand, confidence

    def expected(self, flt: BrowseFilter, sort: str) -> list[int]:
        def label_text(label: EffectiveLabel) -> str:
            return IN_CONFLICT if label.conflict else (label.value or UNLABELLED)

        predicted = self.predicted[flt.model or "inception"]
        found = []
        for image_id, label in sorted(self.labels.items()):
            prediction = predicted.get(image_id)
            low, high = flt.confidence
            if flt.label is not None and label_text(label).lower() != flt.label.lower():
                continue
            if flt.imported is not None and (label.imported or NO_BRAND).lower() != flt.imported.lower():
                continue
            if flt.reviewed is not None and (image_id in self.decided) != flt.reviewed:
                continue
            if flt.reviewer is not None and image_id not in self.answered.get(flt.reviewer, set()):
                continue
            if flt.uses_prediction and (prediction is None or not low <= prediction[1] <= high):
                continue
            if flt.predicted is not None and prediction[0].lower() != flt.predicted.lower():
                continue
            found.append(image_id)
        if sort == "newest":
            return found[::-1]
        if sort in ("least_confident", "most_confident"):
            sign = 1 if sort == "least_confident" else -1
            ordered = sorted((i for i in found if i in predicted), key=lambda i: (sign * predicted[i][1], i))
            return ordered + [i for i in found if i not in predicted]
        return found


def known(engine: Engine) -> Known:
    with session_scope(engine) as session:
        labels = effective_labels(session)
        reviews = review_rows(session)
        rows = session.execute(
            select(ModelVersion.arch, Prediction.image_id, LabelClass.name, Prediction.confidence)
            .join(ModelVersion, ModelVersion.id == Prediction.model_version_id)
            .join(LabelClass, LabelClass.id == Prediction.class_id)
            .where(ModelVersion.status == ModelStatus.CURRENT, Prediction.kind == PredictionKind.MODEL)
        )
        predicted: dict[str, dict[int, tuple[str, float]]] = {}
        for arch, image_id, brand, confidence in rows:
            predicted.setdefault(arch, {})[image_id] = (brand, confidence)
    answered: dict[str, set[int]] = {}
    for image_id, reviewed in reviews.items():
        for row in reviewed:
            answered.setdefault(row.reviewer, set()).add(image_id)
    decided = {i for i, reviewed in reviews.items() if any(r.action in DECISIVE for r in reviewed)}
    return Known(labels, decided, answered, predicted)


@pytest.mark.slow
def test_the_fixture_has_every_kind_of_label(disputed: Engine) -> None:
    labels = known(disputed).labels.values()
    assert sum(label.conflict for label in labels) == 3
    assert sum(label.not_a_shoe for label in labels) == 2
    assert sum(label.value is None for label in labels) == 2  # a skipped pool photo and the late one
    assert sum(label.origin == "review" and not label.conflict for label in labels) == 7


@pytest.mark.slow
def test_label_filters_match_the_derived_labels(disputed: Engine, count_cap: int) -> None:
    facts = known(disputed)
    for sort in SORTS:
        for label in ["acme", "BOLT", "crest", *LABEL_CHOICES]:
            flt = BrowseFilter(label=label)
            assert every_page(flt, disputed, sort) == facts.expected(flt, sort), (label, sort)


FILTERS = [
    BrowseFilter(),
    BrowseFilter(imported="acme"),
    BrowseFilter(imported=NO_BRAND),
    BrowseFilter(reviewed=True),
    BrowseFilter(reviewed=False),
    BrowseFilter(reviewer="bob"),
    BrowseFilter(reviewer="dan"),
    BrowseFilter(predicted="bolt"),
    BrowseFilter(confidence=(0.5, 1.0)),
    BrowseFilter(model="cnn", confidence=(0.0, 0.46)),
    BrowseFilter(predicted="acme", confidence=(0.0, 0.9)),
    BrowseFilter(label=IN_CONFLICT, reviewer="ann"),
    BrowseFilter(label="acme", reviewed=False),
    BrowseFilter(label=UNLABELLED, confidence=(0.0, 0.6)),
    BrowseFilter(imported="crest", reviewed=True, predicted="acme"),
    BrowseFilter(reviewed=False, confidence=(0.45, 0.7)),
]


@pytest.mark.slow
def test_filters_and_orders_match_python_page_by_page(disputed: Engine, count_cap: int) -> None:
    facts = known(disputed)
    for flt in FILTERS:
        for sort in SORTS:
            assert every_page(flt, disputed, sort, size=4) == facts.expected(flt, sort), (flt, sort)


def test_count_stops_at_the_cap_and_pages_reach_it(disputed: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feedback.browse, "COUNT_CAP", 10)
    page = find_images(BrowseFilter(), offset=40, limit=5, engine=disputed)
    assert (page.total, page.capped) == (10, True)
    assert [row.image_id for row in page.rows] == known(disputed).expected(BrowseFilter(), "oldest")[40:45]
    few = find_images(BrowseFilter(label=IN_CONFLICT), limit=2, engine=disputed)
    assert (few.total, few.capped, len(few.rows)) == (3, False, 2)


def test_a_page_has_the_labels_and_predictions_of_its_photos(disputed: Engine) -> None:
    facts = known(disputed)
    page = find_images(BrowseFilter(label=IN_CONFLICT), sort="most_confident", engine=disputed)
    assert [row.label_text for row in page.rows] == [IN_CONFLICT] * 3
    for row in page.rows:
        assert row.label == facts.labels[row.image_id]
        assert row.predictions["inception"].confidence == pytest.approx(facts.predicted["inception"][row.image_id][1])


def test_open_conflicts_are_those_the_derivation_finds(disputed: Engine) -> None:
    with session_scope(disputed) as session:
        derived = sorted(conflicts(session), key=lambda label: label.image_id)
    found = open_conflicts(disputed)
    assert [c.image_id for c in found] == [label.image_id for label in derived]
    assert [{a.reviewer: a.value for a in c.answers} for c in found] == [
        {a.reviewer: a.value for a in label.answers.values()} for label in derived
    ]


def test_bad_pages_are_refused_with_a_clear_error(catalogue: Engine) -> None:
    with pytest.raises(BrowseError, match="from 0 on") as refused:
        find_images(BrowseFilter(), offset=-1, engine=catalogue)
    assert isinstance(refused.value, UserError)
    with pytest.raises(BrowseError, match="at least one"):
        find_images(BrowseFilter(), limit=0, engine=catalogue)
    with pytest.raises(UserError, match="Unknown order 'sideways'"):
        find_images(BrowseFilter(), sort="sideways", engine=catalogue)


def plans(engine: Engine, call: Callable[[], object]) -> list[str]:
    """The SQLite query plan of every statement ``call`` runs that reads a page or counts one."""
    statements: list[tuple[str, object]] = []

    def record(conn: object, cursor: object, statement: str, parameters: object, *args: object) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    with engine.connect() as conn:
        return [
            " | ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
            for statement, parameters in statements
            if "LIMIT" in statement
        ]


def test_query_plans_use_the_indexes(catalogue: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feedback.browse, "COUNT_CAP", 3)  # many matches: the pages walk an index
    walk = plans(catalogue, lambda: find_images(BrowseFilter(), sort="least_confident", limit=2, engine=catalogue))
    assert any("ix_predictions_model_confidence" in plan for plan in walk), walk
    by_brand = plans(
        catalogue, lambda: find_images(BrowseFilter(predicted="bolt", confidence=(0.5, 1.0)), engine=catalogue)
    )
    assert any("COVERING INDEX ix_predictions_model_class_confidence" in plan for plan in by_brand), by_brand
    every = walk + by_brand
    assert not [plan for plan in every if "SCAN predictions" in plan and "INDEX" not in plan], every


# --------------------------------------------------------------------------- the page


def captions(at: AppTest) -> list[int]:
    """The photos on the grid, by the number their caption starts with."""
    return [int(c.value[1:].split(" ")[0]) for c in at.caption if c.value.startswith("#")]


def page_box(at: AppTest) -> Any:
    [box] = [s for s in at.selectbox if s.label == "Page" and s.key.startswith("page_")]
    return box


@pytest.mark.slow
def test_the_page_shows_one_page_at_a_time(catalogue: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    everything = ids(BrowseFilter(), catalogue)
    at = new_app().run()
    at.switch_page("ui/pages/browse.py").run()
    assert_clean(at)
    assert captions(at) == everything[:24]
    assert page_box(at).options == ["1 of 2", "2 of 2"]
    page_box(at).set_value(2).run()
    assert captions(at) == everything[24:]
    at.selectbox(key="browse_page_size").set_value(48).run()  # a new page size starts on page 1
    assert captions(at) == everything
    assert page_box(at).options == ["1 of 1"]

    monkeypatch.setattr(feedback.browse, "COUNT_CAP", 30)
    monkeypatch.setattr(ui.browse, "COUNT_CAP", 30)
    at.selectbox(key="browse_page_size").set_value(24).run()
    assert_clean(at)
    assert any("More than **30** photos match" in m.value for m in at.markdown)
    assert page_box(at).options == ["1 of 2+", "2 of 2+"]
    page_box(at).set_value(2).run()
    assert captions(at) == everything[24:48]


@pytest.mark.slow
def test_conflicts_are_listed_a_page_at_a_time(catalogue: Engine) -> None:
    disputed = imported_as(catalogue, "acme")[:12]
    for image_id in disputed:
        record_review(image_id, "ann", "correct", label="bolt", engine=catalogue)
        record_review(image_id, "bob", "correct", label="crest", engine=catalogue)
    at = new_app().run()
    at.switch_page("ui/pages/browse.py").run()
    at.session_state["browse_tab"] = "Conflicts"
    at.run()
    at.text_input(key="reviewer_name").input("carol")
    at.button(key="FormSubmitter:reviewer_form-Start").click().run()
    assert_clean(at)
    assert any("**12** photo(s) have reviewers who disagree" in m.value for m in at.markdown)

    def listed() -> list[int]:
        return [int(b.key.removeprefix("resolve_")) for b in at.button if b.key and b.key.startswith("resolve_")]

    assert listed() == disputed[:10]
    at.selectbox(key="conflicts_page").set_value(2).run()
    assert listed() == disputed[10:]
    at.selectbox(key=f"resolve_choice_{disputed[11]}").set_value("bolt")  # settling needs a chosen answer
    at.button(key=f"resolve_{disputed[11]}").click().run()
    assert_clean(at)
    assert listed() == disputed[10:11]
    at.selectbox(key=f"resolve_choice_{disputed[10]}").set_value("bolt")
    at.button(key=f"resolve_{disputed[10]}").click().run()  # page 2 is gone: page 1 is shown again
    assert_clean(at)
    assert listed() == disputed[:10]
    assert at.session_state["browse_tab"] == "Conflicts"
