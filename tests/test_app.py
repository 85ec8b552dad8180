"""The Streamlit app, driven with AppTest: every action is checked in the database, not just on screen."""

from __future__ import annotations

import io
import logging
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import Engine, func, select
from streamlit.testing.v1 import AppTest

from db import DatabaseBusyError, session_scope
from db.catalog import get_or_create_class
from db.labels import conflicts, effective_labels
from db.models import Image, Review, ReviewAction, Round, RoundStatus, utcnow
from feedback.classes import add_attribute, add_classes, schema
from feedback.ingest import ingest_folder
from feedback.reviews import record_review
from modeling.jobs import JobLock
from tests.app_support import (
    add_round,
    add_round_history,
    assert_clean,
    fake_metrics,
    fake_models,
    new_app,
    open_page,
    pool_ids,
    reviewing_as_ann,
    texts,
    unescaped,
)


def reviews(engine: Engine) -> list[Review]:
    with session_scope(engine) as session:
        return list(session.scalars(select(Review).order_by(Review.id)))


def shown_image(at: AppTest) -> int:
    return at.session_state["review_queue"][0].image_id


@pytest.fixture
def reviewing(catalogue: Engine) -> AppTest:
    """The Review page with reviewer "ann" signed in."""
    at = new_app().run()
    at.text_input(key="reviewer_name").input("ann")
    at.button(key="FormSubmitter:reviewer_form-Start").click().run()
    assert_clean(at)
    return at


@pytest.mark.slow
def test_empty_database_says_how_to_ingest_and_ingests_from_the_app(engine: Engine, brand_folder: Path) -> None:
    at = new_app().run()
    assert_clean(at)
    assert any("python -m feedback.ingest PATH" in i.value for i in at.info)

    at.text_input(key="ingest_path_empty").input(str(brand_folder / "missing"))
    at.button(key="FormSubmitter:ingest_empty-Ingest").click().run()
    assert_clean(at)
    assert any("Folder not found" in e.value for e in at.error)

    at.text_input(key="ingest_path_empty").input(str(brand_folder))
    at.button(key="FormSubmitter:ingest_empty-Ingest").click().run()
    assert_clean(at)
    assert any("Images added: 36" in c.value for c in at.code)
    with session_scope(engine) as session:
        assert session.scalar(select(func.count(Image.id))) == 36


def test_reviewer_name_is_asked_once_and_kept(catalogue: Engine) -> None:
    at = new_app().run()
    assert not [b for b in at.button if b.key.startswith("confirm_")]
    at.text_input(key="reviewer_name").input("   ")
    at.button(key="FormSubmitter:reviewer_form-Start").click().run()
    assert any("reviewer name is needed" in e.value for e in at.error)

    at.text_input(key="reviewer_name").input("  Ann  Lee ")
    at.button(key="FormSubmitter:reviewer_form-Start").click().run()
    assert_clean(at)
    assert at.session_state["reviewer"] == "Ann Lee"
    at.run()
    assert not [t for t in at.text_input if t.key == "reviewer_name"]
    assert at.button(key=f"confirm_{shown_image(at)}").label == "Confirm bolt"
    assert reviews(catalogue) == []  # signing in writes nothing


def test_confirm_records_the_shown_prediction_and_moves_on(reviewing: AppTest, catalogue: Engine) -> None:
    pool = pool_ids(catalogue)
    first = shown_image(reviewing)
    assert first == pool[0]  # least confident first
    reviewing.button(key=f"confirm_{first}").click().run()
    assert_clean(reviewing)
    [review] = reviews(catalogue)
    assert (review.image_id, review.reviewer, review.action, review.undone_at) == (
        first,
        "ann",
        ReviewAction.CONFIRM,
        None,
    )
    with session_scope(catalogue) as session:
        assert session.get(Review, review.id).label_class.name == "bolt"
    assert review.model_version_id is not None and review.probabilities["bolt"] == pytest.approx(0.40)
    assert shown_image(reviewing) == pool[1]  # the preloaded photo comes next
    assert any("Reviewed this session: **1**" in m.value for m in reviewing.markdown)


@pytest.mark.parametrize(
    ("button", "action", "brand"),
    [
        ("brand_{id}_3", ReviewAction.CORRECT, "crest"),
        ("brand_{id}_1", ReviewAction.CORRECT, "acme"),
        ("skip_{id}", ReviewAction.SKIP, None),
        ("notshoe_{id}", ReviewAction.NOT_A_SHOE, None),
        ("unsure_{id}", ReviewAction.UNSURE, None),
    ],
)
def test_each_answer_is_recorded(
    reviewing: AppTest, catalogue: Engine, button: str, action: ReviewAction, brand: str | None
) -> None:
    image_id = shown_image(reviewing)
    reviewing.button(key=button.format(id=image_id)).click().run()
    assert_clean(reviewing)
    [review] = reviews(catalogue)
    with session_scope(catalogue) as session:
        stored = session.get(Review, review.id)
        assert (stored.image_id, stored.reviewer, stored.action) == (image_id, "ann", action)
        assert (stored.label_class.name if stored.label_class else None) == brand
    assert shown_image(reviewing) != image_id


def test_brand_buttons_are_numbered_in_sorted_order_with_keys(reviewing: AppTest) -> None:
    image_id = shown_image(reviewing)
    labels = [reviewing.button(key=f"brand_{image_id}_{n}").label for n in (1, 2, 3)]
    assert labels == ["1 · acme", "2 · bolt", "3 · crest"]


def test_undo_marks_the_review_undone_and_shows_the_photo_again(reviewing: AppTest, catalogue: Engine) -> None:
    first = shown_image(reviewing)
    reviewing.button(key=f"brand_{first}_1").click().run()
    second = shown_image(reviewing)
    reviewing.button(key=f"undo_{second}").click().run()
    assert_clean(reviewing)
    [review] = reviews(catalogue)
    assert review.image_id == first and review.undone_at is not None
    assert shown_image(reviewing) == first
    assert any("Reviewed this session: **0**" in m.value for m in reviewing.markdown)


def test_undo_takes_back_this_tabs_answers_first(reviewing: AppTest, catalogue: Engine) -> None:
    first = shown_image(reviewing)
    reviewing.button(key=f"skip_{first}").click().run()
    other_tab = record_review(pool_ids(catalogue)[-1], "ann", "not_a_shoe", engine=catalogue)  # same name, other tab
    reviewing.button(key=f"undo_{shown_image(reviewing)}").click().run()
    assert_clean(reviewing)
    undone = {r.id: r.undone_at is not None for r in reviews(catalogue)}
    assert undone[other_tab] is False and sum(undone.values()) == 1  # this tab's skip, although older


@pytest.mark.slow
def test_empty_queue_suggests_other_queues(reviewing: AppTest, catalogue: Engine) -> None:
    for _ in pool_ids(catalogue):
        reviewing.button(key=f"brand_{shown_image(reviewing)}_1").click().run()
    assert_clean(reviewing)
    assert reviewing.session_state["review_queue"] == []
    assert any("unreviewed" in s.value and "likely mislabelled" in s.value for s in reviewing.success)


@pytest.mark.slow
def test_likely_mislabelled_reviews_labelled_photos(reviewing: AppTest, catalogue: Engine) -> None:
    reviewing.selectbox(key="strategy").set_value("likely_mislabelled").run()
    assert_clean(reviewing)
    [scope] = reviewing.selectbox(key="scope_likely_mislabelled").options
    assert scope.startswith("labelled:")
    image_id = shown_image(reviewing)
    assert image_id not in pool_ids(catalogue)
    assert reviewing.session_state["review_queue"][0].label.origin == "import"
    reviewing.button(key=f"brand_{image_id}_2").click().run()
    [review] = reviews(catalogue)
    assert (review.image_id, review.action) == (image_id, ReviewAction.CORRECT)


def test_unreviewed_scope_includes_imported_photos(reviewing: AppTest, catalogue: Engine) -> None:
    reviewing.selectbox(key="scope_least_confidence").set_value("unreviewed").run()
    assert_clean(reviewing)
    assert any("waiting for you in the **unreviewed** queue: **44**" in m.value for m in reviewing.markdown)


def test_review_page_without_brands_says_what_to_do(engine: Engine, pool_folder: Path) -> None:
    from feedback.ingest import ingest_folder

    ingest_folder(pool_folder, engine=engine)
    at = new_app().run()
    at.text_input(key="reviewer_name").input("ann")
    at.button(key="FormSubmitter:reviewer_form-Start").click().run()
    assert_clean(at)
    assert any("There are no brand classes yet" in i.value for i in at.info)


@pytest.mark.slow
def test_retrain_is_refused_while_a_job_runs(catalogue: Engine) -> None:
    at = new_app().run()
    at.switch_page("ui/pages/rounds.py").run()
    assert_clean(at)
    with JobLock.acquire():
        at.button(key="retrain").click().run()
        assert_clean(at)
        assert any("Another training round or prediction refresh is running" in e.value for e in at.error)
        with session_scope(catalogue) as session:
            assert session.scalar(select(func.count(Round.id))) == 0
        assert any("is running" in i.value for i in at.info)


def test_rounds_page_shows_history_current_models_and_results(catalogue: Engine) -> None:
    add_round_history(catalogue)
    at = new_app().run()
    at.switch_page("ui/pages/rounds.py").run()
    assert_clean(at)
    assert not at.error
    tables = [d.value for d in at.dataframe]
    before_after = [t for t in tables if "held-out metric" in t.columns]
    assert len(before_after) == 2  # the latest round of each model
    macro_f1 = before_after[0].set_index("held-out metric").loc["macro F1"]
    assert (macro_f1["current"], macro_f1["candidate"], macro_f1["change"]) == ("0.680", "0.780", "+0.100")
    assert sum("precision" in t.columns for t in tables) == 2  # per-brand table of each current model
    [every_round] = [t.value for t in at.table]
    assert list(every_round["round"]) == [3, 2, 1]
    assert list(every_round["candidate accuracy / F1"]) == ["0.800 / 0.780", "0.750 / 0.730", "0.700 / 0.680"]


def test_rounds_page_gives_each_source_of_held_out_photos(catalogue: Engine) -> None:
    def scored(accuracy: float, reviewed: float) -> dict:
        return {
            **fake_metrics(accuracy),
            "by_source": {
                "imported": {"n": 30, "accuracy": accuracy, "macro_f1": accuracy},
                "reviewed": {"n": 24, "accuracy": reviewed, "macro_f1": reviewed},
            },
        }

    add_round(catalogue, arch="inception", metrics={"candidate": scored(0.8, 0.5), "current": None})
    add_round(catalogue, arch="inception", metrics={"candidate": scored(0.82, 0.75), "current": scored(0.8, 0.5)})
    at = new_app().run()
    at.switch_page("ui/pages/rounds.py").run()
    assert_clean(at)
    [before_after] = [d.value for d in at.dataframe if "held-out metric" in d.value.columns]
    reviewed = before_after.set_index("held-out metric").loc["accuracy, reviewed (n=24)"]
    assert (reviewed["current"], reviewed["candidate"], reviewed["change"]) == ("0.500", "0.750", "+0.250")
    assert any("*reviewed* were held out from the review pool" in c.value for c in at.caption)


def test_conflicts_are_listed_and_settled_on_the_browse_page(catalogue: Engine) -> None:
    image_id = pool_ids(catalogue)[0]
    record_review(image_id, "ann", "correct", label="acme", engine=catalogue)
    record_review(image_id, "bob", "correct", label="crest", engine=catalogue)
    at = new_app().run()
    at.switch_page("ui/pages/browse.py").run()
    assert not any("have reviewers who disagree" in m.value for m in at.markdown)  # the Photos tab is open
    at.session_state["browse_tab"] = "Conflicts"  # what a click on the tab does
    at.run()
    assert_clean(at)
    assert any("have reviewers who disagree" in m.value for m in at.markdown)
    at.text_input(key="reviewer_name").input("carol")
    at.button(key="FormSubmitter:reviewer_form-Start").click().run()
    at.selectbox(key=f"resolve_choice_{image_id}").set_value("bolt")
    at.button(key=f"resolve_{image_id}").click().run()
    assert_clean(at)
    assert at.session_state["browse_tab"] == "Conflicts"  # settling stays on the tab
    assert any("No conflicts" in s.value for s in at.success)
    with session_scope(catalogue) as session:
        assert conflicts(session) == []
        settled = session.scalar(select(Review).where(Review.reviewer == "carol"))
        assert settled.resolves_conflict and settled.label_class.name == "bolt"


def test_browse_filters_show_matching_photos(catalogue: Engine) -> None:
    at = new_app().run()
    at.switch_page("ui/pages/browse.py").run()
    assert_clean(at)
    assert any("**44** photo(s) match" in m.value for m in at.markdown)
    at.selectbox(key="f_imported").set_value("(none)").run()
    assert any("**8** photo(s) match" in m.value for m in at.markdown)
    at.slider(key="f_confidence").set_value((0.0, 0.51)).run()
    assert_clean(at)
    assert any("**3** photo(s) match" in m.value for m in at.markdown)  # InceptionV3 is 0.40, 0.45, 0.50 sure
    at.selectbox(key="f_model").set_value("cnn").run()
    assert any("**2** photo(s) match" in m.value for m in at.markdown)  # the CNN is 0.42, 0.47 sure


def jpeg_bytes(seed: int) -> bytes:
    image = PILImage.new("RGB", (64, 64), (seed * 40 % 256, 90, 160))
    out = io.BytesIO()
    image.save(out, format="JPEG")
    return out.getvalue()


def test_predict_page_adds_uploads_to_the_pool_and_rejects_bad_files(engine: Engine, brand_folder: Path) -> None:
    from feedback.ingest import ingest_folder

    ingest_folder(brand_folder, engine=engine)
    at = new_app().run()
    at.switch_page("ui/pages/predict.py").run()
    assert_clean(at)
    assert any("No trained model yet" in i.value for i in at.info)
    at.file_uploader(key="predict_files").set_value(
        [("good.jpg", jpeg_bytes(1), "image/jpeg"), ("notes.jpg", b"not a photo", "image/jpeg")]
    )
    at.run()
    assert_clean(at)
    assert any("notes.jpg" in e and "not an image" in e for e in texts(at.error))  # the name as text
    at.button(key="add_to_pool").click().run()
    assert_clean(at)
    with session_scope(engine) as session:
        uploaded = list(session.scalars(select(Image).where(Image.source.like("upload:%"))))
    assert [i.source for i in uploaded] == ["upload:good.jpg"]
    assert Path(uploaded[0].path).is_file()


def test_predict_page_reports_a_missing_model_file_without_a_stack_trace(catalogue: Engine) -> None:
    at = new_app().run()
    at.switch_page("ui/pages/predict.py").run()
    at.file_uploader(key="predict_files").set_value(("good.jpg", jpeg_bytes(2), "image/jpeg"))
    at.run()
    assert_clean(at)
    assert any("Model file missing" in e.value for e in at.error)


def test_import_page_imports_a_manifest(catalogue: Engine, tmp_path: Path) -> None:
    from tests.conftest import make_brand_photo

    photo = make_brand_photo(tmp_path / "extra" / "e.jpg", 0, seed=4242)
    (tmp_path / "extra" / "labels.csv").write_text("path,brand\ne.jpg,dash\n")
    at = new_app().run()
    at.switch_page("ui/pages/imports.py").run()
    assert_clean(at)
    assert at.metric[0].value == "44"
    at.text_input(key="manifest_path").input(str(tmp_path / "extra" / "labels.csv"))
    at.button(key="FormSubmitter:import_manifest-Import").click().run()
    assert_clean(at)
    assert any("Photos added: 1" in c.value for c in at.code)
    assert at.metric[0].value == "45"  # the counts include it at once
    with session_scope(catalogue) as session:
        added = session.scalar(select(Image).where(Image.path == str(photo.resolve())))
        assert added is not None and effective_labels(session, [added.id])[added.id].imported == "dash"


# --------------------------------------------------------------------------- issue #10: what reviewers saw


@pytest.mark.slow
def test_undo_names_the_answer_it_takes_back(reviewing: AppTest) -> None:
    first = shown_image(reviewing)
    reviewing.button(key=f"brand_{first}_3").click().run()
    assert any(f"last: Photo #{first} corrected to crest" in m for m in texts(reviewing.markdown))
    reviewing.button(key=f"undo_{shown_image(reviewing)}").click().run()
    assert_clean(reviewing)
    assert any(f"last: Undone: photo #{first} corrected to crest" in m for m in texts(reviewing.markdown))


@pytest.mark.slow
def test_the_chosen_photos_scope_stays_when_the_strategy_changes(reviewing: AppTest) -> None:
    reviewing.selectbox(key="scope_least_confidence").set_value("unreviewed").run()
    reviewing.selectbox(key="strategy").set_value("margin").run()
    assert_clean(reviewing)
    assert reviewing.selectbox(key="scope_margin").value == "unreviewed"
    assert any("waiting for you in the **unreviewed** queue: **44**" in m.value for m in reviewing.markdown)
    reviewing.selectbox(key="strategy").set_value("likely_mislabelled").run()  # offers labelled photos only
    assert reviewing.selectbox(key="scope_likely_mislabelled").value == "labelled"
    reviewing.selectbox(key="strategy").set_value("entropy").run()
    assert reviewing.selectbox(key="scope_entropy").value == "unreviewed"


@pytest.fixture
def cnn_only(engine: Engine, home: Path, brand_folder: Path, pool_folder: Path) -> Engine:
    """The catalogue with a current CNN and no InceptionV3 model."""
    ingest_folder(brand_folder, engine=engine)
    ingest_folder(pool_folder, engine=engine)
    fake_models(engine, home, archs=("cnn",))
    return engine


def test_disagreement_with_one_model_says_it_ranks_like_margin(cnn_only: Engine) -> None:
    at = new_app().run()
    at.selectbox(key="strategy").set_value("disagreement").run()
    assert_clean(at)
    assert any("only the CNN model" in i and "like **smallest margin**" in i for i in texts(at.sidebar.info))
    at.selectbox(key="strategy").set_value("margin").run()
    assert not at.sidebar.info


def test_disagreement_with_both_models_needs_no_notice(catalogue: Engine) -> None:
    at = new_app().run()
    at.selectbox(key="strategy").set_value("disagreement").run()
    assert_clean(at)
    assert not at.sidebar.info


@pytest.mark.slow
def test_sidebar_and_review_page_say_what_they_count(reviewing: AppTest) -> None:
    for _ in range(3):
        reviewing.button(key=f"skip_{shown_image(reviewing)}").click().run()
    reviewing.run()
    sidebar = texts(reviewing.sidebar.caption)
    assert any("44 photos" in c and "8 added without a brand (the review pool, reviewed or not)" in c for c in sidebar)
    assert any("waiting for you in the **unlabelled** queue: **5**" in m for m in texts(reviewing.markdown))


def test_import_page_counts_include_an_ingest_at_once(engine: Engine, brand_folder: Path, pool_folder: Path) -> None:
    ingest_folder(brand_folder, engine=engine)
    at = new_app().run()
    at.switch_page("ui/pages/imports.py").run()
    assert [m.value for m in at.metric] == ["36", "30", "6", "0"]
    at.text_input(key="ingest_path_more").input(str(pool_folder))
    at.button(key="FormSubmitter:ingest_more-Ingest").click().run()
    assert_clean(at)
    assert [m.value for m in at.metric] == ["44", "30", "6", "8"]  # no "Continue" needed
    assert any(c.startswith("44 photos") for c in texts(at.sidebar.caption))
    assert any("Images added: 8" in c.value for c in at.code)  # the report survives the refresh
    at.run()
    assert not any("Images added" in c.value for c in at.code)  # once


def test_import_page_says_when_a_manifest_is_not_found(catalogue: Engine, tmp_path: Path) -> None:
    at = new_app().run()
    at.switch_page("ui/pages/imports.py").run()
    at.text_input(key="manifest_path").input(str(tmp_path / "missing.csv"))
    at.button(key="FormSubmitter:import_manifest-Import").click().run()
    assert_clean(at)
    assert any(e.value.startswith("Manifest not found") for e in at.error)
    assert not any("Something went wrong" in e.value for e in at.error)


def test_errors_of_rounds_training_and_weights_are_shown_as_they_are() -> None:
    from feedback.manifest import ManifestError
    from modeling.architectures import WeightsError
    from modeling.fitting import TrainingError
    from modeling.rounds import RoundError
    from ui import common

    for error in (ManifestError, RoundError, TrainingError, WeightsError):
        assert common.error_text(error("clear words")) == "clear words", error
        assert common.is_expected(error("clear words")), error
    assert common.error_text(KeyError("clear words")).startswith("Something went wrong")


def rounds_page() -> AppTest:
    return open_page("rounds")


def test_retrain_is_disabled_with_the_reason_while_a_job_runs(catalogue: Engine) -> None:
    with JobLock.acquire():
        at = rounds_page()
        assert at.button(key="retrain").disabled and at.button(key="refresh").disabled
        assert "one job runs at a time" in at.button(key="retrain").help
        assert any("off until it ends" in c for c in texts(at.caption))
    at.run()
    assert not at.button(key="retrain").disabled and not at.button(key="refresh").disabled


@pytest.mark.slow
def test_inception_training_choice_is_off_for_the_cnn(catalogue: Engine) -> None:
    at = rounds_page()
    assert not at.radio(key="retrain_mode").disabled
    at.radio(key="retrain_arch").set_value("cnn").run()
    assert at.radio(key="retrain_mode").disabled
    at.radio(key="retrain_arch").set_value("inception").run()
    assert not at.radio(key="retrain_mode").disabled


def test_progress_shows_the_time_elapsed_and_an_estimate_of_the_time_left() -> None:
    from ui.rounds import progress_text

    started = utcnow()
    running = Round(id=7, arch="inception", mode="head", started_at=started, progress=0.25, progress_text="epoch 3")
    line = progress_text(running, now=started + timedelta(seconds=90))
    assert line == "Round 7 (InceptionV3, head only): epoch 3 · 25% · 1m 30s elapsed, about 4m 30s left"
    running.progress = 0.01  # too little done to tell
    assert progress_text(running, now=started + timedelta(seconds=5)).endswith("5s elapsed, estimating the time left")


def test_a_running_round_shows_its_elapsed_time_and_time_left(catalogue: Engine) -> None:
    add_round(
        catalogue,
        mode="head",
        status=RoundStatus.RUNNING,
        started_at=utcnow() - timedelta(seconds=120),
        progress=0.5,
        progress_text="training the head",
    )
    with JobLock.acquire():
        at = rounds_page()
    [bar] = at.get("progress")
    found = re.search(r"(\d+)m (\d+)s elapsed, about (\d+)m (\d+)s left", unescaped(bar.text))
    assert found, bar.text
    elapsed, left = (60 * int(found[1]) + int(found[2]), 60 * int(found[3]) + int(found[4]))
    assert 120 <= elapsed < 180 and left == elapsed  # half done: as long again


def test_first_round_shows_dashes_not_none(catalogue: Engine) -> None:
    add_round(
        catalogue,
        data={"n_train": 30},
        metrics={"candidate": fake_metrics(0.8), "current": None},
        message="First model.",
        duration_s=61.0,
    )
    at = rounds_page()
    [comparison] = [d.value for d in at.dataframe if "held-out metric" in d.value.columns]
    assert set(comparison["current"]) == set(comparison["change"]) == {"–"}
    [every_round] = [t.value for t in at.table]
    row = every_round.iloc[0]
    assert (row["reviews since last round"], row["current accuracy / F1"], row["duration"]) == ("–", "–", "1m 01s")
    for frame in (comparison, every_round):
        assert not frame.isna().any().any()
        assert not any(str(value) in ("None", "nan", "NaN") for value in frame.to_numpy().ravel())


def test_retrain_warns_before_a_first_training(engine: Engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder, engine=engine)
    at = rounds_page()
    [warning] = [w for w in texts(at.warning) if "ten minutes or more" in w]
    assert "no current InceptionV3 and CNN model" in warning
    at.radio(key="retrain_arch").set_value("cnn").run()
    [warning] = [w for w in texts(at.warning) if "ten minutes or more" in w]
    assert "no current CNN model" in warning and "InceptionV3" not in warning


def test_retrain_of_models_that_exist_gives_no_long_training_warning(cnn_only: Engine) -> None:
    at = rounds_page()
    assert any("InceptionV3 model" in w and "ten minutes" in w for w in texts(at.warning))  # "both" trains one
    at.radio(key="retrain_arch").set_value("cnn").run()
    assert not any("ten minutes" in w for w in texts(at.warning))


@pytest.mark.slow
def test_browse_sorts_by_confidence(catalogue: Engine) -> None:
    pool = pool_ids(catalogue)
    at = new_app().run()
    at.switch_page("ui/pages/browse.py").run()
    at.selectbox(key="f_sort").set_value("least_confident").run()
    assert_clean(at)
    first = next(c for c in texts(at.caption) if c.startswith("#"))
    assert first.startswith(f"#{pool[0]} ·")  # InceptionV3 is 0.40 sure of it, less than of any other photo
    at.selectbox(key="f_sort").set_value("newest").run()
    assert next(c for c in texts(at.caption) if c.startswith("#")).startswith(f"#{pool[-1]} ·")


@pytest.mark.slow
def test_claim_renewal_tolerates_a_busy_database_a_few_times_then_warns(
    reviewing: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ui.review

    def busy(*args: object, **kwargs: object) -> int:
        raise DatabaseBusyError("database is locked")

    def warned() -> bool:
        return any("may be shown to another reviewer" in w.value for w in reviewing.warning)

    monkeypatch.setattr(ui.review, "renew_claims", busy)
    for _ in range(2):  # a busy database only delays a renewal ...
        reviewing.run()
        assert not warned()
    reviewing.run()  # ... until it has refused three in a row
    assert_clean(reviewing)
    assert warned()
    monkeypatch.undo()
    reviewing.run()
    assert not warned()


def test_claim_renewal_errors_are_logged_and_shown_at_once(
    reviewing: AppTest, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import ui.review

    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("no such table: image_claims")

    monkeypatch.setattr(ui.review, "renew_claims", broken)
    with caplog.at_level(logging.ERROR, logger="shoelabel.app"):
        reviewing.run()
    assert_clean(reviewing)
    assert any("may be shown to another reviewer" in w.value for w in reviewing.warning)
    assert "claim renewal failed" in caplog.text and "no such table" in caplog.text


MANY_BRANDS = ["acme", "bolt", "crest", "delta", "echo", "fox", "golf", "hotel", "india", "juliet", "kilo", "lima"]


def favour_late_brands(position: int, arch: str, n_classes: int) -> np.ndarray:
    """Both models rank the brands in reverse alphabetical order, but the CNN puts ``acme`` far on top:
    on average ``acme`` comes first, then ``lima``, ``kilo``, ... down to ``echo``."""
    weights = np.arange(1.0, n_classes + 1)
    if arch == "cnn":
        weights[0] = 40.0
    return weights / weights.sum()


def keyed(at: AppTest) -> list[str]:
    image_id = shown_image(at)
    return [b.label for b in at.button if b.key.startswith(f"brand_{image_id}_")]


@pytest.fixture
def many_brands(engine: Engine, home: Path, brand_folder: Path, pool_folder: Path) -> Engine:
    """Twelve brands, predicted for every photo by both models (see ``favour_late_brands``)."""
    ingest_folder(brand_folder, engine=engine)
    ingest_folder(pool_folder, engine=engine)
    fake_models(engine, home, class_names=MANY_BRANDS, pool=favour_late_brands)
    return engine


def test_with_more_than_nine_brands_the_keys_are_the_photos_most_likely_brands(many_brands: Engine) -> None:
    at = reviewing_as_ann()
    expected = ["acme", "lima", "kilo", "juliet", "india", "hotel", "golf", "fox", "echo"]
    assert keyed(at) == [f"{n} · {brand}" for n, brand in enumerate(expected, start=1)]
    typeahead = at.selectbox(key=f"typeahead_{shown_image(at)}")
    assert typeahead.options == MANY_BRANDS and typeahead.value is None  # every brand, none chosen yet
    assert any("**/** any brand" in c.value for c in at.caption)
    assert reviews(many_brands) == []


def test_with_more_than_nine_brands_and_no_prediction_the_keys_follow_the_alphabet(
    engine: Engine, brand_folder: Path, pool_folder: Path
) -> None:
    ingest_folder(brand_folder, engine=engine)
    ingest_folder(pool_folder, engine=engine)
    with session_scope(engine, write=True) as session:
        for name in MANY_BRANDS:
            get_or_create_class(session, name)
    at = reviewing_as_ann()
    assert keyed(at) == [f"{n} · {brand}" for n, brand in enumerate(MANY_BRANDS[:9], start=1)]
    assert at.selectbox(key=f"typeahead_{shown_image(at)}").options == MANY_BRANDS


def test_a_brand_chosen_in_the_type_ahead_is_recorded_as_a_correction(many_brands: Engine) -> None:
    at = reviewing_as_ann()
    first = shown_image(at)
    at.selectbox(key=f"typeahead_{first}").set_value("bolt").run()  # a brand without a key
    assert_clean(at)
    [review] = reviews(many_brands)
    with session_scope(many_brands) as session:
        stored = session.get(Review, review.id)
        assert (stored.image_id, stored.reviewer, stored.action, stored.label_class.name) == (
            first,
            "ann",
            ReviewAction.CORRECT,
            "bolt",
        )
    assert shown_image(at) != first
    assert at.selectbox(key=f"typeahead_{shown_image(at)}").value is None  # the next photo starts empty
    assert any(f"last: Photo #{first} corrected to bolt" in m for m in texts(at.markdown))


def test_with_nine_brands_or_fewer_there_is_no_type_ahead(reviewing: AppTest) -> None:
    assert not [s for s in reviewing.selectbox if s.key.startswith("typeahead_")]
    assert not any("any brand" in c.value for c in reviewing.caption)


# --------------------------------------------------------------------------- attributes


@pytest.fixture
def with_colour(catalogue: Engine) -> Engine:
    """The catalogue with a second attribute, colour, that nobody has answered yet."""
    add_attribute("colour")
    add_classes("colour", ["Black", "White"])
    return catalogue


def answering(choice: str) -> AppTest:
    """The Review page, ann signed in, answering ``choice`` (an attribute, or every attribute at once)."""
    at = reviewing_as_ann()
    at.selectbox(key="review_attribute").set_value(choice).run()
    assert_clean(at)
    return at


@pytest.mark.slow
def test_a_reviewer_answers_another_attribute_by_key(with_colour: Engine) -> None:
    catalogue = with_colour
    at = answering("colour")
    first = shown_image(at)
    assert [b.label for b in at.button if b.key.startswith(f"brand_{first}_")] == ["1 · Black", "2 · White"]
    assert any("**1–9** colour" in c.value for c in at.caption)
    at.button(key=f"brand_{first}_2").click().run()
    assert_clean(at)
    [review] = reviews(catalogue)
    with session_scope(catalogue) as session:
        stored = session.get(Review, review.id)
        assert (stored.image_id, stored.attribute.name, stored.label_class.name) == (first, "colour", "White")
    assert shown_image(at) != first
    at.button(key=f"notshoe_{shown_image(at)}").click().run()  # not a shoe: about the photo, stored on brand
    with session_scope(catalogue) as session:
        assert session.get(Review, reviews(catalogue)[-1].id).attribute.name == "brand"


@pytest.mark.slow
def test_the_classes_page_adds_an_attribute_and_merges_classes(catalogue: Engine) -> None:
    at = open_page("classes")
    assert_clean(at)
    at.text_input(key="new_attribute").input("Material")
    at.text_input(key="new_classes").input("Leather, Canvas")
    at.button(key="FormSubmitter:add_attribute-Add attribute").click().run()
    assert_clean(at)
    assert schema(engine=catalogue)["material"] == ["Canvas", "Leather"]
    at.session_state["classes_tab"] = "Merge"
    at.run()
    at.selectbox(key="merge_attribute").set_value("brand").run()
    at.selectbox(key="merge_source").set_value("bolt").run()
    at.selectbox(key="merge_into").set_value("acme").run()
    at.button(key="merge_ask").click().run()
    at.button(key="merge_confirm").click().run()
    assert_clean(at)
    assert schema(engine=catalogue)["brand"] == ["acme", "crest"]
    assert any("merged 'bolt' into 'acme'" in c.value for c in at.code)


@pytest.mark.slow
def test_every_attribute_of_a_photo_on_one_screen(with_colour: Engine) -> None:
    catalogue = with_colour
    at = answering("Every attribute at once")
    first = shown_image(at)
    brand = at.session_state[f"every_{first}_brand"]
    assert brand in ("acme", "bolt", "crest")  # the photo's label, else the model's top brand
    assert at.session_state[f"every_{first}_colour"] is None  # no label, no model: left to the reviewer
    rows = [m.value for m in at.markdown if m.value.startswith(("**brand**", "**colour**"))]
    assert "InceptionV3" in rows[0] and "CNN" in rows[0] and "no model yet" in rows[1], rows
    at.button(key=f"pick_{first}_1_2").click().run()  # colour's second class
    assert at.session_state[f"every_{first}_colour"] == "White"
    at.button(key=f"save_every_{first}").click().run()
    assert_clean(at)
    with session_scope(catalogue) as session:
        stored = [session.get(Review, r.id) for r in reviews(catalogue)]
        answered = {(r.image_id, r.attribute.name, r.label_class.name) for r in stored}
    assert answered == {(first, "brand", brand), (first, "colour", "White")}
    assert shown_image(at) != first
