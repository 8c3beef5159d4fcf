"""Spatial preprocessing for video models, derived from each model's ``pretrained_cfg``.

The transforms here map decoded ``uint8`` frames ``(N, K, 3, H, W)`` (or any
``(..., 3, H, W)``) to normalised ``float32`` frames ``(N, K, 3, h, w)`` at the model's
input size. They are ``torchvision.transforms.v2`` pipelines applied to the whole video
as one ``tv_tensors.Video``, so a random choice (crop box, flip, colour jitter) is drawn
once per video and applied to every frame alike: the face does not jump between frames.

* :func:`build_video_transform` - the pipeline from explicit numbers.
* :func:`transforms_for` - the pipeline for a model, a model name or a ``PretrainedCfg``
  (input size, mean, std, interpolation travel with the weights).
* :func:`create_model_and_transforms` - model plus its train and eval transforms in one
  call, as open_clip does.

Randomness comes from torch's global generator, as in torchvision. The datasets of
:mod:`cefl_zoo.data` seed it per item (seed, epoch, index), which makes augmentation
reproducible whatever the number of DataLoader workers.

Example:
    >>> import torch, cefl_zoo
    >>> model, train_tf, eval_tf = cefl_zoo.create_model_and_transforms("ceflnet_tiny")
    >>> frames = torch.randint(0, 256, (7, 5, 3, 80, 96), dtype=torch.uint8)
    >>> eval_tf(frames).shape  # (N, K, 3, h, w) at the model's 64 px
    torch.Size([7, 5, 3, 64, 64])
    >>> model(eval_tf(frames).unsqueeze(0)).shape
    torch.Size([1, 7])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2

from .registry import PretrainedCfg, get_pretrained_cfg

__all__ = [
    "VideoTransform",
    "build_video_transform",
    "create_model_and_transforms",
    "resolve_data_cfg",
    "transforms_for",
]

_INTERPOLATIONS = {
    "nearest": v2.InterpolationMode.NEAREST,
    "bilinear": v2.InterpolationMode.BILINEAR,
    "bicubic": v2.InterpolationMode.BICUBIC,
}


class VideoTransform:
    """Apply a ``torchvision.transforms.v2`` transform to a video, frames alike.

    The leading axes (e.g. ``N, K``) are flattened into one time axis, the frames are
    wrapped in a ``tv_tensors.Video`` (so v2 draws its random parameters once for the
    whole video), transformed, and reshaped back.

    Args:
        transform: A v2 transform (e.g. ``v2.Compose([...])``).

    Example:
        >>> import torch
        >>> from torchvision.transforms import v2
        >>> flip = VideoTransform(v2.RandomHorizontalFlip(p=0.5))
        >>> frame = torch.arange(12, dtype=torch.uint8).reshape(1, 1, 1, 3, 4)
        >>> video = frame.expand(1, 2, 3, 3, 4)  # (N=1, K=2, 3, H=3, W=4): two equal frames
        >>> out = flip(video)
        >>> bool((out[0, 0] == out[0, 1]).all())  # the same choice for both frames
        True
    """

    def __init__(self, transform: Callable[[Any], Any]) -> None:
        self.transform = transform

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """Transform ``(..., 3, H, W)`` frames to ``(..., 3, h, w)``."""
        if not isinstance(frames, torch.Tensor) or frames.ndim < 3:
            shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames)
            raise ValueError(f"expected frames (..., 3, H, W), got {shape}")
        lead = frames.shape[:-3]
        video = tv_tensors.Video(frames.reshape(-1, *frames.shape[-3:]))
        out = self.transform(video)
        out = out.as_subclass(torch.Tensor)
        return out.reshape(*lead, *out.shape[-3:])

    def __repr__(self) -> str:
        inner = repr(self.transform).replace("\n", "\n    ")
        return f"{type(self).__name__}(\n    {inner}\n)"


class ResizeToCover:
    """Resize frames, keeping their aspect, to the smallest size covering ``(h, w)``.

    The evaluation resize for a non-square input size: afterwards a centre crop of
    ``(h, w)`` or less lies inside the frame (a shorter-side resize would pad a wide
    crop of a square frame with black).

    Args:
        size: ``(h, w)`` to cover.
        interpolation: A ``torchvision.transforms.InterpolationMode``.
    """

    def __init__(self, size: tuple[int, int], interpolation: Any = None) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.interpolation = interpolation

    def __call__(self, frames: Any) -> Any:
        from torchvision.transforms.v2 import functional as F

        fh, fw = frames.shape[-2:]
        scale = max(self.size[0] / fh, self.size[1] / fw)
        out = (max(self.size[0], round(fh * scale)), max(self.size[1], round(fw * scale)))
        kwargs = {} if self.interpolation is None else {"interpolation": self.interpolation}
        return F.resize(frames, list(out), antialias=True, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, interpolation={self.interpolation})"


def _size(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    if len(value) == 3:  # (C, H, W) as in PretrainedCfg.input_size
        value = value[1:]
    if len(value) != 2:
        raise ValueError(f"input_size must be an int, (H, W) or (C, H, W), got {value}")
    return value  # type: ignore[return-value]


def build_video_transform(
    input_size: int | Sequence[int] = 224,
    mean: Sequence[float] = (0.485, 0.456, 0.406),
    std: Sequence[float] = (0.229, 0.224, 0.225),
    interpolation: str = "bilinear",
    train: bool = False,
    scale: tuple[float, float] = (0.8, 1.0),
    ratio: tuple[float, float] = (0.9, 1.1),
    hflip: float = 0.5,
    color_jitter: float = 0.0,
    crop_pct: float = 1.0,
    normalize: bool = True,
) -> VideoTransform:
    """The spatial pipeline, from explicit numbers.

    Args:
        input_size: Output size: ``int`` (square), ``(H, W)`` or ``(C, H, W)``.
        mean: Per-channel mean for normalisation (of ``[0, 1]`` values).
        std: Per-channel standard deviation for normalisation.
        interpolation: ``"bilinear"``, ``"bicubic"`` or ``"nearest"``.
        train: Training augmentation (random resized crop + horizontal flip, mild:
            faces are already cropped) instead of the deterministic evaluation resize.
        scale: Area range of the random crop (training).
        ratio: Aspect-ratio range of the random crop (training).
        hflip: Horizontal flip probability (training).
        color_jitter: Brightness / contrast / saturation jitter strength (training; 0 off).
        crop_pct: Evaluation: resize the shorter side to ``size / crop_pct``, then
            centre-crop ``size`` (1.0: resize the shorter side to ``size``).
        normalize: Convert to ``float32`` in ``[0, 1]`` and normalise; ``False`` keeps
            the input dtype (e.g. ``uint8`` for a frame cache).

    Returns:
        A :class:`VideoTransform` mapping ``(..., 3, H, W)`` to ``(..., 3, h, w)``.

    Example:
        >>> import torch
        >>> tf = build_video_transform(32, mean=(0.5,) * 3, std=(0.5,) * 3)
        >>> out = tf(torch.full((2, 3, 3, 48, 64), 255, dtype=torch.uint8))
        >>> out.shape, float(out.max())
        (torch.Size([2, 3, 3, 32, 32]), 1.0)
    """
    h, w = _size(input_size)
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(
            f"unknown interpolation {interpolation!r}; use one of {sorted(_INTERPOLATIONS)}"
        )
    interp = _INTERPOLATIONS[interpolation]
    ops: list[Any] = []
    if train:
        ops.append(v2.RandomResizedCrop((h, w), scale=scale, ratio=ratio, interpolation=interp))
        if hflip > 0:
            ops.append(v2.RandomHorizontalFlip(p=hflip))
        if color_jitter > 0:
            ops.append(
                v2.ColorJitter(
                    brightness=color_jitter, contrast=color_jitter, saturation=color_jitter
                )
            )
    else:
        if not 0 < crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
        if h == w:
            ops.append(v2.Resize(round(h / crop_pct), interpolation=interp))
        else:  # a frame that covers (h, w) / crop_pct whatever its aspect: no black bars
            ops.append(ResizeToCover((round(h / crop_pct), round(w / crop_pct)), interp))
        ops.append(v2.CenterCrop((h, w)))
    if normalize:
        ops.append(v2.ToDtype(torch.float32, scale=True))
        ops.append(v2.Normalize(mean=list(mean), std=list(std)))
    return VideoTransform(v2.Compose(ops))


def resolve_data_cfg(model_or_name_or_cfg: nn.Module | str | PretrainedCfg | dict) -> PretrainedCfg:
    """The :class:`~cefl_zoo.registry.PretrainedCfg` that describes a model's input.

    Args:
        model_or_name_or_cfg: A model (its ``pretrained_cfg``), a registered name
            (``"ceflnet_resnet18"`` or ``"ceflnet_resnet18.dfew"``), a ``PretrainedCfg``
            or its ``to_dict()`` form.

    Raises:
        TypeError: For anything else.
    """
    obj = model_or_name_or_cfg
    if isinstance(obj, PretrainedCfg):
        return obj
    if isinstance(obj, dict):
        return PretrainedCfg.from_dict(obj)
    if isinstance(obj, nn.Module):
        cfg = getattr(obj, "pretrained_cfg", None)
        if isinstance(cfg, PretrainedCfg):
            return cfg
        if isinstance(cfg, dict):  # a plain timm model
            return PretrainedCfg.from_dict(cfg)
        raise TypeError(
            f"{type(obj).__name__} has no pretrained_cfg; pass a PretrainedCfg or a "
            "registered model name instead"
        )
    if isinstance(obj, str):
        cfg = get_pretrained_cfg(obj)
        if cfg is None:  # architecture without a registered config: ask the model itself
            from .registry import _create_on_meta

            cfg = _create_on_meta(obj).pretrained_cfg
        return cfg
    raise TypeError(f"expected a model, a model name or a PretrainedCfg, got {type(obj).__name__}")


def transforms_for(
    model_or_name_or_cfg: nn.Module | str | PretrainedCfg | dict,
    train: bool = False,
    **overrides: Any,
) -> VideoTransform:
    """The preprocessing a model expects, for training or evaluation.

    Input size, mean, std, interpolation and ``crop_pct`` come from the model's
    ``pretrained_cfg``, so the transform always matches the weights.

    Args:
        model_or_name_or_cfg: A model, a registered name or a ``PretrainedCfg``.
        train: Training augmentation instead of the deterministic evaluation resize.
        **overrides: Arguments of :func:`build_video_transform` to change (e.g.
            ``input_size=112``, ``hflip=0``, ``scale=(0.6, 1.0)``).

    Returns:
        A :class:`VideoTransform`: ``uint8 (N, K, 3, H, W)`` to normalised
        ``float32 (N, K, 3, h, w)``.

    Example:
        >>> import torch, cefl_zoo
        >>> tf = cefl_zoo.transforms_for("ceflnet_tiny", train=True)
        >>> tf(torch.zeros(7, 5, 3, 90, 90, dtype=torch.uint8)).shape
        torch.Size([7, 5, 3, 64, 64])
    """
    cfg = resolve_data_cfg(model_or_name_or_cfg)
    args: dict[str, Any] = {
        "input_size": cfg.input_size,
        "mean": cfg.mean,
        "std": cfg.std,
        "interpolation": cfg.interpolation,
        "crop_pct": cfg.crop_pct,
        "train": train,
    }
    args.update(overrides)
    return build_video_transform(**args)


def create_model_and_transforms(
    model_name: str,
    pretrained: bool = False,
    num_classes: int | None = None,
    aug_cfg: dict[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[nn.Module, VideoTransform, VideoTransform]:
    """Create a model with its training and evaluation transforms (open_clip style).

    Args:
        model_name: Anything :func:`cefl_zoo.create_model` accepts.
        pretrained: Load the weights.
        num_classes: Number of classes (see :func:`cefl_zoo.create_model`).
        aug_cfg: Overrides for the training transform (arguments of
            :func:`build_video_transform`, e.g. ``{"color_jitter": 0.2}``).
        **kwargs: Passed to :func:`cefl_zoo.create_model`.

    Returns:
        ``(model, train_transform, eval_transform)``.

    Example:
        >>> import cefl_zoo
        >>> model, train_tf, eval_tf = cefl_zoo.create_model_and_transforms("ceflnet_tiny")
        >>> type(train_tf).__name__
        'VideoTransform'
    """
    from .registry import create_model

    model = create_model(model_name, pretrained=pretrained, num_classes=num_classes, **kwargs)
    train_tf = transforms_for(model, train=True, **(aug_cfg or {}))
    eval_tf = transforms_for(model, train=False)
    return model, train_tf, eval_tf
