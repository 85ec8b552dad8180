"""Evaluate models: ``python -m modeling.evaluate [--data FOLDER|MANIFEST] [--model cnn|inception|both]
[--attribute NAME] [--json]``.

With ``--data``, on any folder of class subfolders, or on a manifest with a column per
attribute (read straight from disk, not added to the catalogue); without it, on the
frozen held-out set of each attribute. Prints, per attribute and model, accuracy,
per-class precision, recall and F1, macro averages and the confusion matrix, and
saves the confusion matrix as a PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from db import get_engine, session_scope
from db.catalog import attributes, clean_attribute_name, require_attribute
from db.labels import labelled_set
from db.models import BRAND_ID, NOT_A_SHOE
from modeling.metrics import Metrics, compute_metrics, format_report, plot_confusion
from modeling.predict import ModelHandle, current_handles, predict_sources
from modeling.registry import ARCHITECTURES, ModelNotFoundError
from modeling.rounds import evaluate_handle
from shoelabel.cli import command
from shoelabel.errors import UserError
from shoelabel.images import FolderError, scan_folder
from shoelabel.manifest_files import attribute_columns, read_records
from shoelabel.paths import file_path
from shoelabel.progress import Progress, TerminalProgress
from shoelabel.settings import get_settings


class EvaluationError(UserError, ValueError):
    """The evaluation data does not fit the model."""


def read_labelled_folder(folder: Path) -> tuple[list[Path], list[str]]:
    """Files and their brands from a folder of brand subfolders (the same reading as ingest: symlinks that
    loop or lead outside the folder are left out; photos beside the subfolders have no brand and are too)."""
    try:
        scan = scan_folder(folder)
    except FolderError as exc:
        raise EvaluationError(str(exc)) from exc
    labelled = [(path, brand) for path, brand in scan.files if brand is not None]
    if not labelled:
        raise EvaluationError(f"No labelled photos in {folder}: it needs one subfolder per brand with photos in each.")
    return [path for path, _ in labelled], [brand for _, brand in labelled]


def evaluate_folder(handle: ModelHandle, folder: Path, progress: Progress | None = None) -> tuple[Metrics, list[str]]:
    """Metrics of ``handle`` on ``folder`` (class subfolders); unreadable files are listed, not counted."""
    files, classes = read_labelled_folder(folder)
    known = {name.lower(): name for name in handle.class_names}
    unknown = sorted({b for b in classes if b.lower() not in known})
    if unknown:
        raise EvaluationError(
            f"{folder} has classes the {handle.label} model was not trained on: {', '.join(unknown)}. "
            f"It knows: {', '.join(handle.class_names)}. Rename the subfolders to those classes, or retrain "
            "after ingesting labelled photos of the new classes."
        )
    return evaluate_files(handle, files, classes, progress)


def evaluate_files(
    handle: ModelHandle, files: list[Path], classes: list[str], progress: Progress | None = None
) -> tuple[Metrics, list[str]]:
    """Metrics of ``handle`` on photo files with their true classes (each one the model knows)."""
    known = {name.lower(): name for name in handle.class_names}
    probs, errors = predict_sources(handle, files, progress=progress or (lambda f, t: None))
    index = {name: i for i, name in enumerate(handle.class_names)}
    kept = sorted(probs)
    y_true = np.array([index[known[classes[i].lower()]] for i in kept])
    y_pred = np.array([int(np.argmax(probs[i])) for i in kept])
    skipped = [f"{files[i]}: {exc.reason}" for i, exc in sorted(errors.items())]
    return compute_metrics(y_true, y_pred, list(handle.class_names)), skipped


def read_manifest_labels(source: Path) -> tuple[list[Path], dict[str, list[str]]]:
    """The photos of a manifest (relative paths from its folder) and, per attribute column, each photo's
    class (``""`` where the cell is empty)."""
    files: list[Path] = []
    labels: dict[str, list[str]] = {}
    for number, record in read_records(source):
        if not isinstance(record, dict):
            raise EvaluationError(f"{source}, entry {number}: expected an object with a path and attributes.")
        raw = str(record.get("path") or record.get("file") or "").strip()
        if not raw:
            raise EvaluationError(f"{source}, row {number}: the path is empty.")
        path = Path(file_path(raw)).expanduser()  # an exported path may be a file:// URL
        files.append(path if path.is_absolute() else source.parent / path)
        for values in labels.values():  # unknown unless the row says
            values.append("")
        for column in attribute_columns(record):  # named as an import names them, read as the file spells them
            value = " ".join(str(record.get(column) or "").split())
            if value:
                labels.setdefault(clean_attribute_name(str(column)), [""] * len(files))[-1] = value
    if not files:
        raise EvaluationError(f"{source} lists no photos.")
    return files, labels


def evaluate_manifest_attribute(
    handle: ModelHandle, files: list[Path], classes: list[str], progress: Progress | None = None
) -> tuple[Metrics, list[str]]:
    """Metrics on the manifest's photos that have a class for the attribute; photos of a class the model
    does not know (left out of its training) are listed, not counted."""
    known = {name.lower() for name in handle.class_names}
    chosen = [(f, c) for f, c in zip(files, classes, strict=True) if c and c.lower() in known]
    unknown = Counter(c for c in classes if c and c.lower() not in known)
    if not chosen:
        raise EvaluationError(f"No photo of the manifest has a class the {handle.label} model knows.")
    metrics, skipped = evaluate_files(handle, [f for f, _ in chosen], [c for _, c in chosen], progress)
    skipped += [
        f"{n} photo(s) of {name!r}: a class the model was not trained on" for name, n in sorted(unknown.items())
    ]
    return metrics, skipped


def evaluate_holdout(handle: ModelHandle, progress: Progress | None = None) -> Metrics:
    with session_scope(get_engine()) as session:
        labelled = labelled_set(session, handle.attribute_id)
    holdout = labelled.holdout
    if NOT_A_SHOE in handle.class_names:  # a brand model that learnt to reject: scored on those photos too
        holdout = holdout + labelled.rejected_holdout
    if not holdout:
        raise EvaluationError("The catalogue has no held-out images; ingest a labelled folder first, or use --data.")
    names = sorted(set(handle.class_names) | {i.brand for i in holdout})
    return evaluate_handle(handle, holdout, names, progress or (lambda f, t: None))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modeling.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        help="a folder of class subfolders (of --attribute, default brand), or a .csv/.json manifest with a column "
        "per attribute (default: the frozen held-out set)",
    )
    parser.add_argument("--model", choices=[*ARCHITECTURES, "both"], default="both")
    parser.add_argument("--attribute", default=None, help="one attribute (default: every attribute with a model)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON, per attribute and model")
    parser.add_argument("--plot-dir", type=Path, default=None, help="where to save confusion-matrix PNGs")
    return parser


def _models_to_evaluate(engine: Engine, args: argparse.Namespace) -> tuple[list[ModelHandle], dict[int, str]]:
    """The current models asked for, and every attribute's name by id."""
    manifest = args.data is not None and args.data.is_file()
    with session_scope(engine) as session:
        names = {a.id: a.name for a in attributes(session)}
        wanted = require_attribute(session, args.attribute).id if args.attribute else None
    if args.data is not None and not manifest and wanted is None:
        wanted = BRAND_ID  # a folder's subfolders are classes of one attribute
    archs = list(ARCHITECTURES) if args.model == "both" else [args.model]
    handles = [h for h in current_handles(engine, archs) if wanted is None or h.attribute_id == wanted]
    if not handles:
        raise ModelNotFoundError(f"No current {args.model} model yet; train one with python -m modeling.train.")
    return handles, names


def _evaluate(
    handle: ModelHandle, attribute: str, args: argparse.Namespace, files: list, labels: list | None
) -> tuple[Metrics, list[str]]:
    """(metrics, skipped lines) of one model on the manifest column ``labels``, the folder, or the held-out set."""
    bar = TerminalProgress(f"evaluating {handle.label} ({attribute})")
    try:
        if labels is not None:
            return evaluate_manifest_attribute(handle, files, labels, bar)
        if args.data:
            return evaluate_folder(handle, args.data, bar)
        return evaluate_holdout(handle, bar), []
    finally:
        bar.close()


def _report(
    handle: ModelHandle, attribute: str, args: argparse.Namespace, metrics: Metrics, skipped: list[str]
) -> dict:
    """One model's result: its confusion plot saved, its report printed unless ``--json``."""
    where = args.data.name if args.data else "holdout"
    png = plot_confusion(
        metrics,
        (args.plot_dir or get_settings().reports_dir) / f"evaluate-{handle.arch}-v{handle.id}-{where}.png",
        title=f"{handle.label} {attribute} on {where}",
    )
    if not args.json:
        print(format_report(metrics, f"\n== {handle.label} ({attribute}) on {args.data or 'the held-out set'}"))
        for line in skipped:
            print(f"skipped {line}")
        print(f"confusion matrix: {png}")
    return {"model_version": handle.id, **metrics.summary(), "skipped": skipped, "confusion_png": str(png)}


@command
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    engine = get_engine()
    handles, names = _models_to_evaluate(engine, args)
    manifest = args.data is not None and args.data.is_file()
    files, columns = read_manifest_labels(args.data) if manifest else ([], {})
    results: dict[str, dict[str, dict]] = {}
    for handle in handles:
        attribute = names[handle.attribute_id]
        if manifest and attribute not in columns:
            continue
        try:
            metrics, skipped = _evaluate(handle, attribute, args, files, columns[attribute] if manifest else None)
        except EvaluationError:
            raise  # the data, not this model: the same for every model
        except Exception as exc:  # one broken model never stops the others
            print(f"error: {handle.label} could not be evaluated: {exc}", file=sys.stderr)
            error = {"model_version": handle.id, "error": str(exc) or type(exc).__name__}
            results.setdefault(attribute, {})[handle.arch] = error
            continue
        results.setdefault(attribute, {})[handle.arch] = _report(handle, attribute, args, metrics, skipped)
    if not results:
        raise EvaluationError(f"{args.data} has no column for an attribute with a current model.")
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if any("error" in r for by_arch in results.values() for r in by_arch.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
