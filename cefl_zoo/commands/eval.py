"""``cefl-zoo eval``: WAR, UAR, per-class recall, confusion matrix and apex-clip accuracy.

Examples::

    cefl-zoo eval --checkpoint runs/synth/best.pt --data synthetic:data/synth --split test
    cefl-zoo eval --model runs/synth --data synthetic:data/synth --output eval.json
    cefl-zoo eval --model ceflnet_tiny.synthetic --data synthetic:data/synth
    cefl-zoo eval --model ceflnet_resnet18.dfew --data dfew:/data/DFEW --fold 1

A checkpoint, or a training run folder (--model runs/synth: its best.pt, else last.pt),
brings its data options (its sampler and transform options always, the others, such
as a split seed, for the dataset it was trained on; --data-kwargs merges into them and a
null value drops one) and the fold it was trained on (the default --fold; an
exported folder or a registered weight set names its fold too).

A --model name with a weight tag (arch.tag, e.g. ceflnet_tiny.synthetic) evaluates that
weight set, as `cefl-zoo predict` does; --pretrained is implied. A bare architecture
(ceflnet_tiny) has random weights unless --pretrained loads its default weight set.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

NAME = "eval"
HELP = "evaluate a checkpoint or model on a dataset split (WAR, UAR, confusion matrix, apex clips)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("Examples::", 1)[1]
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", metavar="PT", help="training checkpoint (last.pt, best.pt)")
    src.add_argument(
        "--model",
        metavar="NAME_OR_DIR",
        help="weight set arch.tag (its weights are loaded), architecture (random weights "
        "unless --pretrained), save_pretrained dir, hf-hub:org/repo, or a training run "
        "folder (its best.pt, else last.pt)",
    )
    parser.add_argument(
        "--pretrained",
        action="store_true",
        help="load the default weight set of a bare architecture name (implied by arch.tag)",
    )
    parser.add_argument(
        "--data", required=True, metavar="NAME:ROOT", help="e.g. synthetic:DIR, dfew:ROOT"
    )
    parser.add_argument(
        "--split",
        default="test",
        help="split to evaluate; 'none' for a dataset without splits (default: test)",
    )
    parser.add_argument(
        "--fold",
        type=int,
        default=None,
        help="fold of datasets with several (default: the fold the model was trained on)",
    )
    parser.add_argument(
        "--data-kwargs",
        default=None,
        metavar="JSON",
        help="extra build_dataset arguments, merged into a checkpoint's own "
        "(a null value removes one of them)",
    )
    parser.add_argument(
        "--num-clips", type=int, default=None, help="clips per video (default: the model's)"
    )
    parser.add_argument(
        "--frames-per-clip", type=int, default=None, help="frames per clip (default: the model's)"
    )
    parser.add_argument(
        "--img-size", type=int, default=None, help="frame size (default: the model's)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    parser.add_argument(
        "--output",
        metavar="JSON",
        default=None,
        help="write metrics and per-video predictions here",
    )
    parser.add_argument(
        "--confusion-png", metavar="PNG", default=None, help="write the confusion matrix here"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _load_model(name: str, pretrained: bool):
    """Create ``--model``: "arch.tag" loads the tag's weights; a bare architecture without
    ``--pretrained`` gets random weights, with a warning on stderr."""
    from ..registry import create_model, is_model, split_model_name
    from ._common import loading_model, warn

    if is_model(name):
        arch, tag = split_model_name(name)
        if tag:
            pretrained = True
        elif not pretrained:
            warn(
                f"evaluating {name} with RANDOM weights (a bare architecture without "
                f"--pretrained): the scores mean nothing. Name a weight set ({arch}.TAG, see "
                "`cefl-zoo models --pretrained`) or add --pretrained"
            )
    with loading_model(name):
        return create_model(name, pretrained=pretrained)


#: ``data_kwargs`` entries that are dicts themselves: merged key by key.
_NESTED_DATA_KWARGS = ("sampler_kwargs", "transform_kwargs")


def _merge_data_kwargs(saved: dict, given: dict) -> dict:
    """A checkpoint's ``data_kwargs`` updated by ``--data-kwargs``: its keys win, one
    level deeper for ``sampler_kwargs`` and ``transform_kwargs``, and a ``null`` value
    removes the key (the dataset's default applies)."""

    def set_keys(d: dict) -> dict:
        return {k: v for k, v in d.items() if v is not None}

    merged = {**saved, **given}
    for key in _NESTED_DATA_KWARGS:
        if isinstance(given.get(key), dict):
            merged[key] = set_keys({**(saved.get(key) or {}), **given[key]})
    return set_keys(merged)


def _trained_fold(base: dict, pcfg) -> tuple[str | None, int | None]:
    """The dataset name and fold the model was trained on, where known."""
    from ..train.config import parse_data_spec

    if base.get("data"):  # a checkpoint's TrainConfig
        return parse_data_spec(base["data"]).name, base.get("fold")
    # A saved model's: "2" or text, as export writes it ("fold 2, evaluated on the 'test'
    # split") and the registry does ("fold 1 of 5 (EmoLabel_DataSplit set_1)").
    text = str(pcfg.fold or "").strip()
    match = re.fullmatch(r"\d+", text) or re.match(r"fold\s*(\d+)\b", text, flags=re.IGNORECASE)
    return pcfg.dataset, int(match.group(match.lastindex or 0)) if match else None


def _output_problem(option: str, path: str | None) -> str | None:
    """Why ``path`` cannot be written as a file (checked before the evaluation), if so."""
    if not path:
        return None
    target = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(target):
        return f"{option} {path} is a folder: give a file name (e.g. {path}/eval.json)"
    parent = os.path.dirname(target)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"{option} {path} lies under {parent}, which is a file: choose another path"
    if not os.access(parent, os.W_OK):
        return f"{option} {path}: cannot write under {parent} (no permission); choose another path"
    return None


def run(args: argparse.Namespace) -> int:
    import json
    import logging

    from ..data import SampleTransformError
    from ..train import CheckpointError, ConfigError, DataError, TrainConfig
    from ..train.checkpoint import load_checkpoint, model_from_checkpoint
    from ..train.config import parse_data_spec
    from ..train.distributed import (
        cleanup_distributed,
        init_distributed,
        launch_rank,
        setup_logging,
    )
    from ..train.evaluate import evaluate
    from ..train.loaders import build_split, unreadable_video_message
    from ._common import MODEL_ERRORS, run_folder_checkpoint, training_setup_error, warn

    setup_logging(args.verbose)
    log = logging.getLogger("cefl_zoo.train")
    # one path for the check and the write (a quoted --output=~/x reaches us unexpanded)
    args.output = os.path.expanduser(args.output) if args.output else args.output
    args.confusion_png = os.path.expanduser(args.confusion_png) if args.confusion_png else None
    for option, path in (("--output", args.output), ("--confusion-png", args.confusion_png)):
        if problem := _output_problem(option, path):
            print(f"cefl-zoo eval: error: {problem}", file=sys.stderr)
            return 2
    if args.model and (ckpt_path := run_folder_checkpoint(args.model)):
        args.checkpoint, args.model = ckpt_path, None  # --model RUN_DIR: its best.pt
    try:
        base: dict = {}
        if args.checkpoint:
            ckpt = load_checkpoint(args.checkpoint)
            model = model_from_checkpoint(ckpt)
            base = dict(ckpt.get("config") or {})
        else:
            model = _load_model(args.model, args.pretrained)
        pcfg = model.pretrained_cfg
        fold = args.fold
        trained_on, trained_fold = _trained_fold(base, pcfg)
        same_data = (trained_on or "").lower() == parse_data_spec(args.data).name.lower()
        if same_data and trained_fold is not None:
            if fold is None:
                fold = trained_fold
                log.info("evaluating fold %d, the fold the model was trained on", fold)
            elif fold != trained_fold and launch_rank() == 0:
                warn(
                    f"the model was trained on fold {trained_fold} of {trained_on}: the test "
                    f"videos of fold {fold} overlap its training set, so these scores are "
                    f"optimistic. Leave out --fold (or pass --fold {trained_fold}) to evaluate "
                    "on videos it has not seen"
                )
        overrides = {
            "data": args.data,
            "fold": fold,
            "num_clips": args.num_clips or pcfg.num_clips,
            "frames_per_clip": args.frames_per_clip or pcfg.frames_per_clip,
            "img_size": args.img_size or pcfg.input_size[-1],
            "batch_size": args.batch_size,
            "num_workers": args.num_workers,
            "device": args.device,
        }
        # The checkpoint's data options: its sampler and transform describe the model's
        # input and always apply; the rest (a split seed, error handling, ...) belongs to
        # the dataset it was trained on and applies only to that one.
        keep = {"data_kwargs", "seed"}
        if not same_data and base.get("data_kwargs"):
            saved = base["data_kwargs"]
            dropped = sorted(k for k in saved if k not in _NESTED_DATA_KWARGS)
            base = {**base, "data_kwargs": {k: saved[k] for k in _NESTED_DATA_KWARGS if k in saved}}
            if dropped:
                log.info(
                    "not using the checkpoint's data options %s: it was trained on %s",
                    ", ".join(dropped),
                    trained_on,
                )
        cfg = TrainConfig().update(
            {k: v for k, v in base.items() if k in keep}, source=str(args.checkpoint)
        )
        if args.data_kwargs:
            given = TrainConfig().update({"data_kwargs": args.data_kwargs}, "--data-kwargs")
            overrides["data_kwargs"] = _merge_data_kwargs(cfg.data_kwargs, given.data_kwargs)
        cfg = cfg.update(overrides, source="the command line")
        info = init_distributed(cfg.device)
        model.to(info.device)
        split = None if args.split.lower() in ("none", "") else args.split
        dataset = build_split(cfg, split, train=False, model=model)
        result = evaluate(
            model,
            dataset,
            batch_size=cfg.batch_size,
            num_workers=cfg.num_workers,
            device=info.device,
            amp=args.amp,
            dist_info=info,
            progress=not args.no_progress,
            desc=f"eval {args.split}",
        )
    except (ConfigError, DataError, CheckpointError, SampleTransformError) as err:
        print(f"cefl-zoo eval: error: {err}", file=sys.stderr)
        return 2
    except MODEL_ERRORS as err:  # --device asked for CUDA without it
        unreadable = unreadable_video_message(err)  # on_error="raise" met a broken video
        if unreadable is not None:
            print(f"cefl-zoo eval: error: {unreadable}", file=sys.stderr)
            return 2
        problem = training_setup_error(err, args.model or args.checkpoint)
        if problem is None:
            raise
        raise problem from err
    if info.is_main:
        print(str(result))
        if args.output:
            result.save(args.output)
            log.info("wrote %s", args.output)
        if args.confusion_png:
            from ..train.plots import plot_confusion_matrix

            m = result.metrics
            plot_confusion_matrix(
                m["confusion_matrix"],
                m["class_names"],
                args.confusion_png,
                title=f"{getattr(model, 'architecture', '')} on {args.data} {args.split}",
            )
        if not args.output:
            print(
                json.dumps(
                    {k: result.metrics[k] for k in ("war", "uar")}
                    | {"clip_locating": result.metrics.get("clip_locating")}
                )
            )
    cleanup_distributed(info)
    return 0
