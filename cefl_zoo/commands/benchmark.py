"""``cefl-zoo benchmark``: predictor throughput (videos/s) and where the time goes.

Without VIDEO arguments it writes ``--videos`` built-in synthetic videos to a temporary
folder first. Reports videos/s with and without the decoding threads, and the share of
time spent decoding, detecting faces (``--faces``), preprocessing and in the model.

Exit status: 0 every video was measured, 1 some videos failed (each named on stderr; the
others are measured) or the report could not be written, 2 bad usage (a bad option, a
missing input path, an unknown model).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from ._common import EXIT_CODES_HELP, optional_value_argv

NAME = "benchmark"
HELP = "measure predictor throughput (videos/s) and the time shares of its stages"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:\n  cefl-zoo benchmark --device cuda --batch-size 32\n"
        f"  cefl-zoo benchmark videos/ --mode pipelined --json bench.json\n\n{EXIT_CODES_HELP}"
    )
    parser.add_argument(
        "videos",
        nargs="*",
        metavar="VIDEO",
        help="videos or folders (default: --videos synthetic videos)",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="model name or folder (default: ceflnet_tiny.synthetic when "
        "shipped, else random-weight ceflnet_tiny: speed does not depend on "
        "the weights)",
    )
    parser.add_argument(
        "--videos",
        dest="num_videos",
        type=int,
        default=32,
        help="synthetic videos to generate when none are given",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=224,
        help="frame size of the generated synthetic videos (px; even, at least 16)",
    )
    parser.add_argument(
        "--device", default="auto", help="cuda, cuda:1, cpu or auto (default: cuda when available)"
    )
    parser.add_argument("--batch-size", type=int, default=8, help="videos per forward pass (>= 1)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="decoding threads of the pipelined run, >= 0 (default: min(4, CPUs); the "
        "pipelined run uses at least 1)",
    )
    parser.add_argument(
        "--amp",
        default="auto",
        choices=("auto", "bf16", "fp16", "none"),
        help="mixed precision (auto: bf16 on GPUs that support it, else none)",
    )
    parser.add_argument(
        "--faces",
        nargs="?",
        const="retinaface",
        default=None,
        metavar="DETECTOR",
        help="include face detection (retinaface)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed videos first, >= 0 (default: one batch of each size the timed runs use)",
    )
    parser.add_argument(
        "--mode",
        choices=("both", "sequential", "pipelined"),
        default="both",
        help="sequential: decode, preprocess and run the model one after the other (the "
        "stage shares add up to the wall time); pipelined: decoding threads run ahead of "
        "the model, as predict does (the throughput users see); both: one run of each",
    )
    parser.add_argument("--json", metavar="OUT", default=None, help="write the report as JSON")


def prepare_argv(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``--faces VIDEO``: face detection on, and VIDEO a video (not a detector name)."""
    from .predict import _is_detector

    return optional_value_argv(parser, argv, {"--faces": ("retinaface", _is_detector)})


def _default_model() -> str:
    from ..predict import DEFAULT_MODEL
    from ..registry import list_pretrained

    if any(c.status == "available" for c in list_pretrained(DEFAULT_MODEL)):
        return DEFAULT_MODEL
    return "ceflnet_tiny"


def run(args: argparse.Namespace) -> int:
    from ..predict import expand_inputs
    from ..predict.benchmark import benchmark_predictor, format_report
    from ._common import EXIT_FAILED, EXIT_OK, check_inputs, error, make_predictor, plural

    for option, value, least in (
        ("--batch-size", args.batch_size, 1),
        ("--videos", args.num_videos, 1),
        ("--workers", args.workers, 0),
        ("--warmup", args.warmup, 0),
    ):
        if value is not None and value < least:
            return error(NAME, f"{option} must be >= {least}, got {value}")
    if args.videos:
        inputs = expand_inputs(args.videos)
        check_inputs(args.videos, inputs)
    else:
        from ..data.synthetic import check_video_size

        try:
            check_video_size(args.size)
        except ValueError as err:
            return error(NAME, f"--size {args.size}: {err}")
    name = args.model or _default_model()
    predictor = make_predictor(
        name,
        device=args.device,
        faces=args.faces,
        batch_size=args.batch_size,
        num_workers=args.workers,
        amp=args.amp,
        show_warnings=False,  # random weights are fine for a speed test
    )
    modes = ("sequential", "pipelined") if args.mode == "both" else (args.mode,)
    with tempfile.TemporaryDirectory(prefix="cefl-zoo-bench-") as tmp:
        if args.videos:
            videos = inputs
        else:
            from ..data.synthetic import write_synthetic_dataset

            print(
                f"writing {plural(args.num_videos, 'synthetic video')} of {args.size} px ...",
                file=sys.stderr,
            )
            write_synthetic_dataset(
                tmp,
                num_videos=args.num_videos,
                seed=0,
                size=args.size,
                progress=sys.stderr.isatty(),
            )
            folder = os.path.join(tmp, "videos")
            videos = sorted(os.path.join(folder, f) for f in os.listdir(folder))
        report = benchmark_predictor(predictor, videos, warmup=args.warmup, modes=modes)
    report["source"] = "arguments" if args.videos else f"synthetic {args.size} px"
    print(format_report(report))
    status = EXIT_OK
    if args.json:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w") as fh:
                json.dump(report, fh, indent=2)
                fh.write("\n")
        except OSError as err:
            status = error(NAME, f"cannot write the report to {args.json}: {err}", EXIT_FAILED)
    # Each failed video once (every mode predicts the same videos), file and reason.
    failures = {}
    for mode in report["modes"].values():
        for failure in mode["failures"]:
            failures.setdefault((failure["source"], failure["error"]), failure)
    for failure in failures.values():
        print(f"error: {failure['error']}", file=sys.stderr)
    if any(m["videos_ok"] == 0 for m in report["modes"].values()):
        return error(
            NAME,
            f"every video failed ({plural(len(videos), 'video')}); nothing was measured",
            EXIT_FAILED,
        )
    if failures:  # measured on the others; like predict, some inputs failed
        failed = len({source for source, _ in failures})
        print(
            f"{failed} of {plural(len(videos), 'video')} failed; measured on the others",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return status
