"""The Browse page: find photos by brand, label, prediction and review; see one photo's whole
history; settle the photos reviewers disagree on."""

from __future__ import annotations

import streamlit as st

from db.access import Permission
from db.labels import NOT_A_SHOE
from db.models import ReviewAction
from feedback.browse import (
    COUNT_CAP,
    IN_CONFLICT,
    LABEL_CHOICES,
    NO_BRAND,
    SORTS,
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
from feedback.classes import class_list
from feedback.reviews import record_review, send_to_review
from modeling.registry import ARCHITECTURES
from shoelabel.images import ImageError
from shoelabel.paths import shown_path
from ui import auth, common
from ui.text import readable

PAGE_SIZES = (24, 48, 96)  # photos per page of the grid
CONFLICTS_PER_PAGE = 10
COLUMNS = 6
TABS = ("Photos", "Conflicts")  # fixed labels: the open tab is kept by its label across reruns
SORT_WORDS = {
    "oldest": "oldest first",
    "newest": "newest first",
    "least_confident": "lowest confidence first",
    "most_confident": "highest confidence first",
}
#: A thumbnail opens its photo: its Open button's click area is stretched over the whole thumbnail.
GRID_STYLE = """<style>
.st-key-browse_grid [class*="st-key-cell_"] { position: relative; }
.st-key-browse_grid [class*="st-key-open_"] { position: static; }
.st-key-browse_grid [class*="st-key-open_"] button::after {
  content: ""; position: absolute; inset: 0; cursor: zoom-in;
}
</style>"""


def _any(value: object) -> str:
    return "any" if value is None else str(value)


def _model_filters(options: FilterOptions, brands: list[str | None]) -> tuple[str | None, object, tuple, str]:
    """The second row: model, its predicted class and confidence, and the order."""
    e, f, g, h = st.columns([1, 1, 2, 1])
    models = [m for m in ARCHITECTURES if m in options.models] + [m for m in options.models if m not in ARCHITECTURES]
    has_models = bool(models)
    model = e.selectbox(
        "Model", models or [None], format_func=lambda m: m or "no model yet", key="f_model", disabled=not has_models
    )
    predicted = f.selectbox("Predicted brand", brands, format_func=_any, key="f_predicted", disabled=not has_models)
    confidence = g.slider(
        "Confidence of the prediction", 0.0, 1.0, (0.0, 1.0), step=0.05, key="f_confidence", disabled=not has_models
    )
    sort = h.selectbox(
        "Order",
        SORTS,
        format_func=SORT_WORDS.__getitem__,
        key="f_sort",
        help="Confidence: that of the model chosen on the left; photos it has not predicted come last.",
    )
    if not has_models:
        return model, None, (0.0, 1.0), sort
    return model, predicted, tuple(confidence), sort


def _attribute_filters(options: FilterOptions) -> tuple[tuple[str, str], ...]:
    """A row for every attribute besides brand: the label it has now."""
    if not options.attributes:
        return ()
    chosen = []
    for column, (name, classes) in zip(st.columns(len(options.attributes)), options.attributes.items(), strict=True):
        wanted = column.selectbox(
            common.plain(name), [None, *classes, UNLABELLED, IN_CONFLICT], format_func=_any, key=f"f_attribute_{name}"
        )
        if wanted is not None:
            chosen.append((name, wanted))
    return tuple(chosen)


def _filters(options: FilterOptions) -> tuple[BrowseFilter, str]:
    """The filter and the order chosen above the grid."""
    brands: list[str | None] = [None, *options.brands]
    with st.container(border=True):
        a, b, c, d = st.columns(4)
        imported = a.selectbox("Imported as", [*brands, NO_BRAND], format_func=_any, key="f_imported")
        label = b.selectbox(
            "Label now",
            [*brands, *LABEL_CHOICES],
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
        model, predicted, confidence, sort = _model_filters(options, brands)
        others = _attribute_filters(options)
    flt = BrowseFilter(
        imported=imported,
        label=label,
        model=model,
        predicted=predicted,
        confidence=confidence,
        reviewed=reviewed,
        reviewer=reviewer,
        attributes=others,
    )
    return flt, sort


def _caption(row: ImageRow) -> str:
    parts = [f"#{row.image_id} · {common.plain(row.label_text)}"]
    parts += [f"{g.arch}: {common.plain(g.brand)} {g.confidence:.0%}" for g in row.predictions.values()]
    return "  \n".join(parts)


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    """Rows as a table; every cell escaped (a table reads Markdown), so names from users stay text."""
    import pandas as pd

    st.table(pd.DataFrame([[common.plain(cell) for cell in row] for row in rows], columns=header), hide_index=True)


def _when(at: object) -> str:
    return "-" if at is None else f"{at:%Y-%m-%d %H:%M}"


@st.dialog("Photo details", width="large")
def details_dialog(image_id: int) -> None:
    """Everything about one photo, in tables (not data grids: opening it loads nothing heavy)."""
    details = common.shown_or_none(image_details, image_id, engine=common.engine())
    if details is None:
        st.error(f"Photo #{image_id} is not in the catalogue.")
        return
    left, right = st.columns([1, 1])
    with left:
        try:
            common.show_photo(details.path, details.sha256)  # its own size at most: a small photo stays sharp
        except ImageError as exc:
            st.warning(f"Cannot show this photo: {common.plain(exc.reason)}")
    label = details.label
    facts = [
        ("file", shown_path(details.path)),
        ("size", f"{details.width}×{details.height} {details.format}, {details.file_size / 1024:.0f} KiB"),
        ("split", readable(details.split)),
        ("source", details.source or "-"),
        ("added", f"{_when(details.added_at)} UTC"),
        ("imported as", details.imported or "no brand"),
        ("label now", f"{IN_CONFLICT if label.conflict else (label.value or UNLABELLED)} ({label.origin})"),
    ]
    facts += [(f"answer of {a.reviewer}", f"{a.value} ({_when(a.at)})") for a in label.answers.values()]
    with right:
        st.markdown(f"**Photo #{details.image_id}**")
        _table(facts, ("", "value"))
        if auth.allowed(Permission.REVIEW):
            _photo_actions(details.image_id)
    reviews = [_review_row(r) for r in details.reviews]
    header = ("at", "reviewer", "action", "attribute", "answer", "model shown", "settles", "undone at")
    _section("**Reviews** (oldest first; undone ones stay listed)", reviews, header, "No reviews yet.")
    predictions = [_prediction_row(p) for p in details.predictions]
    header = ("model", "status", "kind", "brand", "confidence", "probabilities", "at")
    _section("**Predictions**", predictions, header, "No model has predicted this photo yet.")


def _section(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...], empty: str) -> None:
    st.markdown(title)
    if rows:
        _table(rows, header)
    else:
        st.caption(empty)


def _review_row(r: dict) -> tuple[str, ...]:
    model = "-" if r["model_version_id"] is None else f"v{r['model_version_id']}"
    undone = _when(r["undone_at"]) if r["undone_at"] else ""
    settles = "yes" if r["resolves_conflict"] else ""
    return (
        _when(r["at"]),
        r["reviewer"],
        readable(r["action"]),
        r["attribute"],
        r["class"] or "-",
        model,
        settles,
        undone,
    )


def _prediction_row(p: dict) -> tuple[str, ...]:
    probabilities = ", ".join(f"{b} {v:.2f}" for b, v in sorted(p["probabilities"].items()))
    model = f"{readable(p['arch'])} v{p['model_version_id']}"
    return (
        model,
        readable(p["model_status"]),
        readable(p["kind"]),
        p["brand"],
        f"{p['confidence']:.2f}",
        probabilities,
        _when(p["at"]),
    )


def _relabel(image_id: int) -> None:
    """Record the brand chosen in the photo details as the reviewer's correction (or "not a shoe")."""
    choice = st.session_state.get(f"relabel_choice_{image_id}")
    if choice is None:
        st.session_state["details_flash"] = ("error", "Choose the brand first.")
        return
    action = ReviewAction.NOT_A_SHOE if choice == NOT_A_SHOE else ReviewAction.CORRECT
    try:
        record_review(
            image_id,
            common.reviewer() or "",
            action,
            label=None if action == ReviewAction.NOT_A_SHOE else choice,
            engine=common.engine(),
            actor=auth.current_actor(),
        )
    except Exception as exc:
        st.session_state["details_flash"] = ("error", common.error_text(exc))
        return
    st.session_state["details_flash"] = ("success", f"Photo #{image_id} relabelled {common.plain(choice)}.")


def _send_back(image_id: int) -> None:
    try:
        send_to_review(image_id, common.reviewer() or "", engine=common.engine(), actor=auth.current_actor())
    except Exception as exc:
        st.session_state["details_flash"] = ("error", common.error_text(exc))
        return
    st.session_state["details_flash"] = (
        "success",
        f"Photo #{image_id} is back in the review queue: its decisions are undone (they stay listed below).",
    )


def _photo_actions(image_id: int) -> None:
    """Relabel the photo, or send it back to review; both are recorded as reviews, listed in its history."""
    if flash := st.session_state.pop("details_flash", None):
        (st.success if flash[0] == "success" else st.error)(flash[1])
    if common.ask_reviewer() is None:
        return
    choices = [*(common.shown_or_none(class_list, engine=common.engine()) or []), NOT_A_SHOE]
    st.selectbox(  # options are shown as plain text, never as Markdown or HTML
        "New brand", choices, index=None, key=f"relabel_choice_{image_id}", placeholder="Choose a brand"
    )
    with st.container(horizontal=True, gap="small"):
        st.button("Relabel", key=f"relabel_{image_id}", type="primary", on_click=_relabel, args=(image_id,))
        st.button(
            "Send to review",
            key=f"send_back_{image_id}",
            on_click=_send_back,
            args=(image_id,),
            help="Undo its decisions, so the review queue offers it again.",
        )


def _pager(key: str, pages: int, *, more: bool = False) -> int:
    """The "Page" box, and the page it shows (from 1); a page past the last (the matches shrank) shows the
    first again. ``more``: pages go on past these."""
    if st.session_state.get(key, 1) > pages:
        st.session_state.pop(key)
    return st.selectbox(
        "Page", range(1, pages + 1), key=key, format_func=lambda p: f"{p} of {pages}{'+' if more else ''}"
    )


def _grid(flt: BrowseFilter, sort: str) -> None:
    size = st.session_state.get("browse_page_size", PAGE_SIZES[0])
    key = f"page_{hash((flt, sort, size))}"  # a new filter, order or page size starts on page 1
    page = st.session_state.get(key, 1)
    result = find_images(flt, sort=sort, offset=(page - 1) * size, limit=size, engine=common.engine())
    info, per_page, pager = st.columns([4, 1, 1], vertical_alignment="bottom")
    with pager:
        shown = _pager(key, max(1, -(-result.total // size)), more=result.capped)
    if shown != page:
        result = find_images(flt, sort=sort, offset=(shown - 1) * size, limit=size, engine=common.engine())
    if result.capped:
        info.markdown(
            f"More than **{COUNT_CAP:,}** photos match. The pages reach the first {COUNT_CAP:,} in this order: "
            "narrow the filters, or reverse the order, to see others."
        )
    else:
        info.markdown(f"**{result.total:,}** photo(s) match.")
    per_page.selectbox("Per page", PAGE_SIZES, key="browse_page_size")
    st.html(GRID_STYLE)
    with st.container(key="browse_grid"):
        for start in range(0, len(result.rows), COLUMNS):
            cells = st.columns(COLUMNS)
            for cell, row in zip(cells, result.rows[start : start + COLUMNS], strict=False):
                with cell:
                    _cell(row)


@st.fragment
def _cell(row: ImageRow) -> None:
    """One thumbnail: a fragment, so opening its photo reruns these few elements, not the whole grid."""
    with st.container(key=f"cell_{row.image_id}", gap="small"):
        common.show_thumbnail(row.path, row.sha256)
        opened = st.button(
            f"Open #{row.image_id}",
            key=f"open_{row.image_id}",
            type="tertiary",
            icon=":material/open_in_full:",
            help="The photo with its reviews and predictions (or click the thumbnail)",
        )
    st.caption(_caption(row))
    if opened:
        details_dialog(row.image_id)


@st.fragment
def _photos(options: FilterOptions) -> None:
    """The filters and the grid: a fragment, so filtering or paging reruns only this."""
    flt, sort = _filters(options)
    with common.guard():
        _grid(flt, sort)


def _resolve(conflict: Conflict) -> None:
    choice = st.session_state.get(f"resolve_choice_{conflict.image_id}")
    if choice is None:  # nothing is chosen for the admin: one click never settles
        st.session_state["browse_error"] = f"Choose the final answer for photo #{conflict.image_id} first."
        return
    reviewer = common.reviewer()
    action = ReviewAction.NOT_A_SHOE if choice == NOT_A_SHOE else ReviewAction.CORRECT
    try:
        record_review(
            conflict.image_id,
            reviewer or "",
            action,
            label=None if action == ReviewAction.NOT_A_SHOE else choice,
            resolves_conflict=True,
            engine=common.engine(),
            actor=auth.current_actor(),
        )
    except Exception as exc:
        st.session_state["browse_error"] = common.error_text(exc)
        return
    st.session_state["browse_flash"] = f"Photo #{conflict.image_id} settled as {common.plain(choice)}."


def _conflicts(brands: list[str]) -> None:
    found = common.shown_or_none(open_conflicts, common.engine())
    if found is None:
        return
    if not found:
        st.success("No conflicts: reviewers agree on every photo.", icon=":material/handshake:")
        return
    pages = -(-len(found) // CONFLICTS_PER_PAGE)
    info, pager = st.columns([5, 1], vertical_alignment="bottom")
    info.markdown(
        f"**{len(found)}** photo(s) have reviewers who disagree. They stay out of training until someone "
        "settles them with a final answer."
    )
    with pager:
        page = _pager("conflicts_page", pages)
    settle = auth.allowed(Permission.SETTLE)
    if settle and common.ask_reviewer() is None:
        return
    choices = [*brands, NOT_A_SHOE]
    for conflict in found[(page - 1) * CONFLICTS_PER_PAGE : page * CONFLICTS_PER_PAGE]:
        with st.container(border=True):
            thumb, body = st.columns([1, 4])
            with thumb:
                common.show_thumbnail(conflict.path, conflict.sha256)
                if st.button(
                    "Enlarge",
                    key=f"enlarge_{conflict.image_id}",
                    type="tertiary",
                    icon=":material/open_in_full:",
                    help="The photo at its full size, with its reviews and predictions",
                ):
                    details_dialog(conflict.image_id)
            with body:
                plain = common.plain
                st.markdown(
                    f"**Photo #{conflict.image_id}** (imported as {plain(conflict.imported or 'no brand')})\n\n"
                    + "\n".join(
                        f"- **{plain(a.reviewer)}**: {plain(a.value)} :gray[({a.at:%Y-%m-%d %H:%M})]"
                        for a in conflict.answers
                    )
                )
                if not settle:
                    continue  # an admin settles conflicts
                pick, go = st.columns([3, 1], vertical_alignment="bottom")
                pick.selectbox(  # nothing chosen beforehand: settling is an explicit choice
                    "Final answer",
                    choices,
                    index=None,
                    placeholder="Choose the final answer",
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
    # keyed and stateful, so a rerun (settling a conflict) stays on the open tab; only the open tab is drawn
    photos, disputes = st.tabs(TABS, key="browse_tab", on_change="rerun")
    if photos.open:
        with photos:
            _photos(options)
    if disputes.open:
        with disputes:
            _conflicts(options.brands)
