"""``cefl-zoo faces INPUT OUT``: precompute face crops (RetinaFace) once, train many times.

INPUT is a video file, a frame folder, a folder of video files, or (with ``--dataset``)
a dataset root. Each video becomes a frame folder of square face crops plus
``faces.json`` under OUT (see :mod:`cefl_zoo.faces.cache`); existing, current crops are
kept. A folder INPUT is read as ``cefl-zoo predict`` reads it
(:func:`~cefl_zoo.predict.expand_inputs`): a frame folder is one video, any other folder
is searched for videos and frame folders (leaving out the crops folders already in
OUT). Exit codes: 0 all done, 1 some videos failed (each reported on stderr), 2 usage
error, before anything is cropped (a bad ``--quality``, ``--size``, ``--stride`` or
``--threads``, an INPUT that does not exist or a folder without videos or with only
crops, missing ``faces`` extra, unknown dataset), as for ``cefl-zoo predict``.

Examples::

    cefl-zoo faces clip.mp4 crops/
    cefl-zoo faces /data/AFEW crops/afew --dataset afew --split val --stride 2
"""

from __future__ import annotations

import argparse
import os
import sys

from ._common import EXIT_CODES_HELP, plural

NAME = "faces"
HELP = "precompute square face crops of videos or a dataset (needs cefl-zoo[faces])"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:\n  cefl-zoo faces clip.mp4 crops/\n"
        "  cefl-zoo faces /data/AFEW crops/afew --dataset afew --split val --stride 2\n\n"
        f"{EXIT_CODES_HELP}"
    )
    parser.add_argument("input", help="video file, frame folder, folder of videos, or dataset root")
    parser.add_argument("out", help="output folder (never inside a dataset's own folder)")
    parser.add_argument("--dataset", help="read INPUT as this registered dataset (afew, mmi, ...)")
    parser.add_argument("--split", default=None, help="dataset split (with --dataset)")
    parser.add_argument("--fold", default=None, help="dataset fold (with --dataset)")
    parser.add_argument("--size", type=int, default=224, help="crop side in pixels, >= 1")
    parser.add_argument(
        "--margin",
        type=float,
        default=0.25,
        help="fraction of the face size added on each side",
    )
    parser.add_argument(
        "--smoothing",
        type=float,
        default=2.0,
        help="temporal smoothing of the boxes, Gaussian sigma in frames",
    )
    parser.add_argument(
        "--stride",
        type=int,
        default=1,
        help="detect on every N-th frame and interpolate between (N >= 1)",
    )
    parser.add_argument(
        "--score-threshold", type=float, default=0.7, help="RetinaFace confidence threshold"
    )
    parser.add_argument(
        "--max-size", type=int, default=640, help="longest frame side used for detection"
    )
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all cores)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality, 1 to 100")
    parser.add_argument("--overwrite", action="store_true", help="recompute existing crops")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _error(message: str) -> None:
    from ._common import error

    error(NAME, message)


def _bad_option(args: argparse.Namespace) -> str | None:
    """The first option outside its range, as an error message, or ``None``."""
    checks = (
        ("--quality", args.quality, 1 <= args.quality <= 100, "a JPEG quality from 1 to 100"),
        ("--size", args.size, args.size >= 1, "a crop side of at least 1 pixel"),
        ("--stride", args.stride, args.stride >= 1, "1 (every frame) or more"),
        ("--threads", args.threads, args.threads >= 0, "0 (all cores) or more"),
    )
    for option, value, ok, want in checks:
        if not ok:
            return f"{option} {value}: must be {want}"
    return None


def _videos_in(folder: str, out: str) -> tuple[list[str], int]:
    """The videos of a folder INPUT, as ``predict`` expands it, without the crops folders
    already in ``out`` (frame folders there that hold a ``faces.json``: crops written into
    or above the input folder are not cropped again); and how many were left out."""
    from ..faces.cache import FACES_JSON
    from ..predict.inputs import expand_inputs, is_frame_folder

    if is_frame_folder(folder):
        return [folder], 0
    out = os.path.realpath(out).rstrip(os.sep) + os.sep
    found = [p for p in expand_inputs([folder]) if p != folder]
    videos = [
        p
        for p in found
        if not (os.path.realpath(p).startswith(out) and os.path.isfile(os.path.join(p, FACES_JSON)))
    ]
    return videos, len(found) - len(videos)


def run(args: argparse.Namespace) -> int:
    import warnings

    from ..data.base import ITEM_ERRORS, is_item_error
    from ..faces import FaceCropper, RetinaFaceDetector, precompute_face_crops
    from ..faces.cache import crop_folder_names, precompute_dataset_face_crops

    problem = _bad_option(args)
    if problem:
        _error(problem)
        return 2
    if not os.path.exists(args.input):  # the same words and code as predict's
        _error(f"1 input does not exist: {args.input}")
        return 2
    try:
        detector = RetinaFaceDetector(
            score_threshold=args.score_threshold, max_size=args.max_size, num_threads=args.threads
        )
        cropper = FaceCropper(
            detector,
            size=args.size,
            margin=args.margin,
            smoothing=args.smoothing,
            stride=args.stride,
        )
    except (ImportError, ValueError) as err:
        _error(str(err))
        return 2

    if args.dataset:
        from ..data import build_dataset

        try:
            dataset = build_dataset(args.dataset, args.input, split=args.split, fold=args.fold)
        except (ValueError, OSError) as err:
            _error(str(err))
            return 2
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                cached = precompute_dataset_face_crops(
                    dataset,
                    args.out,
                    cropper,
                    on_error="skip",
                    overwrite=args.overwrite,
                    progress=not args.no_progress,
                    quality=args.quality,
                )
            except (ValueError, RuntimeError, OSError) as err:
                _error(str(err))
                return 2
        for w in caught:
            print(f"warning: {' '.join(str(w.message).split())}", file=sys.stderr)
        print(f"{len(cached)} of {plural(len(dataset), 'video')} cropped into {args.out}")
        return 1 if cached.failures else 0

    videos = [args.input]
    if os.path.isdir(args.input):
        videos, crops = _videos_in(args.input, args.out)
        if not videos:
            what = "neither frame images nor video files"
            if crops:  # all it holds are the crops of an earlier run
                what = f"only face crops already in {args.out} ({plural(crops, 'crops folder')})"
            _error(f"{args.input}: holds {what}")
            return 2
    from tqdm.auto import tqdm

    failed = 0
    names = crop_folder_names(videos)  # a.mp4 beside a.avi: a_mp4, a_avi
    for video, name in tqdm(
        list(zip(videos, names)),
        desc="face crops",
        unit="video",
        disable=args.no_progress or len(videos) == 1,
    ):
        try:
            folder = precompute_face_crops(
                video, args.out, cropper, name=name, quality=args.quality, overwrite=args.overwrite
            )
        except ITEM_ERRORS as err:
            if not is_item_error(err):  # out of memory: every other video would fail too
                raise
            failed += 1
            print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
            continue
        print(folder)
    return 1 if failed else 0
