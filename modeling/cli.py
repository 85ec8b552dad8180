"""Shared pieces of the ``python -m modeling.*`` commands."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from db import get_engine
from modeling.jobs import JobLock, job_record, mark_abandoned_jobs
from modeling.predict import refresh_until_done
from modeling.rounds import mark_abandoned_rounds, run_round
from shoelabel.errors import UserError
from shoelabel.progress import Stage, TerminalProgress, fan_out


def run_rounds(
    archs: list[str],
    round_kwargs: Callable[[str], dict[str, Any]],
    round_id: int | None = None,
    job_id: int | None = None,
) -> int:
    """Run a round per architecture under the job lock; print each before/after table.

    Ends by predicting the photos that arrived while the lock was held (a rejected round
    leaves the current model, which has not seen them yet).
    """

    lock = JobLock.acquire()
    status = 0
    engine = get_engine()
    with lock, job_record(engine, job_id) as job:
        if round_id is None:  # a round handed over by the app is running, not abandoned
            mark_abandoned_rounds(engine)
        if job_id is None:
            mark_abandoned_jobs(engine)
        for n, arch in enumerate(archs):
            bar = TerminalProgress(f"{arch} round")
            progress = fan_out(bar, Stage(job.progress, n / len(archs), (n + 1) / len(archs)))
            try:
                result = run_round(arch, progress=progress, engine=engine, round_id=round_id, **round_kwargs(arch))
            except UserError as exc:
                bar.close()
                print(f"error: {arch} round failed: {exc}", file=sys.stderr)
                job.fail(f"{arch} round failed: {exc}")
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
        arrivals = refresh_until_done(engine)
        for line in arrivals.lines():
            if not line.startswith("stored predictions: ") or not line.endswith(" 0"):
                print(line, file=sys.stderr if line.startswith("error:") else sys.stdout)
    return status
