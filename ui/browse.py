"""The Browse page: find photos by brand, label, prediction and review; see one photo's whole
history; settle the photos reviewers disagree on."""

from __future__ import annotations

import streamlit as st

from db.models import ReviewAction
from feedback.browse import (
    IN_CONFLICT,
    NO_BRAND,
    UNLABELLED,
    BrowseFilter,
    Conflict,
    FilterOptions,
    ImageRow,
    filter_options,
    find_images,
    image_details,
    open_conflicts,
)
from feedback.labels import NOT_A_SHOE
from feedback.reviews import record_review
from modeling.images import ImageError
from ui import common

PAGE_SIZE = 24
COLUMNS = 6


def _any(value: object) -> str:
    return "any" if value is None else str(value)


def _filters(options: FilterOptions) -> BrowseFilter:
    brands: list[str | None] = [None, *options.brands]
    with st.container(border=True):
        a, b, c, d = st.columns(4)
        imported = a.selectbox("Imported as", [*brands, NO_BRAND], format_func=_any, key="f_imported")
        label = b.selectbox(
            "Label now",
            [*brands, NOT_A_SHOE, UNLABELLED, IN_CONFLICT],
            format_func=_any,
            key="f_label",
            help="The label that counts today: the latest decision of a reviewer, else the imported brand.",
        )
        reviewed = c.selectbox(
            "Reviewed",
            [None, True, False],
            format_func=lambda v: {None: "any", True: "decided by a reviewer", False: "not decided yet"}[v],
            key="f_reviewed",
        )
        reviewer = d.selectbox("Reviewer", [None, *options.reviewers], format_func=_any, key="f_reviewer")
        e, f, g = st.columns([1, 1, 2])
        models = [m for m in ("inception", "cnn") if m in options.models] + [
            m for m in options.models if m not in ("inception", "cnn")
        ]
        has_models = bool(models)
        model = e.selectbox(
            "Model",
            models or [None],
            format_func=lambda m: m or "no model yet",
            key="f_model",
            disabled=not has_models,
        )
        predicted = f.selectbox("Predicted brand", brands, format_func=_any, key="f_predicted", disabled=not has_models)
        confidence = g.slider(
            "Confidence of the prediction", 0.0, 1.0, (0.0, 1.0), step=0.05, key="f_confidence", disabled=not has_models
        )
    return BrowseFilter(
        imported=imported,
        label=label,
        model=model,
        predicted=predicted if has_models else None,
        confidence=tuple(confidence) if has_models else (0.0, 1.0),
        reviewed=reviewed,
        reviewer=reviewer,
    )


def _caption(row: ImageRow) -> str:
    parts = [f"#{row.image_id} · {row.label_text}"]
    parts += [f"{g.arch}: {g.brand} {g.confidence:.0%}" for g in row.predictions.values()]
    return "  \n".join(parts)


@st.dialog("Photo details", width="large")
def details_dialog(image_id: int) -> None:
    try:
        details = image_details(image_id, engine=common.engine())
    except Exception as exc:
        common.show_error(exc)
        return
    if details is None:
        st.error(f"Photo #{image_id} is not in the catalogue.")
        return
    left, right = st.columns([1, 1])
    with left:
        try:
            st.image(common.review_image(details.path, details.sha256), width="stretch")
        except ImageError as exc:
            st.warning(f"Cannot show this photo: {exc.reason}")
    label = details.label
    answers = "".join(f"\n  - {a.reviewer}: {a.value} ({a.at:%Y-%m-%d %H:%M})" for a in label.answers.values())
    right.markdown(
        f"**Photo #{details.image_id}**\n"
        f"- file: `{details.path}`\n"
        f"- {details.width}×{details.height} {details.format}, {details.file_size / 1024:.0f} KiB\n"
        f"- split: {details.split}; source: {details.source or '-'}\n"
        f"- added: {details.added_at:%Y-%m-%d %H:%M} UTC\n"
        f"- imported as: {details.imported or 'no brand'}\n"
        f"- label now: **{IN_CONFLICT if label.conflict else (label.value or UNLABELLED)}** ({label.origin})"
        + (f"\n- answers since the last resolution:{answers}" if answers else "")
    )
    st.markdown("**Reviews** (oldest first; undone ones stay listed)")
    if details.reviews:
        st.dataframe(
            [
                {
                    "at": r["at"],
                    "reviewer": r["reviewer"],
                    "action": r["action"],
                    "brand": r["brand"],
                    "model shown": r["model_version_id"],
                    "resolves conflict": r["resolves_conflict"],
                    "undone at": r["undone_at"],
                }
                for r in details.reviews
            ],
            hide_index=True,
        )
    else:
        st.caption("No reviews yet.")
    st.markdown("**Predictions**")
    if details.predictions:
        st.dataframe(
            [
                {
                    "model": f"{p['arch']} v{p['model_version_id']}",
                    "model status": p["model_status"],
                    "kind": p["kind"],
                    "brand": p["brand"],
                    "confidence": p["confidence"],
                    "probabilities": ", ".join(f"{b} {v:.2f}" for b, v in sorted(p["probabilities"].items())),
                    "at": p["at"],
                }
                for p in details.predictions
            ],
            hide_index=True,
            column_config={"confidence": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f")},
        )
    else:
        st.caption("No model has predicted this photo yet.")


def _grid(flt: BrowseFilter) -> None:
    key = f"page_{hash(flt)}"  # a new filter starts on page 1
    page = st.session_state.get(key, 1)
    result = find_images(flt, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE, engine=common.engine())
    pages = max(1, -(-result.total // PAGE_SIZE))
    if page > pages:  # the catalogue shrank under this filter
        st.session_state.pop(key, None)
        page = 1
        result = find_images(flt, limit=PAGE_SIZE, engine=common.engine())
    info, pager = st.columns([3, 1], vertical_alignment="bottom")
    info.markdown(f"**{result.total}** photo(s) match.")
    pager.selectbox("Page", range(1, pages + 1), key=key, format_func=lambda p: f"{p} of {pages}")
    for start in range(0, len(result.rows), COLUMNS):
        cells = st.columns(COLUMNS)
        for cell, row in zip(cells, result.rows[start : start + COLUMNS], strict=False):
            with cell:
                common.show_thumbnail(row.path, row.sha256)
                st.caption(_caption(row))
                if st.button("Details", key=f"open_{row.image_id}", type="tertiary"):
                    details_dialog(row.image_id)


def _resolve(conflict: Conflict) -> None:
    choice = st.session_state.get(f"resolve_choice_{conflict.image_id}")
    reviewer = common.reviewer()
    action = ReviewAction.NOT_A_SHOE if choice == NOT_A_SHOE else ReviewAction.CORRECT
    try:
        record_review(
            conflict.image_id,
            reviewer or "",
            action,
            brand=None if action == ReviewAction.NOT_A_SHOE else choice,
            resolves_conflict=True,
            engine=common.engine(),
        )
    except Exception as exc:
        st.session_state["browse_error"] = common.error_text(exc)
        return
    st.session_state["browse_flash"] = f"Photo #{conflict.image_id} settled as {choice}."


def _conflicts(brands: list[str]) -> None:
    try:
        found = open_conflicts(common.engine())
    except Exception as exc:
        common.show_error(exc)
        return
    if not found:
        st.success("No conflicts: reviewers agree on every photo.", icon=":material/handshake:")
        return
    st.markdown(
        f"**{len(found)}** photo(s) have reviewers who disagree. They stay out of training until someone "
        "settles them with a final answer."
    )
    if common.ask_reviewer() is None:
        return
    choices = [*brands, NOT_A_SHOE]
    for conflict in found:
        with st.container(border=True):
            thumb, body = st.columns([1, 4])
            with thumb:
                common.show_thumbnail(conflict.path, conflict.sha256)
            with body:
                st.markdown(
                    f"**Photo #{conflict.image_id}** (imported as {conflict.imported or 'no brand'})\n\n"
                    + "\n".join(
                        f"- **{a.reviewer}**: {a.value} <span style='color:#888'>({a.at:%Y-%m-%d %H:%M})</span>"
                        for a in conflict.answers
                    ),
                    unsafe_allow_html=True,
                )
                latest = conflict.answers[-1].value if conflict.answers else None
                pick, go = st.columns([3, 1], vertical_alignment="bottom")
                pick.selectbox(
                    "Final answer",
                    choices,
                    index=choices.index(latest) if latest in choices else 0,
                    key=f"resolve_choice_{conflict.image_id}",
                )
                go.button(
                    "Settle", key=f"resolve_{conflict.image_id}", type="primary", on_click=_resolve, args=(conflict,)
                )


def render() -> None:
    st.title("Browse")
    try:
        if common.catalogue_counts()["images"] == 0:
            common.empty_catalogue()
            return
        options = filter_options(common.engine())
    except Exception as exc:
        common.show_error(exc)
        return
    if flash := st.session_state.pop("browse_flash", None):
        st.success(flash)
    if error := st.session_state.pop("browse_error", None):
        st.error(error)
    photos, disputes = st.tabs(["Photos", "Conflicts"])
    with photos:
        flt = _filters(options)
        with common.guard():
            _grid(flt)
    with disputes:
        _conflicts(options.brands)
