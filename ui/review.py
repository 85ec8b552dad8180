"""The Review page: one photo, what each model thinks, and one-key answers.

Answers are recorded in button callbacks, so the database has the review before
the page draws the next photo, and the callback knows exactly which photo the
key was pressed on (the buttons are keyed by image id). The review area is a
fragment: an answer reruns only it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import logging
from pathlib import Path
from typing import Any

import streamlit as st

from db import DatabaseBusyError
from db.access import Permission
from db.models import BRAND, BRAND_ID, ReviewAction, utcnow
from feedback.attribute_queue import (
    AttributeView,
    next_attribute_items,
    pending_attribute_count,
    photo_attributes,
    record_attribute_answers,
    start_first_model,
)
from feedback.browse import filter_options
from feedback.classes import attribute_ids, class_list
from feedback.queue import (
    CLAIM_MINUTES,
    DEFAULT_STRATEGY,
    QueueItem,
    default_scope,
    next_items,
    pending_count,
    put_off_count,
    renew_claims,
    scope_count,
)
from feedback.reviews import UNDO_DEPTH, UNDO_WINDOW, record_review, undo_last
from feedback.strategies import STRATEGIES, get_strategy
from modeling.answers import ModelAnswer
from modeling.app_services import answers_now
from modeling.registry import ARCH_NAMES, ARCHITECTURES
from shoelabel.images import ImageError
from shoelabel.paths import shown_path
from ui import auth, common, new_class
from ui.text import readable

log = logging.getLogger("shoelabel.app")

MAX_KEYED_BRANDS = 9
EVERY_ATTRIBUTE = "Every attribute at once"  # never an attribute's name: those are lower case
MAX_BARS = 12  # the most likely classes each model's bars show; the rest are summed in one line
#: Puts the keyboard in the Review page's type-ahead when ``/`` is pressed outside a text box, and takes it out
#: again on Escape or once Enter has picked a class (while it is in a text box, the page's one-key shortcuts are
#: off). Where the box accepts a new class, Streamlit marks its "Add: ..." row for Enter even when the letters
#: match classes; Enter then first moves the mark down to the first matching class (as ↓ would), so the letters
#: answer with an existing class, and only letters that match none offer to add them (a mark moved with the
#: arrow keys since the last letter is left where the reviewer put it). Static: no user data.
TYPEAHEAD_KEYS = """<script>
if (!window.shoelabelTypeahead) {
  window.shoelabelTypeahead = true;
  const box = () => document.querySelector('[class*="st-key-typeahead_"] input');
  const typing = (el) => el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
  const NEW = "__creatable__";  // Streamlit's key of the "Add: ..." row
  let arrowed = false;  // an arrow key moved the mark since the last letter: Enter takes what it marks
  const toClass = (input) => {
    const list = document.getElementById(input.getAttribute("aria-controls") || "");
    const marked = input.getAttribute("aria-activedescendant") || "";
    if (!arrowed && list && marked.endsWith("-option-" + NEW)
        && list.querySelector('[role="option"]:not([data-key="' + NEW + '"])')) {
      input.dispatchEvent(new KeyboardEvent("keydown", {key: "ArrowDown", code: "ArrowDown", bubbles: true}));
    }  // the box draws the moved mark before it sees this Enter (between two listeners, a microtask runs)
  };
  document.addEventListener("input", (event) => { if (event.target === box()) arrowed = false; }, true);
  document.addEventListener("keydown", (event) => {
    const input = box();
    if (!input) return;
    if (event.key === "/" && !event.ctrlKey && !event.metaKey && !event.altKey && !typing(event.target)) {
      event.preventDefault();
      input.focus();
    } else if (event.target === input && event.isTrusted && ["ArrowUp", "ArrowDown"].includes(event.key)) {
      arrowed = true;
    } else if ((event.key === "Escape" || event.key === "Enter") && event.target === input) {
      if (event.key === "Enter") toClass(input);
      setTimeout(() => input.blur());  // after Enter picks a class, the page's keys (Enter saves) work again
    }
  }, true);
}
</script>"""
#: The Review page's keyboard, installed once per browser tab (static: no user data):
#: - Escape takes the keyboard out of any box (a sidebar select box, the type-ahead) and back to the review;
#: - an answer key pressed while the next photo is not on screen yet (the page marks each drawn photo with
#:   ``shoelabel-ready``: which run drew it, and which keys answer it) is held back, so it never answers the
#:   photo that comes next, and a notice counts the keys ignored (never silence).
REVIEW_KEYS = """<script>
if (!window.shoelabelKeys) {
  const keys = window.shoelabelKeys = {closedOn: null, since: 0, ignored: 0, hide: null};
  const typing = (el) => el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
  const notice = () => {
    let box = document.getElementById("shoelabel-ignored");
    if (!box) {
      box = document.createElement("div");
      box.id = "shoelabel-ignored";
      box.setAttribute("role", "status");
      box.style.cssText = "position:fixed;bottom:1.5rem;left:50%;transform:translateX(-50%);z-index:100000;"
        + "background:#fff3cd;color:#664d03;border:1px solid #ffe69c;border-radius:.5rem;padding:.5rem 1rem";
      document.body.appendChild(box);
    }
    box.textContent = keys.ignored + (keys.ignored === 1 ? " key" : " keys") + " ignored: wait for the photo";
    box.style.display = "block";
    clearTimeout(keys.hide);
    keys.hide = setTimeout(() => { box.style.display = "none"; keys.ignored = 0; }, 3000);
  };
  window.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      const el = document.activeElement;
      if (el && el !== document.body && (typing(el) || el.closest('[data-testid="stSidebar"]'))) {
        setTimeout(() => el.blur());
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (document.querySelector('[role="dialog"]')) return;
    const ready = document.querySelector(".shoelabel-ready");
    if (!ready || !ready.dataset.keys.split(" ").includes(event.key.toLowerCase())) return;
    const run = ready.dataset.run;
    if (keys.closedOn === run && performance.now() - keys.since < 5000) {
      event.preventDefault();
      event.stopImmediatePropagation();
      keys.ignored += 1;
      notice();
      return;
    }
    keys.closedOn = run;
    keys.since = performance.now();
  }, true);
}
</script>"""
#: Takes the keyboard out of the sidebar after a queue setting changed there, so the answer keys work at once
#: (Streamlit leaves it in the select box, where "3" would be typed). ``{n}`` changes with each change, which
#: runs the script again. Static apart from that number.
RELEASE_FOCUS = """<script>/* {n} */ setTimeout(() => {{
  const el = document.activeElement;
  if (el && el.closest('[data-testid="stSidebar"]')) el.blur();
}}, 50);</script>"""
MAX_UPSCALE = 2  # a small photo is scaled up to the column's width, at most this many times its own size
#: The review photo: as wide as its column, at most MAX_UPSCALE times its own width ({cap} px); Streamlit's
#: fullscreen button is hidden, as it covered the line above the photo (the photo has its own zoom).
PHOTO_STYLE = """<style>
.st-key-review_photo [data-testid="stElementToolbar"] {{ display: none !important; }}
.st-key-review_photo [data-testid="stImage"] img {{ max-width: min(100%, {cap}px) !important; }}
</style>"""
RENEW_TRIES = 3  # renewals in a row the database may refuse as busy before the page warns
SCOPE_HELP = {
    "unlabelled": "photos that arrived without a brand and nobody has decided yet",
    "unreviewed": "every photo nobody has decided yet, imported labels included",
    "labelled": "photos with a brand (imported or reviewed), to check their labels",
}
OTHER_ANSWERS = (  # (label, key prefix, shortcut, action) of the answers that name no class
    ("Skip", "skip", "S", ReviewAction.SKIP),
    ("Not a shoe", "notshoe", "N", ReviewAction.NOT_A_SHOE),
    ("Unsure", "unsure", "U", ReviewAction.UNSURE),
)
ACTION_WORDS = {
    ReviewAction.CONFIRM: "confirmed",
    ReviewAction.CORRECT: "corrected to",
    ReviewAction.SKIP: "skipped",
    ReviewAction.NOT_A_SHOE: "marked not a shoe",
    ReviewAction.UNSURE: "marked unsure",
}


# --------------------------------------------------------------------------- queue settings (sidebar)


def _keep_scope(key: str) -> None:
    """Remember the scope chosen by hand, so another strategy that offers it starts on it too."""
    st.session_state["queue_scope"] = st.session_state[key]
    _release_focus()


def _release_focus() -> None:
    """After a change in the sidebar, the next run takes the keyboard out of it (see :data:`RELEASE_FOCUS`)."""
    st.session_state["focus_releases"] = st.session_state.get("focus_releases", 0) + 1


def _keep_choice(key: str) -> None:
    """Remember a sidebar choice outside its widget: Streamlit forgets a widget's value when a page without it
    is drawn, and the choice must outlive a visit to another page."""
    st.session_state[f"kept_{key}"] = st.session_state[key]
    _release_focus()


def _kept_selectbox(label: str, options: list[str], default: str, key: str, **kwargs: Any) -> str:
    """A sidebar select box whose choice outlives a visit to another page (:func:`_keep_choice`): it starts
    at the kept choice, else at ``default``."""
    kept = st.session_state.get(f"kept_{key}")
    index = options.index(kept if kept in options else default)
    return st.selectbox(label, options, index=index, key=key, on_change=_keep_choice, args=(key,), **kwargs)


def answered_attribute() -> str | None:
    """The attribute the Review page answers (None: every attribute at once), as chosen in the sidebar."""
    chosen = st.session_state.get("kept_review_attribute", BRAND)
    return None if chosen == EVERY_ATTRIBUTE else chosen


def queue_settings() -> tuple[str | None, str, str]:
    """The attribute to answer (None: every attribute of each photo at once), and for brand the strategy and
    scope chosen in the sidebar (the scope chosen last, where the strategy offers it)."""
    names = list(STRATEGIES)
    with st.sidebar:
        st.subheader("Queue")
        attributes = list(common.shown_or_none(attribute_ids, engine=common.engine()) or [BRAND])
        attribute: str | None = BRAND
        if len(attributes) > 1:
            options = [*attributes, EVERY_ATTRIBUTE]
            chosen = _kept_selectbox(
                "Answer",
                options,
                BRAND,
                "review_attribute",
                help="The attribute you answer, one key per photo. Brand has the query strategies below; another "
                "attribute offers typical, diverse photos first until its first model is trained, then the "
                "photos that model is least sure of.",
            )
            attribute = None if chosen == EVERY_ATTRIBUTE else chosen
        st.html(RELEASE_FOCUS.format(n=st.session_state.get("focus_releases", 0)), unsafe_allow_javascript=True)
        if attribute not in (BRAND, None):
            return attribute, DEFAULT_STRATEGY, "unlabelled"
        strategy = _kept_selectbox(
            "Strategy",
            names,
            DEFAULT_STRATEGY,
            "strategy",
            format_func=lambda name: readable(name).capitalize(),
            help="Which photos come first: the ones the models are least sure about (least confident, "
            "smallest margin, highest entropy), disagree on, spread over the feature space (diverse), at random, "
            "or labelled photos the models contradict (likely mislabelled).",
        )
        scopes = list(get_strategy(strategy).scopes)
        chosen = st.session_state.get("queue_scope")
        key = f"scope_{strategy}"
        scope = st.selectbox(
            "Photos",
            scopes,
            index=scopes.index(chosen if chosen in scopes else default_scope(strategy)),
            key=key,
            format_func=lambda s: f"{s}: {SCOPE_HELP[s]}",
            on_change=_keep_scope,
            args=(key,),
        )
        _strategy_notice(strategy)
    return attribute, strategy, scope


def _strategy_notice(strategy: str) -> None:
    """Say so when a strategy falls back to another one because a model it needs is missing."""
    if strategy not in ("disagreement", "diverse"):
        return
    options = common.shown_or_none(filter_options, common.engine())
    if options is None:
        return
    models = options.models
    if strategy == "disagreement" and len(models) < 2:
        only = f"only the {ARCH_NAMES.get(models[0], models[0])} model" if models else "no model"
        st.info(
            f"There is {only} yet, so there is no committee to disagree: **models disagree** ranks the "
            "photos like **smallest margin** until both models are trained.",
            icon=":material/info:",
        )
    elif strategy == "diverse" and "inception" not in models:
        st.info(
            "There is no InceptionV3 model yet, so there are no features to spread the photos over: **diverse** "
            "ranks them like **least confident** until one is trained.",
            icon=":material/info:",
        )


# --------------------------------------------------------------------------- state


def _state() -> Any:
    state = st.session_state
    state.setdefault("review_done", 0)
    return state


def _queue(reviewer: str, attribute: str | None, strategy: str, scope: str) -> list[QueueItem]:
    """The photo on screen and the one after it; fetched again after each answer."""
    state = _state()
    key = (attribute, strategy, scope)
    if state.get("review_queue") is None or state.get("review_queue_key") != key:
        prefer = state.pop("review_prefer", None)  # the preloaded (or undone) photo stays first
        if attribute in (BRAND, None):  # every attribute at once follows the brand queue
            items = next_items(
                reviewer,
                common.session_id(),
                strategy=strategy,
                scope=scope,
                k=2,
                first=prefer,
                engine=common.engine(),
                again_before=state.setdefault("review_pass_start", utcnow()),  # put off before: at the end
            )
        else:
            items = next_attribute_items(
                reviewer, common.session_id(), attribute, k=2, first=prefer, engine=common.engine()
            )
        state["review_queue"] = _named_now(items, attribute)
        state["review_queue_key"] = key
    return state["review_queue"]


def _named_now(items: list[QueueItem], attribute: str | None) -> list[QueueItem]:
    """The models' answers under today's class names (a model trained before a rename or merge still says
    the old ones)."""
    attribute_id = attribute_ids(engine=common.engine()).get(attribute or BRAND, BRAND_ID)
    return [
        dataclasses.replace(item, predictions=answers_now(item.predictions, attribute_id, common.engine()))
        for item in items
    ]


def _current(image_id: int) -> QueueItem | None:
    items = st.session_state.get("review_queue") or []
    return items[0] if items and items[0].image_id == image_id else None


def _advance(answered: int) -> None:
    state = _state()
    rest = [item for item in state.get("review_queue") or [] if item.image_id != answered]
    state["review_prefer"] = rest[0].image_id if rest else None
    state["review_queue"] = None


# --------------------------------------------------------------------------- callbacks (run before the rerun)


def _answer(image_id: int, action: ReviewAction, brand: str | None) -> None:
    state = _state()
    item = _current(image_id)
    if item is None:  # a key pressed on a photo that was answered meanwhile: never applied to the next one
        _ignored()
        return
    shown = item.shown()
    attribute = answered_attribute() or BRAND  # every attribute at once: skip and not a shoe are about the photo
    try:
        review_id = record_review(
            image_id,
            common.reviewer() or "",
            action,
            label=brand,
            attribute_id=attribute_ids(engine=common.engine())[attribute],
            shown=shown,
            engine=common.engine(),
            actor=auth.current_actor(),
        )
        if attribute != BRAND and start_first_model(attribute, engine=common.engine()):
            state["review_notice"] = (
                f"Enough {common.plain(attribute)} answers for a first model: it is training in the background "
                "(progress in the sidebar); the queue then offers the photos it is least sure of."
            )
    except Exception as exc:
        state["review_error"] = common.error_text(exc)
        return
    state.setdefault("review_ids", []).append(review_id)  # what Undo may take back in this tab
    words = ACTION_WORDS[action]
    if action == ReviewAction.CORRECT and item.label.brand is None and shown is None:
        words = "answered"  # nothing to correct: no class yet and no model's answer (a new attribute)
    answer = f"photo #{image_id} {words}" + (f" {brand}" if brand else "")
    state.setdefault("review_answers", {})[review_id] = answer  # how Undo names it
    state["review_done"] += 1
    state.pop("review_error", None)
    state["review_last"] = answer[0].upper() + answer[1:]
    _advance(image_id)


def _ignored() -> None:
    """Count a key that reached a photo no longer on screen; the page says so (see :func:`_messages`)."""
    state = _state()
    state["review_ignored"] = state.get("review_ignored", 0) + 1


def _answer_every(image_id: int, names: list[str]) -> None:
    """Store the classes chosen on the every-attribute screen (an attribute left empty is not answered)."""
    state = _state()
    if _current(image_id) is None:
        _ignored()
        return
    chosen = {name: value for name in names if (value := state.get(f"every_{image_id}_{name}")) is not None}
    if not chosen:
        state["review_error"] = "Choose a class for at least one attribute, or skip the photo."
        return
    try:
        ids = record_attribute_answers(
            image_id, common.reviewer() or "", chosen, engine=common.engine(), actor=auth.current_actor()
        )
    except Exception as exc:
        state["review_error"] = common.error_text(exc)
        return
    answer = f"photo #{image_id}: " + ", ".join(f"{name} {value}" for name, value in chosen.items())
    for review_id, (name, value) in zip(ids, chosen.items(), strict=True):
        state.setdefault("review_ids", []).append(review_id)
        state.setdefault("review_answers", {})[review_id] = f"photo #{image_id} {name} {value}"
    state["review_done"] += 1
    state.pop("review_error", None)
    state["review_last"] = answer[0].upper() + answer[1:]
    _advance(image_id)


def _pick(image_id: int, row: int, name: str, value: str | None, last: int) -> None:
    """Choose ``value`` (None: no answer) for one attribute on the every-attribute screen, then move to the next
    attribute; nothing is stored before Enter."""
    state = _state()
    if _current(image_id) is None:
        _ignored()
        return
    state[f"every_{image_id}_{name}"] = value
    state[f"every_row_{image_id}"] = min(row + 1, last)


def _typed_every(image_id: int, row: int, name: str, key: str, last: int) -> None:
    """The class chosen in an attribute's type-ahead, taken like a class key."""
    value = st.session_state.get(key)
    if value is not None:
        _pick(image_id, row, name, value, last)


def _move(image_id: int, step: int, last: int) -> None:
    """Move the every-attribute screen's keys to the attribute above (-1) or below (+1)."""
    state = _state()
    if _current(image_id) is None:
        _ignored()
        return
    state[f"every_row_{image_id}"] = max(0, min(state.get(f"every_row_{image_id}", 0) + step, last))


def _undo() -> None:
    state = _state()
    try:
        reviewer, engine, actor = common.reviewer() or "", common.engine(), auth.current_actor()
        # this tab's answers first; then (after a reload, say) the reviewer's latest ones from any tab
        review = undo_last(reviewer, among=state.get("review_ids", []), engine=engine, actor=actor) or undo_last(
            reviewer, recent=True, engine=engine, actor=actor
        )
    except Exception as exc:
        state["review_error"] = common.error_text(exc)
        return
    state.pop("review_error", None)
    if review is None:
        state["review_last"] = (
            f"Nothing to undo: your last {UNDO_DEPTH} answers of the last {UNDO_WINDOW.total_seconds() / 3600:.0f} "
            "hours are undone already."
        )
        return
    state["review_done"] = max(0, state["review_done"] - 1)
    answer = state.get("review_answers", {}).pop(review.id, None) or (
        f"photo #{review.image_id} {ACTION_WORDS[ReviewAction(review.action)]}"  # defensive
    )
    state["review_last"] = f"Undone: {answer}"
    state["review_prefer"] = review.image_id
    state["review_queue"] = None


# --------------------------------------------------------------------------- drawing


def _bars(probabilities: dict[str, float], keyed: list[str]) -> str:
    key_of = {b: i + 1 for i, b in enumerate(keyed)}
    top = max(probabilities, key=probabilities.__getitem__)
    rows = []
    ranked = sorted(probabilities.items(), key=lambda kv: -kv[1])
    for brand, p in ranked[:MAX_BARS]:
        key = f"{key_of[brand]}" if brand in key_of else "&nbsp;"
        colour = "#ff4b4b" if brand == top else "#8b9bb4"
        rows.append(
            '<div style="display:flex;align-items:center;gap:.5rem;margin:2px 0;font-size:.9rem">'
            f'<span style="width:1.2rem;color:#888;font-family:monospace">{key}</span>'
            '<span style="width:7rem;overflow:hidden;text-overflow:ellipsis;white-space:nowrap">'
            f"{html.escape(brand)}</span>"
            '<span style="flex:1;background:rgba(128,128,128,.18);border-radius:3px;height:.8rem">'
            f'<span style="display:block;width:{100 * p:.1f}%;height:100%;background:{colour};'
            'border-radius:3px"></span></span>'
            f'<span style="width:3.2rem;text-align:right;font-variant-numeric:tabular-nums">{100 * p:.1f}%</span></div>'
        )
    if len(ranked) > MAX_BARS:
        rest = sum(p for _, p in ranked[MAX_BARS:])
        more = f"{len(ranked) - MAX_BARS} more classes: {100 * rest:.1f}% together"
        rows.append(f'<div style="font-size:.8rem;color:#888">{more}</div>')
    return "".join(rows)


def _shown_answers(item: QueueItem) -> list[ModelAnswer]:
    return [item.predictions[arch] for arch in ARCHITECTURES if arch in item.predictions]


def _keyed_brands(item: QueueItem, brands: list[str]) -> list[str]:
    """The brands on keys 1-9 for this photo (see :func:`_keyed_classes`)."""
    return _keyed_classes(brands, _shown_answers(item))


def _keyed_classes(classes: list[str], answers: list[ModelAnswer]) -> list[str]:
    """The classes on keys 1-9. When every class has a key, they keep the alphabetical order of ``classes``, so
    a key always means the same class; otherwise they are the photo's most likely classes (the mean probability
    over the models' ``answers``), classes no model gives a probability coming last in alphabetical order."""
    if len(classes) <= MAX_KEYED_BRANDS:
        return classes
    mean = {
        name: sum(a.probabilities.get(name, 0.0) for a in answers) / len(answers)
        for name in classes
        if any(name in a.probabilities for a in answers)
    }
    ranked = sorted(classes, key=lambda c: (c not in mean, -mean.get(c, 0.0)))  # stable: ties stay alphabetical
    return ranked[:MAX_KEYED_BRANDS]


def _predictions(item: QueueItem, keyed: list[str]) -> None:
    if not item.predictions:
        how = (
            "Train models on the Rounds page, or refresh predictions there."
            if auth.allowed(Permission.TRAIN)
            else "An admin trains models and refreshes predictions on the Rounds page."
        )
        st.info(f"No model has predicted this photo yet. {how}", icon=":material/model_training:")
        return
    for view in _shown_answers(item):
        st.markdown(
            f"**{ARCH_NAMES[view.arch]}** <span style='color:#888'>v{view.model_version_id}</span>: "
            f"**{common.plain(view.brand)}** {view.confidence:.0%}",
            unsafe_allow_html=True,
        )
        st.markdown(_bars(view.probabilities, keyed) + '<div style="height:.4rem"></div>', unsafe_allow_html=True)


def _scaled_photo(item: QueueItem) -> None:
    """The photo scaled to its column (at most :data:`MAX_UPSCALE` times), or at its own size when zoomed."""
    data = common.review_image(item.path, item.sha256)
    own = common.jpeg_width(data)
    native = st.session_state.get("review_native_size", False)
    with st.container(key="review_photo", gap="small"):
        st.html(PHOTO_STYLE.format(cap=MAX_UPSCALE * own))
        st.image(data, width=own if native else "stretch")
        st.toggle(
            "Own size",
            key="review_native_size",
            help="Show the photo pixel for pixel, at its own size, instead of scaled to the column.",
        )


def _photo(item: QueueItem) -> None:
    try:
        _scaled_photo(item)
    except ImageError as exc:
        st.warning(
            f"This photo cannot be shown: {common.plain(exc.reason)}. Skip it or mark it.",
            icon=":material/broken_image:",
        )
    label = item.label
    plain = common.plain
    if item.second_look:  # quality control: the first reviewer's answer stays hidden, so this one is independent
        label_text = "**second look** for quality control: another reviewer decided this photo; give your own answer"
    elif label.conflict:
        label_text = "reviewers disagree: " + ", ".join(
            f"{plain(a.reviewer)} says {plain(a.value)}" for a in label.answers.values()
        )
    elif label.value is None:
        label_text = "no label yet"
    else:
        label_text = f"labelled **{plain(label.value)}** ({'imported' if label.origin == 'import' else 'reviewed'})"
    name = plain(Path(shown_path(item.path)).name)
    st.caption(f"Photo #{item.image_id} · {name} · {item.width}×{item.height} · {label_text}")


#: Marks the attribute the every-attribute screen's keys answer (static apart from the photo id and row number).
ROW_STYLE = """<style>
.st-key-every_row_{image_id}_{row} {{ background: rgba(255, 75, 75, .07); box-shadow: inset 4px 0 0 #ff4b4b; }}
</style>"""


def _model_says(view: AttributeView) -> str:
    """Each current model's answer for one attribute, as Markdown: class and confidence."""
    if not view.answers:
        return ":gray[no model yet]"
    return " · ".join(
        f"{ARCH_NAMES[a.arch]} :gray[v{a.model_version_id}]: **{common.plain(a.brand)}** {a.confidence:.0%}"
        for a in view.answers
    )


def _every_attribute(item: QueueItem) -> list[str]:
    """A row per attribute: its answer so far, what each model says, and its likeliest classes. The keys answer
    the marked row (digits pick a class and go on to the next row, arrows move between rows); Enter saves every
    answer. Returns the keys that answer the screen."""
    views = photo_attributes(item.image_id, engine=common.engine())
    state = _state()
    last = len(views) - 1
    row = max(0, min(state.get(f"every_row_{item.image_id}", 0), last))
    st.html(ROW_STYLE.format(image_id=item.image_id, row=row))
    keys: list[str] = []
    for i, view in enumerate(views):
        keyed = _attribute_row(item.image_id, i, view, current=i == row, last=last)
        if i == row:
            keys = [str(n) for n in range(len(keyed) + 1)]
    with st.container(horizontal=True, gap="small"):
        st.button(
            "Save every answer",
            key=f"save_every_{item.image_id}",
            type="primary",
            shortcut="Enter",
            on_click=_answer_every,
            args=(item.image_id, [view.name for view in views]),
        )
        for label, step, key in (("Previous attribute", -1, "ArrowUp"), ("Next attribute", 1, "ArrowDown")):
            st.button(
                label,
                key=f"move_{item.image_id}_{step}",
                shortcut=key,
                on_click=_move,
                args=(item.image_id, step, last),
            )
    _other_answers(item.image_id, OTHER_ANSWERS[:2])  # unsure is about one attribute, not a whole photo
    st.html(TYPEAHEAD_KEYS, unsafe_allow_javascript=True)
    st.caption(
        "Keys: **↑ ↓** attribute · **1–9** its class · **0** no answer · **/** any class · **Enter** save every "
        "answer · **S** skip · **N** not a shoe · **Z** undo"
    )
    return ["enter", "arrowup", "arrowdown", *keys, "s", "n", "z"]


def _attribute_row(image_id: int, row: int, view: AttributeView, *, current: bool, last: int) -> list[str]:
    """One attribute's row; the marked row's buttons carry the keys 1-9 and 0. Returns its keyed classes."""
    chosen = _state().setdefault(f"every_{image_id}_{view.name}", view.suggestion)
    keyed = _keyed_classes(view.classes, view.answers)
    with st.container(key=f"every_row_{image_id}_{row}", border=True, gap="small"):
        answer = f"**{common.plain(chosen)}**" if chosen is not None else ":gray[no answer]"
        st.markdown(f"**{common.plain(view.name)}**: {answer} · {_model_says(view)}")
        with st.container(horizontal=True, gap="small"):
            for n, name in enumerate(keyed, start=1):
                st.button(
                    f"{n} · {common.plain(name)}",
                    key=f"pick_{image_id}_{row}_{n}",
                    type="primary" if name == chosen else "secondary",
                    shortcut=str(n) if current else None,
                    on_click=_pick,
                    args=(image_id, row, view.name, name, last),
                )
            st.button(
                "0 · no answer",
                key=f"pick_{image_id}_{row}_0",
                shortcut="0" if current else None,
                on_click=_pick,
                args=(image_id, row, view.name, None, last),
            )
        if len(view.classes) > len(keyed):
            key = f"{'typeahead' if current else 'anyclass'}_{image_id}_{row}"  # "/" goes to the marked row's box
            st.selectbox(  # options are shown as plain text, never as Markdown or HTML
                "Any class",
                view.classes,
                index=None,
                key=key,
                placeholder="Any class: press / and type, then Enter" if current else "Any class",
                label_visibility="collapsed",
                on_change=_typed_every,
                args=(image_id, row, view.name, key, last),
                width=320,
            )
    return keyed


def _typed(image_id: int) -> None:
    """The brand chosen in the type-ahead, recorded like a brand key (a new one after a confirmation)."""
    brand = st.session_state.get(f"typeahead_{image_id}")
    attribute = _state().get("review_attribute") or BRAND
    if brand is not None and not new_class.ask(image_id, attribute, brand):
        _answer(image_id, ReviewAction.CORRECT, brand)


def _actions(item: QueueItem, brands: list[str], keyed: list[str]) -> None:
    target = item.confirm_target()
    st.button(
        f"Confirm {common.plain(target)}" if target else "Confirm (nothing to confirm)",
        key=f"confirm_{item.image_id}",
        type="primary",
        shortcut="Enter",
        width="stretch",
        disabled=target is None,
        on_click=_answer,
        args=(item.image_id, ReviewAction.CONFIRM, target),
    )
    st.caption("Correct to")
    with st.container(horizontal=True, gap="small"):
        for n, brand in enumerate(keyed, start=1):
            st.button(
                f"{n} · {common.plain(brand)}",
                key=f"brand_{item.image_id}_{n}",
                shortcut=str(n),
                on_click=_answer,
                args=(item.image_id, ReviewAction.CORRECT, brand),
            )
    if len(brands) > len(keyed):
        with st.container(horizontal=True):  # the script's empty element beside the box, not under it
            st.selectbox(  # options are shown as plain text, never as Markdown or HTML
                "Any class",
                brands,
                index=None,
                key=f"typeahead_{item.image_id}",
                placeholder="Any class: press / and type, then Enter",
                label_visibility="collapsed",
                on_change=_typed,
                args=(item.image_id,),
                width=320,
                accept_new_options=new_class.allowed(),
            )
            st.html(TYPEAHEAD_KEYS, width="content", unsafe_allow_javascript=True)
        new_class.confirmation(item.image_id, _answer)
    st.caption("Or")
    _other_answers(item.image_id, OTHER_ANSWERS)


def _other_answers(image_id: int, answers: tuple[tuple[str, str, str, ReviewAction], ...]) -> None:
    """The answers that name no class, one key each, and Undo."""
    with st.container(horizontal=True, gap="small"):
        for label, prefix, key, action in answers:
            st.button(label, key=f"{prefix}_{image_id}", shortcut=key, on_click=_answer, args=(image_id, action, None))
        _undo_button(st, image_id)


def _undo_button(where: Any, image_id: int | None) -> None:
    where.button(
        "Undo",
        key=f"undo_{image_id}",
        shortcut="Z",
        icon=":material/undo:",
        on_click=_undo,
        help=f"Undo your last answer (this tab's first; your last {UNDO_DEPTH} answers of the last day, one by one, "
        "also after a reload)",
    )


def _again() -> None:
    """Start a pass over the reviewer's skipped and unsure photos: those put off before now come back."""
    state = _state()
    state["review_pass_start"] = utcnow()
    state["review_queue"] = None


def _empty_queue(reviewer: str, strategy: str, scope: str) -> None:
    """What is left when the queue has nothing more for this reviewer, counted, and the way back to the photos
    they skipped or marked unsure."""
    put_off = put_off_count(reviewer, common.session_id(), scope=scope, engine=common.engine())
    left = 0 if scope == "labelled" else scope_count(scope, engine=common.engine())
    if scope == "labelled":
        advice = "There is no labelled photo left for you to check."
    elif left:
        others = max(left - put_off, 0)
        advice = f"{left} photo(s) here have no decision yet: {put_off} you skipped or marked unsure" + (
            f", {others} with other reviewers." if others else "."
        )
    elif scope == "unlabelled":
        advice = (
            "Every photo here has a brand or a decision. To check imported labels, choose the photos "
            "**unreviewed** in the sidebar, or the strategy **likely mislabelled** to see the labels the "
            "models doubt most. New photos can be added on the Import or Predict pages."
        )
    else:
        advice = "Every photo has been decided. Try the strategy **likely mislabelled** to double-check labels."
    shown = st.info if left else st.success
    shown(f"Nothing left for you in the **{scope}** queue ({strategy}). {advice}", icon=":material/done_all:")
    if put_off:
        st.button(
            f"Go through my {put_off} skipped and unsure photo(s) again",
            key="review_put_off",
            type="primary",
            on_click=_again,
            help="Skipped and unsure photos also come back at the end of the queue next time you open Review.",
        )


def _messages() -> None:
    state = _state()
    if state.get("review_error"):
        st.error(state["review_error"], icon=":material/error:")
    if notice := state.pop("review_notice", None):
        st.info(notice, icon=":material/model_training:")
    if ignored := state.pop("review_ignored", 0):
        st.warning(f"{ignored} key{'s' if ignored > 1 else ''} ignored: wait for the photo", icon=":material/timer:")


def _ready(keys: list[str]) -> None:
    """Mark the photo as drawn, with the keys that answer it (the last element of the review, so its keys are
    bound when it appears): :data:`REVIEW_KEYS` holds back the keys pressed before it."""
    state = _state()
    state["review_run"] = state.get("review_run", 0) + 1
    st.html(f'<span class="shoelabel-ready" data-run="{state["review_run"]}" data-keys="{" ".join(keys)}"></span>')


@st.fragment
def review_area(attribute: str | None, strategy: str, scope: str) -> None:
    reviewer = common.reviewer()
    if not reviewer:
        return
    _messages()
    try:
        brands = class_list(attribute or BRAND, engine=common.engine())
        if not brands:
            st.info(
                f"There are no {common.plain(attribute)} classes yet, so there is nothing to answer with. Ingest a "
                "labelled folder (one subfolder per class) on the Import page, or with `python -m feedback.ingest "
                "PATH --attribute NAME`, or add classes with `python -m feedback.classes add-class`.",
                icon=":material/label_off:",
            )
            return
        items = _queue(reviewer, attribute, strategy, scope)
        if attribute in (BRAND, None):
            pending = pending_count(reviewer, common.session_id(), scope=scope, engine=common.engine())
        else:
            pending = pending_attribute_count(attribute, reviewer, common.session_id(), engine=common.engine())
    except Exception as exc:
        common.show_error(exc)
        return
    done = _state()["review_done"]
    last = _state().get("review_last")
    queue = f"**{scope}** queue" if attribute in (BRAND, None) else f"**{common.plain(attribute)}** queue"
    st.markdown(
        f"Reviewed this session: **{done}** · waiting for you in the {queue}: **{pending}**"
        + (f" · :gray[last: {common.plain(last)}]" if last else ""),
        help="Waiting for you: the photos this queue can still give you (not answered by you, not on another "
        "reviewer's screen).",
    )
    if not items:
        if attribute in (BRAND, None):
            _empty_queue(reviewer, strategy, scope)
        else:
            st.success(f"Every photo has a {common.plain(attribute)} (or your answer).", icon=":material/done_all:")
        _undo_button(st, None)
        _ready(["z"])
        return
    item = items[0]
    left, right = st.columns([5, 4], gap="large")
    with left:
        _photo(item)
    with right:
        keys = _every_attribute(item) if attribute is None else _one_attribute(item, attribute, brands)
    for upcoming in items[1:]:  # decode the next photo now, so it is ready when this one is answered
        with contextlib.suppress(ImageError):
            common.review_image(upcoming.path, upcoming.sha256)
    _ready(keys)


def _one_attribute(item: QueueItem, attribute: str, classes: list[str]) -> list[str]:
    """The models' answers and the one-key answers for one attribute; returns the keys that answer it."""
    keyed = _keyed_brands(item, classes)
    _predictions(item, keyed)
    _actions(item, classes, keyed)
    what = common.plain(attribute)
    typeahead = f" · **/** any {what}" if len(classes) > len(keyed) else ""
    st.caption(
        f"Keys: **Enter** confirm · **1–9** {what}{typeahead} · **S** skip · **N** not a shoe · **U** unsure"
        " · **Z** undo"
    )
    confirm = ["enter"] if item.confirm_target() else []
    return [*confirm, *(str(n) for n in range(1, len(keyed) + 1)), "s", "n", "u", "z"]


def render() -> None:
    st.title("Review")
    try:
        empty = common.catalogue_counts()["images"] == 0
    except Exception as exc:
        common.show_error(exc)
        return
    if empty:
        common.empty_catalogue()
        return
    attribute, strategy, scope = queue_settings()
    if common.ask_reviewer() is None:
        return
    st.html(REVIEW_KEYS, unsafe_allow_javascript=True)
    keep_claims()  # before the photo, so its warning shows above it
    review_area(attribute, strategy, scope)


@st.fragment(run_every=CLAIM_MINUTES * 60 / 3)
def keep_claims() -> None:
    """While this tab is open, its photos stay claimed, so no other reviewer gets them. A busy database only
    delays a renewal; when renewals keep failing, the page says the photo may reach another reviewer."""
    state = st.session_state
    try:
        renew_claims(common.session_id(), engine=common.engine())
    except DatabaseBusyError:
        state["claim_failures"] = state.get("claim_failures", 0) + 1
        log.warning("claim renewal refused (database busy), %d time(s) in a row", state["claim_failures"])
    except Exception:
        log.exception("claim renewal failed")
        state["claim_failures"] = max(state.get("claim_failures", 0) + 1, RENEW_TRIES)  # not worth waiting for
    else:
        state["claim_failures"] = 0
    if state["claim_failures"] >= RENEW_TRIES:
        st.warning(
            "This tab cannot keep its photos reserved (the database refuses to record it), so the photo on "
            "screen may be shown to another reviewer too. Answers are still recorded; the details are in the "
            "server log.",
            icon=":material/group:",
        )
