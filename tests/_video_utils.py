"""Test helpers that write tiny videos and frame folders (no real data needed).

Frames carry their own index as a barcode (:func:`barcode_frames`, read back with
:func:`read_barcode`) that survives lossy compression, so tests can check *which* frame a
reader returned, not only that it returned something.

Example:
    >>> frames = barcode_frames(30, height=48, width=64)
    >>> path = write_video(tmp_path / "a.mp4", frames, gop=10)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "BARCODE_BITS",
    "barcode_frames",
    "read_barcode",
    "tree_snapshot",
    "write_audio_only",
    "write_frame_folder",
    "write_video",
]

#: Bits of the frame-index barcode (frames 0 .. 2**BARCODE_BITS - 1 are distinguishable).
BARCODE_BITS = 9


def barcode_frames(
    num_frames: int,
    height: int = 48,
    width: int = 64,
    seed: int = 0,
    gray: bool = False,
) -> torch.Tensor:
    """Frames whose top band encodes the frame index in black/white blocks.

    The bottom part holds smooth coloured noise that changes every frame (so the encoder
    has real work and P/B frames differ from their references).

    Returns:
        ``uint8 (T, 3, H, W)`` RGB (three equal channels when ``gray``).
    """
    if height < 16 or width < BARCODE_BITS * 4:
        raise ValueError("barcode frames need height >= 16 and width >= 4 * BARCODE_BITS")
    rng = np.random.default_rng(seed)
    out = np.empty((num_frames, height, width, 3), np.uint8)
    block = width // BARCODE_BITS
    yy, xx = np.mgrid[0:height, 0:width]
    for t in range(num_frames):
        phase = rng.uniform(0, 2 * np.pi, 3)
        img = np.stack(
            [127 + 60 * np.sin(xx / 7.0 + yy / 11.0 + phase[c] + t * 0.3) for c in range(3)], -1
        )
        img = img + rng.normal(0, 4, img.shape)
        bits = [(t >> b) & 1 for b in range(BARCODE_BITS)]
        band = height // 3
        for b, bit in enumerate(bits):
            img[:band, b * block : (b + 1) * block] = 255 if bit else 0
        if gray:
            img = np.repeat(img.mean(-1, keepdims=True), 3, -1)
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def read_barcode(frames: torch.Tensor, width: int | None = None) -> list[int]:
    """Frame indices encoded by :func:`barcode_frames` in ``(T, 3, H, W)`` frames.

    Args:
        frames: Frames as returned by a reader.
        width: The width the frames were encoded at (when the reader rotated them, pass
            frames rotated back).
    """
    _, _, h, w = frames.shape
    block = w // BARCODE_BITS
    band = h // 3
    out = []
    for f in frames.float().mean(1):
        value = 0
        for b in range(BARCODE_BITS):
            cell = f[1 : band - 1, b * block + 1 : (b + 1) * block - 1]
            if cell.mean() > 127:
                value |= 1 << b
        out.append(value)
    return out


def write_video(
    path: str | os.PathLike,
    frames: torch.Tensor,
    fps: int = 25,
    codec: str = "libx264",
    gop: int | None = None,
    bframes: int = 0,
    pix_fmt: str | None = None,
    rotation: int | None = None,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode ``uint8 (T, 3, H, W)`` RGB frames to a video file with PyAV.

    Args:
        path: Output file; the container follows the suffix (mp4, mkv, avi, ...).
        frames: The frames.
        fps: Nominal frame rate.
        codec: Encoder name.
        gop: Keyframe interval (several GOPs make seeking matter).
        bframes: Maximum consecutive B-frames (presentation != decode order).
        pix_fmt: Pixel format; default ``yuv420p`` (``yuv444p`` for odd sizes).
        rotation: Counter-clockwise display rotation to store in the container.
        pts: Explicit presentation timestamps per frame in ``time_base`` units
            (variable frame rate).
        time_base: Time base for ``pts``; default ``1/1000``.
        options: Extra encoder options.

    Returns:
        The path.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = frames.permute(0, 2, 3, 1).contiguous().numpy()
    t, h, w, _ = arr.shape
    container = av.open(str(path), mode="w")
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = w, h
    if pix_fmt is None:
        pix_fmt = "yuv420p" if (w % 2 == 0 and h % 2 == 0) else "yuv444p"
    stream.pix_fmt = pix_fmt
    opts = dict(options or {})
    if codec == "libx264":
        opts.setdefault("bf", str(bframes))
        opts.setdefault("threads", "1")
        if gop is not None:
            opts.setdefault("g", str(gop))
            opts.setdefault("keyint_min", str(gop))
            opts.setdefault("sc_threshold", "0")
    elif gop is not None:
        stream.codec_context.gop_size = gop
    stream.options = opts
    if pts is not None:
        stream.codec_context.time_base = time_base or Fraction(1, 1000)
        stream.time_base = time_base or Fraction(1, 1000)
    for i in range(t):
        frame = av.VideoFrame.from_ndarray(arr[i], format="rgb24")
        if pts is not None:
            frame.pts = int(pts[i])
            frame.time_base = time_base or Fraction(1, 1000)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    if rotation:
        _set_display_rotation(path, rotation)
    return path


def _set_display_rotation(path: Path, rotation: int) -> None:
    """Store a counter-clockwise display rotation in an MP4/MOV file's track header.

    The ``tkhd`` box's matrix is what FFmpeg reads as the display matrix (and what
    PyAV >= 18's ``set_display_rotation`` writes, byte for byte); patching it works with
    every PyAV the package supports.
    """
    if path.suffix.lower() not in (".mp4", ".mov"):
        raise ValueError(f"rotation= needs an .mp4 or .mov file, not {path.name}")
    data = bytearray(path.read_bytes())
    box = data.index(b"tkhd")
    version = data[box + 4]
    # size+type precede `box`; then version/flags, times, track id, duration, reserved,
    # layer, alternate group, volume, reserved: the matrix follows.
    matrix = box + 4 + 4 + (32 if version == 1 else 20) + 8 + 8
    cos = round(math.cos(math.radians(rotation)))
    sin = round(math.sin(math.radians(rotation)))
    one = 1 << 16  # 16.16 fixed point; the last entry is 2.30
    values = (cos * one, -sin * one, 0, sin * one, cos * one, 0, 0, 0, 1 << 30)
    data[matrix : matrix + 36] = struct.pack(">9i", *values)
    path.write_bytes(bytes(data))


def write_frame_folder(
    folder: str | os.PathLike,
    frames: torch.Tensor,
    ext: str = "jpg",
    names: Sequence[str] | None = None,
    quality: int = 95,
) -> Path:
    """Write ``uint8 (T, 3, H, W)`` frames as images named ``1.jpg, 2.jpg, ...``.

    Args:
        folder: Created if missing.
        frames: The frames.
        ext: ``"jpg"`` or ``"png"``.
        names: File names to use instead of ``{i + 1}.{ext}``.
        quality: JPEG quality.
    """
    from torchvision.io import write_jpeg, write_png

    from cefl_zoo.video.io import quiet_image_io

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with quiet_image_io():
        for i, frame in enumerate(frames):
            name = names[i] if names is not None else f"{i + 1}.{ext}"
            target = folder / name
            if name.lower().endswith("png"):
                write_png(frame.contiguous(), str(target))
            else:
                write_jpeg(frame.contiguous(), str(target), quality=quality)
    return folder


def write_audio_only(path: str | os.PathLike, seconds: float = 0.5) -> Path:
    """Write an audio-only file (a sine tone) with PyAV; the suffix picks the container."""
    import av

    path = Path(path)
    rate = 16000
    container = av.open(str(path), mode="w")
    stream = container.add_stream("aac" if path.suffix in (".mp4", ".m4a") else "mp2", rate=rate)
    n = int(rate * seconds)
    samples = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
    step = 1024
    for start in range(0, n, step):
        chunk = samples[start : start + step]
        if len(chunk) < step:
            chunk = np.pad(chunk, (0, step - len(chunk)))
        fmt = "fltp"
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format=fmt, layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def tree_snapshot(root: str | os.PathLike) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``root`` with its size, mtime (ns) and content hash.

    Compare two snapshots to check that nothing under a dataset directory was written.
    """
    import hashlib

    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.stat(full)
            digest = b""
            if os.path.isfile(full):
                with open(full, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).digest()
            snap[os.path.relpath(full, root)] = (st.st_size, st.st_mtime_ns, digest)
    return snap
