"""Shared pieces of the ``python -m modeling.*`` commands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from db import DatabaseBusyError, get_engine
from modeling.jobs import JobBusyError, JobLock
from modeling.progress import TerminalProgress


def expected_errors() -> tuple[type[Exception], ...]:
    """Errors that carry a message for the user (printed without a traceback)."""
    from db.catalog import BrandError
    from modeling.architectures import WeightsError
    from modeling.images import ImageError
    from modeling.registry import ModelNotFoundError
    from modeling.rounds import RoundError
    from modeling.training import TrainingError
    from shoelabel.settings import SettingsError

    return (
        BrandError,
        WeightsError,
        ImageError,
        ModelNotFoundError,
        RoundError,
        TrainingError,
        SettingsError,
        DatabaseBusyError,
        JobBusyError,
    )


def run_rounds(archs: list[str], round_kwargs: Callable[[str], dict[str, Any]], round_id: int | None = None) -> int:
    """Run a round per architecture under the job lock; print each before/after table."""
    from modeling.rounds import mark_abandoned_rounds, run_round

    errors = expected_errors()
    try:
        lock = JobLock.acquire()
    except JobBusyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    status = 0
    with lock:
        engine = get_engine()
        if round_id is None:  # a round handed over by the app is running, not abandoned
            mark_abandoned_rounds(engine)
        for arch in archs:
            bar = TerminalProgress(f"{arch} round")
            try:
                result = run_round(arch, progress=bar, engine=engine, round_id=round_id, **round_kwargs(arch))
            except errors as exc:
                bar.close()
                print(f"error: {arch} round failed: {exc}", file=sys.stderr)
                status = 1
                continue
            finally:
                round_id = None
            bar.close()
            print(f"\n== Round {result.round_id}: {arch}, {result.status.value} in {result.duration_s:.1f}s")
            print(result.table())
            print(result.message)
            if result.confusion_png:
                print(f"confusion matrix: {result.confusion_png}")
    return status
