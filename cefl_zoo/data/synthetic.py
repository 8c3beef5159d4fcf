"""Built-in synthetic data: seeded face-like videos with a known expression apex.

Real expression datasets are licence-gated, so tests, examples and the README's first
command train on these instead. Each video shows a drawn face (head, eyes, pupils, brows,
nose, mouth) that starts neutral, shows one of seven expressions (anger, disgust, fear,
happiness, sadness, surprise, neutral: :data:`~cefl_zoo.labels.DATASET_CLASSES`
``["synthetic"]``) rising to an apex at a known frame, and falls back to neutral. Head
pose, scale, identity (face shape, skin, hair, background), lighting and sensor noise vary
per video and over time, so the class is only visible around the apex: locating the
emotion-rich clip is a real task, with ground truth.

The seven expressions at apex (and ``intensity`` in between, following an asymmetric
Gaussian bump around ``apex_frame``):

==========  ===================================================================
anger       brows lowered and slanted inward-down, eyes narrowed, lips pressed
disgust     one mouth corner raised (asymmetric), nose wrinkles, eyes narrowed
fear        brows raised with inner ends up, eyes wide, mouth stretched open
happiness   mouth corners up in a wide smile, slightly open, eyes narrowed
sadness     mouth corners down, inner brow ends raised, eyes half closed
surprise    brows high, eyes wide, mouth a tall round opening
neutral     no change
==========  ===================================================================

* :func:`render_synthetic_video` renders a video (or some of its frames) in memory.
* :func:`write_synthetic_dataset` writes ``videos/*.mp4`` (h264 through PyAV) and
  ``labels.csv`` (``path,label,split,apex_frame,num_frames,...``), deterministic: the same
  seed gives byte-identical files. CLI: ``cefl-zoo synth OUT_DIR --videos N --seed S``.
* :class:`SyntheticVideoDataset` reads such a directory (registered as ``"synthetic"``).
* :class:`SyntheticTensorDataset` yields the same videos without touching the disk.

Example:
    >>> from cefl_zoo.data import SyntheticTensorDataset
    >>> ds = SyntheticTensorDataset(num_videos=14, seed=0, split=None)
    >>> sample = ds[3]
    >>> sample["video"].shape, ds.classes[sample["label"]] in ds.classes
    (torch.Size([7, 5, 3, 64, 64]), True)
    >>> 0 <= sample["apex_clip"] < 7
    True
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..labels import DATASET_CLASSES
from ..video.io import VideoInfo, VideoReader
from .base import VideoDataset, VideoItem
from .factory import register_dataset
from .generic import CSVVideoDataset

__all__ = [
    "EXPRESSIONS",
    "MAX_SYNTHETIC_FPS",
    "MIN_VIDEO_SIZE",
    "SYNTHETIC_CLASSES",
    "SyntheticTensorDataset",
    "SyntheticVideoDataset",
    "SyntheticVideoSpec",
    "check_video_size",
    "make_video_spec",
    "render_frames",
    "render_synthetic_video",
    "synthetic_frame_rate",
    "synthetic_labels",
    "synthetic_splits",
    "write_synthetic_dataset",
]

#: Class names in label order (anger, disgust, fear, happiness, sadness, surprise, neutral).
SYNTHETIC_CLASSES: tuple[str, ...] = DATASET_CLASSES["synthetic"]

_NEUTRAL = {
    "curve": 0.0,  # mouth corners: + up (smile), - down
    "open": 0.0,  # mouth opening
    "width": 1.0,  # mouth width factor
    "skew": 0.0,  # one-sided mouth corner raise
    "brow_raise": 0.0,  # + up, - down
    "brow_slant": 0.0,  # + inner ends down (anger), - inner ends up (sadness, fear)
    "eye_open": 1.0,  # eye opening factor
    "wrinkle": 0.0,  # nose wrinkles
}

#: Facial parameters of each expression at full intensity (neutral fills the rest).
EXPRESSIONS: dict[str, dict[str, float]] = {
    "anger": {
        "brow_raise": -1.0,
        "brow_slant": 1.5,
        "eye_open": 0.45,
        "curve": -0.3,
        "width": 0.75,
    },
    "disgust": {
        "skew": 1.4,
        "curve": -0.2,
        "open": 0.3,
        "width": 0.95,
        "brow_raise": -0.4,
        "brow_slant": 0.2,
        "eye_open": 0.55,
        "wrinkle": 1.0,
    },
    "fear": {
        "brow_raise": 0.9,
        "brow_slant": -1.3,
        "eye_open": 1.7,
        "open": 0.45,
        "width": 1.5,
        "curve": -0.4,
    },
    "happiness": {"curve": 1.3, "open": 0.35, "width": 1.4, "eye_open": 0.6, "brow_raise": 0.15},
    "sadness": {
        "curve": -1.5,
        "width": 0.85,
        "brow_raise": 0.3,
        "brow_slant": -1.6,
        "eye_open": 0.4,
    },
    "surprise": {"brow_raise": 1.3, "eye_open": 1.9, "open": 1.3, "width": 0.55},
    "neutral": {},
}


@dataclass(frozen=True)
class SyntheticVideoSpec:
    """Everything that determines one synthetic video (all drawn from its seed).

    Attributes:
        seed: Dataset seed.
        index: Video index within the dataset.
        label: Class index into :data:`SYNTHETIC_CLASSES`.
        num_frames: Length in frames.
        fps: Frame rate.
        apex_frame: Frame of maximal expression intensity.
        rise: Width (frames) of the intensity bump before the apex (Gaussian sigma).
        fall: Width (frames) after the apex.
        peak: Intensity at the apex (``<= 1``).
        identity: Per-video face shape, colours and pose/light parameters.
    """

    seed: int
    index: int
    label: int
    num_frames: int
    fps: float
    apex_frame: int
    rise: float
    fall: float
    peak: float
    identity: dict[str, Any]

    @property
    def label_name(self) -> str:
        """The class name."""
        return SYNTHETIC_CLASSES[self.label]

    def intensity(self, frames: np.ndarray | Sequence[int] | None = None) -> np.ndarray:
        """Expression intensity in ``[0, peak]`` at each frame (all frames by default)."""
        t = np.arange(self.num_frames) if frames is None else np.asarray(frames, np.float64)
        d = t - self.apex_frame
        width = np.where(d < 0, self.rise, self.fall)
        return self.peak * np.exp(-0.5 * (d / width) ** 2)

    def expressive_range(self, threshold: float = 0.5) -> tuple[int, int]:
        """First and last frame whose intensity is at least ``threshold * peak``."""
        above = np.nonzero(self.intensity() >= threshold * self.peak)[0]
        return int(above[0]), int(above[-1])


def synthetic_labels(num_videos: int, seed: int) -> np.ndarray:
    """Class index of every video: balanced (``index % 7``), shuffled by ``seed``."""
    rng = np.random.default_rng([int(seed), 0x5EED])
    return rng.permutation(np.arange(int(num_videos)) % len(SYNTHETIC_CLASSES))


def synthetic_splits(labels: np.ndarray, test_fraction: float) -> list[str]:
    """``"train"`` / ``"test"`` per video: the last ``ceil(test_fraction * n)`` of each
    class's ``n`` videos (in index order; at most ``n - 1``) are test videos, so the split
    is class-balanced."""
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    splits = ["train"] * len(labels)
    for c in np.unique(labels):
        members = np.nonzero(labels == c)[0]
        n_test = math.ceil(len(members) * test_fraction - 1e-9)
        n_test = min(n_test, len(members) - 1)  # every class keeps a training video
        for i in members[len(members) - n_test :]:
            splits[int(i)] = "test"
    return splits


def make_video_spec(
    seed: int,
    index: int,
    label: int,
    min_frames: int = 60,
    max_frames: int = 140,
    fps: float = 25.0,
    apex_range: tuple[float, float] = (0.28, 0.72),
) -> SyntheticVideoSpec:
    """Draw the parameters of video ``index`` from ``(seed, index)``.

    Args:
        seed: Dataset seed.
        index: Video index (each video has its own random stream).
        label: Class index into :data:`SYNTHETIC_CLASSES`.
        min_frames: Shortest length.
        max_frames: Longest length.
        fps: Frame rate.
        apex_range: Where the apex may lie, as fractions of the length.
    """
    if not 0 <= label < len(SYNTHETIC_CLASSES):
        raise ValueError(f"label must be in 0..{len(SYNTHETIC_CLASSES) - 1}, got {label}")
    if not 1 <= min_frames <= max_frames:
        raise ValueError(f"need 1 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    rng = np.random.default_rng([int(seed), int(index), 1])
    n = int(rng.integers(min_frames, max_frames + 1))
    apex = round(rng.uniform(*apex_range) * (n - 1))
    rise = float(n * rng.uniform(0.08, 0.12))
    fall = float(n * rng.uniform(0.10, 0.15))
    peak = float(rng.uniform(0.9, 1.0))
    u = rng.uniform
    red = u(0.45, 0.95)
    skin = np.array([red, red * u(0.68, 0.85), red * u(0.5, 0.75)])
    identity = {
        "head_rx": u(0.62, 0.74),
        "head_ry": u(0.80, 0.92),
        "eye_dx": u(0.27, 0.32),
        "eye_y": u(-0.22, -0.15),
        "eye_rx": u(0.14, 0.17),
        "brow_gap": u(0.14, 0.18),
        "brow_len": u(0.14, 0.18),
        "brow_thick": u(0.045, 0.06),
        "mouth_y": u(0.38, 0.46),
        "mouth_w": u(0.28, 0.34),
        "nose_len": u(0.12, 0.18),
        "skin": skin.tolist(),
        "hair": (skin * u(0.15, 0.45)).tolist(),
        "brow": [u(0.06, 0.2)] * 3,  # brows stay dark on any skin: the cue is their shape
        "background": [u(0.1, 0.9), u(0.1, 0.9), u(0.1, 0.9)],
        "background_tilt": u(-0.3, 0.3),
        "hair_height": u(0.0, 0.35),
        # Pose: base + slow sinusoidal drift (per-axis amplitude and phase).
        "cx": u(-0.07, 0.07),
        "cy": u(-0.05, 0.07),
        "scale": u(0.9, 1.05),
        "roll": u(-0.15, 0.15),
        "drift_amp": [u(0.0, 0.05), u(0.0, 0.04), u(0.0, 0.04), u(0.0, 0.08)],
        "drift_period": [u(40, 160) for _ in range(4)],
        "drift_phase": [u(0, 2 * math.pi) for _ in range(4)],
        # Lighting: gain, directional gradient, flicker; sensor noise.
        "gain": u(0.8, 1.15),
        "light_grad": u(0.0, 0.3),
        "light_dir": u(0, 2 * math.pi),
        "flicker": u(0.0, 0.04),
        "noise": u(1.0, 4.0),
        # Small idle movements that are not the expression.
        "idle": [u(-0.05, 0.05) for _ in range(3)],
    }
    return SyntheticVideoSpec(
        seed=int(seed),
        index=int(index),
        label=int(label),
        num_frames=n,
        fps=float(fps),
        apex_frame=apex,
        rise=rise,
        fall=fall,
        peak=peak,
        identity=identity,
    )


def _soft(sdf: torch.Tensor, aa: float | torch.Tensor) -> torch.Tensor:
    """Coverage of a shape from a signed distance (negative inside), anti-aliased."""
    return (0.5 - sdf / aa).clamp_(0.0, 1.0)


def _ellipse_sdf(x, y, cx, cy, rx, ry) -> torch.Tensor:
    d = (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2).sqrt_()
    m = torch.minimum(torch.as_tensor(rx), torch.as_tensor(ry))
    return (d - 1.0) * (float(m) if m.ndim == 0 else m)


def _segment_dist(x, y, x0, y0, x1, y1) -> torch.Tensor:
    dx, dy = x1 - x0, y1 - y0
    t = (((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy + 1e-9)).clamp_(0.0, 1.0)
    return ((x - x0 - t * dx) ** 2 + (y - y0 - t * dy) ** 2).sqrt_()


def _paint(img: torch.Tensor, alpha: torch.Tensor, color: Sequence[float] | torch.Tensor) -> None:
    """Blend ``color`` over planar ``img (3, T, S, S)`` with coverage ``alpha (T, S, S)``."""
    for c in range(3):
        img[c].lerp_(torch.full_like(alpha, float(color[c])), alpha)


def render_frames(
    spec: SyntheticVideoSpec, frames: Sequence[int] | np.ndarray, size: int = 64
) -> torch.Tensor:
    """Render some frames of a synthetic video.

    Rendering frame ``t`` alone gives the same pixels as rendering the whole video (the
    noise of each frame is a function of ``t``), so datasets render only the frames they
    sample.

    Args:
        spec: The video (see :func:`make_video_spec`).
        frames: Frame indices in ``[0, spec.num_frames)``.
        size: Output height and width in pixels.

    Returns:
        ``uint8 (T, 3, size, size)`` RGB frames.
    """
    # Many small element-wise ops: one thread is fastest (and immune to a busy machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _render(spec, frames, size)
    finally:
        torch.set_num_threads(threads)


def _render(
    spec: SyntheticVideoSpec, frames: Sequence[int] | np.ndarray, size: int
) -> torch.Tensor:
    t_np = np.asarray(frames, np.int64).reshape(-1)
    if t_np.size and (t_np.min() < 0 or t_np.max() >= spec.num_frames):
        raise IndexError(f"frame indices must be in 0..{spec.num_frames - 1}")
    idn = spec.identity
    n = len(t_np)

    def k(values: Any) -> torch.Tensor:  # per-frame scalars, broadcast over pixels
        return torch.as_tensor(np.asarray(values, np.float32)).reshape(-1, 1, 1)

    # Expression parameters over time.
    a = spec.intensity(t_np)
    target = {**_NEUTRAL, **EXPRESSIONS[spec.label_name]}
    p = {name: _NEUTRAL[name] + a * (target[name] - _NEUTRAL[name]) for name in _NEUTRAL}
    idle = np.sin(t_np[None, :] * np.array([[0.11], [0.07], [0.05]]) + np.arange(3)[:, None])
    p["curve"] = p["curve"] + idn["idle"][0] * idle[0]
    p["brow_raise"] = p["brow_raise"] + idn["idle"][1] * idle[1]
    p["eye_open"] = p["eye_open"] + idn["idle"][2] * idle[2]
    p = {name: k(v) for name, v in p.items()}

    # Pose over time.
    amp, per, ph = idn["drift_amp"], idn["drift_period"], idn["drift_phase"]
    drift = [amp[i] * np.sin(2 * math.pi * t_np / per[i] + ph[i]) for i in range(4)]
    cx, cy = k(idn["cx"] + drift[0]), k(idn["cy"] + drift[1])
    scale, roll = k(idn["scale"] * (1 + drift[2])), k(idn["roll"] + drift[3])

    # Pixel grid in [-1, 1] and face coordinates (unrotated, unscaled).
    lin = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")
    gx, gy = gx[None], gy[None]
    cos, sin = roll.cos(), roll.sin()
    dx, dy = (gx - cx) / scale, (gy - cy) / scale
    x = cos * dx + sin * dy
    y = -sin * dx + cos * dy
    aa = 2.0 / size / scale  # one pixel in face units

    # Background with a tilt, then hair, head.
    bg = torch.tensor(idn["background"], dtype=torch.float32)
    img = (bg.view(3, 1, 1, 1) * (1 + idn["background_tilt"] * gy)).expand(3, n, size, size)
    img = img.contiguous()
    rx, ry = idn["head_rx"], idn["head_ry"]
    has_hair = idn["hair_height"] > 0.02
    if has_hair:
        hair = _soft(_ellipse_sdf(x, y, 0.0, -0.15, rx * 1.06, ry * 0.95), aa)
        hair *= ((idn["hair_height"] - (y + 0.15)) / 0.1).clamp_(0, 1) * (y < 0)
        _paint(img, hair, idn["hair"])
    head = _soft(_ellipse_sdf(x, y, 0.0, 0.0, rx, ry), aa)
    _paint(img, head, idn["skin"])
    skin = np.asarray(idn["skin"], np.float32)
    if has_hair:  # fringe over the forehead
        fringe = head * ((-(y + ry - 0.05)) / 0.05 + idn["hair_height"] * 2).clamp_(0, 1)
        fringe *= y < -ry + 0.1 + idn["hair_height"] * 0.3
        _paint(img, fringe, idn["hair"])

    def region(x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice]:
        """Pixel rows/columns covering the face-coordinate box in every frame."""
        fx = torch.tensor([x0, x1, x0, x1]).view(1, 4)
        fy = torch.tensor([y0, y0, y1, y1]).view(1, 4)
        c, s_ = cos.view(-1, 1), sin.view(-1, 1)
        px = cx.view(-1, 1) + scale.view(-1, 1) * (c * fx - s_ * fy)
        py = cy.view(-1, 1) + scale.view(-1, 1) * (s_ * fx + c * fy)
        to_pix = lambda v: (v + 1) / 2 * size - 0.5
        c0 = max(math.floor(float(to_pix(px.min()))) - 2, 0)
        c1 = min(math.ceil(float(to_pix(px.max()))) + 3, size)
        r0 = max(math.floor(float(to_pix(py.min()))) - 2, 0)
        r1 = min(math.ceil(float(to_pix(py.max()))) + 3, size)
        return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))

    # Eyes, brows, nose and wrinkles: drawn inside their bounding box only.
    reach = 0.09 + 2 * idn["brow_len"] + idn["brow_thick"] + 0.02
    top_y = idn["eye_y"] - idn["brow_gap"] - 0.13 * float(p["brow_raise"].max()) - 0.22
    rows, cols = region(-reach, reach, top_y, idn["eye_y"] + 0.06 + idn["nose_len"] + 0.04)
    X, Y, H, A = x[:, rows, cols], y[:, rows, cols], head[:, rows, cols], aa
    view = img[:, :, rows, cols]
    eye_ry = (0.085 * p["eye_open"]).clamp_(min=0.01)
    for side in (-1, 1):
        ex = side * idn["eye_dx"]
        eye_sdf = _ellipse_sdf(X, Y, ex, idn["eye_y"], idn["eye_rx"], eye_ry)
        sclera = _soft(eye_sdf, A) * H
        _paint(view, sclera, (0.95, 0.95, 0.93))
        pupil = _soft(((X - ex) ** 2 + (Y - idn["eye_y"]) ** 2).sqrt_() - 0.06, A) * sclera
        _paint(view, pupil, (0.08, 0.06, 0.05))
        lid = _soft(eye_sdf.abs_() - 0.012, A) * H
        _paint(view, lid, skin * 0.35)
    # Brows: thick segments; height and slant follow the expression.
    for side in (-1, 1):
        base_y = idn["eye_y"] - idn["brow_gap"] - 0.13 * p["brow_raise"]
        inner_x = side * 0.09
        outer_x = side * (0.09 + 2 * idn["brow_len"])
        inner_y = base_y + 0.1 * p["brow_slant"]
        outer_y = base_y - 0.03 * p["brow_slant"]
        d = _segment_dist(X, Y, inner_x, inner_y, outer_x, outer_y)
        _paint(view, _soft(d - idn["brow_thick"], A) * H, idn["brow"])
    # Nose, and wrinkles above it (disgust).
    top = idn["eye_y"] + 0.06
    nose = _segment_dist(X, Y, 0.0, top, 0.03, top + idn["nose_len"])
    _paint(view, _soft(nose - 0.018, A) * H * 0.6, skin * 0.55)
    wrinkle = p["wrinkle"].clamp(0, 1)
    # Whether the video has wrinkles at all is decided over all its frames, so that a
    # frame renders the same alone as with the others.
    whole = spec.intensity(np.arange(spec.num_frames)) * target["wrinkle"]
    if float(np.clip(whole, 0, 1).max()) > 0.01:
        for j in range(3):
            wy = idn["eye_y"] + 0.02 + 0.045 * j
            w = _segment_dist(X, Y, -0.07, wy, 0.07, wy + 0.01)
            _paint(view, _soft(w - 0.012, A) * H * wrinkle, skin * 0.4)

    # Mouth: a curved line that opens; corners follow curve and skew.
    half_w = idn["mouth_w"] * p["width"]
    mx = float(half_w.max()) + 0.05
    rows, cols = region(-mx, mx, idn["mouth_y"] - 0.36, idn["mouth_y"] + 0.36)
    X, Y, H = x[:, rows, cols], y[:, rows, cols], head[:, rows, cols]
    view = img[:, :, rows, cols]
    xn = X / half_w
    inside = (1 - xn**2).clamp_(min=0)
    centre = (
        idn["mouth_y"]
        - p["curve"] * 0.2 * xn**2
        + p["curve"] * 0.06
        - p["skew"] * 0.14 * xn * (xn > 0)
    )
    half_open = p["open"] * 0.17 * inside.sqrt()
    edge = ((1 - xn.abs()) * half_w / A).clamp_(0, 1)  # fade out past the corners
    dist = (Y - centre).abs_()
    lips = _soft(dist - half_open - 0.032, A) * edge * H
    _paint(view, lips, (0.45, 0.1, 0.12))
    cavity = _soft(dist - half_open, A) * edge * H * (half_open > 0.004)
    _paint(view, cavity, (0.12, 0.03, 0.04))

    # Lighting (gain, directional gradient, flicker) and sensor noise.
    direction = idn["light_dir"]
    light = idn["gain"] * (
        1 + idn["light_grad"] * (math.cos(direction) * gx + math.sin(direction) * gy)
    )
    flicker = k(1 + idn["flicker"] * np.sin(t_np * 0.9 + spec.index))
    img *= light * flicker * 255.0
    # Noise: a bank of fields drawn once per video; frame t takes field t % 8 shifted by
    # an offset derived from t, so a frame's noise does not depend on the other frames.
    bank = np.random.default_rng([spec.seed, spec.index, 2]).standard_normal(
        (8, size, size, 3), dtype=np.float32
    )
    noise = torch.from_numpy(bank)
    shifts = [((int(f) * 17) % size, (int(f) * 29) % size) for f in t_np]
    noise = (
        torch.stack([noise[f % 8].roll(sh, dims=(0, 1)) for f, sh in zip(t_np, shifts)])
        if n
        else noise[:0]
    )
    img = img.permute(1, 2, 3, 0) + noise * idn["noise"]
    return img.round_().clamp_(0, 255).to(torch.uint8).permute(0, 3, 1, 2).contiguous()


def render_synthetic_video(
    seed: int = 0,
    index: int = 0,
    label: int | str | None = None,
    size: int = 64,
    num_videos: int | None = None,
    **spec_kwargs: Any,
) -> tuple[torch.Tensor, SyntheticVideoSpec]:
    """Render one whole synthetic video in memory.

    Args:
        seed: Dataset seed.
        index: Video index.
        label: Class index or name; default: the label video ``index`` has in a dataset
            of ``num_videos`` videos with this seed (``index % 7`` shuffled).
        size: Frame size in pixels.
        num_videos: Size of the dataset the video belongs to (for the default label).
        **spec_kwargs: :func:`make_video_spec` options (``min_frames``, ``max_frames``,
            ``fps``, ``apex_range``).

    Returns:
        ``(frames uint8 (T, 3, size, size), spec)``; ``spec.apex_frame`` is the apex.

    Example:
        >>> frames, spec = render_synthetic_video(seed=0, index=0, label="happiness")
        >>> frames.shape[1:], spec.label_name
        (torch.Size([3, 64, 64]), 'happiness')
    """
    if label is None:
        label = int(synthetic_labels(max(num_videos or 0, index + 1), seed)[index])
    elif isinstance(label, str):
        from ..labels import canonical_label

        name = canonical_label(label)
        if name not in SYNTHETIC_CLASSES:
            raise ValueError(
                f"label {label!r} is no class of the synthetic data; use one of "
                f"{', '.join(SYNTHETIC_CLASSES)}"
            )
        label = SYNTHETIC_CLASSES.index(name)
    spec = make_video_spec(seed, index, int(label), **spec_kwargs)
    return render_frames(spec, np.arange(spec.num_frames), size), spec


#: Smallest frame size :func:`write_synthetic_dataset` writes (pixels).
MIN_VIDEO_SIZE = 16


def check_video_size(size: int) -> int:
    """``size`` if :func:`write_synthetic_dataset` can encode frames of ``size`` x ``size``.

    libx264 encodes 4:2:0 video (``yuv420p``, what every player reads), whose sides must
    be even; below :data:`MIN_VIDEO_SIZE` pixels the face is not drawable.

    Raises:
        ValueError: For an odd size or one below :data:`MIN_VIDEO_SIZE`.

    Example:
        >>> check_video_size(64)
        64
        >>> check_video_size(33)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: frame size 33 px: must be an even number of pixels ...; try 32 or 34
    """
    if isinstance(size, bool) or int(size) != size:
        raise ValueError(f"frame size {size!r}: must be a whole number of pixels")
    size = int(size)
    if size < MIN_VIDEO_SIZE or size % 2:
        lo = max(MIN_VIDEO_SIZE, size - size % 2 if size % 2 else size)
        hi = max(MIN_VIDEO_SIZE, size + size % 2)
        hint = f"try {lo} or {hi}" if lo != hi else f"try {lo}"
        raise ValueError(
            f"frame size {size} px: must be an even number of pixels (h264 4:2:0 video has "
            f"even sides), at least {MIN_VIDEO_SIZE}; {hint}"
        )
    return size


#: Highest frame rate :func:`write_synthetic_dataset` encodes (at a few thousand frames
#: per second, short h264 videos no longer decode).
MAX_SYNTHETIC_FPS = 1000.0


def synthetic_frame_rate(fps: float | Fraction) -> Fraction:
    """The exact frame rate the mp4s of :func:`write_synthetic_dataset` are encoded at.

    ``fps`` as a fraction with a denominator of at most 1001, so fractional rates are
    kept (``12.5`` is 25/2, NTSC ``30000/1001`` stays); ``labels.csv`` records
    ``float(rate)``, the rate the files report.

    Raises:
        ValueError: For a rate that is not a positive finite number, or above
            :data:`MAX_SYNTHETIC_FPS`.

    Example:
        >>> synthetic_frame_rate(25), synthetic_frame_rate(12.5), synthetic_frame_rate(29.97)
        (Fraction(25, 1), Fraction(25, 2), Fraction(2997, 100))
    """
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"fps must be a positive number, got {fps!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if value > MAX_SYNTHETIC_FPS:
        raise ValueError(
            f"fps {value:g} is too high for the mp4 encoder; use at most {MAX_SYNTHETIC_FPS:g}"
        )
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps {fps!r} is too small; use at least 1/1001 frames per second")
    return rate


def _encode_mp4(frames: torch.Tensor, fps: float | Fraction, crf: int) -> bytes:
    """h264 in mp4, bit-exact from run to run (and across CPUs).

    libx264's assembly paths make its output vary from run to run on some machines
    (measured with PyAV 18's bundled x264); ``cpu-independent=1`` and one thread make it
    reproducible.
    """
    import av

    rate = synthetic_frame_rate(fps)
    buf = io.BytesIO()
    arr = frames.permute(0, 2, 3, 1).contiguous().numpy()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream(
            "libx264", rate=rate.numerator if rate.denominator == 1 else rate
        )
        stream.width, stream.height = arr.shape[2], arr.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "crf": str(crf),
            "g": str(max(1, round(rate))),
            "threads": "1",
            "preset": "fast",
            "x264-params": "cpu-independent=1",
        }
        for t, img in enumerate(arr):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = t
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


class _EncodeVideos(torch.utils.data.Dataset):
    """Renders and encodes video ``i`` (DataLoader workers run it in parallel)."""

    def __init__(self, seed, labels, size, min_frames, max_frames, fps, crf) -> None:
        self.seed, self.labels, self.size = seed, labels, size
        self.fps, self.crf = synthetic_frame_rate(fps), crf
        self.spec_args = (min_frames, max_frames, float(self.fps))  # the rate encoded

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[SyntheticVideoSpec, bytes]:
        spec = make_video_spec(self.seed, i, int(self.labels[i]), *self.spec_args)
        frames = render_frames(spec, np.arange(spec.num_frames), self.size)
        return spec, _encode_mp4(frames, self.fps, self.crf)


_CSV_FIELDS = [
    "path",
    "label",
    "split",
    "apex_frame",
    "num_frames",
    "fps",
    "expressive_start",
    "expressive_end",
    "peak",
    "index",
    "seed",
]


def write_synthetic_dataset(
    out_dir: str | os.PathLike,
    num_videos: int = 280,
    seed: int = 0,
    size: int = 64,
    test_fraction: float = 0.25,
    min_frames: int = 60,
    max_frames: int = 140,
    fps: float = 25.0,
    crf: int = 18,
    progress: bool = True,
    overwrite: bool = False,
    num_workers: int = 0,
) -> Path:
    """Write a synthetic dataset: ``videos/NNNNN.mp4`` and ``labels.csv``.

    The same arguments give byte-identical files. Every file is written to a temporary
    name and renamed into place; ``labels.csv`` comes last, so a directory with a
    ``labels.csv`` is complete (``overwrite`` removes the old one first). Numbered videos
    of an earlier, larger dataset in ``videos/`` (``NNNNN.mp4`` beyond ``num_videos``)
    are removed, so ``videos/`` holds exactly the videos ``labels.csv`` lists; other
    files are left alone. The arguments are all checked before anything is created.

    Args:
        out_dir: Output directory (created).
        num_videos: Number of videos (classes are balanced: ``index % 7``, shuffled).
        seed: Seed of everything.
        size: Frame height and width in pixels (even, at least :data:`MIN_VIDEO_SIZE`).
        test_fraction: Fraction of each class in the ``test`` split: the last
            ``ceil(test_fraction * n)`` of each class's ``n`` videos (at most ``n - 1``).
        min_frames: Shortest video.
        max_frames: Longest video.
        fps: Frame rate (> 0; fractional rates are encoded exactly, see
            :func:`synthetic_frame_rate`, and ``labels.csv`` records the encoded rate).
        crf: x264 quality (lower is better; 18 is visually lossless).
        progress: Show a progress bar.
        overwrite: Replace an existing dataset in ``out_dir``.
        num_workers: Processes that render and encode in parallel (``0``: this one).
            The files do not depend on it.

    Returns:
        The path of ``labels.csv``.

    Raises:
        FileExistsError: If ``out_dir`` already holds a ``labels.csv``, or files in
            ``videos/``, and not ``overwrite``.
        ValueError: For a bad argument (before anything is written).

    Example:
        >>> write_synthetic_dataset("synth", num_videos=70, seed=0)  # doctest: +SKIP
        PosixPath('synth/labels.csv')
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    csv_path = out / "labels.csv"
    if csv_path.exists() and not overwrite:
        raise FileExistsError(
            f"{csv_path} already exists; pass overwrite=True (CLI: --overwrite) to replace "
            "the dataset, or choose another directory"
        )
    if num_videos < 1:
        raise ValueError(f"num_videos must be >= 1, got {num_videos}")
    try:
        check_video_size(size)
    except ValueError as err:
        raise ValueError(f"size: {err}") from None
    rate = synthetic_frame_rate(fps)
    if not 1 <= min_frames <= max_frames:
        raise ValueError(f"need 1 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise ValueError(f"crf must be an integer x264 quality in 0..51, got {crf!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    labels = synthetic_labels(num_videos, seed)
    splits = synthetic_splits(labels, test_fraction)  # checks test_fraction
    videos_dir = out / "videos"
    if (
        not overwrite
        and videos_dir.is_dir()
        and any(not e.name.startswith(".") for e in os.scandir(videos_dir))
    ):
        raise FileExistsError(
            f"{videos_dir} already holds files but {out} has no labels.csv, so it is no "
            "synthetic dataset this would replace (or an earlier write was interrupted): "
            "pass overwrite=True (CLI: --overwrite) to write over its numbered videos, or "
            "choose another directory"
        )
    videos_dir.mkdir(parents=True, exist_ok=True)
    if overwrite:  # until the new labels.csv is in place, the folder is not a dataset
        csv_path.unlink(missing_ok=True)
    rows = []
    from torch.utils.data import DataLoader

    encoder = _EncodeVideos(seed, labels, size, min_frames, max_frames, rate, crf)
    loader = DataLoader(encoder, batch_size=None, num_workers=num_workers)
    bar = tqdm(
        loader, total=num_videos, desc="synthetic videos", unit="video", disable=not progress
    )
    for i, (spec, data) in enumerate(bar):
        rel = f"videos/{i:05d}.mp4"
        target = out / rel
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        lo, hi = spec.expressive_range()
        rows.append(
            {
                "path": rel,
                "label": spec.label_name,
                "split": splits[i],
                "apex_frame": spec.apex_frame,
                "num_frames": spec.num_frames,
                "fps": spec.fps,
                "expressive_start": lo,
                "expressive_end": hi,
                "peak": round(spec.peak, 4),
                "index": i,
                "seed": seed,
            }
        )
    _remove_stale_videos(videos_dir, num_videos)
    tmp_csv = out / ".labels.csv.tmp"
    with open(tmp_csv, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=_CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp_csv, csv_path)
    return csv_path


_NUMBERED_VIDEO = re.compile(r"^\.?(\d{5,})\.mp4(\.tmp)?$")


def _remove_stale_videos(videos_dir: Path, num_videos: int) -> None:
    """Remove the numbered videos (and temporary files) an earlier run left beyond index
    ``num_videos - 1``."""
    for entry in os.scandir(videos_dir):
        match = _NUMBERED_VIDEO.match(entry.name)
        if not match or not entry.is_file():
            continue
        if match.group(2) or int(match.group(1)) >= num_videos:
            os.unlink(entry.path)


@register_dataset("synthetic")
class SyntheticVideoDataset(CSVVideoDataset):
    """A directory written by :func:`write_synthetic_dataset` (or ``cefl-zoo synth``).

    Items carry ``apex_frame`` in their meta, so samples have a ground-truth
    ``apex_clip``.

    Args:
        root: The directory holding ``labels.csv`` and ``videos/``.
        split: ``"train"``, ``"test"`` or ``None`` (all videos).
        fold: Not supported (``None``).
        **kwargs: :class:`~cefl_zoo.data.VideoDataset` options.

    Raises:
        FileNotFoundError: If ``root/labels.csv`` is missing.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = "train",
        fold: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        csv_path = Path(root) / "labels.csv"
        if not csv_path.is_file():
            raise FileNotFoundError(
                f"{csv_path}: not found; {root} is not a synthetic dataset. Create one with "
                f"`cefl-zoo synth {root}` or cefl_zoo.data.write_synthetic_dataset({str(root)!r})"
            )
        kwargs.setdefault("classes", SYNTHETIC_CLASSES)
        super().__init__(csv_path, root=root, split=split, fold=fold, **kwargs)


class _SyntheticReader(VideoReader):
    """Renders the frames of one synthetic video on demand."""

    def __init__(self, spec: SyntheticVideoSpec, size: int, path: str) -> None:
        self.spec, self.size, self.path = spec, size, path

    @property
    def info(self) -> VideoInfo:
        s = self.spec
        return VideoInfo(self.path, s.num_frames, s.fps, s.num_frames / s.fps, self.size, self.size)

    def _read_sorted(self, indices: list[int]) -> torch.Tensor:
        return render_frames(self.spec, indices, self.size)


class SyntheticTensorDataset(VideoDataset):
    """The synthetic videos of :func:`write_synthetic_dataset`, rendered in memory.

    Each item shows the same video as ``videos/{index:05d}.mp4`` of a dataset written
    with the same ``num_videos``, ``seed``, ``test_fraction`` and sizes (minus the h264
    compression), with the same label, split and apex, where ``index`` is
    ``item.meta["index"]``. With ``split=None`` item ``i`` is video ``i``; with a split
    the items are that split's videos in index order (item 5 of ``split="train"`` may be
    video 7). Only the sampled frames are rendered.

    Args:
        num_videos: Videos in the (virtual) dataset, before the split.
        seed: Seed of everything.
        split: ``"train"``, ``"test"`` or ``None`` (all).
        size: Frame size in pixels.
        test_fraction: Fraction of each class in the test split.
        min_frames: Shortest video.
        max_frames: Longest video.
        fps: Frame rate.
        **kwargs: :class:`~cefl_zoo.data.VideoDataset` options (``sampler``,
            ``transform``, ``train``, ...). ``train`` defaults to ``split == "train"``.

    Attributes:
        specs: The :class:`SyntheticVideoSpec` of every item.
    """

    classes = SYNTHETIC_CLASSES

    def __init__(
        self,
        num_videos: int = 280,
        seed: int = 0,
        split: str | None = "train",
        size: int = 64,
        test_fraction: float = 0.25,
        min_frames: int = 60,
        max_frames: int = 140,
        fps: float = 25.0,
        **kwargs: Any,
    ) -> None:
        if split not in (None, "train", "test"):
            raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
        self.num_videos, self.split, self.size = int(num_videos), split, int(size)
        # the rate the written mp4s have, so seconds agree with write_synthetic_dataset's
        self._spec_args = (min_frames, max_frames, float(synthetic_frame_rate(fps)))
        self.test_fraction = test_fraction
        self.synthetic_seed = int(seed)
        kwargs.setdefault("train", split == "train")
        kwargs.setdefault("seed", seed)
        super().__init__(**kwargs)

    def _load_items(self) -> list[VideoItem]:
        labels = synthetic_labels(self.num_videos, self.synthetic_seed)
        splits = synthetic_splits(labels, self.test_fraction)
        self.specs: list[SyntheticVideoSpec] = []
        items = []
        for i in range(self.num_videos):
            if self.split is not None and splits[i] != self.split:
                continue
            spec = make_video_spec(self.synthetic_seed, i, int(labels[i]), *self._spec_args)
            self.specs.append(spec)
            meta = {
                "apex_frame": spec.apex_frame,
                "num_frames": spec.num_frames,
                "split": splits[i],
                "index": i,
                "spec": len(self.specs) - 1,
            }
            items.append(VideoItem(f"synthetic://{self.synthetic_seed}/{i:05d}", spec.label, meta))
        return items

    def open(self, item: VideoItem) -> VideoReader:
        return _SyntheticReader(self.specs[item.meta["spec"]], self.size, item.path)

    def spec(self, index: int) -> SyntheticVideoSpec:
        """The :class:`SyntheticVideoSpec` of item ``index``."""
        return self.specs[self.items[index].meta["spec"]]
