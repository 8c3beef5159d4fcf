"""``cefl-zoo predict VIDEO [VIDEO ...]``: expression, emotion-rich clip, timeline.

Prints a table (file, label, probability, emotion-rich clip with its seconds); ``--json``
writes every result, ``--plot DIR`` one PNG per video (the paper's Fig. 6, or the
timeline with ``--window``). Folders expand to the videos and frame folders inside.

``--json`` writes one object, ``{"schema_version": 1, "model", "device", "mode",
"results": [...]}``, with one entry per video in input order: a
:meth:`~cefl_zoo.predict.Prediction.to_dict` (the envelope's ``mode`` is ``"clips"``), a
:meth:`~cefl_zoo.predict.Timeline.to_dict` (``--window``), or for a video that failed a
:meth:`~cefl_zoo.predict.PredictionFailure.to_dict` (``{"source", "error",
"error_type"}``); each entry gets ``"ok"`` (``true`` / ``false``) after ``"source"``.
The predict guide documents every key.

Exit status: 0 when every video was predicted, 1 when some failed or a plot or the JSON
could not be written (each failure is one line on stderr; every result that was made is
still printed and saved), 2 for a usage error, before anything is predicted (bad option,
an input path that does not exist or a folder without videos, unknown model, unknown
face detector or missing face-detector extra, CUDA asked for but not available, a
``--window`` shorter than the model needs, a ``--json`` path that is a folder, an input or
a file in an input frame folder, or whose folder cannot be created or written to, a
``--plot`` folder that is an input folder or inside one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any

from ._common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    error,
    one_line,
    optional_value_argv,
    plural,
)

NAME = "predict"
HELP = "predict the expression of videos (table, JSON, Fig. 6 plots, long-video timelines)"

#: Version of the ``--json`` output's layout (the envelope and its entries).
JSON_SCHEMA_VERSION = 1

_EPILOG = f"""examples:
  cefl-zoo predict clip.mp4
  cefl-zoo predict videos/ --json results.json --plot plots/
  cefl-zoo predict --faces clip.mp4 --model hf-hub:org/repo
  cefl-zoo predict interview.mp4 --window 4.2s --stride 1s --plot plots/

--json writes {{"schema_version": {JSON_SCHEMA_VERSION}, "model", "device", "mode", "results"}}, one
entry per video with "ok"; failed videos are {{"source", "ok": false, "error", "error_type"}}
(see the predict guide for every key).

{EXIT_CODES_HELP}"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = _EPILOG
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
        "pip install 'cefl-zoo[faces]'). Without it frames are used as they are. A video "
        "right after --faces is a video, not a detector name",
    )
    parser.add_argument(
        "--window",
        nargs="?",
        const="105",
        default=None,
        metavar="LEN",
        help="long-video mode: score every window of LEN frames ('105', the default when "
        "LEN is left out) or seconds ('4.2s') and report a timeline. --window VIDEO "
        "uses the default length on VIDEO; --window=LEN is always read as a length",
    )
    parser.add_argument(
        "--stride",
        default=None,
        metavar="STEP",
        help="with --window: frames or seconds ('1s') between windows "
        "(default: 75 of 105 frames, the part the sampler reads)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="videos (windows with --window) per forward pass"
    )
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
        help="mixed precision (auto: bf16 on GPUs that support it, else none)",
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help="frame rate of frame folders, > 0 (default: 25; video files carry their own)",
    )
    parser.add_argument(
        "--min-frames",
        type=int,
        default=None,
        help="accept videos (and --window windows) with at least this many frames; 1: any, "
        "by repeating frames (default: one clip's frames, the model's frames_per_clip)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-q", "--quiet", action="store_true", help="no table on stdout")


def _is_span(value: str) -> bool:
    from ..predict.timeline import parse_span

    try:
        parse_span(value, fps=25.0)
    except ValueError:
        return False
    return True


def _is_detector(value: str) -> bool:
    from ..predict.predictor import FACE_DETECTORS

    return value.lower() in FACE_DETECTORS


def prepare_argv(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``--faces VIDEO`` and ``--window VIDEO``: the option without a value, then the video
    (see :func:`~cefl_zoo.commands._common.optional_value_argv`)."""
    return optional_value_argv(
        parser,
        argv,
        {"--faces": ("retinaface", _is_detector), "--window": ("105", _is_span)},
    )


def _error(message: str, code: int = EXIT_USAGE) -> int:
    return error(NAME, message, code)


def _is_stdout(path: str) -> bool:
    """Whether ``path`` names this process's standard output (``/dev/stdout``)."""
    try:
        here, there = os.stat(path), os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # (no such path; stdout has no file)
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _predict_all(args: argparse.Namespace, predictor: Any, videos: list[str], progress: bool):
    """Every input's :class:`~cefl_zoo.predict.Prediction` (or timeline), or its failure."""
    import torch
    from tqdm.auto import tqdm

    from ..predict import PredictionFailure
    from ..predict.predictor import _one_line
    from ..video.sampling import VideoTooShortError

    if args.window is None:
        return predictor.predict_many(videos, fps=args.fps, progress=progress)
    results: list[Any] = []
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
        except VideoTooShortError as err:  # the window, not the video, is too short
            message = _short_window(args, predictor, path, err)
            results.append(PredictionFailure(path, message, type(err).__name__))
        except torch.OutOfMemoryError:  # every other video would fail the same way
            raise
        except Exception as err:  # noqa: BLE001 - one line per failed file; others go on
            results.append(PredictionFailure(path, _one_line(err, path), type(err).__name__))
    return results


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
    """A distinct ``DIR/<name>.png`` for every successful result, the same on every run.

    A video's name is its file name without the extension (a frame folder's: the folder
    name). The first video with a name keeps it; later ones get ``<name>-2``, ``-3``, ...,
    skipping every name another video has, so ``a/x.mp4``, ``b/x.mp4`` and ``x-2.mp4``
    become ``x.png``, ``x-3.png`` and ``x-2.png``. Names are compared case-insensitively
    (macOS and Windows file systems).
    """
    stems: dict[int, str] = {}
    for i, r in enumerate(results):
        if not r.ok:
            continue
        base = os.path.basename(str(r.source).rstrip("/\\")) or f"video{i}"
        stems[i] = os.path.splitext(base)[0] if os.path.isfile(str(r.source)) else base
    taken: set[str] = set()
    names: dict[int, str] = {}
    for i, stem in stems.items():  # first holders keep their names
        if stem.casefold() not in taken:
            taken.add(stem.casefold())
            names[i] = stem
    for i, stem in stems.items():
        if i in names:
            continue
        n = 2
        while f"{stem}-{n}".casefold() in taken:
            n += 1
        taken.add(f"{stem}-{n}".casefold())
        names[i] = f"{stem}-{n}"
    return {i: os.path.join(folder, f"{names[i]}.png") for i in sorted(names)}


def _json_entry(result: Any) -> dict[str, Any]:
    """One ``results`` entry of ``--json``: ``to_dict()`` with ``"ok"`` after ``"source"``."""
    data = result.to_dict()
    return {"source": data.get("source"), "ok": bool(result.ok), **data}


def _unwritable(path: str) -> str | None:
    """Why the file ``path`` cannot be written (checked before predicting), or ``None``.

    Checked: ``path`` is not a folder; an existing ``path`` is writable, or not a regular
    file (``/dev/stdout``, a pipe such as ``>(wc -c)``); for a new file, its nearest
    existing folder is a folder in which a file can be created (a temporary file is made
    there and removed). Plots are extra; one that cannot be written is reported after the
    results are out.
    """
    import tempfile

    if os.path.isdir(path):
        return f"{path} is a folder; give a file name such as {os.path.join(path, 'results.json')}"
    if os.path.exists(path):
        if os.path.isfile(path) and not os.access(path, os.W_OK):
            return f"cannot write {path}: the file is not writable"
        return None
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"cannot create {path}: {parent} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__  # without the temporary file's name
        return f"cannot write {path}: no file can be created in {parent} ({reason})"
    return None


def _inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (after resolving links)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _hidden_below(path: str, folder: str) -> bool:
    """Whether a folder of ``path`` below ``folder`` is hidden (its name starts with
    ``.``), so that :func:`~cefl_zoo.predict.expand_inputs` never reads it."""
    rel = os.path.relpath(os.path.realpath(path), os.path.realpath(folder))
    return any(part.startswith(".") for part in rel.split(os.sep) if part != ".")


def _clashes_with_inputs(args: argparse.Namespace, videos: list[str]) -> str | None:
    """Why ``--json`` or ``--plot`` would write over or into the inputs, or ``None``.

    ``--json`` must not be an input (it would overwrite the video) nor lie in an input
    frame folder (it would be a file of the video). ``--plot`` must not be an input
    folder nor lie inside one: its PNGs would be read as frames on the next run (a hidden
    folder in it, such as ``videos/.plots``, is never read, so it may hold plots).
    """
    from ..predict.inputs import is_frame_folder

    inputs = list(dict.fromkeys([*args.videos, *videos]))
    if args.json and args.json != "-":
        for src in inputs:
            if _inside(args.json, src) and (os.path.isfile(src) or is_frame_folder(src)):
                where = "is the input" if os.path.isfile(src) else "lies in the input frame folder"
                return (
                    f"--json {args.json}: {where} {src}; writing the results there would "
                    "damage the input. Give another file, e.g. --json results.json"
                )
    if args.plot:
        for src in inputs:
            if os.path.isdir(src) and _inside(args.plot, src) and not _hidden_below(args.plot, src):
                return (
                    f"--plot {args.plot}: is the input folder {src} or inside it; its PNGs "
                    "would be read as video frames on the next run. Write the plots to a "
                    "folder outside the inputs, e.g. --plot plots"
                )
    return None


def _write_json(payload: dict[str, Any], path: str) -> str | None:
    """Write ``payload`` to ``path``; the error as one line, or ``None``."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as fh:
            json.dump(payload, fh, indent=2, allow_nan=False)
            fh.write("\n")
    except (OSError, ValueError) as err:  # ValueError: a NaN, which is not JSON
        return f"cannot write the results to {path}: {one_line(err)}"
    return None


def _window_help(min_frames: int) -> str:
    return (
        f"use a --window of at least {min_frames} frames, or --min-frames 1 to accept "
        "shorter windows by repeating frames"
    )


def _check_window_frames(args: argparse.Namespace, predictor: Any) -> None:
    """A ``--window`` in frames shorter than the sampler accepts is a usage error."""
    from ..predict import parse_span
    from ._common import CommandError

    if str(args.window).strip().lower().endswith("s"):
        return  # seconds: depends on each video's frame rate, checked per video
    length = parse_span(args.window, fps=None)
    need = predictor.sampler.min_frames
    if length < need:
        raise CommandError(
            f"--window {args.window}: a window of {plural(length, 'frame')} is shorter than "
            f"the {need} frames the model needs per window (one clip of "
            f"{predictor.sampler.frames_per_clip} frames); {_window_help(need)}"
        )


def _short_window(args: argparse.Namespace, predictor: Any, path: str, err: Any) -> str:
    """The error line for a video whose ``--window`` (in seconds) has too few frames."""
    from ..video import open_video

    try:
        with open_video(path) as reader:
            info = reader.info
        video = f" (the video has {plural(int(info.num_frames), 'frame')} at {info.fps:g} fps)"
    except Exception:  # noqa: BLE001 - the frame count only makes the message better
        video = ""
    need = predictor.sampler.min_frames
    return (
        f"{path}: --window {args.window} is {plural(err.num_frames, 'frame')} of this "
        f"video{video}, fewer than the {need} frames the model needs per window; "
        f"{_window_help(need)}"
    )


def run(args: argparse.Namespace) -> int:
    from ..predict import DEFAULT_MODEL, expand_inputs
    from ..predict.predictor import _one_line
    from ._common import check_inputs, make_predictor

    if args.batch_size < 1:
        return _error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.workers is not None and args.workers < 0:
        return _error(f"--workers must be >= 0, got {args.workers}")
    if args.min_frames is not None and args.min_frames < 1:
        return _error(f"--min-frames must be >= 1, got {args.min_frames}")
    if args.fps is not None and not (math.isfinite(args.fps) and args.fps > 0):
        return _error(f"--fps must be a frame rate > 0, got {args.fps:g}")
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
    if args.json and args.json != "-" and _is_stdout(args.json):
        args.json = "-"  # /dev/stdout: the JSON alone, as with -
    if args.json and args.json != "-":
        problem = _unwritable(args.json)
        if problem:
            return _error(f"--json: {problem}")
    videos = expand_inputs(args.videos)
    check_inputs(args.videos, videos)
    problem = _clashes_with_inputs(args, videos)
    if problem:
        return _error(problem)

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
    if args.window is not None:
        _check_window_frames(args, predictor)

    import torch

    progress = not args.no_progress
    try:
        results = _predict_all(args, predictor, videos, progress)
    except torch.OutOfMemoryError as err:
        other = "" if predictor.device.type == "cpu" else ", or --device cpu"
        return _error(
            f"out of memory on {predictor.device} ({_one_line(err, '')}): pass a smaller "
            f"--batch-size{other}",
            code=1,
        )
    elapsed = time.perf_counter() - start

    # Results first: a plot that cannot be written must not cost the predictions.
    payload = {
        "schema_version": JSON_SCHEMA_VERSION,
        "model": predictor.model_name,
        "device": str(predictor.device),
        "mode": "timeline" if args.window is not None else "clips",
        "results": [_json_entry(r) for r in results],
    }
    output_errors = []
    if args.json == "-":
        print(json.dumps(payload, indent=2, allow_nan=False))
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
