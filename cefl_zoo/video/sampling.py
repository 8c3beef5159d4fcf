"""The paper's temporal sampling (section 4.1) as a small, parameterised object.

CEFLNet sees a video as ``N`` clips of ``K`` frames. The paper builds them like this:

1. **Length normalisation.** Every video is resampled to ``L = 105`` frames by even
   index resampling: frames of short videos repeat, frames of long videos are dropped.
   Normalised position ``j`` maps to original frame ``floor((j + 1/2) * T / L)`` for a
   video of ``T`` frames (the identity when ``T == L``).
2. **Span.** Training draws a random start ``s`` in the first ``max_start = 30``
   normalised frames and keeps ``span = 75`` consecutive frames ``[s, s + 75)``.
   Evaluation takes the centred span, ``s = (L - span) // 2`` (15 for the paper).
3. **Sub-videos.** The span is cut into ``N = 7`` sub-videos of ``clip_length = 15``
   frames with ``clip_stride = 10`` (5 frames overlap): sub-video ``n`` covers
   ``[s + 10 n, s + 10 n + 15)``.
4. **Frames.** Training keeps ``K = 5`` random frames of each sub-video, in temporal
   order; evaluation keeps ``K`` evenly spaced ones, ``floor((2k + 1) * 15 / (2 K))``
   (offsets 1, 4, 7, 10, 13).

:class:`ClipSampler` returns the result as indices into the *original* video's frames,
``LongTensor (N, K)``, which a :class:`~cefl_zoo.video.VideoReader` then decodes. Every
number is a parameter; the defaults scale with ``N`` and ``clip_length`` (``span =
(N - 1) * stride + clip_length``, ``max_start = round(0.4 * span)``, ``L = span +
max_start``), which gives the paper's 105 / 30 / 75 / 15 / 10 for ``N = 7``.

Example:
    >>> from cefl_zoo.video import ClipSampler
    >>> sampler = ClipSampler()  # the paper's 7 clips x 5 frames
    >>> sampler(105, train=False)[0].tolist()  # first clip of a 105-frame video
    [16, 19, 22, 25, 28]
    >>> sampler(105, train=False).shape
    torch.Size([7, 5])
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

__all__ = ["ClipSample", "ClipSampler", "VideoTooShortError", "apex_clip_index"]


class VideoTooShortError(ValueError):
    """A video has fewer frames than the sampler accepts (``min_frames``)."""

    def __init__(self, num_frames: int, min_frames: int, frames_per_clip: int) -> None:
        self.num_frames = int(num_frames)
        self.min_frames = int(min_frames)
        if num_frames < 1:
            msg = "video has no frames; nothing can be sampled from it"
        else:
            msg = (
                f"video has {num_frames} frame{'s' if num_frames != 1 else ''}, fewer than "
                f"one clip (frames_per_clip={frames_per_clip})"
                if min_frames == frames_per_clip
                else f"video has {num_frames} frames, fewer than min_frames={min_frames}"
            )
            msg += (
                "; pass ClipSampler(min_frames=1) to accept it by repeating frames, or drop "
                "it from the dataset"
            )
        super().__init__(msg)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_too_short, (self.args[0], self.num_frames, self.min_frames))


def _rebuild_too_short(message: str, num_frames: int, min_frames: int) -> VideoTooShortError:
    err = VideoTooShortError.__new__(VideoTooShortError)
    ValueError.__init__(err, message)
    err.num_frames, err.min_frames = num_frames, min_frames
    return err


class ClipSample(NamedTuple):
    """What :meth:`ClipSampler.sample` returns.

    Attributes:
        indices: Original-frame index of every sampled frame, ``LongTensor (N, K)``,
            non-decreasing within a clip and across clips' starts.
        windows: First and last original frame covered by each clip's sub-video,
            ``LongTensor (N, 2)`` (inclusive). Used to locate an apex frame in a clip.
        start: Start of the span in normalised frames.
    """

    indices: torch.Tensor
    windows: torch.Tensor
    start: int


class ClipSampler:
    """Sample ``N`` clips of ``K`` frames from a video, as the paper does.

    Args:
        num_clips: Clips per video, N.
        frames_per_clip: Frames kept per clip, K.
        normalized_length: Length L every video is resampled to. Default:
            ``span + max_start`` (105 for the paper).
        max_start: Training draws the span's start uniformly from
            ``0 .. max_start - 1``. Default: ``L - span`` when L is given, else
            ``round(0.4 * span)`` (30).
        span: Consecutive normalised frames the clips are cut from. Default:
            ``(N - 1) * clip_stride + clip_length`` (75).
        clip_length: Frames per sub-video (15).
        clip_stride: Distance between sub-video starts. Default: derived from ``span``
            when given, else ``round(2 * clip_length / 3)`` (10).
        min_frames: Shortest video accepted; shorter ones raise
            :class:`VideoTooShortError`. Default: K (one clip's worth). ``1`` accepts any
            non-empty video by repeating frames.

    Raises:
        ValueError: For numbers that do not fit together (the message says which).

    Example:
        >>> import torch
        >>> from cefl_zoo.video import ClipSampler
        >>> sampler = ClipSampler(num_clips=4, frames_per_clip=3)
        >>> (sampler.span, sampler.max_start, sampler.normalized_length)
        (45, 18, 63)
        >>> g = torch.Generator().manual_seed(0)
        >>> sampler(300, train=True, generator=g).shape
        torch.Size([4, 3])
    """

    def __init__(
        self,
        num_clips: int = 7,
        frames_per_clip: int = 5,
        normalized_length: int | None = None,
        max_start: int | None = None,
        span: int | None = None,
        clip_length: int = 15,
        clip_stride: int | None = None,
        min_frames: int | None = None,
    ) -> None:
        n, k = int(num_clips), int(frames_per_clip)
        if n < 1 or k < 1:
            raise ValueError(f"num_clips and frames_per_clip must be >= 1, got {n} and {k}")
        clip_length = int(clip_length)
        if k > clip_length:
            raise ValueError(
                f"frames_per_clip={k} exceeds clip_length={clip_length}: a clip cannot keep "
                "more distinct frames than its sub-video has; raise clip_length"
            )
        if clip_stride is None:
            if span is not None and n > 1:
                clip_stride = (int(span) - clip_length) // (n - 1)
            else:
                clip_stride = max(1, round(2 * clip_length / 3))
        clip_stride = int(clip_stride)
        if clip_stride < 1:
            raise ValueError(
                f"clip_stride must be >= 1, got {clip_stride} (span={span} is too short for "
                f"{n} clips of {clip_length} frames)"
            )
        needed = (n - 1) * clip_stride + clip_length
        span = needed if span is None else int(span)
        if span < needed:
            raise ValueError(
                f"span={span} is shorter than {n} clips of {clip_length} frames with stride "
                f"{clip_stride} need ({needed})"
            )
        if max_start is None:
            max_start = (
                max(1, int(normalized_length) - span)
                if normalized_length is not None
                else max(1, round(0.4 * span))
            )
        max_start = int(max_start)
        if max_start < 1:
            raise ValueError(f"max_start must be >= 1 (one possible start), got {max_start}")
        if normalized_length is None:
            normalized_length = span + max_start
        normalized_length = int(normalized_length)
        if span + max_start - 1 > normalized_length:
            raise ValueError(
                f"normalized_length={normalized_length} is too short for span={span} starting "
                f"anywhere in 0..{max_start - 1}; need at least {span + max_start - 1}"
            )
        if min_frames is None:
            min_frames = k
        if int(min_frames) < 1:
            raise ValueError(f"min_frames must be >= 1, got {min_frames}")
        self.num_clips = n
        self.frames_per_clip = k
        self.normalized_length = normalized_length
        self.max_start = max_start
        self.span = span
        self.clip_length = clip_length
        self.clip_stride = clip_stride
        self.min_frames = int(min_frames)

    @classmethod
    def from_cfg(cls, cfg: Any, **kwargs: Any) -> ClipSampler:
        """The paper's sampler with N and K from a model's ``pretrained_cfg`` (or a model).

        Example:
            >>> import cefl_zoo
            >>> from cefl_zoo.video import ClipSampler
            >>> ClipSampler.from_cfg(cefl_zoo.create_model("ceflnet_tiny")).num_clips
            7
        """
        cfg = getattr(cfg, "pretrained_cfg", cfg)
        kwargs.setdefault("num_clips", cfg.num_clips)
        kwargs.setdefault("frames_per_clip", cfg.frames_per_clip)
        return cls(**kwargs)

    def config(self) -> dict[str, int]:
        """The resolved parameters, e.g. to store with a frame cache."""
        return {
            "num_clips": self.num_clips,
            "frames_per_clip": self.frames_per_clip,
            "normalized_length": self.normalized_length,
            "max_start": self.max_start,
            "span": self.span,
            "clip_length": self.clip_length,
            "clip_stride": self.clip_stride,
            "min_frames": self.min_frames,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClipSampler) and self.config() == other.config()

    def normalized_indices(self, num_frames: int) -> torch.Tensor:
        """Original frame of each normalised position, ``LongTensor (L,)``.

        ``floor((j + 1/2) * T / L)``: even resampling that repeats frames of short videos
        and drops frames of long ones (the identity for ``T == L``).

        Example:
            >>> from cefl_zoo.video import ClipSampler
            >>> ClipSampler(normalized_length=8, span=4, clip_length=4, num_clips=1,
            ...             frames_per_clip=2).normalized_indices(4).tolist()
            [0, 0, 1, 1, 2, 2, 3, 3]
        """
        t, n = int(num_frames), self.normalized_length
        j = torch.arange(n, dtype=torch.long)
        return ((2 * j + 1) * t) // (2 * n)

    def reachable_frames(self, num_frames: int) -> torch.Tensor:
        """Every original frame this sampler can ever return for a video, sorted.

        A frame cache only needs to store these (at most ``normalized_length`` frames).
        """
        eval_start = (self.normalized_length - self.span) // 2
        hi = max(self.max_start - 1, eval_start) + self.span
        return torch.unique(self.normalized_indices(num_frames)[:hi])

    def check_length(self, num_frames: int) -> None:
        """Raise :class:`VideoTooShortError` for a video shorter than ``min_frames``."""
        if num_frames < max(1, self.min_frames):
            raise VideoTooShortError(num_frames, self.min_frames, self.frames_per_clip)

    def sample(
        self, num_frames: int, train: bool = False, generator: torch.Generator | None = None
    ) -> ClipSample:
        """Sample clip frames and report each clip's window.

        Args:
            num_frames: Frames in the original video, T.
            train: Random start and random frames (``True``) or the deterministic
                evaluation sampling (``False``).
            generator: Source of randomness for ``train=True`` (the global generator when
                ``None``). Ignored for evaluation.

        Returns:
            A :class:`ClipSample`.

        Raises:
            VideoTooShortError: For a video shorter than ``min_frames``.
        """
        self.check_length(num_frames)
        n, k, length = self.num_clips, self.frames_per_clip, self.clip_length
        norm = self.normalized_indices(num_frames)
        if train:
            start = int(torch.randint(self.max_start, (1,), generator=generator))
            offsets = torch.stack(
                [torch.randperm(length, generator=generator)[:k].sort().values for _ in range(n)]
            )
        else:
            start = (self.normalized_length - self.span) // 2
            even = (2 * torch.arange(k) + 1) * length // (2 * k)
            offsets = even.expand(n, k)
        clip_starts = start + self.clip_stride * torch.arange(n)
        positions = clip_starts[:, None] + offsets
        windows = torch.stack([norm[clip_starts], norm[clip_starts + length - 1]], dim=1)
        return ClipSample(norm[positions], windows, start)

    def __call__(
        self, num_frames: int, train: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Indices into the original video's frames, ``LongTensor (N, K)``.

        See :meth:`sample` for the arguments.
        """
        return self.sample(num_frames, train, generator).indices


def apex_clip_index(windows: torch.Tensor, apex_frame: int | None) -> int:
    """The clip nearest to an apex frame, or ``-1`` when the apex is unknown.

    The clip whose window (see :attr:`ClipSample.windows`) contains the apex frame wins;
    where two overlapping windows contain it, the one whose centre is nearer; where no
    window contains it (an apex outside the sampled span), the window nearest to it. Ties
    go to the earlier clip.

    Args:
        windows: ``(N, 2)`` first and last original frame of each clip.
        apex_frame: Original frame index of the apex; ``None`` or negative for unknown.

    Returns:
        Clip index in ``0 .. N - 1``, or ``-1``.

    Example:
        >>> import torch
        >>> from cefl_zoo.video import apex_clip_index
        >>> windows = torch.tensor([[0, 14], [10, 24], [20, 34]])
        >>> apex_clip_index(windows, 12), apex_clip_index(windows, 30), apex_clip_index(windows, 99)
        (0, 2, 2)
    """
    if apex_frame is None or int(apex_frame) < 0:
        return -1
    a = float(apex_frame)
    best: tuple[float, float, int] | None = None
    for n, (lo, hi) in enumerate(windows.tolist()):
        outside = max(lo - a, a - hi, 0.0)
        key = (outside, abs(a - (lo + hi) / 2.0), n)
        if best is None or key < best:
            best = key
    return best[2] if best is not None else -1
