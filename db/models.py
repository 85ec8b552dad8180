"""The schema: SQLAlchemy 2.0 typed models.

Nothing here is deleted by normal use. A correction adds a review; an undo marks a
review as undone; the effective label of an image is derived from its reviews
(see :mod:`db.labels`).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    desc,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Naive UTC: SQLite keeps no time zone, so every timestamp is UTC without one."""
    return datetime.now(UTC).replace(tzinfo=None)


#: The label of a photo answered "not a shoe", and the brand models' class for such photos.
NOT_A_SHOE = "(not a shoe)"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[str]: JSON, datetime: DateTime()}


class Split(enum.StrEnum):
    POOL = "pool"  # arrived without a brand: waits for reviewers
    TRAIN = "train"  # arrived with a brand (folder name or manifest)
    HOLDOUT = "holdout"  # frozen evaluation set, never trained on


class ReviewAction(enum.StrEnum):
    CONFIRM = "confirm"
    CORRECT = "correct"
    SKIP = "skip"
    NOT_A_SHOE = "not_a_shoe"
    UNSURE = "unsure"


class ModelStatus(enum.StrEnum):
    CANDIDATE = "candidate"
    CURRENT = "current"
    REJECTED = "rejected"
    RETIRED = "retired"  # was current, replaced by a better one


class RoundStatus(enum.StrEnum):
    RUNNING = "running"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"


class JobKind(enum.StrEnum):
    ROUND = "round"  # python -m modeling.retrain in the background
    REFRESH = "refresh"  # python -m modeling.predict --refresh in the background


class JobStatus(enum.StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Role(enum.StrEnum):
    ADMIN = "admin"  # import, retrain, settle conflicts, rename classes, manage accounts
    REVIEWER = "reviewer"  # review, browse
    VIEWER = "viewer"  # browse, rounds, team


class PredictionKind(enum.StrEnum):
    MODEL = "model"  # the model applied to the image
    OUT_OF_FOLD = "out_of_fold"  # cross-validated: the image was not in the fold's training set


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


#: The first attribute: every catalogue has it, created with the schema (id 1). It decides a photo's split
#: (arrived with a brand: training; without: the review pool), and "not a shoe" is answered on it.
BRAND = "brand"
BRAND_ID = 1


class Attribute(Base):
    """Something a photo is labelled with (brand, colour, gender...): one class per photo, an open class set.
    The attributes are data: any number can be added."""

    __tablename__ = "attributes"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    position: Mapped[int] = mapped_column(Integer, default=0)  # the order pages and manifests list them in
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LabelClass(Base):
    """One class of an attribute (``Nike`` of brand, ``Black`` of colour). Names are data: any names work.

    A class merged into another stays, pointing at it (``merged_into_id``), so the answers given
    with its name keep their history while every label rule reads them as the class they now mean.
    """

    __tablename__ = "classes"
    __table_args__ = (UniqueConstraint("attribute_id", "name", name="uq_class_name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    attribute_id: Mapped[int] = mapped_column(ForeignKey("attributes.id"), default=BRAND_ID)
    name: Mapped[str] = mapped_column(String(120))
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClassChange(Base):
    """A rename or a merge of a class, with who made it and when (the classes' history)."""

    __tablename__ = "class_changes"
    id: Mapped[int] = mapped_column(primary_key=True)
    attribute_id: Mapped[int] = mapped_column(ForeignKey("attributes.id"))
    kind: Mapped[str] = mapped_column(String(16))  # "rename" or "merge"
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"))
    into_class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))  # a merge's surviving class
    old_name: Mapped[str] = mapped_column(String(120))
    new_name: Mapped[str] = mapped_column(String(120))
    changed_by: Mapped[str] = mapped_column(String(120), default="")
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Image(Base):
    __tablename__ = "images"
    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(16))
    file_size: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    split: Mapped[Split] = mapped_column(_enum(Split, "split"), index=True)
    source: Mapped[str] = mapped_column(String(255), default="")

    imported_labels: Mapped[list[ImportedLabel]] = relationship()  # the classes it arrived with


class ImportedLabel(Base):
    """The class a photo arrived with for one attribute (a labelled folder, a manifest's cell).
    Reviews decide over it; an import never overrides what is stored (see :mod:`db.labels`)."""

    __tablename__ = "imported_labels"
    __table_args__ = (Index("ix_imported_labels_class", "class_id", "image_id"),)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    attribute_id: Mapped[int] = mapped_column(ForeignKey("attributes.id"), primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"))

    label_class: Mapped[LabelClass] = relationship()


class EvaluationDraw(Base):
    """Which part a review-pool photo went to when it got its first decisive answer: the evaluation
    part (``held_out``; its split becomes holdout) or training. Drawn once, never again: a later
    answer may change the photo's label, never its part (see :mod:`db.evaluation_part`)."""

    __tablename__ = "evaluation_draws"
    __table_args__ = (Index("ix_evaluation_draws_class", "attribute_id", "class_id", "held_out"),)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True, autoincrement=False)
    attribute_id: Mapped[int | None] = mapped_column(ForeignKey("attributes.id"))  # the answer it was drawn on
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    held_out: Mapped[bool] = mapped_column(default=False)
    drawn_at: Mapped[datetime] = mapped_column(default=utcnow)


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (
        Index("ix_reviews_image_created", "image_id", "created_at"),
        Index("ix_reviews_reviewer_image", "reviewer", "image_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    attribute_id: Mapped[int] = mapped_column(ForeignKey("attributes.id"), default=BRAND_ID)
    reviewer: Mapped[str] = mapped_column(String(120), index=True)
    action: Mapped[ReviewAction] = mapped_column(_enum(ReviewAction, "review_action"))
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))  # the class answered, as answered
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    probabilities: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    resolves_conflict: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    undone_at: Mapped[datetime | None] = mapped_column()

    label_class: Mapped[LabelClass | None] = relationship()
    attribute: Mapped[Attribute] = relationship()


class ModelVersion(Base):
    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    arch: Mapped[str] = mapped_column(String(32), index=True)
    attribute_id: Mapped[int] = mapped_column(ForeignKey("attributes.id"), default=BRAND_ID)  # what it predicts
    path: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[ModelStatus] = mapped_column(_enum(ModelStatus, "model_status"), index=True)
    class_names: Mapped[list[str]] = mapped_column(JSON)
    input_size: Mapped[int] = mapped_column(Integer)
    base_weights: Mapped[str] = mapped_column(String(255), default="")
    training: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Prediction(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        UniqueConstraint("image_id", "model_version_id", "kind", "attribute_id", name="uq_prediction"),
        Index("ix_predictions_model_confidence", "model_version_id", "kind", "confidence", "image_id"),
        Index(
            "ix_predictions_model_class_confidence", "model_version_id", "kind", "class_id", "confidence", "image_id"
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    kind: Mapped[PredictionKind] = mapped_column(_enum(PredictionKind, "prediction_kind"), default=PredictionKind.MODEL)
    attribute_id: Mapped[int] = mapped_column(ForeignKey("attributes.id"), default=BRAND_ID)
    probabilities: Mapped[dict[str, Any]] = mapped_column(JSON)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"))  # the top class
    confidence: Mapped[float] = mapped_column(Float)
    margin: Mapped[float] = mapped_column(Float)
    entropy: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    label_class: Mapped[LabelClass] = relationship()


class QueueStage(enum.IntEnum):
    """Where a photo stands for the review queues; kept in :class:`QueueEntry` so that a queue is
    an index range, not a scan (see :mod:`db.queue_entries`)."""

    OPEN = 0  # no brand at all: neither imported nor decided (the "unlabelled" queue)
    IMPORTED = 1  # arrived with a brand, no reviewer decided it yet
    DECIDED = 2  # a live decisive review gives it a brand (or reviewers disagree on it)
    NOT_A_SHOE = 3  # the latest decisive review says it is not a shoe


#: The uncertainty scores a :class:`QueueEntry` keeps, each with its index; a queue strategy of the same name
#: reads its column (see :mod:`modeling.uncertainty` for the definitions).
SCORE_COLUMNS = ("least_confidence", "margin", "entropy", "disagreement")


class QueueEntry(Base):
    """One row per photo: its queue stage and how unsure the current models are of it.

    The scores are computed once, when a current model's predictions are stored (and for
    every photo when a model is promoted), from the current models' probabilities together,
    so a queue is an indexed ``ORDER BY score DESC LIMIT k`` within a stage. Higher means
    less sure; a photo no current model has predicted yet holds :data:`UNSCORED`.
    """

    __tablename__ = "queue_entries"
    __table_args__ = (
        *(Index(f"ix_queue_{name}", "stage", desc(name), "image_id") for name in SCORE_COLUMNS),
        Index("ix_queue_random", "stage", "random_key", "image_id"),
    )
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True, autoincrement=False)
    stage: Mapped[int] = mapped_column(Integer, default=QueueStage.OPEN)
    least_confidence: Mapped[float] = mapped_column(Float, default=-1e9)
    margin: Mapped[float] = mapped_column(Float, default=-1e9)
    entropy: Mapped[float] = mapped_column(Float, default=-1e9)
    disagreement: Mapped[float] = mapped_column(Float, default=-1e9)
    random_key: Mapped[int] = mapped_column(Integer, default=0)  # a fixed hash of the image id, in [0, 2**31)


#: The score of a photo that no current model has predicted: below every real score, so it comes last.
UNSCORED = -1e9


class CatalogueCount(Base):
    """How many photos are in each queue stage (``stage:0`` ...) and each split (``split:pool`` ...),
    kept by the same code that keeps :class:`QueueEntry` (see :mod:`db.queue_entries`), so the app's
    counters are a few primary-key reads, not counts over a million rows."""

    __tablename__ = "catalogue_counts"
    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    photos: Mapped[int] = mapped_column(Integer, default=0)


class QueueScoring(Base):
    """Which model versions the stored queue scores come from (one row): when the current models
    change, every photo's scores are computed again (see :func:`modeling.queue_scores.rescore_all`)."""

    __tablename__ = "queue_scoring"
    id: Mapped[int] = mapped_column(primary_key=True)
    version_ids: Mapped[list[str]] = mapped_column(JSON)  # sorted "arch:id" of the current models scored
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Round(Base):
    """One training or fine-tuning round; also the job record the app polls."""

    __tablename__ = "rounds"
    id: Mapped[int] = mapped_column(primary_key=True)
    arch: Mapped[str] = mapped_column(String(32), index=True)
    attribute_id: Mapped[int] = mapped_column(ForeignKey("attributes.id"), default=BRAND_ID)
    trigger: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(32), default="finetune")
    status: Mapped[RoundStatus] = mapped_column(_enum(RoundStatus, "round_status"), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    duration_s: Mapped[float | None] = mapped_column(Float)
    parent_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    candidate_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    confusion: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    message: Mapped[str] = mapped_column(Text, default="")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    progress_text: Mapped[str] = mapped_column(Text, default="")
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255), default="")


class ImageClaim(Base):
    """An image a reviewer has on screen, so that another reviewer gets a different one."""

    __tablename__ = "image_claims"
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(120))
    session_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Job(Base):
    """A background process (a round or a prediction refresh): what the app shows while it runs,
    and, when it fails, the reason and its log until someone dismisses the notice."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[JobKind] = mapped_column(_enum(JobKind, "job_kind"))
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus, "job_status"), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    progress_text: Mapped[str] = mapped_column(Text, default="")
    message: Mapped[str] = mapped_column(Text, default="")
    log_path: Mapped[str] = mapped_column(Text, default="")
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"))
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255), default="")
    dismissed_at: Mapped[datetime | None] = mapped_column()


class Account(Base):
    """Someone who may sign in to a team server: a local password (hashed) or single sign-on by e-mail."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)  # recorded as the reviewer of every answer
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "account_role"))
    password_hash: Mapped[str | None] = mapped_column(String(255))  # None: single sign-on only
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)  # unused: see SignInFailure
    locked_until: Mapped[datetime | None] = mapped_column()  # unused: sign-ins wait, no account is locked
    disabled: Mapped[bool] = mapped_column(default=False)


class SignInSession(Base):
    """A signed-in browser session; only a hash of its token is stored, and it expires."""

    __tablename__ = "sign_in_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class SignInFailure(Base):
    """Wrong passwords in a row given with one name, whether or not an account has it: further sign-ins
    with that name wait (see :mod:`feedback.accounts`). Only a SHA-256 of the typed name is stored."""

    __tablename__ = "sign_in_failures"
    name_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failed_at: Mapped[datetime] = mapped_column(index=True)


class TeamSetting(Base):
    """A setting of the team server that admins change in the app (e.g. the quality-control share)."""

    __tablename__ = "team_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(120), default="")
