"""``cefl-zoo cache SPEC OUT_DIR``: pre-decode a dataset into a frame cache."""

from __future__ import annotations

import argparse
import os

from ._common import plural

NAME = "cache"
HELP = "pre-decode (and face-crop) a dataset into JPEG or uint8 frame shards for fast training"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "spec",
        help="dataset as NAME:ROOT (e.g. dfew:/data/DFEW, synthetic:DIR, csv:labels.csv, "
        "folder:DIR), or a path (a synthetic dataset, a .csv file or a folder per class)",
    )
    parser.add_argument("out_dir", help="cache directory to create")
    parser.add_argument(
        "--split",
        default=None,
        help="split to cache: required for a benchmark dataset (e.g. --split train); "
        "default for a folder, CSV or synthetic dataset: all its videos",
    )
    parser.add_argument("--fold", default=None, help="fold or set number, for datasets with folds")
    parser.add_argument(
        "--size", type=int, default=None, help="stored frame size (default: the --model input size)"
    )
    parser.add_argument(
        "--model",
        default="ceflnet_resnet18",
        help="model whose input size and clips x frames to cache for",
    )
    parser.add_argument(
        "--num-clips", type=int, default=None, help="clips per video, N (default: --model's)"
    )
    parser.add_argument(
        "--frames-per-clip", type=int, default=None, help="frames per clip, K (default: --model's)"
    )
    parser.add_argument(
        "--min-frames",
        type=int,
        default=None,
        help="shortest video to cache (default: one clip, K frames); 1 keeps even 1-frame "
        "videos, sampled by repeating frames (train with the same setting)",
    )
    parser.add_argument(
        "--format",
        choices=("jpeg", "uint8"),
        default="jpeg",
        help="how frames are stored: jpeg (small) or uint8 (raw, exact, ~10x larger)",
    )
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    parser.add_argument(
        "--faces",
        action="store_true",
        help="crop faces with RetinaFace first (needs cefl-zoo[faces])",
    )
    parser.add_argument("--workers", type=int, default=0, help="parallel decoding workers")
    parser.add_argument(
        "--on-error",
        choices=("skip", "raise"),
        default="skip",
        help="skip (and list) or stop at unreadable videos",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing cache")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def resolve_spec(spec: str) -> tuple[str, str]:
    """``"NAME:ROOT"`` or a bare path to ``(name, root)``."""
    name, sep, root = spec.partition(":")
    if sep and len(name) >= 2 and root:
        return name.strip().lower(), root
    if os.path.isfile(os.path.join(spec, "labels.csv")):
        return "synthetic", spec
    if spec.lower().endswith(".csv"):
        return "csv", spec
    if os.path.isdir(spec):
        return "folder", spec
    raise ValueError(
        f"cannot tell which dataset {spec!r} is: it is not an existing folder or .csv file; "
        "write NAME:ROOT, e.g. dfew:/data/DFEW"
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from ..data import build_dataset, build_frame_cache
    from ..registry import get_pretrained_cfg
    from ..video import ClipSampler

    try:
        name, root = resolve_spec(args.spec)
        cfg = get_pretrained_cfg(args.model)
        n = args.num_clips or (cfg.num_clips if cfg else 7)
        k = args.frames_per_clip or (cfg.frames_per_clip if cfg else 5)
        size = args.size or (cfg.input_size[-1] if cfg else 224)
        sampler_kwargs = {} if args.min_frames is None else {"min_frames": args.min_frames}
        sampler = ClipSampler(n, k, **sampler_kwargs)
        kwargs = {"sampler": sampler, "on_error": args.on_error, "train": False}
        if args.faces:
            from ..faces import FaceCropper

            kwargs["face_cropper"] = FaceCropper(size=size)
        fold = int(args.fold) if args.fold is not None and str(args.fold).isdigit() else args.fold
        dataset = build_dataset(name, root, split=args.split, fold=fold, **kwargs)
        out = build_frame_cache(
            dataset,
            args.out_dir,
            size=size,
            format=args.format,
            quality=args.quality,
            num_workers=args.workers,
            progress=not args.quiet,
            overwrite=args.overwrite,
            split=args.split,
        )
    except (FileExistsError, FileNotFoundError, ValueError, ImportError) as err:
        print(f"cefl-zoo cache: error: {err}", file=sys.stderr)
        return 2
    import json

    with open(os.path.join(out, "index.json"), encoding="utf-8") as fh:
        index = json.load(fh)
    print(
        f"cached {plural(len(index['items']), 'video')} ({len(index['failures'])} failed) in {out}"
    )
    for failure in index["failures"][:10]:
        print(f"  skipped {failure['path']}: {failure.get('reason', failure['error'])}")
    return 0
