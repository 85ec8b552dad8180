"""Predictions for photos that join the catalogue, by any route (ingest, manifest import, uploads).

A photo the models have not predicted cannot be ranked by the review queues, so every
route that adds photos calls :func:`predict_arrivals` right after. The CNN predicts at
once (hundreds of photos a second on a CPU); InceptionV3 costs a pass of the whole
network per new photo (5-10 a second), so it runs in a background process that the
app shows (its progress, and its reason if it fails). A model that fails is named with
its reason; the others still predict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from db import get_engine
from modeling.background import StartedJob, start_refresh
from modeling.jobs import JobBusyError
from modeling.predict import current_handles, missing_predictions, update_predictions
from shoelabel.progress import Progress, Stage, TerminalProgress, silent

AT_ONCE = ("cnn",)  # architectures cheap enough to predict while the caller waits
AT_ONCE_LIMIT = 5_000  # above this many new photos, the CNN goes to the background too


@dataclass
class ArrivalReport:
    """What happened to the predictions of newly added photos."""

    stored: dict[str, int] = field(default_factory=dict)  # model label -> predicted now
    failed: dict[str, str] = field(default_factory=dict)  # model label -> why it could not predict
    background: dict[str, int] = field(default_factory=dict)  # model label -> photos left to a background job
    job: StartedJob | None = None  # the background job started for them
    busy: bool = False  # another job holds the lock; it predicts them when it ends

    def lines(self) -> list[str]:
        lines = [f"Predicted {n} new photo(s) with {label}." for label, n in self.stored.items() if n]
        lines += [f"{label} could not predict the new photos: {reason}" for label, reason in self.failed.items()]
        if self.background:
            what = ", ".join(f"{n} with {label}" for label, n in self.background.items())
            if self.job is not None:
                lines.append(
                    f"Predicting new photos in the background ({what}): progress on the Rounds page, "
                    f"log in {self.job.log}."
                )
            elif self.busy:
                lines.append(
                    f"New photos wait for predictions ({what}): a round or refresh is running and predicts "
                    "them when it ends."
                )
            else:
                lines.append(f"New photos without predictions: {what}. Run `python -m modeling.predict --refresh`.")
        return lines


def predict_arrivals(engine: Engine | None = None, *, wait: bool = False, progress: Progress = silent) -> ArrivalReport:
    """Give every catalogue photo the current models' predictions.

    The cheap models predict now; the others start a background refresh (or, with ``wait``,
    predict now too, for scripts that need the predictions when the command returns).
    """
    engine = engine or get_engine()
    report = ArrivalReport()
    todo = [(handle, n) for handle in current_handles(engine) if (n := missing_predictions(engine, handle))]
    now = [h for h, n in todo if wait or (h.arch in AT_ONCE and n <= AT_ONCE_LIMIT)]
    for i, handle in enumerate(now):
        try:
            stored, _unreadable = update_predictions(
                engine, handle, progress=Stage(progress, i / len(now), (i + 1) / len(now))
            )
        except Exception as exc:  # one broken model never stops the others
            report.failed[handle.label] = str(exc) or type(exc).__name__
            continue
        report.stored[handle.label] = stored
    report.background = {h.label: n for h, n in todo if h not in now}
    if report.background:
        try:
            report.job = start_refresh(engine=engine)
        except JobBusyError:
            report.busy = True
    return report


def predict_arrivals_in_terminal(*, wait: bool = False) -> ArrivalReport:
    """:func:`predict_arrivals` for a command line: a progress bar, then what happened, one line each."""
    import sys

    bar = TerminalProgress("predicting new photos")
    try:
        report = predict_arrivals(wait=wait, progress=bar)
    finally:
        bar.close()
    for line in report.lines():
        print(line, file=sys.stderr if " could not predict " in line else sys.stdout)
    return report
