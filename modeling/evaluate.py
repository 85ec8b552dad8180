"""Evaluate models: ``python -m modeling.evaluate [--data FOLDER] [--model cnn|inception|both] [--json]``.

With ``--data``, on any folder of brand subfolders (read straight from disk, not
added to the catalogue); without it, on the frozen held-out set. Prints
accuracy, per-brand precision, recall and F1, macro averages and the confusion
matrix, and saves the confusion matrix as a PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from db import get_engine, session_scope
from db.labels import labelled_set
from modeling.metrics import Metrics, compute_metrics, format_report, plot_confusion
from modeling.predict import ModelHandle, predict_sources
from modeling.registry import ARCHITECTURES, ModelNotFoundError, current_versions
from modeling.rounds import evaluate_handle
from shoelabel.cli import command
from shoelabel.errors import UserError
from shoelabel.images import FolderError, scan_folder
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
    """Metrics of ``handle`` on ``folder``; unreadable files are listed, not counted."""
    files, brands = read_labelled_folder(folder)
    known = {name.lower(): name for name in handle.class_names}
    unknown = sorted({b for b in brands if b.lower() not in known})
    if unknown:
        raise EvaluationError(
            f"{folder} has brands the {handle.label} model was not trained on: {', '.join(unknown)}. "
            f"It knows: {', '.join(handle.class_names)}. Rename the subfolders to those brands, or retrain "
            "after ingesting labelled photos of the new brands."
        )
    probs, errors = predict_sources(handle, files, progress=progress or (lambda f, t: None))
    index = {name: i for i, name in enumerate(handle.class_names)}
    kept = sorted(probs)
    y_true = np.array([index[known[brands[i].lower()]] for i in kept])
    y_pred = np.array([int(np.argmax(probs[i])) for i in kept])
    skipped = [f"{files[i]}: {exc.reason}" for i, exc in sorted(errors.items())]
    return compute_metrics(y_true, y_pred, list(handle.class_names)), skipped


def evaluate_holdout(handle: ModelHandle, progress: Progress | None = None) -> Metrics:
    with session_scope(get_engine()) as session:
        holdout = labelled_set(session).holdout
    if not holdout:
        raise EvaluationError("The catalogue has no held-out images; ingest a labelled folder first, or use --data.")
    names = sorted(set(handle.class_names) | {i.brand for i in holdout})
    return evaluate_handle(handle, holdout, names, progress or (lambda f, t: None))


@command
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeling.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="folder of brand subfolders (default: the frozen held-out set)")
    parser.add_argument("--model", choices=[*ARCHITECTURES, "both"], default="both")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--plot-dir", type=Path, default=None, help="where to save confusion-matrix PNGs")
    args = parser.parse_args(argv)
    with session_scope(get_engine()) as session:
        versions = current_versions(session)
    wanted = list(ARCHITECTURES) if args.model == "both" else [args.model]
    handles = [ModelHandle.of(versions[a]) for a in wanted if a in versions]
    if not handles:
        raise ModelNotFoundError(f"No current {args.model} model yet; train one with python -m modeling.train.")
    results: dict[str, dict] = {}
    for handle in handles:
        bar = TerminalProgress(f"evaluating {handle.label}")
        try:
            if args.data:
                metrics, skipped = evaluate_folder(handle, args.data, bar)
            else:
                metrics, skipped = evaluate_holdout(handle, bar), []
        except EvaluationError:
            raise  # the data, not this model: the same for every model
        except Exception as exc:  # one broken model never stops the others
            print(f"error: {handle.label} could not be evaluated: {exc}", file=sys.stderr)
            results[handle.arch] = {"model_version": handle.id, "error": str(exc) or type(exc).__name__}
            continue
        finally:
            bar.close()
        where = args.data.name if args.data else "holdout"
        png = plot_confusion(
            metrics,
            (args.plot_dir or get_settings().reports_dir) / f"evaluate-{handle.arch}-v{handle.id}-{where}.png",
            title=f"{handle.label} on {where}",
        )
        results[handle.arch] = {
            "model_version": handle.id,
            **metrics.to_dict(),
            "skipped": skipped,
            "confusion_png": str(png),
        }
        if not args.json:
            print(format_report(metrics, f"\n== {handle.label} on {args.data or 'the held-out set'}"))
            for line in skipped:
                print(f"skipped {line}")
            print(f"confusion matrix: {png}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
