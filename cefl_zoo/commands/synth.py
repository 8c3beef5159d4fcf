"""``cefl-zoo synth OUT_DIR --videos N --seed S``: write the built-in synthetic dataset."""

from __future__ import annotations

import argparse

NAME = "synth"
HELP = "write a synthetic face-expression video dataset (mp4 + labels.csv with apex frames)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", help="output directory (gets videos/ and labels.csv)")
    parser.add_argument("--videos", type=int, default=280, help="number of videos (default 280)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=int, default=64, help="frame size in pixels (default 64)")
    parser.add_argument(
        "--test-fraction", type=float, default=0.25, help="fraction of each class in the test split"
    )
    parser.add_argument("--min-frames", type=int, default=60, help="shortest video (frames)")
    parser.add_argument("--max-frames", type=int, default=140, help="longest video (frames)")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate")
    parser.add_argument("--workers", type=int, default=0, help="parallel worker processes")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import os

    from ..data.synthetic import write_synthetic_dataset
    from ._common import error, one_line, plural

    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        return error(NAME, f"{args.out_dir} is a file, not a folder; pass a folder to write to")
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
    print(f"wrote {plural(args.videos, 'video')} and {csv_path}")
    return 0
