"""Helpers for the predictor tests: a transparent model, spying readers, cheap videos.

:class:`BrightnessModel` is a deterministic stand-in for a trained CEFLNet with the same
interface (``forward_explain``, ``pretrained_cfg``, ``label_names``): its classes are
"dark" and "bright", a clip's "bright" intensity is the softmax over clips of the clip's
mean brightness. So for a video with a bright flash at a known frame the correct
emotion-rich clip is known exactly, and the predictor's frame -> clip -> seconds
bookkeeping can be checked without training anything.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cefl_zoo.models.base import ExplainOutput
from cefl_zoo.registry import PretrainedCfg
from cefl_zoo.video.io import TensorVideoReader, VideoInfo, VideoReader

__all__ = [
    "BrightnessModel",
    "LazyReader",
    "SpyReader",
    "flash_frames",
]


class BrightnessModel(nn.Module):
    """Classifies "dark" vs "bright" by mean pixel value; clip scores from brightness.

    Args:
        size: Input size of its ``pretrained_cfg`` (frames are resized to it).
        num_clips: N of its ``pretrained_cfg``.
        frames_per_clip: K of its ``pretrained_cfg``.
        sharpness: Scale of the brightness logits (higher: more confident).
        frame_weights: Also return frame weights (each frame's brightness).
    """

    def __init__(
        self,
        size: int = 16,
        num_clips: int = 7,
        frames_per_clip: int = 5,
        sharpness: float = 20.0,
        frame_weights: bool = True,
    ) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(sharpness)), requires_grad=False)
        self.num_classes = 2
        self.architecture = "brightness_test"
        self.return_weights = frame_weights
        self.calls: list[tuple[int, ...]] = []
        self.pretrained_cfg = PretrainedCfg(
            architecture="brightness_test",
            tag="unit",
            label_names=("dark", "bright"),
            num_clips=num_clips,
            frames_per_clip=frames_per_clip,
            input_size=(3, size, size),
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
        )

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(self.pretrained_cfg.label_names)

    def forward_explain(self, x: torch.Tensor) -> ExplainOutput:
        self.calls.append(tuple(x.shape))
        frame = x.float().mean(dim=(3, 4, 5))  # (B, N, K) in [0, 1]
        clip = frame.mean(2)  # (B, N)
        video = clip.mean(1, keepdim=True)  # (B, 1)
        logits = torch.cat([self.scale * (0.5 - video), self.scale * (video - 0.5)], dim=1)
        scores = torch.stack([(-self.scale * clip).softmax(-1), (self.scale * clip).softmax(-1)], 1)
        rich = scores[torch.arange(len(x)), logits.argmax(-1)].argmax(-1)
        weights = frame if self.return_weights else None
        return ExplainOutput(logits, scores, rich, weights, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_explain(x).logits


def baseline_brightness_model() -> BrightnessModel:
    """A :class:`BrightnessModel` that scores no clips, as the baselines (frame average,
    CNN-LSTM) do: ``clip_scores`` and ``emotion_rich_clip`` are ``None``."""
    model = BrightnessModel()
    original = model.forward_explain
    model.forward_explain = lambda x: original(x)._replace(clip_scores=None, emotion_rich_clip=None)
    return model


def flash_frames(
    num_frames: int,
    flash: tuple[int, int] | None = None,
    size: int = 24,
    base: int = 40,
    bright: int = 230,
) -> torch.Tensor:
    """Dark frames ``uint8 (T, 3, size, size)`` with frames ``flash[0]..flash[1]`` bright."""
    frames = torch.full((num_frames, 3, size, size), base, dtype=torch.uint8)
    if flash is not None:
        frames[flash[0] : flash[1] + 1] = bright
    return frames


class SpyReader(TensorVideoReader):
    """A :class:`TensorVideoReader` that records every ``read`` call's indices."""

    def __init__(self, frames: torch.Tensor, fps: float = 25.0, path: str = "spy.mp4") -> None:
        super().__init__(frames, fps=fps, path=path)
        self.calls: list[list[int]] = []

    def read(self, indices: Any) -> torch.Tensor:
        idx = [int(i) for i in torch.as_tensor(indices).reshape(-1).tolist()]
        self.calls.append(idx)
        return super().read(idx)

    def read_all(self) -> torch.Tensor:  # pragma: no cover - must never be called
        raise AssertionError("read_all() must not be used: it decodes the whole video")


class LazyReader(VideoReader):
    """A long video generated on demand (nothing held in memory), recording reads.

    Frame ``t`` has brightness ``value(t)`` (0..255); frames are ``size x size``.
    """

    def __init__(
        self, num_frames: int, fps: float, value: Any, size: int = 16, path: str = "long.mp4"
    ) -> None:
        self.num_frames, self.fps, self.value, self.size, self.path = (
            num_frames,
            fps,
            value,
            size,
            path,
        )
        self.calls: list[list[int]] = []

    @property
    def info(self) -> VideoInfo:
        return VideoInfo(
            self.path, self.num_frames, self.fps, self.num_frames / self.fps, self.size, self.size
        )

    def read(self, indices: Any) -> torch.Tensor:
        idx = [int(i) for i in torch.as_tensor(indices).reshape(-1).tolist()]
        self.calls.append(idx)
        return super().read(idx)

    def _read_sorted(self, indices: list[int]) -> torch.Tensor:
        values = torch.tensor([int(self.value(i)) for i in indices], dtype=torch.uint8)
        return values.view(-1, 1, 1, 1).expand(-1, 3, self.size, self.size).contiguous()

    def read_all(self) -> torch.Tensor:  # pragma: no cover - must never be called
        raise AssertionError("read_all() must not be used: it decodes the whole video")
