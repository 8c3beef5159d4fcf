"""``cefl-zoo predict VIDEO [VIDEO ...]``: expression, emotion-rich clip, timeline.

Prints a table (file, label, probability, emotion-rich clip with its seconds); ``--json``
writes every result, ``--plot DIR`` one PNG per video (the paper's Fig. 6, or the
timeline with ``--window``). Folders expand to the videos and frame folders inside.

Exit status: 0 when every video was predicted, 1 when some failed or a plot or the JSON
could not be written (each failure is one line on stderr; every result that was made is
still printed and saved), 2 for a usage error (bad option, unknown model, unknown face
detector or missing face-detector extra, CUDA asked for but not available, an output path
that cannot be written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from ._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, error, one_line, plural

NAME = "predict"
HELP = "predict the expression of videos (table, JSON, Fig. 6 plots, long-video timelines)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "videos",
        nargs="+",
        metavar="VIDEO",
        help="video files, frame folders, or folders to search for them",
    )
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME|PATH",
        help="weight set (arch.tag; a bare arch loads its default weight set, as "
        "create_model(arch, pretrained=True) does), a folder saved with save_pretrained "
        "(or local-dir:PATH), or hf-hub:org/repo (default: ceflnet_tiny.synthetic, shipped "
        "with the package)",
    )
    parser.add_argument(
        "--json",
        metavar="OUT",
        default=None,
        help="write all results as JSON to OUT ('-': stdout, no table)",
    )
    parser.add_argument(
        "--plot",
        metavar="DIR",
        default=None,
        help="write one PNG per video to DIR (Fig. 6, or the timeline)",
    )
    parser.add_argument(
        "--device", default="auto", help="cuda, cuda:1, cpu or auto (default: cuda when available)"
    )
    parser.add_argument(
        "--faces",
        nargs="?",
        const="retinaface",
        default=None,
        metavar="DETECTOR",
        help="crop faces first (default detector: retinaface; needs "
        "pip install 'cefl-zoo[faces]'). Without it frames are used as they are",
    )
    parser.add_argument(
        "--window",
        nargs="?",
        const="105",
        default=None,
        metavar="LEN",
        help="long-video mode: score every window of LEN frames ('105', default) or seconds "
        "('4.2s') and report a timeline",
    )
    parser.add_argument(
        "--stride",
        default=None,
        metavar="STEP",
        help="with --window: frames or seconds ('1s') between windows "
        "(default: 75 of 105 frames, the part the sampler reads)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="videos per forward pass")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="decoding threads (default: min(4, CPUs); 0: none)",
    )
    parser.add_argument(
        "--amp",
        default="auto",
        choices=("auto", "bf16", "fp16", "none"),
        help="mixed precision (auto: bf16 on GPUs that support it)",
    )
    parser.add_argument(
        "--fps", type=float, default=None, help="frame rate of frame folders (default 25)"
    )
    parser.add_argument(
        "--min-frames",
        type=int,
        default=None,
        help="accept videos with at least this many frames (1: any)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-q", "--quiet", action="store_true", help="no table on stdout")


def _error(message: str) -> int:
    return error(NAME, message, EXIT_USAGE)


def _model_name(args: argparse.Namespace) -> str:
    from ..predict import DEFAULT_MODEL

    return args.model or DEFAULT_MODEL


def _short(path: str, width: int = 48) -> str:
    return path if len(path) <= width else "..." + path[-(width - 3) :]


def _table(results: list[Any]) -> str:
    """A plain-text table of predictions, timelines and failures."""
    rows = []
    for r in results:
        if not r.ok:
            rows.append((r.source, "FAILED", "", "see error below"))
        elif hasattr(r, "segments"):  # Timeline
            segs = r.segments()
            rich = f"{plural(len(r), 'window')}, {plural(len(segs), 'segment')}"
            rows.append((r.source, r.label, f"{float(r.mean_probs.max()):.2f}", rich))
        else:
            rich = "-"
            if r.rich_clip is not None:
                rich = f"clip {r.rich_clip}"
                if r.rich_clip_seconds is not None:
                    rich += f" ({r.rich_clip_seconds[0]:.2f}-{r.rich_clip_seconds[1]:.2f} s)"
                elif r.rich_clip_frames is not None:
                    rich += f" (frames {r.rich_clip_frames[0]}-{r.rich_clip_frames[1]})"
            rows.append((r.source, r.label, f"{r.probability:.2f}", rich))
    header = ("file", "label", "p", "emotion-rich clip")
    cells = [header] + [(_short(a), b, c, d) for a, b, c, d in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(3)]
    lines = []
    for j, (a, b, c, d) in enumerate(cells):
        lines.append(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d}".rstrip())
        if j == 0:
            lines.append("-" * (sum(widths) + 6 + len(header[3])))
    return "\n".join(lines)


def _plot_paths(results: list[Any], folder: str) -> dict[int, str]:
    """A unique ``DIR/<name>.png`` for every successful result."""
    used: dict[str, int] = {}
    out = {}
    for i, r in enumerate(results):
        if not r.ok:
            continue
        base = os.path.basename(str(r.source).rstrip("/\\")) or f"video{i}"
        stem = os.path.splitext(base)[0] if os.path.isfile(str(r.source)) else base
        count = used.get(stem, 0) + 1
        used[stem] = count
        out[i] = os.path.join(folder, f"{stem}.png" if count == 1 else f"{stem}-{count}.png")
    return out


def _unwritable(path: str) -> str | None:
    """Why the file ``path`` cannot be written (checked before predicting), or ``None``.

    Only ``--json`` is checked up front: it holds the results. Plots are extra; one that
    cannot be written is reported after the results are out.
    """
    if os.path.isdir(path):
        return f"{path} is a folder; give a file name such as {os.path.join(path, 'results.json')}"
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"cannot create {path}: {parent} is a file, not a folder"
    return None


def _write_json(payload: dict[str, Any], path: str) -> str | None:
    """Write ``payload`` to ``path``; the error as one line, or ``None``."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as fh:
            json.dump(payload, fh, indent=2)
            fh.write("\n")
    except OSError as err:
        return f"cannot write the results to {path}: {one_line(err)}"
    return None


def run(args: argparse.Namespace) -> int:
    from ..predict import DEFAULT_MODEL, PredictionFailure, expand_inputs
    from ..predict.predictor import _one_line
    from ._common import make_predictor

    if args.batch_size < 1:
        return _error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.workers is not None and args.workers < 0:
        return _error(f"--workers must be >= 0, got {args.workers}")
    if args.min_frames is not None and args.min_frames < 1:
        return _error(f"--min-frames must be >= 1, got {args.min_frames}")
    if args.stride is not None and args.window is None:
        return _error("--stride only applies with --window")
    if args.window is not None:
        from ..predict import parse_span

        for opt, value in (("--window", args.window), ("--stride", args.stride)):
            if value is None:
                continue
            try:
                parse_span(value, fps=25.0)
            except ValueError as err:
                return _error(f"{opt}: {err}")
    if args.json and args.json != "-":
        problem = _unwritable(args.json)
        if problem:
            return _error(f"--json: {problem}")

    name = _model_name(args)
    start = time.perf_counter()
    hint = ""
    if args.model is None:
        hint = f" (the default model {DEFAULT_MODEL} could not be loaded; pass --model)"
    predictor = make_predictor(
        name,
        device=args.device,
        faces=args.faces,
        hint=hint,
        batch_size=args.batch_size,
        num_workers=args.workers,
        amp=args.amp,
        min_frames=args.min_frames,
        fps=args.fps or 25.0,
        progress=not args.no_progress,
    )

    videos = expand_inputs(args.videos)
    progress = not args.no_progress
    if args.window is None:
        results: list[Any] = predictor.predict_many(videos, fps=args.fps, progress=progress)
    else:
        from tqdm.auto import tqdm

        results = []
        for path in tqdm(
            videos,
            unit="video",
            desc="timeline",
            dynamic_ncols=True,
            disable=not progress or len(videos) < 2,
        ):
            try:
                results.append(
                    predictor.predict_timeline(
                        path,
                        window=args.window,
                        stride=args.stride,
                        fps=args.fps,
                        progress=progress and len(videos) == 1,
                    )
                )
            except Exception as err:  # noqa: BLE001 - one line per failed file; others go on
                results.append(PredictionFailure(path, _one_line(err, path), type(err).__name__))
    elapsed = time.perf_counter() - start

    # Results first: a plot that cannot be written must not cost the predictions.
    payload = {
        "model": predictor.model_name,
        "device": str(predictor.device),
        "mode": "timeline" if args.window is not None else "clips",
        "results": [r.to_dict() for r in results],
    }
    output_errors = []
    if args.json == "-":
        print(json.dumps(payload, indent=2))
    elif args.json:
        problem = _write_json(payload, args.json)
        if problem:
            output_errors.append(problem)
    if (not args.quiet or output_errors) and args.json != "-":  # -q, but the JSON failed
        print(_table(results))
    plots = _plot_paths(results, args.plot) if args.plot else {}
    if plots:
        try:
            os.makedirs(args.plot, exist_ok=True)
        except OSError as err:
            output_errors.append(f"--plot: cannot create the folder {args.plot}: {one_line(err)}")
            plots = {}
        for i, target in plots.items():
            try:
                results[i].plot(target)
            except Exception as err:  # noqa: BLE001 - reported; the prediction is kept
                output_errors.append(
                    f"{results[i].source}: predicted, but cannot write its plot {target}: "
                    f"{one_line(err) or type(err).__name__}"
                )
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"error: {r.error}", file=sys.stderr)
    for problem in output_errors:
        print(f"error: {problem}", file=sys.stderr)
    ok = len(results) - len(failed)
    print(
        f"{ok} of {plural(len(results), 'video')} predicted with "
        f"{predictor.model_name} on {predictor.device} in {elapsed:.1f} s"
        + (f"; {len(failed)} failed" if failed else "")
        + (f"; {plural(len(output_errors), 'output')} not written" if output_errors else ""),
        file=sys.stderr,
    )
    return EXIT_FAILED if failed or output_errors else EXIT_OK
