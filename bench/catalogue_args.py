"""The arguments of the benchmarks on the multi-attribute catalogue: its manifest and the InceptionV3 weights,
both in ``../shared`` by default."""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def catalogue_parser(description: str) -> argparse.ArgumentParser:
    """A parser with ``--data`` (the catalogue's manifest) and ``--weights`` (InceptionV3, no top)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "catalogue-shoes" / "labels.csv")
    parser.add_argument(
        "--weights", type=Path, default=REPO.parent / "shared" / "weights" / "inception_v3_imagenet_notop.h5"
    )
    return parser
