"""When a round's candidate replaces the current model.

The held-out photos come from two sources (:data:`db.evaluation_part.SOURCES`): those held out at
import, and those held out from the review pool, which follow what reviewers see. The candidate is
promoted when it is

- not worse overall: its macro F1 over every held-out photo is not below the current model's; and
- not worse beyond noise on any source with at least :data:`MIN_SOURCE_PHOTOS` photos: both models
  scored the same photos, so the test is paired (McNemar's): of the photos exactly one model gets
  right, the current model may not win more than the candidate by over :data:`Z` standard deviations,
  ``current_only - candidate_only > Z * sqrt(current_only + candidate_only)``.

A source with fewer photos is reported, not judged on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from db.evaluation_part import SOURCES
from modeling.metrics import Metrics, compute_metrics

MIN_SOURCE_PHOTOS = 20
Z = 1.96  # two-sided 95%
TOLERANCE = 1e-9


def source_scores(
    y_true: np.ndarray, y_pred: np.ndarray, sources: list[str], class_names: list[str]
) -> dict[str, dict[str, float | int]]:
    """Accuracy and macro F1 per source of held-out photos, with each source's count."""
    scores: dict[str, dict[str, float | int]] = {}
    kinds = np.asarray(sources)
    for source in SOURCES:
        rows = kinds == source
        if rows.any():
            part = compute_metrics(y_true[rows], y_pred[rows], class_names)
            scores[source] = {"n": int(rows.sum()), "accuracy": part.accuracy, "macro_f1": part.macro_f1}
    return scores


@dataclass(frozen=True)
class SourceVerdict:
    source: str
    n: int
    candidate_accuracy: float
    current_accuracy: float
    candidate_only: int  # photos only the candidate gets right
    current_only: int  # photos only the current model gets right
    judged: bool  # enough photos to judge on

    @property
    def worse(self) -> bool:
        margin = self.current_only - self.candidate_only
        return self.judged and margin > 0 and margin > Z * math.sqrt(self.current_only + self.candidate_only)

    def line(self) -> str:
        state = "worse beyond noise" if self.worse else ("not worse" if self.judged else "too few to judge")
        return (
            f"{self.source} held-out photos (n={self.n}): accuracy {self.candidate_accuracy:.1%} vs "
            f"{self.current_accuracy:.1%}, {self.candidate_only} right only by the candidate, "
            f"{self.current_only} only by the current model: {state}"
        )


def source_verdicts(candidate: Metrics, current: Metrics) -> list[SourceVerdict]:
    """Both models per source, paired photo by photo (both must carry their predictions, in the same order)."""
    if not candidate.predicted or len(candidate.predicted) != len(current.predicted):
        return []
    truth = np.asarray(candidate.truth)
    mine, theirs = np.asarray(candidate.predicted), np.asarray(current.predicted)
    kinds = np.asarray(candidate.sources)
    verdicts = []
    for source in SOURCES:
        rows = kinds == source
        n = int(rows.sum())
        if not n:
            continue
        right, was_right = mine[rows] == truth[rows], theirs[rows] == truth[rows]
        verdicts.append(
            SourceVerdict(
                source,
                n,
                float(right.mean()),
                float(was_right.mean()),
                int((right & ~was_right).sum()),
                int((was_right & ~right).sum()),
                n >= MIN_SOURCE_PHOTOS,
            )
        )
    return verdicts


def decide(
    candidate: Metrics | None, current_metrics: Metrics | None, has_current: bool, force: bool
) -> tuple[bool, str]:
    """Promote when not worse overall on held-out macro F1 nor beyond noise on any source (or forced,
    or first model). Returns the decision and a message that gives the figures it rests on."""
    if candidate is None:
        return True, "Promoted without evaluation: there are no held-out images (ingest a labelled folder to get some)."
    if not has_current or current_metrics is None:
        return True, f"First model: promoted (held-out macro F1 {candidate.macro_f1:.4f})."
    delta = candidate.macro_f1 - current_metrics.macro_f1
    verdicts = source_verdicts(candidate, current_metrics)
    sources = "".join(f" {v.line()}." for v in verdicts) if len(verdicts) > 1 else ""
    worse_on = [v.source for v in verdicts if v.worse]
    if delta >= -TOLERANCE and not worse_on:
        return (
            True,
            f"Promoted: held-out macro F1 {candidate.macro_f1:.4f} vs {current_metrics.macro_f1:.4f} "
            f"({delta:+.4f}).{sources}",
        )
    if delta < -TOLERANCE:
        why = (
            f"held-out macro F1 {candidate.macro_f1:.4f} is worse than the current model's "
            f"{current_metrics.macro_f1:.4f} ({delta:+.4f})"
        )
    else:
        why = f"worse beyond noise on the {' and '.join(worse_on)} held-out photos"
    if force:
        return True, f"Promoted by --force although {why}.{sources}"
    return False, f"Rejected: {why}; the current model stays. Use --force to promote anyway.{sources}"
