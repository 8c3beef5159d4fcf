"""What a prediction says about one video: :class:`Prediction` and :class:`PredictionFailure`.

A :class:`Prediction` holds the tensors the model produced for one video (class
probabilities, the per-clip emotion-intensity scores of every class, the frame weights of
the clip encoder) together with where the clips came from in the video (the sampled
original-frame indices and each clip's frame window), so it can answer "which part of the
video is the emotion-rich clip?" in frames and in seconds. It serialises to plain JSON
(:meth:`Prediction.to_dict`, :meth:`Prediction.to_json`, read back with
:meth:`Prediction.from_dict`) and draws the paper's Fig. 6 (:meth:`Prediction.plot`).

A :class:`PredictionFailure` stands in for a video that could not be predicted (missing,
corrupt, too short, no face), so a batch call returns one entry per input.

Example:
    >>> import torch
    >>> from cefl_zoo.predict import Prediction
    >>> scores = torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]])  # (C=2, N=3)
    >>> p = Prediction(
    ...     source="smile.mp4", label_names=("happiness", "neutral"),
    ...     probs=torch.tensor([0.8, 0.2]), clip_scores=scores,
    ...     frame_indices=torch.tensor([[1, 4], [11, 14], [21, 24]]),
    ...     clip_windows=torch.tensor([[0, 14], [10, 24], [20, 34]]), fps=10.0,
    ...     num_frames=35)
    >>> p.label, p.rich_clip, p.rich_clip_frames, p.rich_clip_seconds
    ('happiness', 2, (20, 34), (2.0, 3.5))
    >>> Prediction.from_dict(p.to_dict()).probabilities == p.probabilities
    True
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..hub_mixin import atomic_write

__all__ = ["Prediction", "PredictionFailure", "span_seconds"]


def _round(x: float, digits: int = 6) -> float:
    return float(round(float(x), digits))


def _seconds(first: int, last: int, fps: float | None) -> tuple[float, float] | None:
    """``[first, last]`` inclusive frames to ``(start, end)`` seconds (end exclusive)."""
    if not fps or not math.isfinite(fps) or fps <= 0:
        return None
    return (_round(first / fps, 4), _round((last + 1) / fps, 4))


def _row_seconds(
    times: torch.Tensor | None, row: int, frames: tuple[int, int] | None, fps: float | None
) -> tuple[float, float] | None:
    """Seconds of span ``row``: from ``times`` (``(M, 2)``, the video's timestamps) when
    known, else ``frames`` (first, last) at ``fps``; rounded as the JSON has them."""
    if times is not None:
        start, end = times[row].tolist()
        return (_round(start, 4), _round(end, 4))
    return None if frames is None else _seconds(*frames, fps)


def _duration(
    video_duration: float | None, num_frames: int | None, fps: float | None
) -> float | None:
    """The video's length in seconds: its container's, else ``num_frames / fps``."""
    if video_duration is not None:
        return _round(video_duration, 4)
    if num_frames is None or not fps:
        return None
    return _round(num_frames / fps, 4)


def span_seconds(
    spans: torch.Tensor, frame_times: torch.Tensor, duration: float | None = None
) -> torch.Tensor:
    """Frame spans to seconds from the video's own frame timestamps (exact for a video
    of variable frame rate, where ``frame / fps`` is not the time).

    Args:
        spans: ``(M, 2)`` first and last frame (inclusive).
        frame_times: ``(T,)`` presentation time of every frame in seconds
            (:meth:`~cefl_zoo.video.VideoReader.frame_times`).
        duration: Length of the video in seconds: where the last frame ends.

    Returns:
        ``float64 (M, 2)``: the start of each first frame and the start of the frame after
        each last one (the video's end after its last frame), so the end is exclusive.

    Example:
        >>> times = torch.tensor([0.0, 0.1, 0.2, 0.22, 0.24], dtype=torch.float64)  # 10, 50 fps
        >>> span_seconds(torch.tensor([[0, 2], [3, 4]]), times, duration=0.26).tolist()
        [[0.0, 0.22], [0.22, 0.26]]
    """
    times = torch.as_tensor(frame_times, dtype=torch.float64).reshape(-1)
    t = int(times.numel())
    spans = torch.as_tensor(spans, dtype=torch.long).reshape(-1, 2)
    if t == 0:
        raise ValueError("a video without frames has no frame times")
    if duration is None or not math.isfinite(duration) or duration <= float(times[-1]):
        step = float(times[-1] - times[-2]) if t > 1 else 0.0
        duration = float(times[-1]) + step
    ends = torch.cat([times[1:], torch.tensor([float(duration)], dtype=torch.float64)])
    first = spans[:, 0].clamp(0, t - 1)
    last = spans[:, 1].clamp(0, t - 1)
    return torch.stack([times[first], ends[last]], 1)


def dump_json(data: Any, path: str | os.PathLike | None = None, indent: int | None = 2) -> str:
    """``data`` as a JSON string; also written to ``path`` (atomically, parents made) if given.

    Strict JSON: a NaN or infinity raises ``ValueError`` instead of writing ``NaN``.
    """
    text = json.dumps(data, indent=indent, allow_nan=False)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text + "\n")
    return text


@dataclass(eq=False)
class Prediction:
    """The explained prediction for one video.

    Shapes: C classes, N clips, K frames per clip.

    Attributes:
        source: The video file or frame folder, or ``"<tensor>"``.
        label_names: Class names in the model's output order, length C.
        probs: Softmax class probabilities, ``(C,)`` float.
        clip_scores: Emotion-intensity score of every clip for every class, ``(C, N)``,
            each row sums to 1 over the clips (paper eq. 5); ``None`` for models without
            an EIAN head (the baselines).
        frame_weights: Local-global relation weight of every sampled frame, ``(N, K)``
            in ``(0, 1)`` (paper eq. 2); ``None`` for models that do not weight frames:
            the baselines, and the ``ceflnet_resnet18_sal`` ablation (``relation=False``),
            whose LRL gives every frame the same weight.
        frame_indices: Original-frame index of every sampled frame, ``(N, K)`` long;
            ``None`` for an input that was already sampled.
        clip_windows: First and last original frame (inclusive) of each clip's
            sub-video, ``(N, 2)`` long; ``None`` for an already sampled input.
        fps: Frame rate of the video (``None`` when unknown): its average rate for a
            video of variable frame rate.
        num_frames: Frames in the video (``None`` when unknown).
        clip_times: Start and end in seconds (end exclusive) of each clip's sub-video,
            ``(N, 2)`` float64, from the video's frame timestamps (:func:`span_seconds`);
            ``None``: seconds are ``frame / fps``.
        video_duration: Length of the video in seconds as its container says;
            ``None``: ``num_frames / fps``.
        model: Name of the model that made the prediction.
        thumbnails: One RGB thumbnail per clip (its middle sampled frame, face-cropped
            when a face detector was used), ``uint8 (N, 3, h, w)``; kept for
            :meth:`plot`, not serialised.
    """

    source: str
    label_names: tuple[str, ...]
    probs: torch.Tensor
    clip_scores: torch.Tensor | None = None
    frame_weights: torch.Tensor | None = None
    frame_indices: torch.Tensor | None = None
    clip_windows: torch.Tensor | None = None
    fps: float | None = None
    num_frames: int | None = None
    model: str | None = None
    thumbnails: torch.Tensor | None = field(default=None, repr=False)
    clip_times: torch.Tensor | None = None
    video_duration: float | None = None

    #: Always ``True``; :class:`PredictionFailure` has ``ok = False``.
    ok = True

    def __post_init__(self) -> None:
        self.label_names = tuple(self.label_names)
        self.probs = torch.as_tensor(self.probs, dtype=torch.float32).reshape(-1)
        c = len(self.label_names)
        if self.probs.numel() != c:
            raise ValueError(
                f"{self.source}: {self.probs.numel()} probabilities for {c} label names"
            )
        if self.clip_scores is not None:
            self.clip_scores = torch.as_tensor(self.clip_scores, dtype=torch.float32)
            if self.clip_scores.ndim != 2 or self.clip_scores.shape[0] != c:
                raise ValueError(
                    f"{self.source}: clip_scores must be (C={c}, N), got "
                    f"{tuple(self.clip_scores.shape)}"
                )
        for name in ("frame_weights",):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, torch.as_tensor(value, dtype=torch.float32))
        for name in ("frame_indices", "clip_windows"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, torch.as_tensor(value, dtype=torch.long))
        if self.clip_times is not None:
            self.clip_times = torch.as_tensor(self.clip_times, dtype=torch.float64).reshape(-1, 2)

    # -- the answer ------------------------------------------------------------------
    @property
    def label_index(self) -> int:
        """Index of the predicted class."""
        return int(self.probs.argmax())

    @property
    def label(self) -> str:
        """Name of the predicted class."""
        return self.label_names[self.label_index]

    @property
    def probability(self) -> float:
        """Probability of the predicted class."""
        return float(self.probs[self.label_index])

    @property
    def probabilities(self) -> dict[str, float]:
        """Class name -> probability, in the model's class order."""
        return {n: float(p) for n, p in zip(self.label_names, self.probs.tolist())}

    def top_k(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable classes as ``(name, probability)``, best first."""
        values, idx = self.probs.topk(min(k, self.probs.numel()))
        return [(self.label_names[i], float(v)) for v, i in zip(values.tolist(), idx.tolist())]

    @property
    def num_clips(self) -> int | None:
        """Number of clips N (``None`` when the model reports nothing per clip)."""
        for t in (self.clip_scores, self.frame_weights, self.frame_indices):
            if t is not None:
                return int(t.shape[-1] if t is self.clip_scores else t.shape[0])
        return None

    @property
    def intensity(self) -> torch.Tensor | None:
        """The emotion-intensity of each clip for the predicted class, ``(N,)``, the
        emotional activation map of the video (paper Fig. 3)."""
        return None if self.clip_scores is None else self.clip_scores[self.label_index]

    @property
    def rich_clip(self) -> int | None:
        """Index of the emotion-rich clip (paper eq. 6), ``None`` without clip scores."""
        return None if self.clip_scores is None else int(self.intensity.argmax())

    def clip_frames(self, clip: int) -> tuple[int, int] | None:
        """First and last original frame (inclusive) of clip ``clip``'s sub-video."""
        if self.clip_windows is None:
            return None
        first, last = self.clip_windows[clip].tolist()
        return (int(first), int(last))

    def clip_seconds(self, clip: int) -> tuple[float, float] | None:
        """Start and end time in seconds of clip ``clip`` (end exclusive)."""
        return _row_seconds(self.clip_times, clip, self.clip_frames(clip), self.fps)

    @property
    def rich_clip_frames(self) -> tuple[int, int] | None:
        """First and last original frame (inclusive) of the emotion-rich clip."""
        return None if self.rich_clip is None else self.clip_frames(self.rich_clip)

    @property
    def rich_clip_seconds(self) -> tuple[float, float] | None:
        """Start and end of the emotion-rich clip in seconds (end exclusive)."""
        return None if self.rich_clip is None else self.clip_seconds(self.rich_clip)

    @property
    def duration(self) -> float | None:
        """Length of the video in seconds (its container's, else ``num_frames / fps``),
        when known."""
        return _duration(self.video_duration, self.num_frames, self.fps)

    # -- serialisation ---------------------------------------------------------------
    def _clip_dict(self, n: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"index": n}
        frames = self.clip_frames(n)
        if frames is not None:
            entry["first_frame"], entry["last_frame"] = frames
            seconds = self.clip_seconds(n)
            if seconds is not None:
                entry["start_s"], entry["end_s"] = seconds
        if self.frame_indices is not None:
            entry["frames"] = [int(i) for i in self.frame_indices[n].tolist()]
        entry["frame_weights"] = (
            None
            if self.frame_weights is None
            else [_round(w) for w in self.frame_weights[n].tolist()]
        )
        if self.clip_scores is not None:
            entry["intensity"] = {
                name: _round(s)
                for name, s in zip(self.label_names, self.clip_scores[:, n].tolist())
            }
        return entry

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON description (no tensors); :meth:`from_dict` reads it back.

        Keys: ``source``, ``model``, ``label``, ``probability``, ``probabilities``
        (name -> p), ``video`` (``num_frames``, ``fps``, ``duration``),
        ``emotion_rich_clip`` (``index``, ``first_frame``, ``last_frame``, ``start_s``,
        ``end_s``, or ``null``) and ``clips`` (per clip: frame window, seconds, sampled
        ``frames``, ``frame_weights`` (``null`` for a model that does not weight frames),
        ``intensity`` per class).
        """
        rich = None
        if self.rich_clip is not None:
            rich = {"index": self.rich_clip}
            clip = self._clip_dict(self.rich_clip)
            for key in ("first_frame", "last_frame", "start_s", "end_s"):
                if key in clip:
                    rich[key] = clip[key]
            rich["intensity"] = _round(self.intensity[self.rich_clip])
        n = self.num_clips or 0
        return {
            "source": self.source,
            "model": self.model,
            "label": self.label,
            "probability": _round(self.probability),
            "probabilities": {k: _round(v) for k, v in self.probabilities.items()},
            "video": {"num_frames": self.num_frames, "fps": self.fps, "duration": self.duration},
            "emotion_rich_clip": rich,
            "clips": [self._clip_dict(i) for i in range(n)],
        }

    def to_json(self, path: str | os.PathLike | None = None, indent: int | None = 2) -> str:
        """The :meth:`to_dict` form as a JSON string; also written to ``path`` if given."""
        return dump_json(self.to_dict(), path, indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prediction:
        """Rebuild a prediction from :meth:`to_dict` output (thumbnails are not kept)."""
        names = tuple(data["probabilities"])
        clips = data.get("clips") or []

        def column(key: str) -> list | None:
            if not clips or not all(c.get(key) is not None for c in clips):
                return None  # absent, or null: the model reported none
            return [c[key] for c in clips]

        scores = column("intensity")
        windows = None
        if clips and all("first_frame" in c for c in clips):
            windows = [[c["first_frame"], c["last_frame"]] for c in clips]
        times = None
        if clips and all("start_s" in c for c in clips):
            times = [[c["start_s"], c["end_s"]] for c in clips]
        video = data.get("video") or {}
        return cls(
            source=data["source"],
            label_names=names,
            probs=torch.tensor([data["probabilities"][n] for n in names]),
            clip_scores=None
            if scores is None
            else torch.tensor([[s[n] for s in scores] for n in names]),
            frame_weights=None
            if column("frame_weights") is None
            else torch.tensor(column("frame_weights")),
            frame_indices=None if column("frames") is None else torch.tensor(column("frames")),
            clip_windows=None if windows is None else torch.tensor(windows),
            fps=video.get("fps"),
            num_frames=video.get("num_frames"),
            model=data.get("model"),
            clip_times=None if times is None else torch.tensor(times, dtype=torch.float64),
            video_duration=video.get("duration"),
        )

    def plot(self, path: str | os.PathLike, all_classes: bool = True) -> Path:
        """Write the paper's Fig. 6 for this video as a PNG.

        A strip of thumbnails (one per clip) above the emotion intensity of each clip for
        the predicted class, the emotion-rich clip highlighted in orange; with
        ``all_classes`` a heat map of every class's clip scores and the frame weights
        follow. See :func:`cefl_zoo.predict.plot.plot_prediction`.

        Returns:
            The path written.
        """
        from .plot import plot_prediction

        return plot_prediction(self, path, all_classes=all_classes)

    def summary(self) -> str:
        """One line: ``source: label (p=0.93), emotion-rich clip 4 [60-74] 2.40-3.00 s``."""
        text = f"{self.source}: {self.label} (p={self.probability:.2f})"
        if self.rich_clip is not None:
            text += f", emotion-rich clip {self.rich_clip}"
            frames, seconds = self.rich_clip_frames, self.rich_clip_seconds
            if frames is not None:
                text += f" [frames {frames[0]}-{frames[1]}]"
            if seconds is not None:
                text += f" {seconds[0]:.2f}-{seconds[1]:.2f} s"
        return text


@dataclass
class PredictionFailure:
    """A video that could not be predicted, in place of its :class:`Prediction`.

    Attributes:
        source: The input that failed.
        error: One line saying what was wrong with it and what to do.
        error_type: Name of the exception class (e.g. ``"VideoReadError"``).
    """

    source: str
    error: str
    error_type: str = "Error"

    #: Always ``False``; :class:`Prediction` has ``ok = True``.
    ok = False

    def to_dict(self) -> dict[str, Any]:
        """``{"source", "error", "error_type"}``."""
        return {"source": self.source, "error": self.error, "error_type": self.error_type}

    def to_json(self, indent: int | None = 2) -> str:
        """The :meth:`to_dict` form as JSON."""
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> str:
        """The error line."""
        return self.error
