"""A round: ``python -m modeling.retrain [--arch inception|cnn|both] [--mode head|finetune] [--force]``.

Takes the current model and every label derived from reviews (corrections
override imported labels), trains a candidate, evaluates it on the frozen
held-out photos, and promotes it only if it is not worse than the current model
(:mod:`modeling.promotion`). Without a current model it trains the first one.
"""

from __future__ import annotations

import argparse

from modeling.cli import add_attribute_argument, run_rounds
from modeling.registry import ARCHITECTURES, DEFAULT_INCEPTION_MODE, INCEPTION_MODES
from shoelabel.cli import command


def argument_parser() -> argparse.ArgumentParser:
    """The command's arguments (the app's background rounds pass the same ones)."""
    parser = argparse.ArgumentParser(prog="python -m modeling.retrain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=[*ARCHITECTURES, "both"], default="both")
    parser.add_argument(
        "--mode",
        choices=INCEPTION_MODES,
        default=DEFAULT_INCEPTION_MODE,
        help="inception only: 'head' refits the classifier on cached features (seconds); 'finetune' also "
        "trains the top blocks (minutes)",
    )
    parser.add_argument("--force", action="store_true", help="promote the candidate even if it is worse")
    parser.add_argument("--trigger", default="cli", help=argparse.SUPPRESS)
    parser.add_argument("--round-id", type=int, default=None, help=argparse.SUPPRESS)  # set by the app
    parser.add_argument("--job-id", type=int, default=None, help=argparse.SUPPRESS)  # set by the app
    add_attribute_argument(parser)
    return parser


@command
def main(argv: list[str] | None = None) -> int:
    args = argument_parser().parse_args(argv)
    archs = list(ARCHITECTURES) if args.arch == "both" else [args.arch]
    return run_rounds(
        archs,
        lambda arch: {
            "trigger": args.trigger,
            "force": args.force,
            "mode": args.mode if arch == "inception" else "train",
        },
        round_id=args.round_id,
        job_id=args.job_id,
        attribute=args.attribute,
    )


if __name__ == "__main__":
    raise SystemExit(main())
