"""The review queue of an attribute besides brand (colour, gender, ...).

An attribute starts with no labels and no model. Its queue then offers typical, diverse photos first
(TypiClust over the cached InceptionV3 features, see :mod:`modeling.typiclust`), and once each of
two or more classes has a few answers a first model trains by itself in the background (InceptionV3's
head on the cached features: seconds). From then on the queue offers the photos that model is least
sure of. A photo is open for an attribute while it has no class of it (imported or decided), is not
flagged as not a shoe, and the reviewer has not answered it for that attribute.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import ColumnElement, Engine, and_, func, select
from sqlalchemy.orm import Session

from db import get_engine, session_scope
from db.access import OPERATOR, Actor
from db.catalog import attributes, class_names, require_attribute
from db.labels import answered_by, effective_labels, labelled_set, latest_says_not_a_shoe, unlabelled
from db.models import BRAND_ID, Image, Prediction, PredictionKind, QueueEntry, ReviewAction
from feedback.queue import QueueItem, claim_photos, claimed_elsewhere
from feedback.reviews import ReviewError, clean_reviewer, record_review
from modeling.answers import ModelAnswer, stored_answers
from modeling.feature_cache import inception_activation_cache
from modeling.jobs import JobBusyError
from modeling.registry import ARCHITECTURES, current_versions
from modeling.typiclust import typical_picks

COLD_START_SLICE = 2000  # photos TypiClust clusters at most (taken in the fixed random order)
COLD_START_PICKS = 50  # typical photos offered before the rest (a first model usually comes sooner)
FIRST_MODEL_PER_CLASS = 3  # answers each of two or more classes needs before a first model trains
COUNT_CAP = 10_000

_typical: dict[tuple[str, int], list[int]] = {}  # (database, attribute) -> TypiClust's picks, in order
_typical_lock = threading.Lock()


def _open(attribute_id: int, reviewer: str, session_id: str) -> ColumnElement[bool]:
    return and_(
        unlabelled(attribute_id),
        ~latest_says_not_a_shoe(),
        ~answered_by(reviewer, attribute_id),
        ~claimed_elsewhere(session_id),
    )


def queue_order(session: Session, attribute_id: int) -> str:
    """``uncertainty`` once the attribute has a current model, ``typical`` before."""
    return "uncertainty" if current_versions(session, attribute_id) else "typical"


def _least_confident(session: Session, attribute_id: int, reviewer: str, session_id: str, limit: int) -> list[int]:
    versions = current_versions(session, attribute_id)
    version = next(versions[arch] for arch in ARCHITECTURES if arch in versions)
    query = (
        select(Image.id)
        .join(Prediction, Prediction.image_id == Image.id)
        .where(
            Prediction.model_version_id == version.id,
            Prediction.kind == PredictionKind.MODEL,
            _open(attribute_id, reviewer, session_id),
        )
        .order_by(Prediction.confidence, Image.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def _in_random_order(session: Session, attribute_id: int, reviewer: str, session_id: str, limit: int) -> list[int]:
    query = (
        select(Image.id)
        .join(QueueEntry, QueueEntry.image_id == Image.id)
        .where(_open(attribute_id, reviewer, session_id))
        .order_by(QueueEntry.random_key, Image.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def typical_photos(session: Session, attribute_id: int) -> list[int]:
    """TypiClust's picks among the photos still without a class of the attribute, computed once per
    attribute (and again when they are used up), from the InceptionV3 features cached for brand."""
    key = (str(session.get_bind().url), attribute_id)
    with _typical_lock:
        picks = _typical.get(key)
    if picks is not None:
        return picks
    inception = current_versions(session).get("inception")
    picks = []
    if inception is not None:
        cache = inception_activation_cache(inception.base_weights, inception.input_size)
        rows = session.execute(
            select(Image.id, Image.sha256)
            .join(QueueEntry, QueueEntry.image_id == Image.id)
            .where(unlabelled(attribute_id), ~latest_says_not_a_shoe())
            .order_by(QueueEntry.random_key, Image.id)
            .limit(COLD_START_SLICE)
        ).all()
        cached = [(i, sha) for i, sha in rows if cache.has(sha)]
        if cached:
            features = np.asarray(cache.pooled([sha for _, sha in cached]), dtype=np.float32)
            picks = [cached[p][0] for p in typical_picks(features, COLD_START_PICKS)]
    if picks:  # none: no InceptionV3 features yet, so look again next time
        with _typical_lock:
            _typical[key] = picks
    return picks


def _typical_first(session: Session, attribute_id: int, reviewer: str, session_id: str, limit: int) -> list[int]:
    """TypiClust's picks still open to the reviewer, then the rest in the fixed random order."""
    picks = typical_photos(session, attribute_id)
    open_ids: set[int] = set()
    if picks:
        open_ids = set(
            session.scalars(select(Image.id).where(Image.id.in_(picks), _open(attribute_id, reviewer, session_id)))
        )
        unanswered = session.scalars(select(Image.id).where(Image.id.in_(picks), unlabelled(attribute_id)).limit(1))
        if unanswered.first() is None:
            with _typical_lock:  # every pick has its class: cluster what is left next time
                _typical.pop((str(session.get_bind().url), attribute_id), None)
    chosen = [i for i in picks if i in open_ids][:limit]
    if len(chosen) < limit:
        chosen += [i for i in _in_random_order(session, attribute_id, reviewer, session_id, limit) if i not in chosen]
    return chosen[:limit]


def next_attribute_items(
    reviewer: str,
    session_id: str,
    attribute: str,
    *,
    k: int = 2,
    engine: Engine | None = None,
    claim: bool = True,
    first: int | None = None,
) -> list[QueueItem]:
    """The next ``k`` photos to answer ``attribute`` of, claimed for this session (the first is shown)."""
    reviewer = clean_reviewer(reviewer)
    engine = engine or get_engine()
    with session_scope(engine, write=claim) as session:
        attribute_id = require_attribute(session, attribute).id
        if attribute_id == BRAND_ID:
            raise ValueError("brand has its own queues (feedback.queue.next_items)")
        rank = _least_confident if queue_order(session, attribute_id) == "uncertainty" else _typical_first
        picked = rank(session, attribute_id, reviewer, session_id, k + 1)
        if first is not None and first not in picked:
            still = session.scalar(select(Image.id).where(Image.id == first, _open(attribute_id, reviewer, session_id)))
            picked = [first, *picked] if still is not None else picked
        elif first is not None:
            picked = [first, *[i for i in picked if i != first]]
        picked = picked[:k]
        if not picked:
            return []
        if claim:
            claim_photos(session, picked, reviewer, session_id)
        images = {img.id: img for img in session.scalars(select(Image).where(Image.id.in_(picked)))}
        labels = effective_labels(session, picked, attribute_id)
        answers = stored_answers(session, current_versions(session, attribute_id), picked)
        return [
            QueueItem(
                i, images[i].path, images[i].sha256, images[i].width, images[i].height, labels[i], answers.get(i, {})
            )
            for i in picked
        ]


def pending_attribute_count(
    attribute: str, reviewer: str, session_id: str = "", *, engine: Engine | None = None
) -> int:
    """Photos still open to ``reviewer`` for ``attribute`` (counted up to :data:`COUNT_CAP`)."""
    with session_scope(engine or get_engine()) as session:
        attribute_id = require_attribute(session, attribute).id
        query = select(Image.id).where(_open(attribute_id, reviewer, session_id)).limit(COUNT_CAP)
        return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def first_model_due(attribute: str, *, engine: Engine | None = None) -> bool:
    """Whether ``attribute`` has no model yet and two or more classes have enough answers to train one."""
    with session_scope(engine or get_engine()) as session:
        attribute_id = require_attribute(session, attribute).id
        if current_versions(session, attribute_id):
            return False
        counts = Counter(item.brand for item in labelled_set(session, attribute_id).train)
    return sum(1 for n in counts.values() if n >= FIRST_MODEL_PER_CLASS) >= 2


def start_first_model(attribute: str, *, engine: Engine | None = None, actor: Actor = OPERATOR) -> bool:
    """Start the attribute's first model in the background when it is due (InceptionV3's head on cached
    features where an InceptionV3 model exists, else the CNN); False when not due, another job runs, or
    the last such round failed and its notice is still up (it is not started again on every answer)."""
    from modeling.background import FailedBeforeError, start_round

    engine = engine or get_engine()
    if not first_model_due(attribute, engine=engine):
        return False
    with session_scope(engine) as session:
        arch = "inception" if "inception" in current_versions(session) else "cnn"
    try:
        start_round(
            arch,
            "head",  # InceptionV3's mode; the CNN trains as a whole
            attribute=attribute,
            trigger="first model",
            engine=engine,
            actor=actor,
            retry_failed=False,
        )
    except JobBusyError:
        return False  # the next answer tries again
    except FailedBeforeError:
        return False  # the failure's notice says why; once dismissed, the next answer tries again
    return True


@dataclass(frozen=True)
class AttributeView:
    """One attribute of one photo, as the every-attribute screen shows it."""

    name: str
    attribute_id: int
    classes: list[str]
    label: str | None  # the class it has today (None: none, not a shoe, or reviewers disagree)
    predicted: ModelAnswer | None  # what the attribute's current model says (InceptionV3's where it has one)
    answers: list[ModelAnswer] = field(default_factory=list)  # every current model's answer, in ARCHITECTURES order

    @property
    def suggestion(self) -> str | None:
        """What the screen starts on: the photo's class, else the model's top class."""
        return self.label or (self.predicted.brand if self.predicted else None)


def photo_attributes(image_id: int, *, engine: Engine | None = None) -> list[AttributeView]:
    """Every attribute of the photo (brand first) with its classes, the photo's label and the model's answer."""
    views = []
    with session_scope(engine or get_engine()) as session:
        for attribute in attributes(session):
            answers = stored_answers(session, current_versions(session, attribute.id), [image_id]).get(image_id, {})
            every = [answers[arch] for arch in ARCHITECTURES if arch in answers]
            label = effective_labels(session, [image_id], attribute.id)[image_id].brand
            names = class_names(session, attribute.id)
            views.append(AttributeView(attribute.name, attribute.id, names, label, every[0] if every else None, every))
    return views


def record_attribute_answers(
    image_id: int,
    reviewer: str,
    chosen: Mapping[str, str],
    *,
    engine: Engine | None = None,
    actor: Actor = OPERATOR,
) -> list[int]:
    """Store the classes chosen for several attributes of one photo: a confirmation where the class is the
    photo's label already, else a correction, each with what that attribute's model showed. Returns the
    review ids, in attribute order."""
    views = {view.name: view for view in photo_attributes(image_id, engine=engine)}
    ids = []
    for name, value in chosen.items():
        view = views.get(name)
        if view is None:
            raise ReviewError(f"Unknown attribute {name!r}.")
        action = ReviewAction.CONFIRM if value == view.label else ReviewAction.CORRECT
        ids.append(
            record_review(
                image_id,
                reviewer,
                action,
                label=value,
                attribute_id=view.attribute_id,
                shown=view.predicted,
                engine=engine,
                actor=actor,
            )
        )
    return ids
