"""Do wrong sign-ins hold up the database's writers? (Target: another process's 1-row write at a median of
50 ms or less while 16 threads submit wrong sign-ins.)

    python bench/bench_sign_in.py [--threads 16] [--writes 10] [--db URL]

Makes one account in a new SQLite database (or in the empty database ``--db`` names), then starts a
second process that writes one row ``--writes`` times, 0.2 s apart, timing each write, while
``--threads`` threads of this process sign in with unknown names and wrong passwords. The loops are
bounded: the sign-ins stop when the writer is done, or after ``--limit`` seconds.

Prints the writer's median and slowest write (a write that gave up past the busy timeout counts with
the time it waited), how many failed, and how many sign-ins were refused meanwhile; figures, not
assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WRITER = """
import json, sys, time
from db import get_engine, session_scope
from db.models import TeamSetting, utcnow
engine = get_engine()
timings, failed = [], 0
for i in range(int(sys.argv[1])):
    time.sleep(0.2)
    start = time.perf_counter()
    try:
        with session_scope(engine, write=True) as session:
            session.merge(TeamSetting(key="bench_sign_in", value={"i": i}, updated_at=utcnow(), updated_by="bench"))
    except Exception:  # the database stayed locked past the busy timeout
        failed += 1
    timings.append(time.perf_counter() - start)
print(json.dumps({"timings": timings, "failed": failed}))
"""


def wrong_sign_ins(stop: threading.Event, deadline: float, refused: list[int]) -> None:
    from feedback.accounts import SignInError, sign_in

    while not stop.is_set() and time.monotonic() < deadline:
        try:
            sign_in(f"nobody-{uuid.uuid4().hex[:8]}", "not the password")
        except SignInError:
            refused.append(1)
        except Exception:  # the database stayed locked past the busy timeout
            refused.append(0)


def run(args: argparse.Namespace, home: Path) -> dict[str, object]:
    os.environ["SHOELABEL_HOME"] = str(home)
    os.environ["SHOELABEL_DB"] = args.db or f"sqlite:///{home / 'shoelabel.db'}"
    from feedback.accounts import add_account

    add_account("ann", "admin", password="a long enough password")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(args.writes)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    stop, refused = threading.Event(), []
    deadline = time.monotonic() + args.limit
    threads = [
        threading.Thread(target=wrong_sign_ins, args=(stop, deadline, refused), daemon=True)
        for _ in range(args.threads)
    ]
    for thread in threads:
        thread.start()
    try:
        out, _ = writer.communicate(timeout=args.limit + 30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    written = json.loads(out or '{"timings": [], "failed": 0}')
    timings = written["timings"]
    return {
        "threads": args.threads,
        "writes": len(timings),
        "write_median_ms": round(statistics.median(timings) * 1000, 1) if timings else None,
        "write_max_ms": round(max(timings) * 1000, 1) if timings else None,
        "writes_failed": written["failed"],
        "refused_sign_ins": sum(refused),
        "failed_sign_ins": refused.count(0),
        "database": "postgresql" if args.db else "sqlite",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--writes", type=int, default=10)
    parser.add_argument("--limit", type=float, default=120.0, help="seconds at most for the sign-ins")
    parser.add_argument("--db", help="an empty database URL (default: a new SQLite file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(args, Path(tmp))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
