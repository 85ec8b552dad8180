"""What the server does before it draws the first page: import the app script's and the default page's
modules, in a fresh process each time.

    python bench/bench_first_page.py [--repo DIR] [--runs 5]

``--repo`` measures another checkout (for a before/after figure). Prints the median and the range of the
import time, and the heavy libraries the imports pulled in (Keras, JAX, scikit-learn, cleanlab, SciPy,
pandas, Altair). Figures, not assertions: the machine's load moves them.
"""

from __future__ import annotations

import argparse
import ast
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("keras", "jax", "sklearn", "cleanlab", "scipy", "pandas", "altair", "matplotlib")


def first_page_modules(repo: Path) -> list[str]:
    """The project modules ``streamlit_app.py`` and the default page (Review) import."""
    names = []
    for script in (repo / "streamlit_app.py", repo / "ui" / "pages" / "review.py"):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("ui", "db"):
                names += [f"{node.module}.{a.name}" if node.module == "ui" else node.module for a in node.names]
    return sorted(set(names))


def one_run(repo: Path, modules: list[str]) -> tuple[float, list[str]]:
    code = (
        "import sys, time\nimport streamlit\nstarted = time.perf_counter()\n"
        f"import {', '.join(modules)}\n"
        f"print(time.perf_counter() - started, *sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
    seconds, *heavy = done.stdout.split()
    return float(seconds), heavy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    modules = first_page_modules(args.repo)
    runs = [one_run(args.repo, modules) for _ in range(args.runs)]
    times = [seconds for seconds, _ in runs]
    print(f"first page imports ({len(modules)} modules): median {statistics.median(times):.2f} s, "
          f"{min(times):.2f}-{max(times):.2f} s over {len(times)} fresh processes")  # fmt: skip
    print(f"heavy libraries imported: {', '.join(runs[-1][1]) or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
