"""The Rounds page: start a retrain or a prediction refresh, follow it live, and see how the
models did round after round (held-out scores, confusion matrix, per-brand precision/recall).

Job progress comes from the database and the job lock, never from the session, so it
survives a reload and shows in every tab.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from db.access import Permission
from db.models import BRAND, BRAND_ID, Round, RoundStatus, utcnow
from feedback.classes import attribute_ids
from modeling.app_services import (
    ModelReport,
    comparison_frame,
    confusion_frame,
    current_models,
    latest_results,
    metric_history,
    per_class_frame,
    round_table,
    top_confusions,
)
from modeling.background import job_state, start_refresh, start_round
from modeling.registry import ARCH_NAMES, ARCHITECTURES
from modeling.rounds import latest_rounds
from shoelabel.progress import time_left
from ui import auth, common
from ui.jobs import duration

POLL_SECONDS = 2.0
STATUS_ICONS = {
    RoundStatus.ACCEPTED: ":material/check_circle:",
    RoundStatus.REJECTED: ":material/cancel:",
    RoundStatus.FAILED: ":material/error:",
    RoundStatus.RUNNING: ":material/pending:",
}
MISSING = "–"  # a table cell with no value (a first round has no model to compare with)
MATRIX_CLASSES = 15  # more classes than this, and the page lists the most frequent mistakes instead of a matrix
#: Why a round of a model that has no current version yet takes long: it starts from nothing.
FIRST_TRAINING = {
    "inception": "InceptionV3 first computes and caches the activations of every photo",
    "cnn": "the CNN trains from scratch, for many more epochs than a round",
}


# --------------------------------------------------------------------------- starting jobs


def _start_round() -> None:
    """Retrain's callback: runs before the page is drawn, so the page already shows the round running."""
    state = st.session_state
    try:
        job = start_round(
            state["retrain_arch"], state["retrain_mode"], engine=common.engine(), actor=auth.current_actor()
        )
    except Exception as exc:
        state["rounds_flash"] = ("error", common.error_text(exc))
        return
    state["rounds_flash"] = (
        "success",
        common.plain(f"Round {job.round_id} started in the background. Progress shows below; the log is at {job.log}."),
    )


def _start_refresh() -> None:
    try:
        job = start_refresh(actor=auth.current_actor())
    except Exception as exc:
        st.session_state["rounds_flash"] = ("error", common.error_text(exc))
        return
    st.session_state["rounds_flash"] = (
        "success",
        common.plain(f"Predicting new photos in the background; the log is at {job.log}."),
    )


def _first_training(arch: str, current: set[str]) -> str | None:
    """A warning when ``arch`` ("both" or one model) includes a model with no current version, whose first
    training takes ten minutes or more; None otherwise."""
    missing = [a for a in ARCHITECTURES if arch in ("both", a) and a not in current]
    if not missing:
        return None
    names = " and ".join(ARCH_NAMES[a] for a in missing)
    return (
        f"There is no current {names} model yet, so this round trains {'them' if len(missing) > 1 else 'it'} from "
        f"the start: expect ten minutes or more on a CPU ({'; '.join(FIRST_TRAINING[a] for a in missing)}). "
        "Later rounds start from the current models and take a few minutes."
    )


def _busy_reason(running: bool, job: Round | None) -> str | None:
    if not running:
        return None
    what = f"Round {job.id} ({job.arch}) is running" if job is not None else "A round or a prediction refresh runs"
    return f"{what}, and one job runs at a time."


def controls() -> None:
    st.session_state.pop("rounds_job_running", None)  # set again below once known, never stale
    if not auth.allowed(Permission.TRAIN):
        return  # an admin starts rounds and refreshes
    try:
        state = job_state(common.engine())
        current = {report.arch for report in current_models(common.engine())}
    except Exception as exc:
        common.show_error(exc)
        return
    st.session_state["rounds_job_running"] = state.running  # job_status redraws the page when this changes
    busy = _busy_reason(state.running, state.round)
    with st.container(border=True):
        arch_col, mode_col, buttons = st.columns([2, 2, 2], vertical_alignment="bottom")
        arch = arch_col.radio(
            "Models to retrain",
            ["both", "inception", "cnn"],
            horizontal=True,
            key="retrain_arch",
            help="InceptionV3 (pretrained on ImageNet) and the small CNN trained from scratch.",
        )
        mode_col.radio(
            "InceptionV3 training",
            ["head", "finetune"],
            horizontal=True,
            key="retrain_mode",
            disabled=arch == "cnn",
            help="head: the classifier is refitted on the frozen features (seconds); finetune: the top Inception "
            "blocks learn too (minutes). "
            "Only for InceptionV3: the CNN always trains as a whole.",
        )
        with buttons:
            st.button(
                "Retrain",
                type="primary",
                key="retrain",
                icon=":material/model_training:",
                on_click=_start_round,
                disabled=busy is not None,
                help=busy,
            )
            st.button(
                "Refresh predictions",
                key="refresh",
                on_click=_start_refresh,
                disabled=busy is not None,
                help=busy or "Predict photos the current models have not seen.",
            )
        if busy:
            st.caption(f"Retrain and Refresh predictions are off until it ends: {busy} Its progress shows below.")
        elif slow := _first_training(arch, current):
            st.warning(slow, icon=":material/timer:")
        st.caption(
            "A candidate replaces the current model only if it does at least as well on the frozen held-out photos "
            "(macro F1). Rounds run in the background: closing or reloading this page does not stop them."
        )
    if flash := st.session_state.pop("rounds_flash", None):
        kind, text = flash
        (st.success if kind == "success" else st.error)(text)


def progress_text(r: Round, now: datetime | None = None) -> str:
    """A running round's progress line: what it does, the share done, the time elapsed and an estimate of the
    time left (from the share done so far, once there is enough of it)."""
    fraction = min(max(float(r.progress or 0.0), 0.0), 1.0)
    elapsed = max(((now or utcnow()) - r.started_at).total_seconds(), 0.0)
    left = time_left(elapsed, fraction)
    times = f"{duration(elapsed)} elapsed, " + (
        f"about {duration(left)} left" if left is not None else "estimating the time left"
    )
    return f"Round {r.id} ({r.arch}, {r.mode}): {r.progress_text or 'working'} · {fraction:.0%} · {times}"


@st.fragment(run_every=POLL_SECONDS)
def job_status() -> None:
    try:
        state = job_state(common.engine())
    except Exception as exc:
        common.show_error(exc)
        return
    if state.running != st.session_state.get("rounds_job_running", state.running):
        st.rerun()  # a job started or ended since the page was drawn: redraw its buttons and results
    if state.running:
        if state.round is not None:
            r = state.round
            st.progress(min(max(float(r.progress or 0.0), 0.0), 1.0), text=common.plain(progress_text(r)))
        else:
            st.info("A round or a prediction refresh is running.", icon=":material/hourglass_top:")
        return
    st.caption("No round or refresh is running.")


# --------------------------------------------------------------------------- results


def _results(rounds: list) -> None:
    latest = latest_results(rounds)
    if not latest:
        return
    st.subheader("Latest results")
    for column, r in zip(st.columns(len(latest)), latest, strict=True):
        with column, st.container(border=True):
            what = common.plain(f"{r.arch} ({r.mode})")
            st.markdown(f"{STATUS_ICONS.get(r.status, '')} **Round {r.id}**: {what}, **{common.plain(r.status)}**")
            if r.message:
                st.caption(common.plain(r.message))
            table = comparison_frame(r)
            if table is not None:
                st.dataframe(
                    display_frame(table, {"current": ".3f", "candidate": ".3f", "change": "+.3f"}),
                    hide_index=True,
                )


def _history(rounds: list) -> None:
    history = metric_history(rounds)
    st.subheader("Held-out scores over rounds")
    if history.empty:
        st.caption("No evaluated round yet.")
        return
    history["score"] = history["metric"] + ", " + history["held-out photos"]
    chart = (
        alt.Chart(history)
        .mark_line(point=True)
        .encode(
            x=alt.X("round:O", title="round"),
            y=alt.Y("value:Q", title="held-out score", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("arch:N", title="model", scale=alt.Scale(scheme="tableau10")),
            strokeDash=alt.StrokeDash("score:N", title="score, on which held-out photos"),
            tooltip=["round", "arch", "score", "n", alt.Tooltip("value:Q", format=".3f"), "status"],
        )
        .properties(height=280)
    )
    st.altair_chart(chart, width="stretch")
    if history["held-out photos"].nunique() > 2:
        st.caption(
            "Held-out photos: *imported* were held out when they arrived with their class; *reviewed* were "
            "held out from the review pool when first answered, so they follow the photos reviewers see."
        )


def _confusion_chart(metrics: dict) -> alt.Chart:
    frame = confusion_frame(metrics)
    names = list(metrics.get("class_names") or [])
    base = alt.Chart(frame).encode(
        x=alt.X("predicted:N", sort=names, title="predicted class"),
        y=alt.Y("true:N", sort=names, title="true class"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("share:Q", scale=alt.Scale(scheme="blues", domain=[0, 1]), legend=None),
        tooltip=["true", "predicted", "count", alt.Tooltip("share:Q", format=".0%")],
    )
    text = base.mark_text(fontSize=13).encode(
        text="count:Q", color=alt.condition("datum.share > 0.5", alt.value("white"), alt.value("black"))
    )
    return (cells + text).properties(width=alt.Step(56), height=alt.Step(56))


def _model(report: ModelReport) -> None:
    st.markdown(f"**{common.plain(report.label)}** (current since {report.created_at:%Y-%m-%d %H:%M} UTC)")
    metrics = report.metrics
    if not metrics:
        st.caption("Promoted without a held-out evaluation (no held-out photos at the time).")
        return
    st.caption(
        f"held-out accuracy {metrics['accuracy']:.1%} · macro F1 {metrics['macro_f1']:.3f} · n={metrics.get('n', '?')}"
    )
    if len(metrics.get("class_names") or []) <= MATRIX_CLASSES:
        st.altair_chart(_confusion_chart(metrics), width="content")
        st.caption("Rows: true class; columns: predicted class; shade: share of the row.")
    else:  # a matrix of dozens of classes is unreadable: its largest cells off the diagonal say the same
        st.markdown("**Most frequent mistakes**")
        st.dataframe(
            top_confusions(metrics),
            hide_index=True,
            column_config={
                "share": st.column_config.ProgressColumn(
                    "share of the true class", min_value=0.0, max_value=1.0, format="%.0f%%"
                )
            },
        )
    bar = st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f", width="small")
    st.dataframe(
        per_class_frame(metrics),
        hide_index=True,
        column_config={
            "precision": bar,
            "recall": bar,
            "f1": st.column_config.NumberColumn(format="%.2f", width="small"),
            "support": st.column_config.NumberColumn(width="small"),
        },
    )


def _current_models(attribute_id: int) -> None:
    reports = current_models(common.engine(), attribute_id)
    st.subheader("Current models")
    if not reports:
        st.caption("No model yet: press Retrain to train the first ones from the labelled photos.")
        return
    for column, report in zip(st.columns(len(reports)), reports, strict=True):
        with column:
            _model(report)


def _cell(value: Any, fmt: str | Callable[[Any], str]) -> str:
    if value is None or pd.isna(value):
        return MISSING
    return fmt(value) if callable(fmt) else format(value, fmt)


def display_frame(frame: pd.DataFrame, formats: dict[str, str | Callable[[Any], str]]) -> pd.DataFrame:
    """``frame`` for showing: the ``formats`` columns as text, and a dash for every missing value (never "None")."""
    shown = frame.copy()
    for column in shown.columns:
        if column in formats:
            shown[column] = [_cell(value, formats[column]) for value in frame[column]]
        elif frame[column].isna().any():
            shown[column] = [_cell(value, "") for value in frame[column]]
    return shown


def _scores(accuracy: Any, f1: Any) -> str:
    if (accuracy is None or pd.isna(accuracy)) and (f1 is None or pd.isna(f1)):
        return MISSING
    return f"{_cell(accuracy, '.3f')} / {_cell(f1, '.3f')}"


def rounds_frame(rounds: list) -> pd.DataFrame:
    """The All rounds table as text, few columns wide so that it fits the page: one column for the model and
    its training mode, one for each model's accuracy and macro F1, a dash where a value is missing."""
    frame = round_table(rounds)
    rows = frame.to_dict("records")
    return pd.DataFrame(
        {
            "round": frame["round"],
            "started (UTC)": [_cell(r["started"], "%Y-%m-%d %H:%M") for r in rows],
            "model": [common.plain(f"{r['arch']} ({r['mode']})") for r in rows],
            "status": frame["status"],
            "photos trained on": [_cell(r["train images"], ".0f") for r in rows],
            "reviews since last round": [_cell(r["reviews since last round"], ".0f") for r in rows],
            "candidate accuracy / F1": [_scores(r["candidate accuracy"], r["candidate macro F1"]) for r in rows],
            "current accuracy / F1": [_scores(r["current accuracy"], r["current macro F1"]) for r in rows],
            "duration": [_cell(r["duration (s)"], duration) for r in rows],
            "message": [_cell(r["message"] or None, common.plain) for r in rows],  # st.table reads Markdown
        }
    )


def _table(rounds: list) -> None:
    st.subheader("All rounds")
    # a table, not a data grid: it fits the page's width and wraps long messages instead of cutting them off
    st.table(rounds_frame(rounds), hide_index=True, border="horizontal")


def _attribute() -> tuple[str, int]:
    """The attribute whose rounds and models the page shows (a choice when there is more than brand)."""
    ids = common.shown_or_none(attribute_ids, engine=common.engine()) or {BRAND: BRAND_ID}
    if len(ids) == 1:
        return BRAND, BRAND_ID
    name = st.selectbox("Attribute", list(ids), key="rounds_attribute", help="Each attribute has its own models.")
    return name, ids[name]


def render() -> None:
    st.title("Rounds")
    controls()
    job_status()
    _, attribute_id = _attribute()
    rounds = common.shown_or_none(latest_rounds, common.engine(), attribute_id=attribute_id)
    if rounds is None:
        return
    if not rounds:
        st.info("No round yet. Press Retrain to train the first models on the labelled photos.", icon=":material/info:")
    with common.guard():
        if common.catalogue_counts().get("holdout", 0) == 0:
            st.warning(
                "There is no held-out set, so rounds cannot be evaluated and every candidate is promoted. "
                "Ingest a labelled folder (one subfolder per brand) to draw one.",
                icon=":material/warning:",
            )
    with common.guard():
        _results(rounds)
    with common.guard():
        _current_models(attribute_id)
    if rounds:
        with common.guard():
            _history(rounds)
        with common.guard():
            _table(rounds)
