"""Face detection and cropping (the paper crops faces with RetinaFace to 224 x 224).

* :mod:`~cefl_zoo.faces.detectors` - the :class:`FaceDetector` protocol and
  :class:`RetinaFaceDetector`, the offline default (``pip install "cefl-zoo[faces]"``).
* :mod:`~cefl_zoo.faces.tracking` - main-face selection, gap filling, temporal
  smoothing and square boxes, as functions on tensors.
* :mod:`~cefl_zoo.faces.cropper` - :class:`FaceCropper`, the ``face_cropper`` of
  :class:`~cefl_zoo.data.VideoDataset`, and :class:`NoFaceError`.
* :mod:`~cefl_zoo.faces.cache` - :func:`precompute_face_crops` and
  :func:`precompute_dataset_face_crops`: crops computed once, stored as frame folders.

Example:
    >>> from cefl_zoo.faces import FaceCropper, RetinaFaceDetector
    >>> cropper = FaceCropper(RetinaFaceDetector(), size=224, stride=2)  # doctest: +SKIP
    >>> from cefl_zoo.data import build_dataset
    >>> ds = build_dataset("afew", "AFEW", split="val", face_cropper=cropper)  # doctest: +SKIP
"""

from .cache import FACES_JSON, load_face_track, precompute_dataset_face_crops, precompute_face_crops
from .cropper import FaceCropper, FaceTrack, NoFaceError, crop_boxes, detection_indices
from .detectors import (
    FACES_EXTRA_HINT,
    FaceDetector,
    MissingFaceDependencyError,
    RetinaFaceDetector,
    check_detections,
)
from .tracking import box_iou, fill_track, select_main_face, smooth_track, square_boxes

__all__ = [
    "FACES_EXTRA_HINT",
    "FACES_JSON",
    "FaceCropper",
    "FaceDetector",
    "FaceTrack",
    "MissingFaceDependencyError",
    "NoFaceError",
    "RetinaFaceDetector",
    "box_iou",
    "check_detections",
    "crop_boxes",
    "detection_indices",
    "fill_track",
    "load_face_track",
    "precompute_dataset_face_crops",
    "precompute_face_crops",
    "select_main_face",
    "smooth_track",
    "square_boxes",
]
