"""The Rounds page as a catalogue team reads it: classes under their names of today, mistakes as shares,
words a reader knows, a Retrain form that picks the attribute and can cancel, and no button promised to
whoever does not have it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from db import session_scope
from db.models import Job, JobKind, JobStatus, ModelVersion, Round, RoundStatus
from feedback.accounts import add_account
from feedback.classes import add_attribute, add_classes, merge_classes, rename_class
from feedback.ingest import ingest_folder
from modeling.background import cancel_job
from modeling.jobs import JobLock, failed_jobs, job_running, open_job, set_job_pid
from modeling.metrics import compute_metrics, through_names
from modeling.registry import promote, register
from modeling.rounds import open_round
from tests.app_support import (
    add_round,
    assert_clean,
    fake_metrics,
    new_app,
    open_page,
    submit_sign_in,
    texts,
    unescaped,
)

#: 17 brands (more than the page draws as a matrix): each right on 10 photos, but all 26 Vans went to Puma.
BRANDS = ["ADIDAS", "ADIDAS Originals", "Puma", "Vans", *[f"brand{n:02d}" for n in range(13)]]


def held_out_metrics() -> dict:
    truth = [i for i in range(len(BRANDS)) if BRANDS[i] != "Vans" for _ in range(10)] + [3] * 26
    predicted = [i for i in range(len(BRANDS)) if BRANDS[i] != "Vans" for _ in range(10)] + [2] * 26
    truth += [1] * 4  # ADIDAS Originals photos taken for ADIDAS: right once the two are merged
    predicted += [0] * 4
    return compute_metrics(np.array(truth), np.array(predicted), BRANDS).summary()


@pytest.fixture
def many_brands(engine: Engine, brand_folder: Path) -> Engine:
    ingest_folder(brand_folder, engine=engine)
    add_classes("brand", BRANDS)
    with session_scope(engine, write=True) as session:
        version = register(
            session, arch="cnn", path=Path("cnn.keras"), class_names=BRANDS, input_size=32, parent_id=None,
            metrics=held_out_metrics(),
        )  # fmt: skip
        promote(session, version)
    return engine


def frames_with(at: AppTest, column: str) -> list:
    return [d for d in at.dataframe if column in d.value.columns]


@pytest.mark.slow
def test_most_frequent_mistakes_show_shares_as_percentages(many_brands: Engine) -> None:
    at = open_page("rounds")
    [mistakes] = frames_with(at, "predicted")
    row = mistakes.value.set_index("true").loc["Vans"]
    assert (row["predicted"], row["count"]) == ("Puma", 26)
    shown = json.loads(mistakes.proto.columns)["share"]
    assert shown["type_config"]["format"] % row["share"] == "100%"  # all 26 of them: 100%, never "1%"
    assert shown["type_config"]["max_value"] == 100


@pytest.mark.slow
def test_the_rounds_page_shows_a_models_classes_through_renames_and_merges(many_brands: Engine) -> None:
    rename_class("brand", "ADIDAS", "Adidas", engine=many_brands)
    merge_classes("brand", "ADIDAS Originals", "Adidas", engine=many_brands)
    with session_scope(many_brands) as session:
        metrics = session.scalars(select(ModelVersion)).one().metrics
    add_round(many_brands, arch="cnn", mode="train", metrics={"candidate": metrics, "current": None})
    at = open_page("rounds")
    [per_class] = frames_with(at, "precision")
    classes = list(per_class.value["class"])
    assert "Adidas" in classes and "ADIDAS" not in classes and "ADIDAS Originals" not in classes
    adidas = per_class.value.set_index("class").loc["Adidas"]
    assert adidas["support"] == 24 and adidas["recall"] == 1.0  # ADIDAS's 10 and ADIDAS Originals' 14, all right
    [comparison] = frames_with(at, "held-out metric")
    rows = list(comparison.value["held-out metric"])
    assert "F1 Adidas" in rows and not any("ADIDAS" in r for r in rows)
    [mistakes] = frames_with(at, "predicted")
    assert "ADIDAS" not in set(mistakes.value["true"]) | set(mistakes.value["predicted"])


def test_merged_metrics_are_computed_again_from_the_summed_matrix() -> None:
    metrics = held_out_metrics()
    shown = through_names(metrics, {"ADIDAS": "Adidas", "ADIDAS Originals": "Adidas"})
    assert shown["class_names"][0] == "Adidas" and len(shown["class_names"]) == len(BRANDS) - 1
    assert np.array(shown["confusion"]).sum() == np.array(metrics["confusion"]).sum()
    assert shown["accuracy"] > metrics["accuracy"]  # the 4 photos between the two are right now
    assert through_names(metrics, {}) == metrics


@pytest.fixture
def team(engine: Engine, brand_folder: Path) -> Engine:
    ingest_folder(brand_folder, engine=engine)
    for name, role in (("ann", "admin"), ("rita", "reviewer")):
        add_account(name, role, password="correct horse battery", engine=engine)
    return engine


def signed_in(name: str, page: str) -> AppTest:
    at = submit_sign_in(new_app().run(), name, "correct horse battery")
    at.switch_page(f"ui/pages/{page}.py").run()
    assert_clean(at)
    return at


def everything(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "error", "success", "warning")
    return "\n".join(unescaped(str(e.value)) for kind in kinds for e in getattr(at, kind))


@pytest.mark.slow
def test_reviewers_are_not_told_to_press_a_retrain_button_they_do_not_have(team: Engine) -> None:
    for page in ("rounds", "predict"):
        reviewer = signed_in("rita", page)
        assert not [b for b in reviewer.button if b.key == "retrain"]
        assert "Retrain" not in everything(reviewer) and "an admin trains them" in everything(reviewer)
    admin = signed_in("ann", "rounds")
    assert admin.button(key="retrain") and "press Retrain" in everything(admin)


def test_round_labels_say_what_was_trained_in_words(engine: Engine, brand_folder: Path) -> None:
    ingest_folder(brand_folder, engine=engine)
    with session_scope(engine, write=True) as session:
        parent = register(session, arch="cnn", path=Path("c.keras"), class_names=["a"], input_size=32, parent_id=None)
        session.flush()
        parent_id = parent.id
    add_round(engine, arch="cnn", mode="train", metrics={"candidate": fake_metrics(0.7), "current": None})
    add_round(engine, arch="cnn", mode="train", parent_model_id=parent_id, metrics={"candidate": fake_metrics(0.8)})
    add_round(engine, arch="inception", mode="head", metrics={"candidate": fake_metrics(0.8)})
    at = open_page("rounds")
    [every_round] = [t.value for t in at.table]
    assert list(every_round["model"]) == [
        "InceptionV3, head only",
        f"CNN, continued from v{parent_id}",
        "CNN, first model",
    ]
    assert not any("(cnn, train)" in m for m in texts(at.markdown))
    assert at.radio(key="retrain_arch").options == ["both", "InceptionV3", "CNN"]
    assert at.radio(key="retrain_mode").options == ["fine-tune", "head only"]  # the default first


def chart_specs(at: AppTest) -> list[dict]:
    return [json.loads(e.proto.spec) for e in at.get("vega_lite_chart")]


@pytest.mark.slow
def test_the_score_legend_has_its_whole_title_and_draws_each_score_as_its_line(catalogue: Engine) -> None:
    add_round(catalogue, arch="cnn", mode="train", metrics={"candidate": fake_metrics(0.7)})
    at = open_page("rounds")
    [history] = [s for s in chart_specs(at) if "strokeDash" in s.get("encoding", {})]
    dash = history["encoding"]["strokeDash"]["legend"]
    assert dash["symbolType"] == "stroke"  # a dash per score, not the same dot for each
    assert dash["titleLimit"] == 0 and dash["labelLimit"] == 0  # nothing cut off


@pytest.mark.slow
def test_retrain_form_trains_the_attribute_chosen(catalogue: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import ui.rounds

    add_attribute("colour")
    add_classes("colour", ["Red", "Blue"])
    started: list[dict] = []
    monkeypatch.setattr(ui.rounds, "start_round", lambda *args, **kwargs: started.append(kwargs) or _Started())
    at = open_page("rounds")
    assert at.selectbox(key="retrain_attribute").options[1:] == ["brand", "colour"]
    at.selectbox(key="retrain_attribute").set_value("colour").run()
    at.button(key="retrain").click().run()
    assert_clean(at)
    assert started[-1]["attribute"] == "colour"
    at.selectbox(key="retrain_attribute").set_value("every attribute with labels").run()
    at.button(key="retrain").click().run()
    assert started[-1]["attribute"] is None


class _Started:
    round_id, log = 1, Path("round-1.log")


@pytest.mark.slow
def test_a_running_round_can_be_cancelled_from_the_page(catalogue: Engine, home: Path) -> None:
    round_id = open_round(catalogue, "cnn", "app", "train")
    lock = JobLock.acquire()
    child = subprocess.Popen(  # a round's process: it holds the handed-over lock, in its own session
        [sys.executable, "-c", "import time; time.sleep(120)"], pass_fds=(lock.fd,), start_new_session=True
    )
    lock.close_without_release()
    job_id = open_job(catalogue, JobKind.ROUND, round_id=round_id)
    set_job_pid(catalogue, job_id, child.pid)
    try:
        at = open_page("rounds")
        at.button(key="cancel_job").click().run()
        assert_clean(at)
        assert child.wait(timeout=30) != 0 and not job_running()
    finally:
        child.kill()
    with session_scope(catalogue) as session:
        job, row = session.get(Job, job_id), session.get(Round, round_id)
        assert job.status == JobStatus.FAILED and job.message.startswith("Cancelled")
        assert row.status == RoundStatus.FAILED and "Cancelled" in row.message
    assert failed_jobs(catalogue) == []  # cancelled on purpose: no red notice
    assert any("cancelled" in s.value for s in at.success)
    assert not [b for b in at.button if b.key == "cancel_job"]
    with pytest.raises(Exception, match="No round or prediction refresh"):
        cancel_job(catalogue)
