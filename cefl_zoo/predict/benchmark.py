"""Predictor throughput: videos per second, and where the time goes.

:func:`benchmark_predictor` runs :meth:`~cefl_zoo.predict.Predictor.predict_many` over a
list of videos twice:

* ``sequential`` - no decoding threads (``num_workers=0``): decode, detect faces,
  preprocess and run the model one after the other. The stage times add up to the wall
  time, so their shares say where the time goes.
* ``pipelined`` - the predictor's decoding threads run ahead of the model (the way the
  predictor normally works); its wall time gives the throughput users see. Stage times
  are summed over threads and overlap, so here they measure busy time, not wall time.

Used by ``cefl-zoo benchmark`` and ``benchmarks/predict_speed.py``.

Example:
    >>> import torch, cefl_zoo
    >>> from cefl_zoo.predict.benchmark import benchmark_predictor
    >>> predictor = cefl_zoo.Predictor(cefl_zoo.create_model("ceflnet_tiny"), device="cpu")
    >>> videos = [torch.zeros(30, 3, 64, 64, dtype=torch.uint8)]
    >>> report = benchmark_predictor(predictor, videos, warmup=0)
    >>> sorted(report["modes"]), report["videos"]
    (['pipelined', 'sequential'], 1)
    >>> abs(sum(report["modes"]["sequential"]["shares"].values()) - 1) < 1e-6
    True
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from ..commands._common import plural
from .predictor import Predictor

__all__ = ["benchmark_predictor", "format_report"]


def _run(predictor: Predictor, videos: Sequence[Any], workers: int) -> dict[str, Any]:
    saved = predictor.num_workers
    predictor.num_workers = workers
    predictor.reset_timings()
    try:
        if predictor.device.type == "cuda":
            torch.cuda.synchronize(predictor.device)
        start = time.perf_counter()
        results = predictor.predict_many(videos, progress=False)
        if predictor.device.type == "cuda":
            torch.cuda.synchronize(predictor.device)
        wall = time.perf_counter() - start
    finally:
        predictor.num_workers = saved
    ok = sum(r.ok for r in results)
    timings = predictor.timings
    return {
        "num_workers": workers,
        "wall_s": wall,
        "videos_ok": ok,
        "videos_failed": len(results) - ok,
        "videos_per_s": ok / wall if wall > 0 else None,
        "frames_decoded_per_s": timings.frames / wall if wall > 0 else None,
        "stages_s": {
            "decode": timings.decode,
            "faces": timings.faces,
            "preprocess": timings.preprocess,
            "model": timings.model,
        },
        "shares": timings.shares(),
        "errors": sorted({r.error for r in results if not r.ok})[:5],
        "failures": [r.to_dict() for r in results if not r.ok],
    }


def benchmark_predictor(
    predictor: Predictor,
    videos: Sequence[Any],
    warmup: int | None = None,
    modes: Sequence[str] = ("sequential", "pipelined"),
) -> dict[str, Any]:
    """Measure a predictor's throughput on ``videos``.

    Args:
        predictor: The predictor (its model, device, batch size, face detector).
        videos: Inputs for :meth:`~cefl_zoo.predict.Predictor.predict_many`.
        warmup: Videos predicted first, untimed (allocator, thread pools, onnxruntime,
            oneDNN/cuDNN kernels). ``None``: one full batch and one batch of the size of
            the timed runs' last batch, so every batch shape is warm.
        modes: ``"sequential"`` and/or ``"pipelined"`` (see the module docstring).

    Returns:
        ``{"videos", "frames_per_video", "model", "device", "amp", "batch_size",
        "faces", "torch_threads", "modes": {mode: {"wall_s", "videos_per_s",
        "frames_decoded_per_s", "stages_s", "shares", "num_workers", "videos_failed",
        "failures": [{"source", "error", "error_type"}], ...}}}``.
    """
    unknown = set(modes) - {"sequential", "pipelined"}
    if unknown:
        raise ValueError(f"unknown modes {sorted(unknown)}; use 'sequential' and/or 'pipelined'")
    videos = list(videos)
    if not videos:
        raise ValueError("benchmark_predictor needs at least one video")
    if warmup is None:
        bs = predictor.batch_size
        for size in sorted({min(bs, len(videos)), len(videos) % bs} - {0}):
            predictor.predict_many(videos[:size], progress=False)
    elif warmup > 0:
        predictor.predict_many(videos[:warmup], progress=False)
    report: dict[str, Any] = {
        "videos": len(videos),
        "frames_per_video": predictor.sampler.num_clips * predictor.sampler.frames_per_clip,
        "model": predictor.model_name,
        "input_size": list(predictor.model.pretrained_cfg.input_size),
        "device": str(predictor.device),
        "amp": predictor.amp,
        "batch_size": predictor.batch_size,
        "faces": type(predictor.face_cropper).__name__ if predictor.face_cropper else None,
        "torch_threads": torch.get_num_threads(),
        "modes": {},
    }
    for mode in modes:
        workers = 0 if mode == "sequential" else max(1, predictor.num_workers)
        report["modes"][mode] = _run(predictor, videos, workers)
    return report


def format_report(report: dict[str, Any]) -> str:
    """A few lines of text: videos/s and stage shares per mode."""
    header = (
        f"{plural(report['videos'], 'video')}, {report['frames_per_video']} frames each; model "
        f"{report['model']} at {report['input_size'][-1]} px on {report['device']} "
        f"(amp {report['amp']}, batch {report['batch_size']}, faces {report['faces'] or 'off'}, "
        f"{report['torch_threads']} torch threads)"
    )
    lines = [header]
    for mode, r in report["modes"].items():
        shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["shares"].items())
        vps = r["videos_per_s"]
        lines.append(
            f"  {mode:<10} workers={r['num_workers']}: "
            f"{(f'{vps:.2f}' if vps is not None else '-')} videos/s, "
            f"{r['wall_s']:.2f} s wall; time shares: {shares}"
            + (f"; {r['videos_failed']} failed" if r["videos_failed"] else "")
        )
    return "\n".join(lines)
