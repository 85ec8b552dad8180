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
    class_names_now,
    comparison_frame,
    confusion_frame,
    current_models,
    latest_results,
    metric_history,
    per_class_frame,
    round_table,
    top_confusions,
)
from modeling.background import cancel_job, job_state, start_refresh, start_round
from modeling.metrics import through_names
from modeling.registry import ARCH_NAMES, ARCHITECTURES, INCEPTION_MODES
from modeling.rounds import latest_rounds
from shoelabel.progress import time_left
from ui import auth, common
from ui.jobs import duration
from ui.text import first_model_hint, readable

POLL_SECONDS = 2.0
STATUS_ICONS = {
    RoundStatus.ACCEPTED: ":material/check_circle:",
    RoundStatus.REJECTED: ":material/cancel:",
    RoundStatus.FAILED: ":material/error:",
    RoundStatus.RUNNING: ":material/pending:",
}
MISSING = "–"  # a table cell with no value (a first round has no model to compare with)
MATRIX_CLASSES = 15  # more classes than this, and the page lists the most frequent mistakes instead of a matrix
EVERY_ATTRIBUTE = "every attribute with labels"  # the Retrain form's choice that trains them all, brand first
MODE_HELP = {
    "finetune": "fine-tune: the classifier, then the top Inception blocks learn (minutes)",
    "head": "head only: the classifier is refitted on the frozen features (seconds)",
}
#: Why a round of a model that has no current version yet takes long: it starts from nothing.
FIRST_TRAINING = {
    "inception": "InceptionV3 first computes and caches the activations of every photo",
    "cnn": "the CNN trains from scratch, for many more epochs than a round",
}


# --------------------------------------------------------------------------- starting jobs


def _start_round() -> None:
    """Retrain's callback: runs before the page is drawn, so the page already shows the round running."""
    state = st.session_state
    attribute = state.get("retrain_attribute", EVERY_ATTRIBUTE)
    try:
        job = start_round(
            state["retrain_arch"],
            state["retrain_mode"],
            attribute=None if attribute == EVERY_ATTRIBUTE else attribute,
            engine=common.engine(),
            actor=auth.current_actor(),
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


def _cancel() -> None:
    try:
        job_id = cancel_job(common.engine(), actor=auth.current_actor())
    except Exception as exc:
        st.session_state["rounds_flash"] = ("error", common.error_text(exc))
        return
    st.session_state["rounds_flash"] = ("success", f"Job {job_id} cancelled; what it had half done is discarded.")


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
    what = "A round or a prediction refresh runs"
    if job is not None:
        what = f"Round {job.id} ({round_model(job)}) is running"
    return f"{what}, and one job runs at a time."


def controls() -> None:
    st.session_state.pop("rounds_job_running", None)  # set again below once known, never stale
    if not auth.allowed(Permission.TRAIN):
        return  # an admin starts rounds and refreshes
    try:
        state = job_state(common.engine())
        current = {report.arch for report in current_models(common.engine())}
        attributes = list(common.shown_or_none(attribute_ids, engine=common.engine()) or [BRAND])
    except Exception as exc:
        common.show_error(exc)
        return
    st.session_state["rounds_job_running"] = state.running  # job_status redraws the page when this changes
    busy = _busy_reason(state.running, state.round)
    with st.container(border=True):
        arch = _training_choices(attributes)
        _buttons(busy)
        if busy:
            st.caption(
                f"Retrain and Refresh predictions are off until it ends: {busy} Its progress shows below; "
                "Cancel stops it."
            )
        elif slow := _first_training(arch, current):
            st.warning(slow, icon=":material/timer:")
        st.caption(
            "A candidate replaces the current model only if it does at least as well on the frozen held-out photos "
            "(macro F1). Rounds run in the background: closing or reloading this page does not stop them."
        )
    common.show_flash("rounds_flash")


def _training_choices(attributes: list[str]) -> str:
    """The Retrain form's choices: the attribute, the models, InceptionV3's mode; the models chosen."""
    attribute_col, arch_col, mode_col = st.columns([2, 2, 3], vertical_alignment="bottom")
    attribute_col.selectbox(
        "Attribute to train",
        [EVERY_ATTRIBUTE, *attributes] if len(attributes) > 1 else [BRAND],
        key="retrain_attribute",
        format_func=common.plain,
        help="Each attribute has its own models; the first choice trains every attribute with labels, brand first.",
    )
    arch = arch_col.radio(
        "Models to retrain",
        ["both", *ARCHITECTURES],
        horizontal=True,
        key="retrain_arch",
        format_func=readable,
        help="InceptionV3 (pretrained on ImageNet) and the small CNN trained from scratch.",
    )
    mode_col.radio(
        "InceptionV3 training",
        list(INCEPTION_MODES),
        horizontal=True,
        key="retrain_mode",
        format_func=readable,
        disabled=arch == "cnn",
        help=f"{MODE_HELP['finetune']}; {MODE_HELP['head']}. Only for InceptionV3: the CNN always trains as a whole.",
    )
    return arch


def _buttons(busy: str | None) -> None:
    retrain, refresh, cancel, _ = st.columns([1, 1, 1, 2])
    retrain.button(
        "Retrain",
        type="primary",
        key="retrain",
        icon=":material/model_training:",
        on_click=_start_round,
        disabled=busy is not None,
        help=busy,
    )
    refresh.button(
        "Refresh predictions",
        key="refresh",
        on_click=_start_refresh,
        disabled=busy is not None,
        help=busy or "Predict photos the current models have not seen.",
    )
    if busy:
        cancel.button(
            "Cancel",
            key="cancel_job",
            icon=":material/stop_circle:",
            on_click=_cancel,
            help="Stop the running round or refresh; a candidate model it trained is discarded.",
        )


def round_model(r: Round) -> str:
    """What a round trained, in words: "CNN, continued from v3", "InceptionV3, head only from v5"."""
    name = ARCH_NAMES.get(r.arch, r.arch)
    parent = getattr(r, "parent_model_id", None)
    if r.arch != "inception":
        return f"{name}, continued from v{parent}" if parent else f"{name}, first model"
    how = readable(r.mode)
    return f"{name}, {how} from v{parent}" if parent else f"{name}, {how}"


def progress_text(r: Round, now: datetime | None = None) -> str:
    """A running round's progress line: what it does, the share done, the time elapsed and an estimate of the
    time left (from the share done so far, once there is enough of it)."""
    fraction = min(max(float(r.progress or 0.0), 0.0), 1.0)
    elapsed = max(((now or utcnow()) - r.started_at).total_seconds(), 0.0)
    left = time_left(elapsed, fraction)
    times = f"{duration(elapsed)} elapsed, " + (
        f"about {duration(left)} left" if left is not None else "estimating the time left"
    )
    return f"Round {r.id} ({round_model(r)}): {r.progress_text or 'working'} · {fraction:.0%} · {times}"


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


def _now(metrics: dict | None, attribute_id: int) -> dict | None:
    """A held-out Metrics dict under today's class names (renames and merges since the round)."""
    if not metrics or not metrics.get("class_names"):
        return metrics
    return through_names(metrics, class_names_now(metrics["class_names"], attribute_id, common.engine()))


def _round_now(r: Round) -> Round:
    """A finished round whose candidate and current figures name today's classes (a copy: nothing is saved)."""
    metrics = dict(r.metrics or {})
    for part in ("candidate", "current"):
        metrics[part] = _now(metrics.get(part), r.attribute_id)
    shown = Round(id=r.id, arch=r.arch, mode=r.mode, status=r.status, message=r.message, metrics=metrics)
    shown.parent_model_id, shown.attribute_id = r.parent_model_id, r.attribute_id
    return shown


def _results(rounds: list) -> None:
    latest = [_round_now(r) for r in latest_results(rounds)]
    if not latest:
        return
    st.subheader("Latest results")
    for column, r in zip(st.columns(len(latest)), latest, strict=True):
        with column, st.container(border=True):
            what = common.plain(round_model(r))
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
    history["score"] = history["metric"] + ", " + history["held-out photos"] + " held-out photos"
    history["model"] = [ARCH_NAMES.get(arch, arch) for arch in history["arch"]]
    legend = {"orient": "bottom", "direction": "vertical", "titleLimit": 0, "labelLimit": 0}
    chart = (
        alt.Chart(history)
        .mark_line(point=True)
        .encode(
            x=alt.X("round:O", title="round"),
            y=alt.Y("value:Q", title="held-out score", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("model:N", title="model", scale=alt.Scale(scheme="tableau10"), legend=alt.Legend(**legend)),
            # the dash tells the scores apart: the legend draws it as a line, not as the points every series has
            strokeDash=alt.StrokeDash(
                "score:N",
                title="score",
                legend=alt.Legend(**legend, symbolType="stroke", symbolStrokeWidth=2, symbolSize=400),
            ),
            tooltip=["round", "model", "score", "n", alt.Tooltip("value:Q", format=".3f"), "status"],
        )
        .properties(height=320)
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


def _model(report: ModelReport, attribute_id: int) -> None:
    name = f"{ARCH_NAMES.get(report.arch, report.arch)} v{report.version_id}"
    st.markdown(f"**{common.plain(name)}** (current since {report.created_at:%Y-%m-%d %H:%M} UTC)")
    metrics = _now(report.metrics, attribute_id)
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
        st.dataframe(mistakes_frame(metrics), hide_index=True, column_config={"share": MISTAKE_SHARE})
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


MISTAKE_SHARE = st.column_config.ProgressColumn(
    "share of the true class", min_value=0.0, max_value=100.0, format="%.0f%%"
)


def mistakes_frame(metrics: dict) -> pd.DataFrame:
    """The most frequent mistakes, their share of the true class in percent (what the bar's format prints)."""
    frame = top_confusions(metrics)
    if not frame.empty:
        frame["share"] = (100 * frame["share"]).round(1)
    return frame


def _current_models(attribute_id: int) -> None:
    reports = current_models(common.engine(), attribute_id)
    st.subheader("Current models")
    if not reports:
        st.caption(f"No model yet: {first_model_hint(auth.allowed(Permission.TRAIN))}")
        return
    for column, report in zip(st.columns(len(reports)), reports, strict=True):
        with column:
            _model(report, attribute_id)


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


class _RoundRow:
    """A row of :func:`round_table` as :func:`round_model` reads a round."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.arch, self.mode = row["arch"], row["mode"]
        parent = row.get("parent")
        self.parent_model_id = None if parent is None or pd.isna(parent) else int(parent)


def rounds_frame(rounds: list) -> pd.DataFrame:
    """The All rounds table as text, few columns wide so that it fits the page: one column for the model and
    its training mode, one for each model's accuracy and macro F1, a dash where a value is missing."""
    frame = round_table(rounds)
    rows = frame.to_dict("records")
    return pd.DataFrame(
        {
            "round": frame["round"],
            "started (UTC)": [_cell(r["started"], "%Y-%m-%d %H:%M") for r in rows],
            "model": [common.plain(round_model(_RoundRow(r))) for r in rows],
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
        st.info(f"No round yet: {first_model_hint(auth.allowed(Permission.TRAIN))}", icon=":material/info:")
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
