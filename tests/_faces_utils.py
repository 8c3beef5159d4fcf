"""Test helpers for face detection and cropping.

* :class:`ScriptedDetector` - a :class:`~cefl_zoo.faces.FaceDetector` that returns the
  boxes a test scripted for each frame. Frames made by :func:`indexed_frames` carry their
  index in pixel ``(0, 0, 0)``, which is how the detector knows which frame it is given
  (and records which frames it saw).
* :func:`astronaut` and :func:`face_clip` - a real face (scikit-image's public-domain
  astronaut photo) and a clip of shifted, zoomed views of it, with the face box every
  frame should have.
* :data:`requires_faces_extra` - skip marker for tests that need ``cefl-zoo[faces]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch

__all__ = [
    "HAS_FACES_EXTRA",
    "ScriptedDetector",
    "astronaut",
    "face_clip",
    "indexed_frames",
    "requires_faces_extra",
]


def _has_faces_extra() -> bool:
    from cefl_zoo.faces.detectors import _import_retinaface

    try:
        _import_retinaface()
    except ImportError:
        return False
    return True


HAS_FACES_EXTRA = _has_faces_extra()
requires_faces_extra = pytest.mark.skipif(
    not HAS_FACES_EXTRA, reason='needs the faces extra: pip install "cefl-zoo[faces]"'
)


def indexed_frames(
    num_frames: int, height: int = 48, width: int = 64, start: int = 0
) -> torch.Tensor:
    """Grey frames ``uint8 (T, 3, H, W)`` whose pixel ``(0, 0, 0)`` holds ``start`` + index."""
    if start + num_frames > 256:
        raise ValueError("frame indices must fit in a byte")
    frames = torch.full((num_frames, 3, height, width), 100, dtype=torch.uint8)
    frames[:, 0, 0, 0] = torch.arange(start, start + num_frames, dtype=torch.uint8)
    return frames


class ScriptedDetector:
    """Returns ``script[frame index]`` (rows ``(x1, y1, x2, y2, score)``) per frame.

    Args:
        script: Per frame index, a list of rows (missing index or empty list: no face).

    Attributes:
        seen: Frame indices passed to :meth:`detect`, in call order.
        calls: Number of :meth:`detect` calls.
    """

    def __init__(self, script: dict[int, Sequence[Sequence[float]]]) -> None:
        self.script = script
        self.seen: list[int] = []
        self.calls = 0

    def __repr__(self) -> str:
        return "ScriptedDetector()"

    def detect(self, frames: torch.Tensor) -> list[torch.Tensor]:
        self.calls += 1
        out = []
        for frame in frames:
            index = int(frame[0, 0, 0])
            self.seen.append(index)
            rows = self.script.get(index, [])
            out.append(torch.tensor(rows, dtype=torch.float32).reshape(-1, 5))
        return out


def astronaut() -> torch.Tensor:
    """scikit-image's astronaut photo (a smiling face, public domain), ``uint8 (3, 512, 512)``."""
    data = pytest.importorskip("skimage.data")
    return torch.from_numpy(data.astronaut()).permute(2, 0, 1).contiguous()


def face_clip(
    image: torch.Tensor, face_box: torch.Tensor, num_frames: int = 12, size: int = 160
) -> tuple[torch.Tensor, torch.Tensor]:
    """A clip of square views of ``image`` that pan and zoom in over time.

    Args:
        image: ``uint8 (3, H, W)``, at least 400 px on each side.
        face_box: The face's box ``(4,)`` in ``image``.
        num_frames: Frames.
        size: Side of the frames.

    Returns:
        ``(frames uint8 (T, 3, size, size), boxes (T, 4))``: the face box in every frame,
        mapped exactly from ``face_box``.
    """
    from torchvision.transforms.v2 import functional as F

    frames, boxes = [], []
    for t in range(num_frames):
        side = 360 - 5 * t
        x0, y0 = 20 + 3 * t, 10 + 2 * t
        view = image[:, y0 : y0 + side, x0 : x0 + side]
        frames.append(F.resize(view, [size, size], antialias=True))
        shift = torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
        boxes.append((face_box[:4].float() - shift) * size / side)
    return torch.stack(frames), torch.stack(boxes)
