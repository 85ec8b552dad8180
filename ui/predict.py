"""The Predict page: upload photos, see what each current model says, and add them to the review pool."""

from __future__ import annotations

import hashlib
import io

import streamlit as st

from db.access import Permission
from feedback.uploads import store_uploads
from modeling.answers import ModelAnswer
from modeling.app_services import (
    KnownPhoto,
    UploadPrediction,
    Warmup,
    current_handles,
    known_photos,
    load_model,
    predict_uploads,
    store_upload_predictions,
)
from modeling.predict import ModelHandle
from modeling.registry import ARCH_NAMES
from shoelabel.images import ImageError, inspect_upload, open_rgb
from shoelabel.settings import get_settings
from ui import auth, common
from ui.text import first_model_hint

Upload = tuple[str, bytes]


def warmup() -> Warmup:
    """The current models made ready in a background thread, started once per server process (and database)
    by the first page drawn, after it is on screen, so that the first uploads are answered in seconds."""
    return _warmup(get_settings().db_url)


@st.cache_resource(show_spinner=False)
def _warmup(db_url: str) -> Warmup:
    return Warmup(common.engine()).start()


@st.fragment(run_every=1.0)
def _warmup_status() -> None:
    """While the models are being made ready: which are, and which still load (it redraws until done)."""
    state = warmup()
    if state.done:
        if st.session_state.pop("predict_warming", False):
            st.rerun()  # the last one just got ready: draw the page without this line
        return
    st.session_state["predict_warming"] = True
    parts = []
    for model in state.models:
        if model.state == "ready":
            parts.append(f"{model.label} ready ({model.seconds:.1f} s)")
        elif model.state == "failed":
            parts.append(f"{model.label} could not load: {model.error}")
        else:
            parts.append(f"{model.label} {model.state}")
    ready = sum(model.state in ("ready", "failed") for model in state.models)
    st.progress(ready / max(len(state.models), 1), text=common.plain("Getting the models ready: " + " · ".join(parts)))


@st.cache_resource(show_spinner=False, max_entries=4)  # current models, and the ones just replaced
def _model(path: str, _handle: ModelHandle) -> object:
    """Each model file is read once per process, whatever the number of sessions."""
    model = load_model(_handle)
    common.settle_heap(new_modules=0)  # a model lives as long as the process: keep it out of GC passes
    return model


@st.cache_data(max_entries=16, show_spinner=False)
def _predict(
    key: tuple[tuple[str, ...], tuple[int, ...]], _files: list[Upload], _handles: dict
) -> list[UploadPrediction]:
    """Predictions for these uploads by these model versions (``key`` names both)."""
    return predict_uploads(_files, _handles)


@st.cache_data(max_entries=256, show_spinner=False)
def _preview(sha256: str, _data: bytes) -> bytes:
    image = open_rgb(_data, max_side=common.THUMB_SIDE * 2)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=88)
    return out.getvalue()


TOP_CLASSES = 5  # the likeliest classes shown under each answer


def _answer(key: str, answer: ModelAnswer) -> None:
    arch, _, attribute = key.partition(" · ")
    name = ARCH_NAMES.get(arch, arch)
    plain = common.plain
    what = f"{plain(attribute or 'brand')} · {plain(name)}"
    st.markdown(f"{what} v{answer.model_version_id}: **{plain(answer.brand)}** {answer.confidence:.0%}")
    for label, p in sorted(answer.probabilities.items(), key=lambda kv: -kv[1])[:TOP_CLASSES]:
        st.progress(p, text=f"{plain(label)} {p:.1%}")


@st.cache_data(max_entries=256, show_spinner=False)
def _problem(sha256: str, name: str, _data: bytes) -> str | None:
    """Why the upload cannot be used (decoded by content), or None."""
    try:
        inspect_upload(name, _data)
    except ImageError as exc:
        return str(exc)
    return None


def _known(known: KnownPhoto | None) -> None:
    """What the catalogue says of a photo it has already."""
    if known is None:
        return
    labels = " · ".join(f"{name}: {value}" for name, value in known.labels.items())
    st.info(common.plain(f"In the catalogue as photo #{known.image_id}. {labels}"), icon=":material/label:")


def _show(upload: Upload, result: UploadPrediction | None, sha256: str, known: KnownPhoto | None = None) -> None:
    name, data = upload
    with st.container(border=True):
        _known(known)
        problem = _problem(sha256, name, data) or (result.error if result is not None else None)
        if problem:
            st.error(common.plain(problem), icon=":material/broken_image:")
            return
        picture, *answers = st.columns([1] + [1] * min(max(1, len(result.answers) if result else 1), 2))
        with picture:
            try:
                st.image(_preview(sha256, data), caption=common.plain(name), width=240)
            except ImageError as exc:
                st.error(common.plain(f"{name}: {exc.reason}"))
                return
        if result is None or not result.answers:
            answers[0].caption("No prediction.")
            return
        for n, (key, answer) in enumerate(result.answers.items()):  # brand first, then each attribute
            with answers[n % len(answers)]:
                _answer(key, answer)


def _add_to_pool(uploads: list[Upload], shas: list[str], results: list[UploadPrediction] | None, handles: dict) -> None:
    try:
        report = store_uploads(uploads, engine=common.engine(), actor=auth.current_actor())
        if results and handles:
            added = {s.sha256: s.image_id for s in report.added}
            answers = {
                added[sha]: r.answers for sha, r in zip(shas, results, strict=True) if sha in added and r.answers
            }
            store_upload_predictions(handles, answers, engine=common.engine())
        arrivals = common.new_photo_predictions() if report.added else []  # models that did not predict them
    except Exception as exc:
        common.show_error(exc)
        return
    if report.added:
        st.success(f"Added {len(report.added)} photo(s) to the review pool.", icon=":material/check:")
    for rejected in report.rejected:
        st.error(common.plain(f"{rejected.name}: {rejected.reason}"))
    st.code("\n".join([report.summary(), *arrivals]), language=None)


def render() -> None:
    st.title("Predict")
    with common.guard():
        _warmup_status()
    files = st.file_uploader(
        "Photos of shoes", accept_multiple_files=True, key="predict_files", help="JPEG, PNG, WebP or BMP."
    )
    handles = common.shown_or_none(current_handles, common.engine())
    if handles is None:
        return
    if not handles:
        st.info(
            f"No trained model yet, so no predictions: {first_model_hint(auth.allowed(Permission.TRAIN))}",
            icon=":material/model_training:",
        )
    if not files:
        st.caption(
            "Upload one or more photos to see the brand, and every other attribute, each current model predicts."
        )
        return
    uploads: list[Upload] = [(f.name, f.getvalue()) for f in files]
    shas = [hashlib.sha256(data).hexdigest() for _, data in uploads]
    results: list[UploadPrediction] | None = None
    known = common.shown_or_none(known_photos, shas, common.engine()) or {}
    if handles:
        try:
            with st.spinner("Loading the models (once) and predicting..."):
                for handle in handles.values():
                    _model(handle.path, handle)
                key = (tuple(shas), tuple(h.id for h in handles.values()))
                results = _predict(key, uploads, handles)
        except Exception as exc:
            common.show_error(exc)
    for i, upload in enumerate(uploads):
        with common.guard():
            _show(upload, results[i] if results else None, shas[i], known.get(shas[i]))
    if not auth.allowed(Permission.IMPORT):
        return  # an admin adds photos to the catalogue
    if st.button("Add these photos to the review pool", type="primary", key="add_to_pool"):
        _add_to_pool(uploads, shas, results, handles)
