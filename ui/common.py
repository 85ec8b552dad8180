"""Shared parts of the app's pages: the database engine, error display, the reviewer,
cached images and the ingest form. Pages call services only; nothing here runs SQL."""

from __future__ import annotations

import gc
import io
import logging
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st
from sqlalchemy import Engine

from db import DatabaseBusyError, get_engine
from db.catalog import BrandError
from feedback.ingest import IngestError, ingest_folder
from feedback.queue import queue_summary
from feedback.reviews import ReviewError, clean_reviewer
from modeling.images import ImageError, open_rgb
from modeling.jobs import JobBusyError
from modeling.registry import ModelNotFoundError
from shoelabel.settings import SettingsError, get_settings

log = logging.getLogger("shoelabel.app")

#: Errors whose message is meant for the user: shown as they are, without a traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    IngestError,
    BrandError,
    ReviewError,
    DatabaseBusyError,
    JobBusyError,
    ModelNotFoundError,
    ImageError,
    SettingsError,
)

ARCH_ORDER = ("inception", "cnn")  # how the two models are listed everywhere
ARCH_NAMES = {"inception": "InceptionV3", "cnn": "CNN"}
REVIEW_SIDE = 720  # longest side of the image on the Review page
THUMB_SIDE = 200


# --------------------------------------------------------------------------- resources


@st.cache_resource(show_spinner=False)
def _engine(url: str) -> Engine:
    return get_engine(url)


def engine() -> Engine:
    """The process-wide engine of the configured database (migrated on first use)."""
    return _engine(get_settings().db_url)


def settle_heap(new_modules: int = 200) -> None:
    """Keep the objects of large imports (Keras and JAX come in with the first queue or model) out of
    the garbage collector's full passes, which otherwise cost a few hundred ms on reruns.

    Runs a collection, then freezes what survives, once each time many modules have been imported
    since the last call; everything else is cheap.
    """
    global _settled_modules
    if len(sys.modules) - _settled_modules < new_modules:
        return
    with _settle_lock:
        if len(sys.modules) - _settled_modules >= new_modules:
            gc.collect()
            gc.freeze()
            _settled_modules = len(sys.modules)


_settled_modules = 0
_settle_lock = threading.Lock()


# --------------------------------------------------------------------------- errors


def show_error(exc: BaseException) -> None:
    """An error as a message: expected ones as they are, others briefly (the traceback goes to the log)."""
    if isinstance(exc, EXPECTED_ERRORS):
        st.error(str(exc), icon=":material/error:")
        return
    log.exception("unexpected error in the app", exc_info=exc)
    st.error(
        f"Something went wrong: {type(exc).__name__}: {exc}. The details are in the server log.",
        icon=":material/error:",
    )


@contextmanager
def guard() -> Iterator[None]:
    """Run a block and show any error it raises as a message instead of a stack trace."""
    try:
        yield
    except Exception as exc:  # Streamlit's rerun/stop signals are BaseExceptions and pass through
        show_error(exc)


def error_text(exc: BaseException) -> str:
    """The message :func:`show_error` would show, for callbacks that report on the next run."""
    if isinstance(exc, EXPECTED_ERRORS):
        return str(exc)
    log.exception("unexpected error in the app", exc_info=exc)
    return f"Something went wrong: {type(exc).__name__}: {exc}. The details are in the server log."


# --------------------------------------------------------------------------- reviewer and session


def reviewer() -> str | None:
    return st.session_state.get("reviewer")


def session_id() -> str:
    """One id per browser session, so the queue's claims tell two tabs apart."""
    if "session_id" not in st.session_state:
        st.session_state["session_id"] = uuid.uuid4().hex
    return st.session_state["session_id"]


def _save_reviewer() -> None:
    try:
        st.session_state["reviewer"] = clean_reviewer(st.session_state.get("reviewer_name", ""))
        st.session_state.pop("reviewer_error", None)
    except ReviewError as exc:
        st.session_state["reviewer_error"] = str(exc)


def ask_reviewer() -> str | None:
    """The reviewer's name; asked once per session with a small form."""
    name = reviewer()
    if name:
        return name
    with st.form("reviewer_form", border=True, width=420):
        st.text_input("Your name", key="reviewer_name", placeholder="e.g. Ann", max_chars=120)
        st.caption("Your reviews are recorded under this name.")
        st.form_submit_button("Start", type="primary", on_click=_save_reviewer)
    if st.session_state.get("reviewer_error"):
        st.error(st.session_state["reviewer_error"])
    return None


def forget_reviewer() -> None:
    for key in ("reviewer", "reviewer_name", "review_queue"):
        st.session_state.pop(key, None)


# --------------------------------------------------------------------------- images


def _jpeg(path: str, max_side: int) -> bytes:
    image = open_rgb(path, max_side=max_side)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=88)
    return out.getvalue()


@st.cache_data(max_entries=64, show_spinner=False)
def review_image(path: str, sha256: str) -> bytes:
    """The photo as a JPEG for the Review page; keyed by path and content hash."""
    return _jpeg(path, REVIEW_SIDE)


@st.cache_data(max_entries=2000, show_spinner=False)
def thumbnail(path: str, sha256: str) -> bytes:
    return _jpeg(path, THUMB_SIDE)


def show_thumbnail(path: str, sha256: str, caption: str | None = None) -> None:
    try:
        st.image(thumbnail(path, sha256), caption=caption, width="stretch")
    except ImageError as exc:
        st.warning(f"Cannot show this photo: {exc.reason}", icon=":material/broken_image:")


# --------------------------------------------------------------------------- catalogue and ingest


def catalogue_counts() -> dict[str, int]:
    return queue_summary(engine())


def ingest_form(key: str) -> None:
    """Ingest a folder by path, with a progress bar and the report."""
    with st.form(f"ingest_{key}", border=True):
        folder = st.text_input(
            "Folder to ingest",
            key=f"ingest_path_{key}",
            placeholder="/path/to/photos",
            help="A folder with one subfolder per brand (labelled photos), or a flat folder of photos "
            "(they go to the review pool).",
        )
        submitted = st.form_submit_button("Ingest", type="primary")
    if not submitted:
        return
    if not folder.strip():
        st.error("Give the path of a folder on the machine that runs the app.")
        return
    bar = st.progress(0.0, text="Reading images")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Reading images: {done}/{total}")

    try:
        report = ingest_folder(folder.strip(), progress=progress, engine=engine())
    except Exception as exc:
        bar.empty()
        show_error(exc)
        return
    bar.progress(1.0, text="Done")
    (st.success if report.ok else st.warning)(
        f"Added {report.added} image(s)." if report.ok else "Nothing in that folder could be ingested."
    )
    st.code(report.summary(), language=None)
    if report.ok and st.button("Continue", type="primary", key=f"ingest_done_{key}"):
        st.rerun()


def empty_catalogue() -> None:
    """What every page shows before any photo is in the catalogue."""
    st.info(
        "There are no photos in the catalogue yet. Ingest a folder from a terminal:\n\n"
        "```\npython -m feedback.ingest PATH\n```\n\n"
        "where PATH holds one subfolder per brand (labelled photos) or just photos (they go to the "
        "review pool). Or ingest a folder from here:",
        icon=":material/photo_library:",
    )
    ingest_form("empty")


def sidebar() -> None:
    """Who is reviewing, and what the catalogue holds."""
    with st.sidebar:
        name = reviewer()
        if name:
            st.markdown(f"Reviewing as **{name}**")
            st.button("Change reviewer", key="change_reviewer", on_click=forget_reviewer, type="tertiary")
        try:
            counts = catalogue_counts()
        except Exception as exc:
            show_error(exc)
            return
        if counts["images"]:
            st.caption(
                f"{counts['images']} photos: {counts.get('train', 0)} labelled for training, "
                f"{counts.get('holdout', 0)} held out for evaluation, {counts.get('pool', 0)} in the review pool"
            )
