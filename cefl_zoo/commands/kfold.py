"""``cefl-zoo kfold``: one training per fold, reported as mean +- std like the paper.

Examples::

    cefl-zoo kfold --data dfew:/data/DFEW --output-dir runs/dfew     # 5 official folds
    cefl-zoo kfold --data mmi:/data/MMI --output-dir runs/mmi        # 10 folds, by subject
    cefl-zoo kfold --data afew:/data/AFEW --output-dir runs/afew     # train / val
    cefl-zoo kfold --data dfew:/data/DFEW --folds 1,2 ...            # some folds only
    cefl-zoo kfold --data dfew:/data/DFEW --no-resume ...            # train every fold again

The last-epoch table comes first: it is what the paper reports. The best-epoch table
picks each fold's epoch on the same split it scores (optimistic).

Re-running a command reuses the folds it finished and resumes an interrupted one. Folds
trained with other options (another --model, --lr, ...) are not reused: the command
stops and names the options; --overwrite retrains those folds. --train-split and
--val-split, when given, replace the protocol's splits.
"""

from __future__ import annotations

import argparse
import sys

NAME = "kfold"
HELP = "run a dataset's fold protocol (DFEW 5, MMI/BU-3DFE 10 folds, AFEW); mean +- std"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..train.config import add_config_arguments

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("Examples::", 1)[1]
    parser.add_argument(
        "--folds",
        default=None,
        metavar="K,K,...",
        help="folds to run (default: the dataset's protocol)",
    )
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="train every fold again from its start, replacing the results and checkpoints "
        "in its folder (implies --overwrite for the folds)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import json

    from ..data import SampleTransformError
    from ..train import CheckpointError, ConfigError, DataError
    from ..train.config import config_from_args, load_config_file
    from ..train.distributed import launch_rank, setup_logging
    from ..train.kfold import FoldInterrupted, format_fold_table, run_folds
    from ..train.loaders import unreadable_video_message
    from ._common import MODEL_ERRORS, training_setup_error
    from .train import EXIT_INTERRUPTED

    setup_logging(args.verbose)
    folds = None
    if args.folds:
        try:
            folds = [None if f.strip().lower() == "none" else int(f) for f in args.folds.split(",")]
        except ValueError:
            print(
                "cefl-zoo kfold: error: --folds takes comma-separated integers, "
                f"got {args.folds!r}",
                file=sys.stderr,
            )
            return 2
    cfg = None
    try:
        cfg = config_from_args(args)
        # the splits the user chose (flags or config file) replace the protocol's
        chosen = set(vars(args))
        if args.config:
            chosen |= {k.replace("-", "_") for k in load_config_file(args.config)}
        user_splits = [name for name in ("train_split", "val_split") if name in chosen]
        result = run_folds(cfg, folds=folds, resume=not args.no_resume, user_splits=user_splits)
    except (ConfigError, DataError, CheckpointError, SampleTransformError) as err:
        print(f"cefl-zoo kfold: error: {err}", file=sys.stderr)
        return 2
    except FoldInterrupted as err:
        if launch_rank() == 0:  # under torchrun every rank stops: one message
            print(f"cefl-zoo kfold: {err}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MODEL_ERRORS as err:  # the model cannot be built, or --device has no CUDA
        unreadable = unreadable_video_message(err)  # on_error="raise" met a broken video
        if unreadable is not None:
            print(f"cefl-zoo kfold: error: {unreadable}", file=sys.stderr)
            return 2
        problem = None if cfg is None else training_setup_error(err, cfg.model, cfg.init_from)
        if problem is None:
            raise
        raise problem from err
    if launch_rank() == 0:
        print(format_fold_table(result, "last"))
        print(format_fold_table(result, "best"))  # (with its note: optimistic)
        summary = {k: result[k]["summary"] for k in ("last", "best")}
        print(json.dumps(summary | {"best_note": result["best"]["note"]}))
    return 0
