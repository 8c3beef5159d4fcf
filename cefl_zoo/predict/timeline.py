"""Sliding-window prediction of long, untrimmed videos: window arithmetic and the result.

CEFLNet reads a video as one 105-frame span (paper section 4.1). A long video (a
10-minute interview) is scored window by window: every ``length`` frames (105 by
default) starting every ``stride`` frames, each window sampled with the evaluation
sampler as if it were a video of its own. The result, a :class:`Timeline`, holds the
class probabilities of every window over time.

* :func:`parse_span` - ``105`` (frames) or ``"4.2s"`` (seconds) to frames.
* :func:`window_starts` - where the windows start.
* :class:`Timeline` - the per-window probabilities with ``to_dict`` / ``to_json`` /
  ``plot``.

Example:
    >>> window_starts(300, length=105, stride=50)  # the last window ends at the last frame
    [0, 50, 100, 150, 195]
    >>> parse_span("4.2s", fps=25), parse_span(105, fps=25), parse_span("60", fps=30)
    (105, 105, 60)
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..commands._common import plural
from .result import _duration, _round, _row_seconds, dump_json

__all__ = ["Timeline", "parse_span", "window_starts"]


def parse_span(value: float | str, fps: float | None) -> int:
    """A window length or stride in frames.

    Args:
        value: An ``int`` or a digit string is a number of frames (``105``, ``"105"``,
            ``"105f"``); a string ending in ``s`` is seconds (``"4.2s"``), converted
            with ``fps`` and rounded to the nearest frame (at least 1).
        fps: Frame rate of the video (needed for seconds).

    Raises:
        ValueError: For anything else, a value below one frame, or seconds without an
            fps.

    Example:
        >>> parse_span("2s", fps=29.97), parse_span("35f", fps=None)
        (60, 35)
    """
    text = str(value).strip().lower()
    try:
        if text.endswith("s"):
            seconds = float(text[:-1])
            if not fps or fps <= 0:
                raise ValueError(f"a span in seconds ({value!r}) needs the video's frame rate")
            if not math.isfinite(seconds) or seconds <= 0:
                raise ValueError
            frames = max(1, round(seconds * fps))
        else:
            number = float(text.removesuffix("f"))
            if not number.is_integer():
                raise ValueError
            frames = int(number)
    except ValueError as err:
        if "frame rate" in str(err):
            raise
        raise ValueError(
            f"cannot read {value!r} as a window span: give frames (105, '105f') or seconds ('4.2s')"
        ) from None
    if frames < 1:
        raise ValueError(f"a window span must be at least 1 frame, got {value!r}")
    return frames


def window_starts(num_frames: int, length: int, stride: int) -> list[int]:
    """First frame of every window of ``length`` frames, ``stride`` apart.

    Windows cover the whole video: when the stride does not land the last window on the
    last frame, one more window ending there is added. A video no longer than one window
    gives the single window ``[0]`` (its length is then the video's).

    Args:
        num_frames: Frames in the video.
        length: Frames per window.
        stride: Frames between window starts.

    Returns:
        Increasing start frames.

    Example:
        >>> window_starts(105, 105, 35), window_starts(50, 105, 35), window_starts(210, 105, 105)
        ([0], [0], [0, 105])
    """
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if length < 1 or stride < 1:
        raise ValueError(f"window length and stride must be >= 1, got {length} and {stride}")
    if num_frames <= length:
        return [0]
    last = num_frames - length
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


@dataclass(eq=False)
class Timeline:
    """Class probabilities over time for a long video, one row per window.

    Shapes: W windows, C classes.

    Attributes:
        source: The video.
        label_names: Class names, length C.
        starts: First frame of each window, ``(W,)`` long.
        ends: Last frame (inclusive) of each window, ``(W,)`` long.
        probs: Class probabilities of each window, ``(W, C)``; a row of NaN for a window
            that was not scored: with face detection, one in which no face was found
            (see :attr:`~cefl_zoo.predict.Timeline.scored`).
        rich_clip_frames: First and last frame of each window's emotion-rich clip,
            ``(W, 2)`` long (``-1`` for a window not scored); ``None`` for models without
            clip scores.
        fps: Frame rate of the video (its average rate for a variable frame rate).
        num_frames: Frames in the video.
        window: Window length in frames, as used: when every window has the same length
            (``ends - starts + 1``), that length, so a video shorter than the requested
            window records its own length.
        stride: Frames between window starts.
        model: Name of the model.
        window_times: Start and end in seconds (end exclusive) of each window,
            ``(W, 2)`` float64, from the video's frame timestamps (exact for a variable
            frame rate); ``None``: ``frame / fps``.
        rich_clip_times: The same for each window's emotion-rich clip, ``(W, 2)``.
        video_duration: Length of the video in seconds; ``None``: ``num_frames / fps``.
    """

    source: str
    label_names: tuple[str, ...]
    starts: torch.Tensor
    ends: torch.Tensor
    probs: torch.Tensor
    rich_clip_frames: torch.Tensor | None = None
    fps: float | None = None
    num_frames: int | None = None
    window: int | None = None
    stride: int | None = None
    model: str | None = None
    window_times: torch.Tensor | None = None
    rich_clip_times: torch.Tensor | None = None
    video_duration: float | None = None

    #: Always ``True`` (a failed video gives a :class:`~cefl_zoo.predict.PredictionFailure`).
    ok = True

    def __post_init__(self) -> None:
        self.label_names = tuple(self.label_names)
        self.starts = torch.as_tensor(self.starts, dtype=torch.long).reshape(-1)
        self.ends = torch.as_tensor(self.ends, dtype=torch.long).reshape(-1)
        self.probs = torch.as_tensor(self.probs, dtype=torch.float32).reshape(
            len(self.starts), len(self.label_names)
        )
        if self.rich_clip_frames is not None:
            self.rich_clip_frames = torch.as_tensor(self.rich_clip_frames, dtype=torch.long)
        for name in ("window_times", "rich_clip_times"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, torch.as_tensor(value, dtype=torch.float64).reshape(-1, 2))
        lengths = (self.ends - self.starts + 1).unique()
        if lengths.numel() == 1:  # the length used: a short video's window is the video
            self.window = int(lengths)

    def __len__(self) -> int:
        return int(self.starts.numel())

    @property
    def scored(self) -> torch.Tensor:
        """Whether each window was scored, ``bool (W,)``: ``False`` for a window in which
        face detection found no face (its ``probs`` row is NaN)."""
        return ~self.probs.isnan().any(1)

    @property
    def labels(self) -> list[str | None]:
        """Predicted class of each window (``None`` for a window not scored)."""
        return [
            self.label_names[i] if ok else None
            for i, ok in zip(self.probs.argmax(1).tolist(), self.scored.tolist())
        ]

    @property
    def times(self) -> torch.Tensor:
        """Centre of each window in seconds, ``(W,)`` (frames when the fps is unknown)."""
        if self.window_times is not None:
            return self.window_times.mean(1)
        centre = (self.starts + self.ends + 1).double() / 2
        return centre / self.fps if self.fps else centre

    def _window_seconds(self, w: int) -> tuple[float, float] | None:
        frames = (int(self.starts[w]), int(self.ends[w]))
        return _row_seconds(self.window_times, w, frames, self.fps)

    def _rich_seconds(self, w: int) -> tuple[float, float] | None:
        frames = self.rich_clip_frames
        first_last = None if frames is None else (int(frames[w, 0]), int(frames[w, 1]))
        return _row_seconds(self.rich_clip_times, w, first_last, self.fps)

    @property
    def duration(self) -> float | None:
        """Length of the video in seconds, when known."""
        return _duration(self.video_duration, self.num_frames, self.fps)

    @property
    def mean_probs(self) -> torch.Tensor:
        """Probabilities averaged over the scored windows, ``(C,)``."""
        return self.probs[self.scored].mean(0)

    @property
    def label(self) -> str:
        """The class with the highest mean probability over the whole video."""
        return self.label_names[int(self.mean_probs.argmax())]

    def _frame_start_seconds(self, frame: int, w: int) -> float | None:
        """When frame ``frame`` starts, in seconds, for a frame in (or just after) window
        ``w``: linear inside the window's own time span, as :meth:`to_dict` writes it (so
        a timeline read back gives the same seconds). Exact for a constant frame rate, an
        approximation inside the window for a variable one."""
        span = self._window_seconds(w)
        if span is None:
            return None
        t0, t1 = span
        first, last = int(self.starts[w]), int(self.ends[w])
        return _round(t0 + (frame - first) * (t1 - t0) / (last - first + 1), 4)

    def segments(self) -> list[dict[str, Any]]:
        """Runs of consecutive windows with the same label, as non-overlapping parts of
        the video.

        Consecutive windows overlap when the stride is shorter than the window (the
        default). Where two runs meet, the frames the two windows share are split at the
        midpoint between the windows' centres, so every frame belongs to at most one
        segment and the segments of a video that the windows cover tile it from the
        first window's first frame to the last window's last frame. With a stride longer
        than the window, the frames between windows were not scored and belong to no
        segment. A window that was not scored (no face found) ends the run before it and
        belongs to no segment; the frames it shares with scored windows go to those.

        Returns:
            ``[{"label", "first_frame", "last_frame", "start_s", "end_s",
            "first_window", "last_window"}, ...]``: frames inclusive, seconds end
            exclusive (left out when neither timestamps nor the fps are known; a cut
            inside a window is placed linearly in the window's time span, exact for a
            constant frame rate), and the indices of the run's first and last window.

        Example:
            >>> import torch
            >>> starts = torch.tensor([0, 50, 100])  # 105-frame windows, 50 apart
            >>> tl = Timeline("v.mp4", ("calm", "happy"), starts, starts + 104,
            ...               torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]]), fps=25.0)
            >>> [(s["label"], s["first_frame"], s["last_frame"]) for s in tl.segments()]
            [('calm', 0, 77), ('happy', 78, 204)]
        """
        labels = self.labels
        runs: list[list[int]] = []  # first and last window of each run
        for w, label in enumerate(labels):
            if label is None:  # not scored: in no run, and the runs around it are apart
                continue
            if runs and runs[-1][1] == w - 1 and labels[runs[-1][0]] == label:
                runs[-1][1] = w
            else:
                runs.append([w, w])
        if not runs:
            return []
        starts, ends = self.starts.tolist(), self.ends.tolist()
        # (last frame of this run, first frame of the next) at each meeting point
        cuts: list[tuple[int, int]] = []
        first = starts[runs[0][0]]  # of the run that ends at the cut
        for (_, b), (c, _) in itertools.pairwise(runs):
            if starts[c] > max(ends[b], first) + 1:  # a gap of unscored frames between windows
                cuts.append((max(ends[b], first), starts[c]))
            else:
                centre_b, centre_c = starts[b] + ends[b], starts[c] + ends[c]  # doubled
                last = (centre_b + centre_c) // 4  # the floor of the midpoint of the centres
                last = min(max(last, starts[c] - 1), ends[b])
                # windows of unequal lengths (a hand-made timeline) can put the midpoint
                # before the run's own first frame: every segment keeps at least one
                last = max(last, first)
                cuts.append((last, last + 1))
            first = cuts[-1][1]
        out: list[dict[str, Any]] = []
        for i, (a, b) in enumerate(runs):
            first = starts[a] if i == 0 else cuts[i - 1][1]
            last = max(ends[b], first) if i == len(runs) - 1 else cuts[i][0]
            seg: dict[str, Any] = {"label": labels[a], "first_frame": first, "last_frame": last}
            start_s = self._frame_start_seconds(first, a)
            end_s = (
                self._frame_start_seconds(cuts[i][1], runs[i + 1][0])
                if i < len(runs) - 1 and cuts[i][1] == last + 1
                else self._frame_start_seconds(last + 1, b)
            )
            if start_s is not None and end_s is not None:
                seg["start_s"], seg["end_s"] = start_s, end_s
            seg["first_window"], seg["last_window"] = a, b
            out.append(seg)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON description: video facts, the window settings, a summary and one
        entry per window (frames, seconds, label, probabilities, emotion-rich clip).

        Keys: ``source``, ``model``, ``mode`` (``"timeline"``),
        ``video`` (``num_frames``, ``fps``, ``duration``), ``window`` (``frames``: the
        length used, ``stride``), ``label``, ``mean_probabilities``, ``segments`` (see
        :meth:`segments`) and ``windows`` (``index``, ``first_frame``, ``last_frame``,
        ``start_s``, ``end_s``, ``label``, ``probabilities``, ``emotion_rich_clip``).
        ``emotion_rich_clip`` is ``null`` for a model without clip scores; ``label``,
        ``probabilities`` and ``emotion_rich_clip`` are ``null`` for a window that was
        not scored (no face found).
        """
        windows = []
        labels = self.labels  # (None for a window not scored)
        for w in range(len(self)):
            first, last = int(self.starts[w]), int(self.ends[w])
            entry: dict[str, Any] = {"index": w, "first_frame": first, "last_frame": last}
            seconds = self._window_seconds(w)
            if seconds is not None:
                entry["start_s"], entry["end_s"] = seconds
            scored = labels[w] is not None
            entry["label"] = labels[w]
            entry["probabilities"] = (
                {n: round(float(p), 6) for n, p in zip(self.label_names, self.probs[w].tolist())}
                if scored
                else None
            )
            rich: dict[str, Any] | None = None
            if self.rich_clip_frames is not None and scored:
                a, b = (int(v) for v in self.rich_clip_frames[w].tolist())
                rich = {"first_frame": a, "last_frame": b}
                rich_s = self._rich_seconds(w)
                if rich_s is not None:
                    rich["start_s"], rich["end_s"] = rich_s
            entry["emotion_rich_clip"] = rich
            windows.append(entry)
        duration = self.duration
        return {
            "source": self.source,
            "model": self.model,
            "mode": "timeline",
            "video": {"num_frames": self.num_frames, "fps": self.fps, "duration": duration},
            "window": {"frames": self.window, "stride": self.stride},
            "label": self.label,
            "mean_probabilities": {
                n: round(float(p), 6) for n, p in zip(self.label_names, self.mean_probs.tolist())
            },
            "segments": self.segments(),
            "windows": windows,
        }

    def to_json(self, path: str | os.PathLike | None = None, indent: int | None = 2) -> str:
        """The :meth:`to_dict` form as a JSON string; also written to ``path`` if given."""
        return dump_json(self.to_dict(), path, indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timeline:
        """Rebuild a timeline from :meth:`to_dict` output (also older output, whose
        windows have no ``emotion_rich_clip`` key for a model without clip scores)."""
        names = tuple(data["mean_probabilities"])
        windows = data["windows"]
        clips = [w.get("emotion_rich_clip") for w in windows]
        scored = [w.get("probabilities") is not None for w in windows]
        rich = rich_times = None
        if any(c is not None for c in clips):  # windows not scored have none
            rich = [[c["first_frame"], c["last_frame"]] if c else [-1, -1] for c in clips]
            if all("start_s" in c for c in clips if c):
                rich_times = [[c["start_s"], c["end_s"]] if c else [math.nan] * 2 for c in clips]
        video = data.get("video") or {}
        times = None
        if windows and all("start_s" in w for w in windows):
            times = [[w["start_s"], w["end_s"]] for w in windows]
        nan_row = [math.nan] * len(names)
        return cls(
            window_times=times,
            rich_clip_times=rich_times,
            video_duration=video.get("duration"),
            source=data["source"],
            label_names=names,
            starts=[w["first_frame"] for w in windows],
            ends=[w["last_frame"] for w in windows],
            probs=[
                [w["probabilities"][n] for n in names] if ok else nan_row
                for w, ok in zip(windows, scored)
            ],
            rich_clip_frames=rich,
            fps=video.get("fps"),
            num_frames=video.get("num_frames"),
            window=data.get("window", {}).get("frames"),
            stride=data.get("window", {}).get("stride"),
            model=data.get("model"),
        )

    def plot(self, path: str | os.PathLike) -> Path:
        """Write the expression timeline as a PNG (see
        :func:`cefl_zoo.predict.plot.plot_timeline`)."""
        from .plot import plot_timeline

        return plot_timeline(self, path)

    def summary(self) -> str:
        """One line: source, overall label and the number of windows and segments."""
        segs = self.segments()
        missing = len(self) - int(self.scored.sum())
        return (
            f"{self.source}: {self.label} over {plural(len(self), 'window')} "
            f"({plural(len(segs), 'segment')}: "
            + ", ".join(s["label"] for s in segs[:6])
            + (", ..." if len(segs) > 6 else "")
            + ")"
            + (f"; {plural(missing, 'window')} without a face, not scored" if missing else "")
        )
