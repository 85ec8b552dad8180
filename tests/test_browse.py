"""Browse queries: each filter returns exactly the right photos; one photo's full history; conflicts."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from db import session_scope
from db.labels import NOT_A_SHOE
from db.models import Brand, Image, ReviewAction
from feedback.browse import (
    IN_CONFLICT,
    NO_BRAND,
    UNLABELLED,
    BrowseFilter,
    filter_options,
    find_images,
    image_details,
    open_conflicts,
)
from feedback.ingest import ingest_folder
from feedback.reviews import record_review, undo_last
from tests.app_support import pool_ids


def ids(flt: BrowseFilter, engine: Engine, sort: str = "oldest") -> list[int]:
    page = find_images(flt, sort=sort, limit=None, engine=engine)
    assert page.total == len(page.rows)
    return [row.image_id for row in page.rows]


def imported_as(engine: Engine, brand: str) -> list[int]:
    with session_scope(engine) as session:
        return list(
            session.scalars(
                select(Image.id)
                .join(Brand, Brand.id == Image.source_brand_id)
                .where(Brand.name == brand)
                .order_by(Image.id)
            )
        )


def test_no_filter_returns_every_photo_in_catalogue_order(catalogue: Engine) -> None:
    found = ids(BrowseFilter(), catalogue)
    assert len(found) == 44 and found == sorted(found)


def test_imported_brand_filter(catalogue: Engine) -> None:
    assert ids(BrowseFilter(imported="acme"), catalogue) == imported_as(catalogue, "acme")
    assert ids(BrowseFilter(imported="ACME"), catalogue) == imported_as(catalogue, "acme")
    assert ids(BrowseFilter(imported=NO_BRAND), catalogue) == pool_ids(catalogue)


def test_effective_label_filter_follows_reviews(catalogue: Engine) -> None:
    pool = pool_ids(catalogue)
    acme = imported_as(catalogue, "acme")
    record_review(pool[0], "ann", "correct", brand="crest", engine=catalogue)
    record_review(acme[0], "ann", "correct", brand="crest", engine=catalogue)  # relabelled away from acme
    record_review(pool[1], "ann", "not_a_shoe", engine=catalogue)
    record_review(pool[2], "ann", "correct", brand="acme", engine=catalogue)
    record_review(pool[2], "bob", "correct", brand="bolt", engine=catalogue)  # a conflict
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
    record_review(pool[0], "ann", "confirm", brand="bolt", engine=catalogue)
    record_review(pool[1], "bob", "skip", engine=catalogue)
    record_review(pool[2], "bob", "correct", brand="acme", engine=catalogue)
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
    record_review(image_id, "ann", "correct", brand="acme", engine=catalogue)
    undo_last("ann", engine=catalogue)
    record_review(image_id, "ann", ReviewAction.CONFIRM, brand="bolt", engine=catalogue)
    details = image_details(image_id, engine=catalogue)
    assert details is not None
    assert [(r["action"], r["brand"], r["undone_at"] is not None) for r in details.reviews] == [
        ("correct", "acme", True),
        ("confirm", "bolt", False),
    ]
    assert details.label.value == "bolt" and details.imported is None and details.split == "pool"
    assert sorted((p["arch"], p["brand"], p["model_status"]) for p in details.predictions) == [
        ("cnn", "bolt", "current"),
        ("inception", "bolt", "current"),
    ]
    assert image_details(10_000, engine=catalogue) is None


def test_open_conflicts_list_every_reviewers_answer(catalogue: Engine) -> None:
    pool = pool_ids(catalogue)
    record_review(pool[0], "ann", "correct", brand="acme", engine=catalogue)
    record_review(pool[0], "bob", "not_a_shoe", engine=catalogue)
    record_review(pool[1], "ann", "correct", brand="acme", engine=catalogue)
    record_review(pool[1], "bob", "confirm", brand="acme", engine=catalogue)  # agreement is no conflict
    [conflict] = open_conflicts(catalogue)
    assert conflict.image_id == pool[0]
    assert [(a.reviewer, a.value) for a in conflict.answers] == [("ann", "acme"), ("bob", NOT_A_SHOE)]
    record_review(pool[0], "carol", "correct", brand="bolt", resolves_conflict=True, engine=catalogue)
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
    from tests.conftest import make_brand_photo

    make_brand_photo(tmp_path / "late" / "late.jpg", 1, seed=777)
    [late] = ingest_folder(tmp_path / "late", engine=catalogue).added_ids  # no prediction yet
    for sort in ("least_confident", "most_confident"):
        assert ids(BrowseFilter(), catalogue, sort)[-1] == late


def test_confidence_order_without_a_model_is_catalogue_order(engine: Engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder, engine=engine)
    assert ids(BrowseFilter(), engine, "least_confident") == ids(BrowseFilter(), engine)
