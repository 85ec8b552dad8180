"""Held-out evaluation: accuracy, per-class precision/recall/F1, confusion matrix, plots."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Metrics:
    class_names: list[str]
    accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    per_class: dict[str, dict[str, float]]  # brand -> precision, recall, f1, support
    confusion: list[list[int]]  # rows: true brand, columns: predicted brand
    n: int
    holdout: str = ""  # fingerprint of the images and labels evaluated on (see modeling.rounds)
    # Photo by photo, in evaluation order: the true and predicted class indices and each photo's source
    # (see db.evaluation_part), so two models can be compared on the same photos (modeling.promotion).
    truth: list[int] = field(default_factory=list)
    predicted: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    by_source: dict[str, dict[str, float | int]] = field(default_factory=dict)  # n, accuracy, macro F1

    def summary(self) -> dict[str, Any]:
        """The figures without the photo-by-photo lists (for the round's record)."""
        return {k: v for k, v in self.to_dict().items() if k not in ("truth", "predicted", "sources")}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metrics:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def compute_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> Metrics:
    """Metrics over class indices ``y_true`` / ``y_pred`` (into ``class_names``)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support  # seconds to import: when used

    labels = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    present = support > 0  # macro averages over the brands the evaluation set has

    def macro(values: np.ndarray) -> float:
        return float(np.mean(values[present])) if present.any() else 0.0

    return Metrics(
        class_names=list(class_names),
        accuracy=float(np.mean(np.asarray(y_true) == np.asarray(y_pred))) if len(y_true) else 0.0,
        macro_precision=macro(precision),
        macro_recall=macro(recall),
        macro_f1=macro(f1),
        per_class={
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True)
        },
        confusion=confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        n=len(y_true),
    )


def format_report(metrics: Metrics, title: str = "") -> str:
    width = max([len(n) for n in metrics.class_names] + [9])
    lines = [title] if title else []
    lines.append(f"accuracy {metrics.accuracy:.3f}   macro F1 {metrics.macro_f1:.3f}   (n={metrics.n})")
    if len(metrics.by_source) > 1:  # held out at import and from the review pool: each on its own
        for source, part in metrics.by_source.items():
            lines.append(f"  {source} held-out photos: accuracy {part['accuracy']:.3f}   (n={part['n']})")
    lines.append(f"{'brand':<{width}}  precision  recall     F1  support")
    for name, row in metrics.per_class.items():
        lines.append(
            f"{name:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:5.3f}  {row['support']:7d}"
        )
    lines.append(
        f"{'macro avg':<{width}}  {metrics.macro_precision:9.3f}  {metrics.macro_recall:6.3f}  "
        f"{metrics.macro_f1:5.3f}  {metrics.n:7d}"
    )
    lines.append("confusion matrix (rows: true, columns: predicted)")
    lines.append(" " * (width + 2) + " ".join(f"{n[:7]:>7}" for n in metrics.class_names))
    for name, row in zip(metrics.class_names, metrics.confusion, strict=True):
        lines.append(f"{name:<{width}}  " + " ".join(f"{v:>7d}" for v in row))
    return "\n".join(lines)


def compare_table(
    before: Metrics | None, after: Metrics, before_name: str = "current", after_name: str = "candidate"
) -> str:
    """A before/after table of the held-out metrics."""
    rows = [
        ("accuracy", "accuracy"),
        ("macro F1", "macro_f1"),
        ("macro precision", "macro_precision"),
        ("macro recall", "macro_recall"),
    ]
    lines = [f"{'held-out metric':<22}{before_name:>10}{after_name:>11}{'change':>9}"]

    def line(label: str, b: float | None, a: float) -> str:
        change = f"{a - b:+.3f}" if b is not None else ""
        bs = f"{b:.3f}" if b is not None else "-"
        return f"{label:<22}{bs:>10}{a:>11.3f}{change:>9}"

    for label, attr in rows:
        lines.append(line(label, getattr(before, attr) if before else None, getattr(after, attr)))
    for name, row in after.per_class.items():
        previous = before.per_class.get(name, {}).get("f1") if before else None
        lines.append(line(f"F1 {name}", previous, row["f1"]))
    return "\n".join(lines)


def plot_confusion(metrics: Metrics, path: Path, title: str = "Confusion matrix") -> Path:
    """Save the confusion matrix as a heat map PNG (counts and row-normalised shading)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.array(metrics.confusion, dtype=float)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    n = len(metrics.class_names)
    fig, ax = plt.subplots(figsize=(1.2 * n + 2.5, 1.1 * n + 2))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), metrics.class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), metrics.class_names)
    ax.set_xlabel("predicted brand")
    ax.set_ylabel("true brand")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", color="white" if shares[i, j] > 0.5 else "black")
    ax.set_title(f"{title}\naccuracy {metrics.accuracy:.1%}, macro F1 {metrics.macro_f1:.3f}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def through_names(metrics: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """A held-out Metrics dict read through today's classes (``names``: the model's class -> the class it is
    now): a renamed class under its new name; classes merged since as one, their confusion matrix rows and
    columns summed and the per-class figures, accuracy and macro averages computed again from it."""
    shown = dict(metrics)
    old = list(metrics.get("class_names") or [])
    new = [names.get(name, name) for name in old]
    if new == old:
        return shown
    merged = list(dict.fromkeys(new))
    shown["class_names"] = merged
    confusion = metrics.get("confusion")
    if len(merged) == len(old) or not confusion:  # renames only: the same figures under the new names
        shown["per_class"] = {names.get(k, k): v for k, v in (metrics.get("per_class") or {}).items()}
        return shown
    position = [merged.index(name) for name in new]
    matrix = np.zeros((len(merged), len(merged)), dtype=np.int64)
    for i, row in enumerate(confusion):
        for j, count in enumerate(row):
            matrix[position[i], position[j]] += int(count)
    shown["confusion"] = matrix.tolist()
    shown.update(_figures(matrix, merged))
    return shown


def _figures(matrix: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """Accuracy, macro averages and per-class figures of a confusion matrix (rows: true, columns: predicted)."""
    hits = np.diag(matrix).astype(float)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(hits), where=total > 0)
    present = support > 0

    def macro(values: np.ndarray) -> float:
        return float(np.mean(values[present])) if present.any() else 0.0

    return {
        "accuracy": float(hits.sum() / matrix.sum()) if matrix.sum() else 0.0,
        "macro_precision": macro(precision),
        "macro_recall": macro(recall),
        "macro_f1": macro(f1),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True)
        },
    }
