"""``cefl-zoo train``: train a model with the paper's recipe (one process or torchrun).

Examples::

    cefl-zoo synth data/synth --videos 300 --seed 0
    cefl-zoo train --model ceflnet_tiny --data synthetic:data/synth --epochs 10 \\
        --output-dir runs/synth
    cefl-zoo train --config recipe.toml --data dfew:/data/DFEW --fold 1 --amp bf16
    cefl-zoo train ... --resume            # continue runs/.../last.pt
    torchrun --nproc_per_node 8 -m cefl_zoo.cli train --data dfew:/data/DFEW --fold 1 \\
        --batch-size 1

--batch-size is per process: 8 processes x --batch-size 1 keep the paper's batch of 8
(8 x the default 8 would make 64; then scale --lr with it).
"""

from __future__ import annotations

import argparse
import sys

NAME = "train"
HELP = "train a model (defaults: the paper's recipe); resumable, multi-GPU with torchrun"

#: Exit code of a run stopped by SIGTERM after writing its checkpoint (128 + 15).
EXIT_INTERRUPTED = 143


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..train.config import add_config_arguments

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("Examples::", 1)[1]
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        metavar="CKPT",
        help="continue from a checkpoint; without a value: OUTPUT_DIR/last.pt if it exists",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved configuration as JSON and exit",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import json

    from ..data import SampleTransformError
    from ..train import CheckpointError, ConfigError, DataError
    from ..train.config import config_from_args
    from ..train.distributed import launch_rank, setup_logging
    from ..train.loaders import unreadable_video_message
    from ._common import MODEL_ERRORS, training_setup_error

    setup_logging(args.verbose)
    cfg = None
    try:
        cfg = config_from_args(args)
        if args.print_config:
            print(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
            return 0
        from ..train import train

        summary = train(cfg, resume=args.resume)
    except (ConfigError, DataError, CheckpointError, SampleTransformError) as err:
        print(f"cefl-zoo train: error: {err}", file=sys.stderr)
        return 2
    except MODEL_ERRORS as err:  # the model cannot be built, or --device has no CUDA
        unreadable = unreadable_video_message(err)  # on_error="raise" met a broken video
        if unreadable is not None:
            print(f"cefl-zoo train: error: {unreadable}", file=sys.stderr)
            return 2
        problem = None if cfg is None else training_setup_error(err, cfg.model, cfg.init_from)
        if problem is None:
            raise
        raise problem from err
    if summary["status"] != "completed":
        if launch_rank() == 0:  # under torchrun every rank stops: one hint
            print(
                f"stopped at epoch {summary['epoch'] + 1}, step {summary['global_step']}; "
                f"resume with the same command plus --resume",
                file=sys.stderr,
            )
        return EXIT_INTERRUPTED
    return 0
