"""Train a model from scratch on the labelled data: ``python -m modeling.train --arch cnn|inception``.

The new model is evaluated on the frozen held-out set and becomes current if it
is not worse than the current one (``--force`` promotes it regardless).
"""

from __future__ import annotations

import argparse

from modeling.cli import add_attribute_argument, run_rounds
from modeling.registry import ARCHITECTURES, DEFAULT_INCEPTION_MODE, INCEPTION_MODES
from shoelabel.cli import command


@command
def main(argv: list[str] | None = None) -> int:
    from modeling.fitting import CnnConfig, InceptionConfig

    parser = argparse.ArgumentParser(prog="python -m modeling.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=ARCHITECTURES, required=True)
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="CNN: training epochs; InceptionV3: fine-tuning epochs of the top blocks",
    )
    parser.add_argument("--input-size", type=int, default=None, help="square input size in pixels")
    parser.add_argument("--mode", choices=INCEPTION_MODES, default=DEFAULT_INCEPTION_MODE, help="inception only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="make it current even if it is worse")
    add_attribute_argument(parser)
    args = parser.parse_args(argv)
    cnn, inception = CnnConfig(seed=args.seed), InceptionConfig(seed=args.seed)
    if args.epochs is not None:
        cnn.epochs = inception.finetune_epochs = args.epochs
    if args.input_size is not None:
        cnn.input_size = inception.input_size = args.input_size
    return run_rounds(
        [args.arch],
        lambda arch: {
            "trigger": "train",
            "force": args.force,
            "from_scratch": True,
            "mode": args.mode if arch == "inception" else "train",
            "cnn_config": cnn,
            "inception_config": inception,
        },
        attribute=args.attribute,
    )


if __name__ == "__main__":
    raise SystemExit(main())
