"""``cefl-zoo synth OUT_DIR --videos N --seed S``: write the built-in synthetic dataset.

Writes ``OUT_DIR/videos/NNNNN.mp4`` and ``OUT_DIR/labels.csv`` (see
:func:`cefl_zoo.data.write_synthetic_dataset`). Every option is checked before anything
is created. Exit status: 0 written, 2 bad usage (a bad option, an existing dataset
without ``--overwrite``, an output path that is a file or cannot be written).
"""

from __future__ import annotations

import argparse
import math

from ._common import EXIT_CODES_HELP

NAME = "synth"
HELP = "write a synthetic face-expression video dataset (mp4 + labels.csv with apex frames)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "example:\n  cefl-zoo synth data/synth --videos 280 --seed 0\n\n"
        "The test split is the last ceil(test_fraction x n) of each class's n videos\n"
        "(every class keeps a training video): --videos 14 has 2 videos per class, so\n"
        f"1 of each, 7 of 14 in all, are test videos.\n\n{EXIT_CODES_HELP}"
    )
    parser.add_argument("out_dir", help="output directory (gets videos/ and labels.csv)")
    parser.add_argument("--videos", type=int, default=280, help="number of videos")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--size",
        type=int,
        default=64,
        help="frame size in pixels, even and at least 16 (h264 4:2:0 video has even sides)",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.25,
        help="fraction of each class in the test split, in [0, 1): ceil(fraction x n) of a "
        "class's n videos",
    )
    parser.add_argument("--min-frames", type=int, default=60, help="shortest video (frames)")
    parser.add_argument("--max-frames", type=int, default=140, help="longest video (frames)")
    parser.add_argument(
        "--fps",
        type=float,
        default=25.0,
        help="frame rate, > 0; fractional rates (12.5, 29.97) are encoded exactly",
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="parallel worker processes (0: this one)"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing dataset, or write into a videos/ folder that already holds "
        "files (its videos/NNNNN.mp4 are replaced, those beyond --videos removed)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _check(args: argparse.Namespace) -> str | None:
    """What is wrong with the options (with the option's name), or ``None``."""
    from ..data.synthetic import check_video_size, synthetic_frame_rate

    if args.videos < 1:
        return f"--videos must be >= 1, got {args.videos}"
    if args.seed < 0:
        return f"--seed must be >= 0, got {args.seed}"
    try:
        check_video_size(args.size)
    except ValueError as err:
        return f"--size {args.size}: {err}"
    if not math.isfinite(args.fps) or args.fps <= 0:
        return f"--fps must be a frame rate > 0, got {args.fps:g}"
    try:
        synthetic_frame_rate(args.fps)
    except ValueError as err:
        return f"--fps: {err}"
    if not 1 <= args.min_frames <= args.max_frames:
        return (
            f"need 1 <= --min-frames <= --max-frames, got {args.min_frames} and {args.max_frames}"
        )
    if not 0 <= args.test_fraction < 1:
        return f"--test-fraction must be in [0, 1), got {args.test_fraction:g}"
    if args.workers < 0:
        return f"--workers must be >= 0, got {args.workers}"
    return None


def run(args: argparse.Namespace) -> int:
    import os

    from ..data.synthetic import synthetic_frame_rate, write_synthetic_dataset
    from ._common import error, one_line, plural

    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        return error(NAME, f"{args.out_dir} is a file, not a folder; pass a folder to write to")
    problem = _check(args)
    if problem:
        return error(NAME, problem)
    try:
        csv_path = write_synthetic_dataset(
            args.out_dir,
            num_videos=args.videos,
            seed=args.seed,
            size=args.size,
            test_fraction=args.test_fraction,
            min_frames=args.min_frames,
            max_frames=args.max_frames,
            fps=args.fps,
            progress=not args.quiet,
            overwrite=args.overwrite,
            num_workers=args.workers,
        )
    except (FileExistsError, ValueError) as err:
        return error(NAME, err)
    except OSError as err:  # a parent that is a file, no permission, disk full
        return error(NAME, f"cannot write the dataset to {args.out_dir}: {one_line(err)}")
    rate = synthetic_frame_rate(args.fps)
    note = "" if float(rate) == args.fps else f" at {float(rate):g} fps ({rate})"
    print(f"wrote {plural(args.videos, 'video')}{note} and {csv_path}")
    return 0
