"""From a video to an explained prediction: :class:`Predictor`.

A :class:`Predictor` bundles a model with everything it needs at inference: the paper's
evaluation sampler (N clips x K frames from the model's ``pretrained_cfg``), the model's
preprocessing (:func:`cefl_zoo.transforms_for`), optional face cropping, the device and
mixed precision. It reads only the frames it samples (decoding seeks), batches many
videos through the model while a thread pool decodes the next ones, and turns the model's
:class:`~cefl_zoo.ExplainOutput` into a :class:`~cefl_zoo.predict.Prediction`.

Inputs :meth:`Predictor.predict` accepts:

* a path: a video file (anything FFmpeg reads) or a folder of frame images;
* a :class:`~cefl_zoo.video.VideoReader` (the caller keeps ownership);
* a ``uint8`` tensor ``(T, 3, H, W)``: the frames of one video, RGB;
* a tensor ``(N, K, 3, H, W)``: one video already sampled into N clips of K frames,
  ``uint8`` (preprocessed here) or ``float`` (taken as already preprocessed).

Faces: ``face_detector=None`` (the default) uses the frames as they are, which is right
for videos that are already face crops (the built-in synthetic videos, DFEW's
``clip_224x224`` frames). ``face_detector="retinaface"`` crops the face of every frame
first as the paper does (needs ``pip install 'cefl-zoo[faces]'``).

Example:
    >>> import torch, cefl_zoo
    >>> model = cefl_zoo.create_model("ceflnet_tiny", num_classes=3)
    >>> predictor = cefl_zoo.Predictor(model, device="cpu")
    >>> frames = torch.randint(0, 256, (40, 3, 72, 72), dtype=torch.uint8)  # (T, 3, H, W)
    >>> p = predictor.predict(frames, fps=20)
    >>> len(p.probabilities), p.clip_scores.shape, p.frame_weights.shape
    (3, torch.Size([3, 7]), torch.Size([7, 5]))
    >>> 0 <= p.rich_clip < 7 and p.rich_clip_seconds[1] <= 2.0
    True
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..commands._common import plural
from ..video.io import TensorVideoReader, VideoReader, open_video
from ..video.sampling import ClipSampler, VideoTooShortError
from .result import Prediction, PredictionFailure, span_seconds
from .timeline import Timeline, parse_span, window_starts

__all__ = [
    "DEFAULT_MODEL",
    "FACE_DETECTORS",
    "IMAGE_SUFFIXES",
    "ModelForwardError",
    "Predictor",
    "StageTimes",
    "load_model_for_inference",
    "weights_frames",
]

#: The model the CLI uses when none is named (``ceflnet_tiny`` trained on the built-in
#: synthetic videos, shipped inside the package; no download).
DEFAULT_MODEL = "ceflnet_tiny.synthetic"

#: File endings of still images, refused with a clear message when passed as a video.
IMAGE_SUFFIXES: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".webp",
    ".tif",
    ".tiff",
    ".ppm",
    ".pgm",
    ".heic",
)

VideoInput = Any  # str | os.PathLike | VideoReader | torch.Tensor

logger = logging.getLogger(__name__)

#: A video more than this many times the sampler's span long gets a hint to use timelines.
LONG_VIDEO_FACTOR = 8


class ModelForwardError(RuntimeError):
    """The model failed on a batch; the message names the model and the input shape.

    The original error is its ``__cause__``.
    """


def load_model_for_inference(name: str | os.PathLike[str]) -> nn.Module:
    """Create a model by name for prediction, with trained weights wherever they exist.

    * ``"arch.tag"`` loads that weight set (a clear error if it is not trained yet);
    * a bare architecture (``"ceflnet_tiny"``) loads its default weight set, the one
      ``create_model(arch, pretrained=True)`` loads, when it is available, else random
      weights with a warning (predictions are then meaningless);
    * ``"hf-hub:org/repo"`` (or timm's ``"hf_hub:org/repo"``), ``"local-dir:PATH"`` and
      local directories (``config.json`` + ``model.safetensors``) load as
      :func:`cefl_zoo.create_model` does.

    Raises:
        cefl_zoo.UnknownModelError: For an unknown name (a bare ``"org/repo"`` gets the
            hint to write ``"hf-hub:org/repo"``).
    """
    from .. import hub
    from ..registry import (
        UnknownModelError,
        _looks_like_path,
        create_model,
        default_pretrained_cfg,
        is_model,
        model_entrypoint,
        split_model_name,
    )

    if hub.is_reference(name):
        return hub.load_model(name)
    name = os.fspath(name)
    arch, tag = split_model_name(name)
    if not is_model(arch):
        hint = hub.hub_hint(name)
        if hint:
            raise UnknownModelError(
                f"unknown model {name!r}: it is neither a registered architecture nor an "
                f"existing folder.{hint} See cefl_zoo.list_models()."
            )
        if _looks_like_path(name):
            return create_model(name)  # raises: no such model folder
        model_entrypoint(arch)  # raises UnknownModelError with close matches
    if tag:
        return create_model(name, pretrained=True)
    default = default_pretrained_cfg(arch)
    if default is not None and default.has_weights:
        return create_model(default.name, pretrained=True)
    warnings.warn(
        f"{name!r} has no trained weights: predicting with RANDOM weights, the labels mean "
        "nothing. Pass a weight set (cefl-zoo models --pretrained lists them), a folder "
        "saved with save_pretrained(), or an hf-hub: name.",
        stacklevel=3,
    )
    return create_model(name)


def weights_frames(model: nn.Module) -> bool:
    """Whether ``model`` learns a weight for every frame (CEFLNet's LRL, paper eq. 2).

    A model says so with a boolean ``has_frame_weights`` attribute (every zoo model
    does); a model of your own without one is asked through its ``clip_encoder``
    (a :class:`~cefl_zoo.ClipEncoder` with ``relation=False``, as in the
    ``ceflnet_resnet18_sal`` ablation, weights every frame 1 and does not count).

    Example:
        >>> import cefl_zoo
        >>> weights_frames(cefl_zoo.create_model("ceflnet_tiny"))
        True
        >>> weights_frames(cefl_zoo.create_model("ceflnet_tiny", relation=False))
        False
    """
    flag = getattr(model, "has_frame_weights", None)
    if isinstance(flag, bool):
        return flag
    flag = getattr(getattr(model, "clip_encoder", None), "has_frame_weights", None)
    return flag if isinstance(flag, bool) else True


@dataclass
class StageTimes:
    """Seconds spent per stage of prediction (summed over threads) and counts.

    Attributes:
        decode: Opening videos and decoding the sampled frames.
        faces: Face detection and cropping.
        preprocess: Resizing and normalisation (the model's transform), thumbnails.
        model: The forward pass (including the copy to the device).
        videos: Videos predicted (or windows, for timelines).
        frames: Frames decoded.
    """

    decode: float = 0.0
    faces: float = 0.0
    preprocess: float = 0.0
    model: float = 0.0
    videos: int = 0
    frames: int = 0

    def shares(self) -> dict[str, float]:
        """Each stage's share of the summed stage time (0 to 1)."""
        total = self.decode + self.faces + self.preprocess + self.model
        stages = ("decode", "faces", "preprocess", "model")
        return {s: (getattr(self, s) / total if total else 0.0) for s in stages}

    def to_dict(self) -> dict[str, Any]:
        """Seconds, counts and shares."""
        return {
            "decode_s": self.decode,
            "faces_s": self.faces,
            "preprocess_s": self.preprocess,
            "model_s": self.model,
            "videos": self.videos,
            "frames": self.frames,
            "shares": self.shares(),
        }


@dataclass
class _Prepared:
    """One video, decoded and preprocessed, waiting for the model."""

    source: str
    clips: torch.Tensor  # float (N, K, 3, h, w)
    frame_indices: torch.Tensor | None
    clip_windows: torch.Tensor | None
    fps: float | None
    num_frames: int | None
    thumbnails: torch.Tensor | None
    clip_times: torch.Tensor | None = None  # float64 (N, 2) seconds, from the timestamps
    duration: float | None = None


def _frame_times(reader: VideoReader) -> tuple[torch.Tensor, float] | None:
    """The presentation time of every frame and the video's length in seconds, or ``None``
    when the reader cannot say (seconds are then ``frame / fps``)."""
    try:
        info = reader.info
        times = reader.frame_times()
    except (ValueError, ZeroDivisionError, AttributeError, NotImplementedError):
        return None
    if int(times.numel()) != int(info.num_frames) or not bool(torch.isfinite(times).all()):
        return None
    return times, float(info.duration)


def _source_name(item: Any) -> str:
    """How results name an input: its path, a reader's path, or ``"<tensor>"``."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    if isinstance(item, VideoReader):
        return str(getattr(item, "path", "<reader>"))
    return "<tensor>"


def _one_line(err: BaseException, source: str) -> str:
    """The error as one line that names the input."""
    text = " ".join(str(err).split()) or type(err).__name__
    if source not in text:
        text = f"{source}: {text}"
    return text


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={str(device)!r} was asked for but CUDA is not available here "
            "(no GPU or a CPU-only PyTorch build); use device='cpu' (CLI: --device cpu)"
        )
    return dev


def _resolve_amp(amp: str, device: torch.device) -> str:
    if amp not in ("auto", "bf16", "fp16", "none"):
        raise ValueError(f"amp must be 'auto', 'bf16', 'fp16' or 'none', got {amp!r}")
    if amp == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "none"
    if amp == "fp16" and device.type != "cuda":
        return "none"
    return amp


#: Face detector names that ``face_detector=`` (and the CLI's ``--faces NAME``) accepts.
FACE_DETECTORS: tuple[str, ...] = ("retinaface",)


def _build_face_cropper(face_detector: Any, size: int) -> Callable[..., torch.Tensor] | None:
    """The face cropper for ``face_detector`` (see :class:`Predictor`), crops ``size`` px.

    ``None`` / ``False``: no cropping. ``True`` or ``"retinaface"``: a
    :class:`cefl_zoo.faces.FaceCropper` around :class:`cefl_zoo.faces.RetinaFaceDetector`
    (raises :class:`cefl_zoo.faces.MissingFaceDependencyError`, an ``ImportError``, without
    the ``faces`` extra). A ``FaceCropper``: used as it is. An object with
    ``detect(frames)`` (a :class:`cefl_zoo.faces.FaceDetector`): wrapped in a
    ``FaceCropper``. Any other callable ``(frames, path) -> faces``: used as the cropper.
    """
    if face_detector is None or face_detector is False:
        return None
    from ..faces import FaceCropper, RetinaFaceDetector

    if face_detector is True:
        face_detector = "retinaface"
    if isinstance(face_detector, str):
        if face_detector.lower() != "retinaface":
            raise ValueError(
                f"unknown face detector {face_detector!r}; use one of {list(FACE_DETECTORS)}, "
                "or pass a detector object with a detect(frames) method"
            )
        return FaceCropper(RetinaFaceDetector(), size=size)
    if isinstance(face_detector, FaceCropper):
        return face_detector
    if callable(getattr(face_detector, "detect", None)):
        return FaceCropper(face_detector, size=size)
    if callable(face_detector):
        return face_detector
    raise TypeError(
        "face_detector must be None, 'retinaface', a FaceCropper, a detector with "
        f"detect(frames), or a callable (frames, path) -> faces; got {type(face_detector).__name__}"
    )


class Predictor:
    """Predict the expression of videos, with the emotion-rich clip and frame weights.

    Args:
        model: A model (any :class:`~cefl_zoo.VideoClassifier`) or a name for
            :func:`load_model_for_inference` (``"ceflnet_tiny.synthetic"``, a folder,
            ``"hf-hub:org/repo"``).
        device: ``"cuda"``, ``"cpu"``, a ``torch.device``; ``None`` picks CUDA when
            available.
        face_detector: ``None`` (default): frames are used as they are (inputs that are
            already face crops). ``"retinaface"`` (or ``True``): crop the main face of the
            sampled frames with RetinaFace, to the model's input size, as the paper does
            (``pip install 'cefl-zoo[faces]'``). A :class:`cefl_zoo.faces.FaceCropper`, a
            detector with ``detect(frames)`` (wrapped in a ``FaceCropper``) or a
            callable ``(frames, path) -> faces`` also works. A video without a
            detectable face raises :class:`cefl_zoo.faces.NoFaceError`.
        batch_size: Videos per forward pass in :meth:`predict_many` (windows per pass in
            :meth:`predict_timeline`).
        num_workers: Threads that decode (and crop) the next videos while the model
            runs; ``None``: ``min(4, CPU count)``, ``0``: decode in the calling thread.
        amp: ``"auto"`` (bf16 autocast on a GPU that supports it, float32 otherwise),
            ``"bf16"``, ``"fp16"`` (CUDA only) or ``"none"``. Falls back to float32 if
            the model fails under autocast.
        sampler: Temporal sampler; default: the paper's evaluation sampling with N and K
            from the model's ``pretrained_cfg``.
        min_frames: Shortest video accepted (default: K frames, one clip's worth);
            ``1`` accepts any video by repeating frames.
        fps: Frame rate of tensor inputs and frame folders, which have none of their own
            (default 25; a call's ``fps=`` overrides it). Video files keep their own.
        thumbnail_size: Longer side of the per-clip thumbnails kept for plots (0: none).
        num_threads: Set ``torch.set_num_threads`` (a process-wide setting) for CPU
            inference; ``None`` keeps PyTorch's default, one thread per physical core.
        progress: Show tqdm progress bars in :meth:`predict_many` and
            :meth:`predict_timeline`.
        model_name: Name used in results and messages (default: the name ``model`` was
            given as, or ``architecture.tag`` of a model object).

    Attributes:
        model: The model, in eval mode on ``device``.
        model_name: Name used in results.
        label_names: Class names in output order.
        sampler: The :class:`~cefl_zoo.video.ClipSampler`.
        transform: The model's evaluation transform.
        face_cropper: The face cropper, or ``None``.
        timings: :class:`StageTimes` accumulated since creation or :meth:`reset_timings`.
    """

    def __init__(
        self,
        model: nn.Module | str,
        device: str | torch.device | None = None,
        face_detector: Any = None,
        *,
        batch_size: int = 8,
        num_workers: int | None = None,
        amp: str = "auto",
        sampler: ClipSampler | None = None,
        min_frames: int | None = None,
        fps: float = 25.0,
        thumbnail_size: int = 96,
        num_threads: int | None = None,
        progress: bool = False,
        model_name: str | None = None,
    ) -> None:
        from ..transforms import transforms_for

        if isinstance(model, (str, os.PathLike)):
            self.model_name = os.fspath(model)
            model = load_model_for_inference(self.model_name)
        else:
            if not isinstance(model, nn.Module):
                raise TypeError(
                    f"model must be a torch.nn.Module or a model name, got {type(model).__name__}"
                )
            cfg = getattr(model, "pretrained_cfg", None)
            arch = getattr(model, "architecture", None) or type(model).__name__
            tag = getattr(cfg, "tag", None)
            self.model_name = f"{arch}.{tag}" if tag else arch
        if model_name is not None:
            self.model_name = str(model_name)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        self.device = _resolve_device(device)
        self.amp = _resolve_amp(amp, self.device)
        self.model = model.eval().to(self.device)
        self._frame_weights = weights_frames(model)
        self.label_names: tuple[str, ...] = tuple(
            getattr(model, "label_names", None)
            or [f"class_{i}" for i in range(int(getattr(model, "num_classes", 0)))]
        )
        if sampler is None:
            kwargs = {} if min_frames is None else {"min_frames": int(min_frames)}
            sampler = ClipSampler.from_cfg(model, **kwargs)
        self.sampler = sampler
        self.transform = transforms_for(model, train=False)
        size = int(model.pretrained_cfg.input_size[-1])
        self.face_cropper = _build_face_cropper(face_detector, size)
        self.batch_size = int(batch_size)
        self.num_workers = min(4, os.cpu_count() or 1) if num_workers is None else int(num_workers)
        self.fps = float(fps)
        self.thumbnail_size = int(thumbnail_size)
        self.progress = bool(progress)
        self.timings = StageTimes()
        self._lock = threading.Lock()
        self._hinted_long = False

    def __repr__(self) -> str:
        faces = type(self.face_cropper).__name__ if self.face_cropper is not None else None
        return (
            f"{type(self).__name__}(model={self.model_name!r}, device={str(self.device)!r}, "
            f"amp={self.amp!r}, faces={faces}, batch_size={self.batch_size}, "
            f"num_workers={self.num_workers})"
        )

    # -- bookkeeping -----------------------------------------------------------------
    def reset_timings(self) -> None:
        """Start ``timings`` from zero."""
        with self._lock:
            self.timings = StageTimes()

    @contextlib.contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                setattr(self.timings, stage, getattr(self.timings, stage) + elapsed)

    def _count(self, videos: int = 0, frames: int = 0) -> None:
        with self._lock:
            self.timings.videos += videos
            self.timings.frames += frames

    # -- input handling --------------------------------------------------------------
    def _open(self, item: VideoInput, fps: float | None) -> tuple[VideoReader, str, bool]:
        """A reader for ``item``, its name, and whether we own (must close) the reader."""
        if isinstance(item, VideoReader):
            return item, _source_name(item), False
        if isinstance(item, torch.Tensor):
            if item.ndim != 4:
                raise ValueError(
                    f"expected frames uint8 (T, 3, H, W) or a sampled video (N, K, 3, H, W), "
                    f"got a {item.ndim}-D tensor of shape {tuple(item.shape)}"
                )
            if item.shape[1] != 3 and item.shape[-1] == 3:
                raise ValueError(
                    f"expected frames (T, 3, H, W), got shape {tuple(item.shape)}: "
                    "channels-last frames need frames.permute(0, 3, 1, 2)"
                )
            if item.dtype != torch.uint8:
                raise TypeError(
                    f"expected uint8 frames (T, 3, H, W) with values 0..255, got {item.dtype}; "
                    "convert with (frames * 255).round().to(torch.uint8) for [0, 1] floats"
                )
            return TensorVideoReader(item, fps=fps or self.fps, path="<tensor>"), "<tensor>", True
        if isinstance(item, (str, os.PathLike)):
            path = os.fspath(item)
            if os.path.isfile(path) and path.lower().endswith(IMAGE_SUFFIXES):
                raise ValueError(
                    f"{path}: is a still image ({os.path.splitext(path)[1]}), not a video; pass "
                    "a video file, or a folder of frame images for a video stored as frames"
                )
            # frame folders carry no rate of their own: ``fps`` (else the predictor's) sets
            # it; video files ignore it
            reader = open_video(path, fps=float(fps or self.fps))
            return reader, path, True
        raise TypeError(
            "expected a video path, a VideoReader or a uint8 tensor (T, 3, H, W) / "
            f"(N, K, 3, H, W), got {type(item).__name__}"
        )

    def _thumbnails(self, frames: torch.Tensor) -> torch.Tensor | None:
        """``uint8 (N, 3, H, W)`` -> thumbnails whose longer side is ``thumbnail_size``."""
        if self.thumbnail_size <= 0:
            return None
        h, w = frames.shape[-2:]
        scale = self.thumbnail_size / max(h, w)
        if scale >= 1:
            return frames.clone()
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        out = F.interpolate(
            frames.float(), size=size, mode="bilinear", antialias=True, align_corners=False
        )
        return out.round().clamp(0, 255).to(torch.uint8)

    def _too_short(self, source: str, err: VideoTooShortError) -> ValueError:
        n, k = self.sampler.num_clips, self.sampler.frames_per_clip
        frames = (
            "no frames"
            if err.num_frames < 1
            else (f"only {err.num_frames} frame{'s' if err.num_frames != 1 else ''}")
        )
        least = self.sampler.min_frames
        what = f"one clip, {k} frames" if least == k else f"min_frames={least}"
        return ValueError(
            f"{source}: video has {frames}, fewer than the {least} the predictor accepts "
            f"({what}; the model reads {n} clips x {k} frames, repeating the frames of short "
            "videos); pass min_frames=1 (CLI: --min-frames 1) to accept it, or leave it out"
        )

    def _crop_faces(
        self, frames: torch.Tensor, source: str, times: torch.Tensor | None
    ) -> torch.Tensor:
        """Face crops of ``uint8 (T, 3, H, W)`` frames taken at original frames ``times``."""
        from ..data.base import crop_faces

        with self._timed("faces"):
            return crop_faces(self.face_cropper, frames, source, times=times)

    def _prepare_frames(
        self,
        frames: torch.Tensor,
        n: int,
        k: int,
        source: str,
        thumbnails: bool = True,
        times: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Crop, thumbnail and transform ``uint8 (n*k, 3, H, W)`` frames.

        Args:
            frames: The sampled frames of one video, in order.
            n: Clips.
            k: Frames per clip.
            source: The video's name, for errors.
            thumbnails: Also return thumbnails.
            times: Original frame index of each frame (face tracking uses the real gaps).

        Returns:
            ``float (n, k, 3, h, w)`` model input and ``uint8`` thumbnails ``(n, 3, ...)``
            of each clip's middle frame (or ``None``).
        """
        if self.face_cropper is not None:
            frames = self._crop_faces(frames, source, times)
        with self._timed("preprocess"):
            video = frames.reshape(n, k, *frames.shape[1:])
            thumbs = self._thumbnails(video[:, k // 2]) if thumbnails else None
            clips = self.transform(video)
        return clips, thumbs

    def _hint_long(self, source: str, num_frames: int) -> None:
        """Log, once per predictor, that a very long video is better read as a timeline."""
        span = self.sampler.normalized_length
        if self._hinted_long or num_frames <= LONG_VIDEO_FACTOR * span:
            return
        self._hinted_long = True
        n, k = self.sampler.num_clips, self.sampler.frames_per_clip
        logger.warning(
            "%s: %d frames, far more than the %d-frame span the model reads as one video: "
            "its %d clips x %d frames are spread over the whole video. For a long, "
            "untrimmed video use predict_timeline() (CLI: --window), which scores it "
            "window by window",
            source,
            num_frames,
            span,
            n,
            k,
        )

    def _prepare(self, item: VideoInput, fps: float | None = None) -> _Prepared:
        """Decode the sampled frames of one input and preprocess them."""
        if isinstance(item, torch.Tensor) and item.ndim == 5:
            return self._prepare_sampled(item)
        with self._timed("decode"):
            reader, source, own = self._open(item, fps)
        try:
            with self._timed("decode"):
                info = reader.info
                try:
                    sample = self.sampler.sample(info.num_frames, train=False)
                except VideoTooShortError as err:
                    raise self._too_short(source, err) from None
                n, k = sample.indices.shape
                self._hint_long(source, int(info.num_frames))
                frames = reader.read(sample.indices.reshape(-1))
                timing = _frame_times(reader)
            self._count(frames=n * k)
        finally:
            if own:
                reader.close()
        clips, thumbs = self._prepare_frames(frames, n, k, source, times=sample.indices.reshape(-1))
        return _Prepared(
            source,
            clips,
            sample.indices,
            sample.windows,
            float(info.fps),
            int(info.num_frames),
            thumbs,
            clip_times=None if timing is None else span_seconds(sample.windows, *timing),
            duration=None if timing is None else timing[1],
        )

    def _prepare_sampled(self, video: torch.Tensor) -> _Prepared:
        if video.shape[2] != 3:
            raise ValueError(
                f"expected a sampled video (N, K, 3, H, W), got shape {tuple(video.shape)}"
            )
        n, k = video.shape[:2]
        if video.dtype == torch.uint8:
            clips, thumbs = self._prepare_frames(
                video.reshape(n * k, *video.shape[2:]), n, k, "<tensor>"
            )
        elif torch.is_floating_point(video):
            clips, thumbs = video.float(), None  # float64 or half: the model's float32
        else:
            raise TypeError(
                f"a sampled video must be uint8 frames or float preprocessed frames, got "
                f"{video.dtype}"
            )
        return _Prepared("<tensor>", clips, None, None, None, None, thumbs)

    # -- the model -------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        if self.amp == "fp16":
            return torch.autocast(device_type=self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def _forward_error(self, err: Exception, x: torch.Tensor) -> ModelForwardError:
        """``err`` of the model on ``x`` as one line naming the model and the input."""
        expects = tuple(getattr(getattr(self.model, "pretrained_cfg", None), "input_size", ()))
        shape = "x".join(str(d) for d in x.shape)
        text = " ".join(str(err).split()) or type(err).__name__
        return ModelForwardError(
            f"model {self.model_name} failed on its input: {type(err).__name__}: {text} "
            f"(input batch {shape} = videos x clips x frames x channels x height x width, "
            f"frames {x.shape[-2]}x{x.shape[-1]} px"
            + (f"; the model's input_size is {expects}" if expects else "")
            + ")"
        )

    def _explain(self, batch: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Run ``forward_explain`` on ``(B, N, K, 3, h, w)``; float32 CPU outputs.

        Raises:
            ModelForwardError: The model failed (not for CUDA out of memory, which
                keeps its type).
        """
        with self._timed("model"), torch.inference_mode():
            x = batch.to(self.device, non_blocking=True)
            try:
                try:
                    with self._autocast():
                        out = self.model.forward_explain(x)
                except RuntimeError as err:
                    if self.amp == "none" or isinstance(err, torch.cuda.OutOfMemoryError):
                        raise
                    warnings.warn(
                        f"{self.model_name} failed under {self.amp} autocast ({err}); "
                        "falling back to float32",
                        stacklevel=3,
                    )
                    self.amp = "none"
                    out = self.model.forward_explain(x)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as err:  # re-raised with the model and the input named
                raise self._forward_error(err, x) from err
            result: dict[str, torch.Tensor | None] = {}
            for name in ("logits", "clip_scores", "frame_weights"):
                value = getattr(out, name, None)
                result[name] = None if value is None else value.detach().float().cpu()
            if not self._frame_weights:  # constant weights (no LRL relation): nothing to show
                result["frame_weights"] = None
        return result

    def _not_finite(self, out: dict[str, torch.Tensor | None], i: int, source: str) -> str | None:
        """Why the model's outputs for video ``i`` of a batch are unusable (NaN or inf in
        them: a diverged checkpoint, a half-precision overflow), or ``None``."""
        bad = [
            name
            for name, value in out.items()
            if value is not None and not bool(torch.isfinite(value[i]).all())
        ]
        if not bad:
            return None
        return (
            f"{source}: the model's outputs are not finite: {', '.join(bad)} of model "
            f"{self.model_name} hold NaN or inf. Its weights may be broken (a diverged "
            "checkpoint) or half precision overflowed; try amp='none' (CLI: --amp none) "
            "or other weights"
        )

    def _predictions(self, prepared: list[_Prepared]) -> list[Prediction | PredictionFailure]:
        out = self._explain(torch.stack([p.clips for p in prepared]))
        probs = out["logits"].softmax(-1)
        results: list[Prediction | PredictionFailure] = []
        for i, p in enumerate(prepared):
            problem = self._not_finite(out, i, p.source)
            if problem is not None:
                results.append(PredictionFailure(p.source, problem, ModelForwardError.__name__))
                continue
            results.append(
                Prediction(
                    source=p.source,
                    label_names=self.label_names,
                    probs=probs[i],
                    clip_scores=None if out["clip_scores"] is None else out["clip_scores"][i],
                    frame_weights=None if out["frame_weights"] is None else out["frame_weights"][i],
                    frame_indices=p.frame_indices,
                    clip_windows=p.clip_windows,
                    fps=p.fps,
                    num_frames=p.num_frames,
                    model=self.model_name,
                    thumbnails=p.thumbnails,
                    clip_times=p.clip_times,
                    video_duration=p.duration,
                )
            )
        self._count(videos=len(prepared))
        return results

    # -- public API ------------------------------------------------------------------
    def predict(self, video: VideoInput, fps: float | None = None) -> Prediction:
        """Predict one video.

        Args:
            video: A video file or frame folder path, a
                :class:`~cefl_zoo.video.VideoReader`, ``uint8`` frames ``(T, 3, H, W)``,
                or a sampled video ``(N, K, 3, H, W)`` (``uint8``, or ``float`` already
                preprocessed).
            fps: Frame rate of a tensor input or frame folder (default: the predictor's
                ``fps``); a video file or reader keeps its own.

        Returns:
            The :class:`~cefl_zoo.predict.Prediction`.

        Raises:
            cefl_zoo.video.VideoReadError: For a missing, corrupt or non-video file.
            ValueError: For a video that is too short, an image, or a wrong tensor.
            cefl_zoo.faces.NoFaceError: With face detection, when no face is found.
            ModelForwardError: The model failed, or its outputs are not finite (NaN).
        """
        result = self._predictions([self._prepare(video, fps)])[0]
        if isinstance(result, PredictionFailure):
            raise ModelForwardError(result.error)
        return result

    __call__ = predict

    def _iter_prepared(
        self, inputs: Sequence[VideoInput], fps: float | None, workers: int
    ) -> Iterator[tuple[int, _Prepared | BaseException]]:
        """Prepared inputs in order; decoding runs ``workers`` ahead in threads."""

        def safe(item: VideoInput) -> _Prepared | BaseException:
            try:
                return self._prepare(item, fps)
            except Exception as err:  # noqa: BLE001 - reported per input, the others go on
                return err

        if workers <= 0 or len(inputs) <= 1:
            for i, item in enumerate(inputs):
                yield i, safe(item)
            return
        depth = max(2 * workers, self.batch_size + workers)
        pool = ThreadPoolExecutor(workers, thread_name_prefix="cefl-zoo-decode")
        pending: collections.deque[tuple[int, Future]] = collections.deque()
        todo = iter(enumerate(inputs))
        try:
            for i, item in todo:
                pending.append((i, pool.submit(safe, item)))
                if len(pending) >= depth:
                    break
            while pending:
                i, fut = pending.popleft()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append((nxt[0], pool.submit(safe, nxt[1])))
                yield i, fut.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def predict_many(
        self,
        videos: Iterable[VideoInput],
        *,
        batch_size: int | None = None,
        on_error: str = "return",
        fps: float | None = None,
        progress: bool | None = None,
    ) -> list[Prediction | PredictionFailure]:
        """Predict many videos, batched through the model while threads decode ahead.

        Out of memory (``torch.OutOfMemoryError``, in the model or in decoding) is raised
        at once with either ``on_error``, neither retried nor recorded as failures: every
        other video would fail too. Lower ``batch_size`` then.

        Args:
            videos: Inputs as for :meth:`predict` (paths, readers, tensors).
            batch_size: Videos per forward pass (default: the predictor's).
            on_error: ``"return"``: a video that fails becomes a
                :class:`~cefl_zoo.predict.PredictionFailure` with a one-line message and
                the others go on (a batch the model fails on is run again video by video,
                so that only the video at fault fails); ``"raise"``: the first failure
                raises.
            fps: Frame rate for tensor inputs and frame folders.
            progress: Show a tqdm bar (default: the predictor's ``progress``).

        Returns:
            One result per input, in input order.
        """
        from tqdm.auto import tqdm

        if on_error not in ("return", "raise"):
            raise ValueError(f"on_error must be 'return' or 'raise', got {on_error!r}")
        inputs = list(videos)
        bs = int(batch_size or self.batch_size)
        results: list[Prediction | PredictionFailure | None] = [None] * len(inputs)
        show = self.progress if progress is None else progress
        bar = tqdm(
            total=len(inputs),
            unit="video",
            disable=not show or len(inputs) < 2,
            desc="predict",
            dynamic_ncols=True,
        )
        batch: list[tuple[int, _Prepared]] = []

        def run(items: list[_Prepared]) -> list[Prediction | PredictionFailure]:
            try:
                return self._predictions(items)
            except Exception as err:
                if on_error == "raise" or isinstance(err, torch.OutOfMemoryError):
                    raise
                if len(items) > 1:  # one by one: only the video the model fails on fails
                    return [pred for item in items for pred in run([item])]
                source = items[0].source
                return [PredictionFailure(source, _one_line(err, source), type(err).__name__)]

        def flush() -> None:
            if not batch:
                return
            preds = run([p for _, p in batch])
            for (i, _), pred in zip(batch, preds):
                if on_error == "raise" and isinstance(pred, PredictionFailure):
                    raise ModelForwardError(pred.error)
                results[i] = pred
            bar.update(len(batch))
            batch.clear()

        prepared = self._iter_prepared(inputs, fps, self.num_workers)
        try:
            for i, prep in prepared:
                if isinstance(prep, BaseException):
                    if on_error == "raise" or isinstance(prep, torch.OutOfMemoryError):
                        raise prep
                    source = _source_name(inputs[i])
                    results[i] = PredictionFailure(
                        source, _one_line(prep, source), type(prep).__name__
                    )
                    bar.update(1)
                    continue
                if batch and prep.clips.shape != batch[0][1].clips.shape:
                    flush()
                batch.append((i, prep))
                if len(batch) >= bs:
                    flush()
            flush()
        finally:
            prepared.close()  # stops the decoding threads at once if anything raised
            bar.close()
        return results  # type: ignore[return-value]

    def predict_timeline(
        self,
        video: VideoInput,
        window: int | str | None = None,
        stride: int | str | None = None,
        *,
        batch_size: int | None = None,
        fps: float | None = None,
        progress: bool | None = None,
    ) -> Timeline:
        """Score a long video window by window: an expression timeline.

        Every window of ``window`` frames (default: the sampler's normalised length, the
        paper's 105) is sampled with the evaluation sampler as a video of its own.
        Windows are decoded batch by batch with seeks, never the whole video at once: at
        most two batches of ``batch_size x N x K`` frames are in memory (one being
        decoded, one in the model).

        Args:
            video: A video path, frame folder, :class:`~cefl_zoo.video.VideoReader` or
                ``uint8`` frames ``(T, 3, H, W)``.
            window: Window length: frames (``105``, ``"105f"``) or seconds (``"4.2s"``,
                converted to frames at the video's frame rate, its average rate for a
                variable one: every window has the same number of frames, and
                ``Timeline.window_times`` has each window's true start and end).
            stride: Frames (or seconds) between window starts. Default: the part of a
                window the sampler actually reads (its span, 75 of 105 frames), so the
                sampled spans of consecutive windows tile the video.
            batch_size: Windows per forward pass (default: the predictor's).
            fps: Frame rate for tensor inputs and frame folders.
            progress: Show a tqdm bar over the windows.

        With face detection, each window is tracked as a video of its own; a window in
        which no face is found (the person left the frame) is not scored: its row of
        ``Timeline.probs`` is NaN (see ``Timeline.scored``) and the other windows come
        out as usual.

        Returns:
            The :class:`~cefl_zoo.predict.Timeline`.

        Raises:
            cefl_zoo.faces.NoFaceError: With face detection, when no window has a face.
            ModelForwardError: The model failed, or its outputs are not finite (NaN).
            ValueError: For a video shorter than the sampler accepts, a bad window or
                stride, or an already sampled 5-D tensor.
        """
        from tqdm.auto import tqdm

        if isinstance(video, torch.Tensor) and video.ndim == 5:
            raise ValueError(
                "a timeline needs the frames of the whole video, uint8 (T, 3, H, W); got a "
                f"5-D tensor of shape {tuple(video.shape)}, a video already sampled into "
                "clips: predict it with predict()"
            )
        with self._timed("decode"):
            reader, source, own = self._open(video, fps)
        pool: ThreadPoolExecutor | None = None
        try:
            info = reader.info
            rate = float(info.fps) if info.fps else None
            length = parse_span(
                window if window is not None else self.sampler.normalized_length, rate
            )
            if stride is None:
                step = max(1, round(length * self.sampler.span / self.sampler.normalized_length))
            else:
                step = parse_span(stride, rate)
            try:
                self.sampler.check_length(info.num_frames)
            except VideoTooShortError as err:
                raise self._too_short(source, err) from None
            starts = window_starts(info.num_frames, length, step)
            win_len = min(length, info.num_frames)
            local = self.sampler.sample(win_len, train=False)
            n, k = local.indices.shape
            bs = int(batch_size or self.batch_size)
            batches = [starts[i : i + bs] for i in range(0, len(starts), bs)]

            def load(batch_starts: list[int]) -> tuple[torch.Tensor | None, torch.Tensor]:
                """Decode and preprocess a batch of windows: ``(b, N, K, 3, h, w)`` for the
                windows with a face (``None`` if none has one), and which those are."""
                offsets = torch.tensor(batch_starts).view(-1, 1, 1)
                indices = (local.indices.unsqueeze(0) + offsets).reshape(-1)
                with self._timed("decode"):
                    frames = reader.read(indices)
                self._count(frames=int(indices.numel()))
                b = len(batch_starts)
                found = torch.ones(b, dtype=torch.bool)
                if self.face_cropper is not None:  # each window is tracked as a video
                    from ..faces import NoFaceError

                    per, crops = n * k, []
                    for w in range(b):
                        part = slice(w * per, (w + 1) * per)
                        try:
                            crops.append(self._crop_faces(frames[part], source, indices[part]))
                        except NoFaceError:  # the window is left unscored
                            found[w] = False
                    if not crops:
                        return None, found
                    frames = torch.cat(crops)
                with self._timed("preprocess"):
                    clips = self.transform(frames.reshape(-1, n, k, *frames.shape[1:]))
                return clips, found

            probs_all, rich_all = [], []
            has_scores = False
            show = self.progress if progress is None else progress
            bar = tqdm(
                total=len(starts),
                unit="window",
                disable=not show,
                desc="timeline",
                dynamic_ncols=True,
            )
            pool = ThreadPoolExecutor(1, thread_name_prefix="cefl-zoo-window")
            try:
                future = pool.submit(load, batches[0])
                for b, batch_starts in enumerate(batches):
                    clips, found = future.result()
                    if b + 1 < len(batches):  # decode the next batch while the model runs
                        future = pool.submit(load, batches[b + 1])
                    # windows without a face keep NaN probabilities and a -1 rich clip
                    probs = torch.full((len(batch_starts), len(self.label_names)), math.nan)
                    rich = torch.full((len(batch_starts), 2), -1, dtype=torch.long)
                    if clips is not None:
                        out = self._explain(clips)
                        for i, w in enumerate(found.nonzero().flatten().tolist()):
                            first = batch_starts[w]
                            where = f"{source} window {b * bs + w} (frames {first}-"
                            problem = self._not_finite(out, i, f"{where}{first + win_len - 1})")
                            if problem is not None:
                                raise ModelForwardError(problem)
                        probs[found] = out["logits"].softmax(-1)
                        if out["clip_scores"] is not None:
                            has_scores = True
                            pred = out["logits"].argmax(-1)
                            best = out["clip_scores"][torch.arange(len(pred)), pred].argmax(-1)
                            offsets = torch.tensor(batch_starts)[found].view(-1, 1)
                            rich[found] = local.windows[best] + offsets
                    probs_all.append(probs)
                    rich_all.append(rich)
                    self._count(videos=len(batch_starts))
                    bar.update(len(batch_starts))
            finally:
                bar.close()
            probs_t = torch.cat(probs_all)
            scored = ~probs_t.isnan().any(1)
            if not bool(scored.any()):
                from ..faces import NoFaceError

                raise NoFaceError(
                    source,
                    f"no face found in any of the {plural(len(starts), 'window')} of the video "
                    f"({n * k} sampled frames each)",
                    "Check that the video shows a face, or predict it without face detection "
                    "(CLI: without --faces) if it is already a face crop",
                )
            starts_t = torch.tensor(starts)
            rich_frames = torch.cat(rich_all) if has_scores else None
            timing = _frame_times(reader)
            window_times = rich_times = None
            if timing is not None:
                window_times = span_seconds(
                    torch.stack([starts_t, starts_t + win_len - 1], 1), *timing
                )
                if rich_frames is not None:
                    rich_times = span_seconds(rich_frames, *timing)
                    rich_times[~scored] = math.nan
            return Timeline(
                window_times=window_times,
                rich_clip_times=rich_times,
                video_duration=None if timing is None else timing[1],
                source=source,
                label_names=self.label_names,
                starts=starts_t,
                ends=starts_t + win_len - 1,
                probs=probs_t,
                rich_clip_frames=rich_frames,
                fps=rate,
                num_frames=int(info.num_frames),
                window=length,
                stride=step,
                model=self.model_name,
            )
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
            if own:
                reader.close()
