"""What models said about photos, as stored: one answer per model and photo."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import ModelVersion, Prediction, PredictionKind


@dataclass(frozen=True)
class ModelAnswer:
    """One model's probabilities for one photo, as a reviewer or the Predict page shows them."""

    arch: str
    model_version_id: int
    probabilities: dict[str, float]

    @property
    def brand(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @property
    def confidence(self) -> float:
        return self.probabilities[self.brand]

    @property
    def label(self) -> str:
        return f"{self.arch} v{self.model_version_id}"


def stored_answers(
    session: Session,
    versions: Mapping[str, ModelVersion],
    image_ids: Sequence[int],
    kind: PredictionKind = PredictionKind.MODEL,
    chunk: int = 500,
) -> dict[int, dict[str, ModelAnswer]]:
    """What each model version in ``versions`` (by architecture) said about these photos, as stored."""
    arch_of = {v.id: arch for arch, v in versions.items()}
    answers: dict[int, dict[str, ModelAnswer]] = {}
    ids = list(image_ids)
    for start in range(0, len(ids) if arch_of else 0, chunk):
        rows = session.execute(
            select(Prediction.image_id, Prediction.model_version_id, Prediction.probabilities).where(
                Prediction.model_version_id.in_(list(arch_of)),
                Prediction.kind == kind,
                Prediction.image_id.in_(ids[start : start + chunk]),
            )
        )
        for image_id, version_id, probabilities in rows:
            arch = arch_of[version_id]
            answers.setdefault(image_id, {})[arch] = ModelAnswer(arch, version_id, probabilities)  # stored as floats
    return answers
