"""Square, temporally smooth face crops of a video: :class:`FaceCropper`.

The cropper runs a :class:`~cefl_zoo.faces.FaceDetector` on the frames (every frame, or
every ``stride``-th one), follows the main face through the video, fills the frames
without a detection, smooths the boxes over time and cuts square crops with a margin,
padding with black where a crop reaches past the image. Its call signature is the one
:class:`~cefl_zoo.data.VideoDataset` uses for ``face_cropper``::

    cropper(frames uint8 (T, 3, H, W), path) -> uint8 (T, 3, size, size)

A video in which no frame shows a face raises :class:`NoFaceError` naming the file (a
:class:`~cefl_zoo.video.VideoReadError`, so datasets skip or raise it like any broken
item).

Example:
    >>> import torch
    >>> from cefl_zoo.faces import FaceCropper
    >>> class Centre:  # stands in for RetinaFaceDetector()
    ...     def detect(self, frames):
    ...         return [torch.tensor([[24., 16., 40., 40., 0.9]])] * len(frames)
    >>> cropper = FaceCropper(Centre(), size=32, margin=0.0)
    >>> cropper(torch.zeros(4, 3, 64, 64, dtype=torch.uint8), "clip.mp4").shape
    torch.Size([4, 3, 32, 32])
    >>> cropper.track(torch.zeros(4, 3, 64, 64, dtype=torch.uint8)).crop_boxes[0].tolist()
    [20.0, 16.0, 44.0, 40.0]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..video.io import VideoReadError
from .detectors import FaceDetector, check_detections
from .tracking import fill_track, select_main_face, smooth_track, square_boxes, track_segments

__all__ = ["FaceCropper", "FaceTrack", "NoFaceError", "crop_boxes", "detection_indices"]


class NoFaceError(VideoReadError):
    """No frame of a video shows a face the detector finds."""


@dataclass(frozen=True)
class FaceTrack:
    """Where the main face is in every frame of a video.

    Attributes:
        boxes: Smoothed face boxes ``float32 (T, 4)``, ``(x1, y1, x2, y2)``.
        crop_boxes: The square crop regions ``float32 (T, 4)`` (may reach past the
            image).
        detected: ``bool (T,)``: the detector found the main face in this frame (the
            other frames were filled: interpolated or nearest box).
        scores: Detector confidence of the main face ``(T,)``, ``nan`` where not detected.
        raw_boxes: The main face's detected box ``(T, 4)`` before filling and smoothing,
            ``nan`` where not detected.
    """

    boxes: torch.Tensor
    crop_boxes: torch.Tensor
    detected: torch.Tensor
    scores: torch.Tensor
    raw_boxes: torch.Tensor

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def detection_indices(num_frames: int, stride: int) -> list[int]:
    """Frames the detector runs on: every ``stride``-th frame, and always the last one.

    Example:
        >>> detection_indices(10, 4)
        [0, 4, 8, 9]
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    idx = list(range(0, num_frames, stride))
    if num_frames and idx[-1] != num_frames - 1:
        idx.append(num_frames - 1)
    return idx


def crop_boxes(frames: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Cut each frame's box and resize it to ``size x size`` (black padding outside).

    Boxes are rounded to whole pixels, then the region is resized with anti-aliasing
    (``torchvision``'s bilinear resize with ``antialias=True``). Frames whose regions
    have the same pixel size are resized in one call.

    Args:
        frames: ``uint8 (T, 3, H, W)``.
        boxes: ``(T, 4)`` regions ``(x1, y1, x2, y2)`` in pixels (edges), any aspect.
        size: Output side.

    Returns:
        ``uint8 (T, 3, size, size)``.
    """
    from torchvision.transforms.v2 import functional as F

    t, c, h, w = frames.shape
    if boxes.shape != (t, 4):
        raise ValueError(f"boxes must have shape ({t}, 4), got {tuple(boxes.shape)}")
    out = torch.zeros((t, c, size, size), dtype=frames.dtype, device=frames.device)
    # Regions are gathered with numpy: copying many small strided slices with torch's
    # intra-op thread pool is far slower on a busy CPU.
    src = frames.numpy() if frames.device.type == "cpu" else frames
    groups: dict[tuple[int, int], list[tuple[int, tuple[int, int, int, int, int, int]]]] = {}
    for i, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        left, top = round(x1), round(y1)
        bw, bh = max(1, round(x2 - x1)), max(1, round(y2 - y1))
        sx0, sy0 = max(0, left), max(0, top)
        sx1, sy1 = min(w, left + bw), min(h, top + bh)
        if sx1 <= sx0 or sy1 <= sy0:
            continue  # the box lies outside the frame: all padding
        groups.setdefault((bh, bw), []).append((i, (left, top, sx0, sy0, sx1, sy1)))
    for (bh, bw), members in groups.items():
        if isinstance(src, torch.Tensor):
            stack = torch.zeros((len(members), c, bh, bw), dtype=frames.dtype, device=frames.device)
        else:
            stack = np.zeros((len(members), c, bh, bw), dtype=src.dtype)
        for j, (_, (left, top, sx0, sy0, sx1, sy1)) in enumerate(members):
            stack[j, :, sy0 - top : sy1 - top, sx0 - left : sx1 - left] = src[
                members[j][0], :, sy0:sy1, sx0:sx1
            ]
        batch = torch.from_numpy(stack) if isinstance(stack, np.ndarray) else stack
        if (bh, bw) != (size, size):
            batch = F.resize(batch, [size, size], antialias=True)
        out[[i for i, _ in members]] = batch
    return out


class FaceCropper:
    """Detect, track, smooth and crop the main face of a video.

    Args:
        detector: A :class:`~cefl_zoo.faces.FaceDetector`; default
            :class:`~cefl_zoo.faces.RetinaFaceDetector` (needs ``cefl-zoo[faces]``).
        size: Side of the square output crops (the paper: 224).
        margin: Fraction of the face box's longer side added on every side of the crop.
        smoothing: Standard deviation, in frames, of the Gaussian smoothing of the box
            centre and size over time; ``0`` disables it.
        stride: Run the detector on every ``stride``-th frame (and the last) only;
            the frames between are interpolated. ``1`` detects on every frame. If no
            face turns up on the strided frames, the others are tried before giving up.
        min_iou: Overlap with a face track's last box for a detection to continue it.
        reacquire: Detected frames in a row without the main face after which another
            visible face is cropped there (scene cuts); see
            :func:`~cefl_zoo.faces.select_main_face`.

    Example:
        >>> from cefl_zoo.faces import FaceCropper, RetinaFaceDetector
        >>> cropper = FaceCropper(RetinaFaceDetector(), size=224)  # doctest: +SKIP
        >>> faces = cropper(frames, "clip.mp4")  # uint8 (T, 3, 224, 224)  # doctest: +SKIP
    """

    def __init__(
        self,
        detector: FaceDetector | None = None,
        size: int = 224,
        margin: float = 0.25,
        smoothing: float = 2.0,
        stride: int = 1,
        min_iou: float = 0.2,
        reacquire: int = 3,
    ) -> None:
        if detector is None:
            from .detectors import RetinaFaceDetector

            detector = RetinaFaceDetector()
        if not callable(getattr(detector, "detect", None)):
            raise TypeError(
                f"detector must have a detect(frames) method (see cefl_zoo.faces.FaceDetector), "
                f"got {type(detector).__name__}"
            )
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if smoothing < 0:
            raise ValueError(f"smoothing must be >= 0, got {smoothing}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.detector = detector
        self.size = int(size)
        self.margin = float(margin)
        self.smoothing = float(smoothing)
        self.stride = int(stride)
        self.min_iou = float(min_iou)
        self.reacquire = int(reacquire)

    def __repr__(self) -> str:
        return (
            f"FaceCropper({self.detector!r}, size={self.size}, margin={self.margin}, "
            f"smoothing={self.smoothing}, stride={self.stride})"
        )

    def config(self) -> dict[str, Any]:
        """The settings that determine the crops (stored with precomputed crops)."""
        return {
            "detector": repr(self.detector),
            "size": self.size,
            "margin": self.margin,
            "smoothing": self.smoothing,
            "stride": self.stride,
            "min_iou": self.min_iou,
            "reacquire": self.reacquire,
        }

    # -- steps -----------------------------------------------------------------------
    def _check_frames(self, frames: torch.Tensor, path: str | None) -> None:
        where = path if path is not None else "<frames>"
        if (
            not isinstance(frames, torch.Tensor)
            or frames.dtype != torch.uint8
            or (frames.ndim != 4 or frames.shape[1] != 3)
        ):
            got = (
                f"{frames.dtype} {tuple(frames.shape)}"
                if isinstance(frames, torch.Tensor)
                else type(frames).__name__
            )
            raise ValueError(f"{where}: FaceCropper expects uint8 frames (T, 3, H, W), got {got}")
        if frames.shape[0] == 0:
            raise ValueError(f"{where}: no frames to crop")

    def detect(
        self, frames: torch.Tensor, indices: list[int] | None = None
    ) -> list[torch.Tensor | None]:
        """Run the detector on some frames.

        Args:
            frames: ``uint8 (T, 3, H, W)``.
            indices: Frames to run on; default :func:`detection_indices` with ``stride``.

        Returns:
            ``T`` entries: ``(n, 5)`` detections, ``None`` for frames not run on.
        """
        t = frames.shape[0]
        if indices is None:
            indices = detection_indices(t, self.stride)
        out: list[torch.Tensor | None] = [None] * t
        if indices:
            dets = check_detections(
                self.detector.detect(frames[torch.as_tensor(indices)]),
                len(indices),
                type(self.detector).__name__,
            )
            for i, det in zip(indices, dets):
                out[i] = det
        return out

    def track_detections(
        self,
        detections: list[torch.Tensor | None],
        path: str | os.PathLike | None = None,
        times: torch.Tensor | None = None,
    ) -> FaceTrack:
        """Turn per-frame detections into a :class:`FaceTrack`.

        Args:
            detections: Per frame ``(n, 5)`` detections, ``None`` where not detected.
            path: The video, for the error message.
            times: ``(T,)`` frame times (e.g. original frame indices when the frames are
                a sample of the video); default ``0 .. T-1``.

        Raises:
            NoFaceError: If no detection exists in any frame.
        """
        raw, scores, ids = select_main_face(
            detections, self.min_iou, self.reacquire, return_tracks=True
        )
        found = ~torch.isnan(raw).any(1)
        if not bool(found.any()):
            ran = sum(d is not None for d in detections)
            raise NoFaceError(
                path if path is not None else "<frames>",
                f"no face found in any of the {ran} frames searched (of {len(detections)}) "
                f"by {self.detector!r}",
                "Check that the video shows a face. A video that is already a face crop "
                "needs no detection (cefl-zoo predict without --faces); for faint faces, "
                "crop it first with a lower threshold (cefl-zoo faces --score-threshold, "
                "RetinaFaceDetector(score_threshold=...)); a dataset skips such videos "
                "with on_error='skip'",
            )
        ran_mask = torch.tensor([d is not None for d in detections])
        if times is not None:
            times = torch.as_tensor(times).reshape(-1)
            if times.shape[0] != len(detections):
                raise ValueError(f"times has {times.shape[0]} entries for {len(detections)} frames")
        boxes = torch.empty(raw.shape, dtype=torch.float32)
        for seg in track_segments(ids, times):  # one face per segment: a scene cut
            seg_times = times[seg] if times is not None else None
            filled = fill_track(raw[seg], ran_mask[seg], seg_times)
            boxes[seg] = smooth_track(filled, self.smoothing, seg_times)
        return FaceTrack(
            boxes=boxes,
            crop_boxes=square_boxes(boxes, self.margin),
            detected=found,
            scores=scores,
            raw_boxes=raw,
        )

    def track(
        self,
        frames: torch.Tensor,
        path: str | os.PathLike | None = None,
        times: torch.Tensor | None = None,
    ) -> FaceTrack:
        """Detect and track the main face (see :meth:`track_detections`)."""
        path = os.fspath(path) if path is not None else None
        self._check_frames(frames, path)
        detections = self.detect(frames)
        if self.stride > 1 and not any(d is not None and len(d) for d in detections):
            rest = [i for i, d in enumerate(detections) if d is None]
            extra = self.detect(frames, rest)
            for i in rest:
                detections[i] = extra[i]
        return self.track_detections(detections, path, times)

    def crop(self, frames: torch.Tensor, track: FaceTrack | torch.Tensor) -> torch.Tensor:
        """Cut the crops of a track (or of ``(T, 4)`` crop boxes) out of the frames."""
        boxes = track.crop_boxes if isinstance(track, FaceTrack) else track
        return crop_boxes(frames, boxes, self.size)

    def __call__(
        self,
        frames: torch.Tensor,
        path: str | os.PathLike | None = None,
        times: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Face crops of a video's frames.

        Args:
            frames: RGB ``uint8 (T, 3, H, W)``, in temporal order.
            path: The video (named in errors).
            times: ``(T,)`` frame times when the frames are not consecutive.

        Returns:
            ``uint8 (T, 3, size, size)``.

        Raises:
            NoFaceError: If no frame shows a face.
        """
        return self.crop(frames, self.track(frames, path, times))
