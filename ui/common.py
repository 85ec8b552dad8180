"""Shared parts of the app's pages: the database engine, error display, the reviewer,
cached images and the ingest form. Pages call services only; nothing here runs SQL."""

from __future__ import annotations

import gc
import io
import logging
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import streamlit as st
from PIL import Image as PILImage
from sqlalchemy import Engine

from db import get_engine
from db.access import Permission
from feedback.ingest import ingest_folder
from feedback.queue import SUMMARY_LABELS, queue_summary
from feedback.reviews import ReviewError, clean_reviewer
from modeling.arrivals import predict_arrivals
from shoelabel.errors import UserError
from shoelabel.images import ImageError, open_rgb
from shoelabel.progress import Rate
from shoelabel.settings import get_settings
from ui import auth
from ui.text import plain

log = logging.getLogger("shoelabel.app")
T = TypeVar("T")

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


def is_expected(exc: BaseException) -> bool:
    """Whether ``exc``'s message is meant for the user (shown as it is, without a traceback)."""
    return isinstance(exc, UserError)


def show_error(exc: BaseException) -> None:
    """An error as a message: expected ones as they are, others briefly (the traceback goes to the log)."""
    st.error(error_text(exc), icon=":material/error:")


@contextmanager
def guard() -> Iterator[None]:
    """Run a block and show any error it raises as a message instead of a stack trace."""
    try:
        yield
    except Exception as exc:  # Streamlit's rerun/stop signals are BaseExceptions and pass through
        show_error(exc)


def shown_or_none(read: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``read(*args, **kwargs)`` for a page; on an error, the error shown on the page and None."""
    try:
        return read(*args, **kwargs)
    except Exception as exc:
        show_error(exc)
        return None


def error_text(exc: BaseException) -> str:
    """The message :func:`show_error` shows (as plain text: messages name user files and values);
    for callbacks that report on the next run."""
    if is_expected(exc):
        return plain(str(exc))
    log.exception("unexpected error in the app", exc_info=exc)
    return plain(f"Something went wrong: {type(exc).__name__}: {exc}. The details are in the server log.")


def show_flash(key: str) -> None:
    """Show, once, the ``(kind, text)`` a callback left under ``key`` for the next run: success or error."""
    if flash := st.session_state.pop(key, None):
        kind, text = flash
        (st.success if kind == "success" else st.error)(text)


# --------------------------------------------------------------------------- text from users

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
        st.error(plain(st.session_state["reviewer_error"]))
    return None


KEPT_ON_CHANGE = frozenset({"review_attribute"})  # choices of the tab, not of the reviewer


def forget_reviewer() -> None:
    """Forget the reviewer and all that was theirs in this tab (their queue, count, last answer, Undo list)."""
    for key in [k for k in st.session_state if str(k).startswith("review_") and k not in KEPT_ON_CHANGE]:
        st.session_state.pop(key, None)
    for key in ("reviewer", "reviewer_name", "reviewer_error"):
        st.session_state.pop(key, None)
    st.query_params.pop(auth.NAME_PARAM, None)


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


def jpeg_width(data: bytes) -> int:
    """The width in pixels of an encoded image (read from its header, not decoded)."""
    with PILImage.open(io.BytesIO(data)) as image:
        return image.width


def show_photo(path: str, sha256: str, max_width: int | None = None) -> None:
    """The photo at its own size, or narrower (``max_width``, the container): never scaled up, so a
    small photo is not blurred."""
    data = review_image(path, sha256)
    st.image(data, width=min(jpeg_width(data), max_width) if max_width else "content")


@st.cache_data(max_entries=2000, show_spinner=False)
def thumbnail(path: str, sha256: str) -> bytes:
    return _jpeg(path, THUMB_SIDE)


def show_thumbnail(path: str, sha256: str, caption: str | None = None) -> None:
    try:
        st.image(thumbnail(path, sha256), caption=None if caption is None else plain(caption), width="stretch")
    except ImageError as exc:
        st.warning(f"Cannot show this photo: {plain(exc.reason)}", icon=":material/broken_image:")


# --------------------------------------------------------------------------- catalogue and ingest


def catalogue_counts() -> dict[str, int]:
    return queue_summary(engine())


def ingest_form(key: str, *, refresh: bool = True) -> None:
    """Ingest a folder by path, with a progress bar and the report.

    With ``refresh``, the app reruns after an ingest, so the counts on the page and in the sidebar include
    the new photos at once; the report is kept for that run and shown under the form.
    """
    with st.form(f"ingest_{key}", border=True):
        folder = st.text_input(
            "Folder to ingest",
            key=f"ingest_path_{key}",
            placeholder="/path/to/photos",
            help="A folder with one subfolder per brand (labelled photos), or a flat folder of photos "
            "(they go to the review pool).",
        )
        submitted = st.form_submit_button("Ingest", type="primary")
    report_key = f"ingest_report_{key}"
    if not submitted:
        if report := st.session_state.pop(report_key, None):
            _ingest_report(*report)
        return
    if not folder.strip():
        st.error("Give the path of a folder on the machine that runs the app.")
        return
    bar = st.progress(0.0, text="Reading images")

    rate = Rate("photos")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Reading images: {rate.text(done, total)}")

    try:
        report = ingest_folder(folder.strip(), progress=progress, engine=engine(), actor=auth.current_actor())
        summary = report.summary()
        if report.ok:
            summary += "\n" + "\n".join(new_photo_predictions(bar))
    except Exception as exc:
        bar.empty()
        show_error(exc)
        return
    if refresh:
        st.session_state[report_key] = (report.ok, report.added, summary)
        st.rerun()
    bar.progress(1.0, text="Done")
    _ingest_report(report.ok, report.added, summary)
    if report.ok and st.button("Continue", type="primary", key=f"ingest_done_{key}"):
        st.rerun()


def new_photo_predictions(bar: Any = None) -> list[str]:
    """Predict the photos just added (the CNN at once, InceptionV3 in a background job); what happened."""

    def progress(fraction: float, text: str) -> None:
        if bar is not None:
            bar.progress(min(max(fraction, 0.0), 1.0), text=f"Predicting the new photos: {plain(text)}")

    return predict_arrivals(engine(), progress=progress).lines()


def _ingest_report(ok: bool, added: int, summary: str) -> None:
    (st.success if ok else st.warning)(
        f"Added {added} image(s)." if ok else "Nothing in that folder could be ingested."
    )
    st.code(summary, language=None)


def empty_catalogue() -> None:
    """What every page shows before any photo is in the catalogue."""
    if not auth.allowed(Permission.IMPORT):
        st.info("There are no photos in the catalogue yet: an admin imports them.", icon=":material/photo_library:")
        return
    st.info(
        "There are no photos in the catalogue yet. Ingest a folder from a terminal:\n\n"
        "```\npython -m feedback.ingest PATH\n```\n\n"
        "where PATH holds one subfolder per brand (labelled photos) or just photos (they go to the "
        "review pool). Or ingest a folder from here:",
        icon=":material/photo_library:",
    )
    ingest_form("empty", refresh=False)  # the page it is on changes once the catalogue has photos


def counts_text(counts: dict[str, int]) -> str:
    """What the catalogue holds, each number named by what it counts (see ``feedback.queue.SUMMARY_LABELS``);
    the pool photos whose first answer held them out are counted where they arrived and among the held out."""
    parts = []
    for key in ("train", "holdout", "pool"):
        part = f"{counts.get(key, 0)} {SUMMARY_LABELS[key]}"
        if key == "holdout" and counts.get("pool_held_out"):
            part += f" ({counts['pool_held_out']} of them from the review pool)"
        parts.append(part)
    return f"{counts['images']} {SUMMARY_LABELS['images']}: {', '.join(parts)}"


def sidebar(*, show_reviewer: bool = True) -> Callable[[], None]:
    """Who is reviewing (unless sign-in shows it), and what the catalogue holds. Returns what draws the counts
    again, in their place: the app calls it after the page ran, so photos a page added are counted at once."""
    with st.sidebar:
        name = reviewer()
        if name and show_reviewer:
            auth.keep_local_name(name)
            st.markdown(f"Reviewing as **{plain(name)}**")
            st.button("Change reviewer", key="change_reviewer", on_click=forget_reviewer, type="tertiary")
        slot = st.empty()

    def draw_counts() -> None:
        with slot.container():
            counts = shown_or_none(catalogue_counts)
            if counts is not None and counts["images"]:
                st.caption(
                    counts_text(counts),
                    help="The catalogue by how the photos arrived. Photos in the review pool stay there once "
                    "reviewed (a share of them is held out for evaluation by their first answer); the Review page "
                    "counts what is still waiting for you in its queue.",
                )

    draw_counts()
    return draw_counts
