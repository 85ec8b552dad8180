"""Background jobs on every page: a status line while one runs, a red notice when one failed.

A failed round or prediction refresh stays on screen, with its reason and the last
lines of its log, until someone dismisses it.
"""

from __future__ import annotations

import streamlit as st

from db.access import Permission
from modeling.jobs import JobView, dismiss_job, failed_jobs, running_jobs
from shoelabel.progress import duration
from ui import auth, common


def progress_line(job: JobView) -> str:
    """What a running job is doing, how long it has run and about how long it has left."""
    line = f"{job.title}: {job.progress:.0%}, {duration(job.elapsed_s())} elapsed"
    eta = job.eta_s()
    if eta is not None:
        line += f", about {duration(eta)} left"
    return f"{line} ({common.plain(job.progress_text)})" if job.progress_text else line


def _dismiss(job_id: int) -> None:
    try:
        dismiss_job(common.engine(), job_id, actor=auth.current_actor())
    except Exception as exc:
        common.show_error(exc)


def _failed(job: JobView) -> None:
    with st.container(border=True):
        reason = common.plain(job.message) if job.message else "no reason was recorded"
        st.error(f"{job.title} failed: {reason}", icon=":material/error:")
        tail = job.log_tail()
        if tail:
            st.caption(f"Last lines of its log ({common.plain(job.log_path)}):")
            st.code(tail, language=None)
        if auth.allowed(Permission.TRAIN):
            st.button("Dismiss", key=f"dismiss_job_{job.id}", on_click=_dismiss, args=(job.id,))


def _running(jobs: list[JobView]) -> None:
    for job in jobs:
        st.caption(progress_line(job))
        st.progress(min(max(job.progress, 0.0), 1.0))


@st.fragment(run_every=2.0)
def _running_fragment() -> None:
    jobs = running_jobs(common.engine())
    if not jobs:
        st.rerun()  # the job just ended: redraw the page (new predictions, or a failure notice)
    _running(jobs)


def job_notices() -> None:
    """Failed jobs not yet dismissed, on top of the page; running ones in the sidebar."""
    with common.guard():
        engine = common.engine()
        for job in failed_jobs(engine):
            _failed(job)
        if running_jobs(engine):
            with st.sidebar:
                _running_fragment()
