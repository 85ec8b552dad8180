"""Shared pieces of the ``python -m modeling.*`` commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from db import get_engine, session_scope
from db.catalog import labelled_attributes, require_attribute
from db.models import BRAND, BRAND_ID
from modeling.jobs import JobLock, job_record, mark_abandoned_jobs
from modeling.predict import refresh_until_done
from modeling.rounds import mark_abandoned_rounds, run_round
from shoelabel.cli import require_writable
from shoelabel.errors import UserError
from shoelabel.progress import Stage, TerminalProgress, fan_out
from shoelabel.settings import get_settings


def add_attribute_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--attribute",
        default=None,
        help="the attribute to train (default: every attribute with labelled photos, brand first)",
    )


def attributes_to_train(engine: Engine, name: str | None) -> list[tuple[int, str]]:
    """``(id, name)`` of the attribute asked for, or of every attribute with labels (brand always: a round
    without labels says what to do)."""
    with session_scope(engine) as session:
        if name is not None:
            attribute = require_attribute(session, name)
            return [(attribute.id, attribute.name)]
        found = [(a.id, a.name) for a in labelled_attributes(session)]
    return found if any(i == BRAND_ID for i, _ in found) else [(BRAND_ID, BRAND), *found]


def run_rounds(
    archs: list[str],
    round_kwargs: Callable[[str], dict[str, Any]],
    round_id: int | None = None,
    job_id: int | None = None,
    attribute: str | None = None,
) -> int:
    """Run a round per architecture and attribute under the job lock; print each before/after table.

    Ends by predicting the photos that arrived while the lock was held (a rejected round
    leaves the current model, which has not seen them yet).
    """

    require_writable(get_settings().models_dir, "the models folder")  # before a training run, not after it
    lock = JobLock.acquire()
    status = 0
    engine = get_engine()
    with lock, job_record(engine, job_id) as job:
        if round_id is None:  # a round handed over by the app is running, not abandoned
            mark_abandoned_rounds(engine)
        if job_id is None:
            mark_abandoned_jobs(engine)
        runs = [(arch, a) for a in attributes_to_train(engine, attribute) for arch in archs]
        for n, (arch, (attribute_id, attribute_name)) in enumerate(runs):
            what = arch if attribute_id == BRAND_ID else f"{arch} {attribute_name}"
            bar = TerminalProgress(f"{what} round")
            progress = fan_out(bar, Stage(job.progress, n / len(runs), (n + 1) / len(runs)))
            try:
                result = run_round(
                    arch,
                    attribute_id=attribute_id,
                    progress=progress,
                    engine=engine,
                    round_id=round_id,
                    **round_kwargs(arch),
                )
            except UserError as exc:
                bar.close()
                print(f"error: {what} round failed: {exc}", file=sys.stderr)
                job.fail(f"{what} round failed: {exc}")
                status = 1
                continue
            finally:
                round_id = None
            bar.close()
            print(f"\n== Round {result.round_id}: {what}, {result.status.value} in {result.duration_s:.1f}s")
            print(result.table())
            print(result.message)
            if result.confusion_png:
                print(f"confusion matrix: {result.confusion_png}")
        arrivals = refresh_until_done(engine)
        for line in arrivals.lines():
            if not line.startswith("stored predictions: ") or not line.endswith(" 0"):
                print(line, file=sys.stderr if line.startswith("error:") else sys.stdout)
    return status
