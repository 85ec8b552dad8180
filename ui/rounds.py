"""The Rounds page: start a retrain or a prediction refresh, follow it live, and see how the
models did round after round (held-out scores, confusion matrix, per-brand precision/recall).

Job progress comes from the database and the job lock, never from the session, so it
survives a reload and shows in every tab.
"""

from __future__ import annotations

import altair as alt
import streamlit as st

from db.models import RoundStatus
from modeling.app_services import (
    ModelReport,
    comparison_frame,
    confusion_frame,
    current_models,
    latest_results,
    metric_history,
    per_class_frame,
    round_table,
)
from modeling.background import job_state, start_refresh, start_round
from modeling.rounds import latest_rounds
from ui import common

POLL_SECONDS = 2.0
STATUS_ICONS = {
    RoundStatus.ACCEPTED: ":material/check_circle:",
    RoundStatus.REJECTED: ":material/cancel:",
    RoundStatus.FAILED: ":material/error:",
    RoundStatus.RUNNING: ":material/pending:",
}


# --------------------------------------------------------------------------- starting jobs


def _start_round(arch: str, mode: str) -> None:
    try:
        job = start_round(arch, mode, engine=common.engine())
    except Exception as exc:
        common.show_error(exc)
        return
    st.session_state["watching_job"] = True
    st.success(f"Round {job.round_id} started in the background. Progress shows below; the log is at {job.log}.")


def _start_refresh() -> None:
    try:
        job = start_refresh()
    except Exception as exc:
        common.show_error(exc)
        return
    st.session_state["watching_job"] = True
    st.success(f"Predicting new photos in the background; the log is at {job.log}.")


def controls() -> None:
    with st.container(border=True):
        arch_col, mode_col, buttons = st.columns([2, 2, 2], vertical_alignment="bottom")
        arch = arch_col.radio(
            "Models to retrain",
            ["both", "inception", "cnn"],
            horizontal=True,
            key="retrain_arch",
            help="InceptionV3 (pretrained on ImageNet) and the small CNN trained from scratch.",
        )
        mode = mode_col.radio(
            "InceptionV3 training",
            ["finetune", "head"],
            horizontal=True,
            key="retrain_mode",
            help="finetune: the top Inception blocks and the head learn; head: only the new head does (faster).",
        )
        with buttons:
            retrain = st.button("Retrain", type="primary", key="retrain", icon=":material/model_training:")
            refresh = st.button(
                "Refresh predictions", key="refresh", help="Predict photos the current models have not seen."
            )
        st.caption(
            "A candidate replaces the current model only if it does at least as well on the frozen held-out photos "
            "(macro F1). Rounds run in the background: closing or reloading this page does not stop them."
        )
    if retrain:
        _start_round(arch, mode)
    if refresh:
        _start_refresh()


@st.fragment(run_every=POLL_SECONDS)
def job_status() -> None:
    try:
        state = job_state(common.engine())
    except Exception as exc:
        common.show_error(exc)
        return
    if state.running:
        st.session_state["watching_job"] = True
        if state.round is not None:
            r = state.round
            st.progress(
                min(max(float(r.progress or 0.0), 0.0), 1.0),
                text=f"Round {r.id} ({r.arch}, {r.mode}): {r.progress_text or 'working'} · {r.progress:.0%}",
            )
        else:
            st.info("A round or a prediction refresh is running.", icon=":material/hourglass_top:")
        return
    if st.session_state.pop("watching_job", False):
        st.rerun()  # the job just ended: redraw the whole page with its result
    st.caption("No round or refresh is running.")


# --------------------------------------------------------------------------- results


def _results(rounds: list) -> None:
    latest = latest_results(rounds)
    if not latest:
        return
    st.subheader("Latest results")
    for column, r in zip(st.columns(len(latest)), latest, strict=True):
        with column, st.container(border=True):
            st.markdown(f"{STATUS_ICONS.get(r.status, '')} **Round {r.id}**: {r.arch} ({r.mode}), **{r.status}**")
            if r.message:
                st.caption(r.message)
            table = comparison_frame(r)
            if table is not None:
                score = st.column_config.NumberColumn(format="%.3f")
                st.dataframe(
                    table,
                    hide_index=True,
                    column_config={
                        "current": score,
                        "candidate": score,
                        "change": st.column_config.NumberColumn(format="%+.3f"),
                    },
                )


def _history(rounds: list) -> None:
    history = metric_history(rounds)
    st.subheader("Held-out scores over rounds")
    if history.empty:
        st.caption("No evaluated round yet.")
        return
    chart = (
        alt.Chart(history)
        .mark_line(point=True)
        .encode(
            x=alt.X("round:O", title="round"),
            y=alt.Y("value:Q", title="held-out score", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("arch:N", title="model", scale=alt.Scale(scheme="tableau10")),
            strokeDash=alt.StrokeDash("metric:N", title="metric"),
            tooltip=["round", "arch", "metric", alt.Tooltip("value:Q", format=".3f"), "status"],
        )
        .properties(height=280)
    )
    st.altair_chart(chart, width="stretch")


def _confusion_chart(metrics: dict) -> alt.Chart:
    frame = confusion_frame(metrics)
    names = list(metrics.get("class_names") or [])
    base = alt.Chart(frame).encode(
        x=alt.X("predicted:N", sort=names, title="predicted brand"),
        y=alt.Y("true:N", sort=names, title="true brand"),
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
    st.markdown(f"**{report.label}** (current since {report.created_at:%Y-%m-%d %H:%M} UTC)")
    metrics = report.metrics
    if not metrics:
        st.caption("Promoted without a held-out evaluation (no held-out photos at the time).")
        return
    st.caption(
        f"held-out accuracy {metrics['accuracy']:.1%} · macro F1 {metrics['macro_f1']:.3f} · n={metrics.get('n', '?')}"
    )
    st.altair_chart(_confusion_chart(metrics), width="content")
    st.caption("Rows: true brand; columns: predicted brand; shade: share of the row.")
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


def _current_models() -> None:
    reports = current_models(common.engine())
    st.subheader("Current models")
    if not reports:
        st.caption("No model yet: press Retrain to train the first ones from the labelled photos.")
        return
    for column, report in zip(st.columns(len(reports)), reports, strict=True):
        with column:
            _model(report)


def _table(rounds: list) -> None:
    st.subheader("All rounds")
    frame = round_table(rounds)
    score = st.column_config.NumberColumn(format="%.3f")
    st.dataframe(
        frame,
        hide_index=True,
        column_config={
            "started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
            "candidate accuracy": score,
            "candidate macro F1": score,
            "current accuracy": score,
            "current macro F1": score,
            "duration (s)": st.column_config.NumberColumn(format="%.0f"),
        },
    )


def render() -> None:
    st.title("Rounds")
    controls()
    job_status()
    try:
        rounds = latest_rounds(common.engine())
    except Exception as exc:
        common.show_error(exc)
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
        _current_models()
    if rounds:
        with common.guard():
            _history(rounds)
        with common.guard():
            _table(rounds)
