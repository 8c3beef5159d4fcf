"""The dataset base class: a list of videos in, ``(N, K, 3, H, W)`` samples out.

:class:`VideoDataset` does everything that is the same for every dataset: open a video
(file or frame folder), sample clips with a :class:`~cefl_zoo.video.ClipSampler`, decode
only the sampled frames, crop faces (optional), apply the spatial transform, locate the
apex clip, and handle broken files. A dataset adapter only says *which* videos there are:
it overrides :meth:`VideoDataset._load_items` to return a list of :class:`VideoItem`
(path, label index, metadata) and sets :attr:`VideoDataset.classes`.

Reproducibility: all randomness of a sample (the clip sampling and the augmentation)
comes from a seed derived from ``(dataset seed, epoch, index)``. The same item in the same
epoch gives the same sample whatever the number of DataLoader workers, the order, or the
process (a resumed or distributed run). Call :meth:`VideoDataset.set_epoch` at the start of
every epoch, before iterating a DataLoader (with ``persistent_workers=True`` the workers keep
their own copy of the dataset and never see the new epoch, so leave it off).

Example:
    >>> from cefl_zoo.data import VideoDataset, VideoItem
    >>> class MyDataset(VideoDataset):
    ...     classes = ("happiness", "sadness")
    ...     def __init__(self, root, **kwargs):
    ...         self.root = root
    ...         super().__init__(**kwargs)
    ...     def _load_items(self):
    ...         return [VideoItem(f"{self.root}/a.mp4", 0), VideoItem(f"{self.root}/b.mp4", 1)]
    >>> ds = MyDataset("videos")  # doctest: +SKIP
    >>> sample = ds[0]  # doctest: +SKIP
    >>> sample["video"].shape  # doctest: +SKIP
    torch.Size([7, 5, 3, 224, 224])
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

import torch
from torch.utils.data import Dataset

from ..video.io import VideoReader, VideoReadError, open_video
from ..video.sampling import ClipSample, ClipSampler, VideoTooShortError, apex_clip_index

__all__ = [
    "ITEM_ERRORS",
    "FaceCropper",
    "Sample",
    "SampleTransformError",
    "VideoDataset",
    "VideoItem",
    "is_item_error",
    "item_seed",
]

#: Errors a broken item can raise while its file is read, decoded, sampled and
#: face-cropped (:meth:`VideoDataset.read_clip`); ``on_error="skip"`` skips these (and
#: only these, less running out of memory: see :func:`is_item_error`). Errors of the
#: transform are not about the file: they raise :class:`SampleTransformError` whatever
#: ``on_error`` says.
ITEM_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError, EOFError)


def is_item_error(err: BaseException) -> bool:
    """Whether ``err`` is a broken item's, so that ``on_error="skip"`` may skip the item.

    One of :data:`ITEM_ERRORS`, except ``torch.OutOfMemoryError`` (a ``RuntimeError``, e.g.
    of a face cropper on the GPU): out of memory, every other item would fail too.
    """
    return isinstance(err, ITEM_ERRORS) and not isinstance(err, torch.OutOfMemoryError)


#: The command-line spelling of ``ClipSampler(min_frames=1)`` for ``cefl-zoo train`` and
#: ``cefl-zoo eval``.
MIN_FRAMES_CLI = """--data-kwargs '{"sampler_kwargs": {"min_frames": 1}}'"""


class SampleTransformError(Exception):
    """The transform failed on frames that were read fine: a transform or settings problem
    (e.g. an impossible input size) or a lack of memory, not a broken video.

    Deliberately none of :data:`ITEM_ERRORS`, so it is never skipped as an unreadable item;
    the original error is its ``__cause__``.
    """


_SKIP_WARNINGS: dict[Any, Any] = {}  # the warnings registry of warn_skipped


def warn_skipped(message: str, origin: str = "cefl_zoo.data") -> None:
    """Warn (``RuntimeWarning``) that a video is skipped; ``message`` says it all.

    The warning is attributed to ``<origin>`` rather than to a source line: the line that
    asked for the item (a DataLoader's, the trainer's) has nothing to do with the broken
    file, and printing it would mislead. Shown once per message and process, as
    ``warnings.warn`` does by default.
    """
    warnings.warn_explicit(
        message,
        RuntimeWarning,
        filename=f"<{origin}>",
        lineno=0,
        module="cefl_zoo.data.base",
        registry=_SKIP_WARNINGS,
    )


def item_error_reason(err: BaseException, path: str) -> str:
    """The error's message without the leading ``path: `` (for messages that name it)."""
    if isinstance(err, VideoReadError) and err.path == path:
        return err.problem + (f". {err.advice}" if err.advice else "")
    text = str(err)
    return text.removeprefix(f"{path}: ")


class FaceCropper(Protocol):
    """What :class:`VideoDataset` expects of ``face_cropper`` (see :mod:`cefl_zoo.faces`).

    A cropper that also takes a ``times`` keyword (as :class:`cefl_zoo.faces.FaceCropper`
    does) gets the original frame index of every frame, so that tracking and smoothing
    run in frames of the video, not in frames of the sample.
    """

    def __call__(self, frames: torch.Tensor, path: str) -> torch.Tensor:
        """Crop ``uint8 (T, 3, H, W)`` frames of the video at ``path`` to
        ``uint8 (T, 3, S, S)`` faces."""
        ...


def crop_faces(
    cropper: Callable[..., torch.Tensor],
    frames: torch.Tensor,
    path: str,
    times: torch.Tensor | None = None,
) -> torch.Tensor:
    """Run a ``face_cropper`` on frames taken at original frames ``times`` (``(T,)``).

    ``times`` is passed only to croppers whose call takes a ``times`` keyword; others get
    ``(frames, path)``.
    """
    if times is not None and _takes_times(cropper):
        return cropper(frames, path, times=times)
    return cropper(frames, path)


def _takes_times(cropper: Callable[..., Any]) -> bool:
    import inspect

    try:
        params = inspect.signature(cropper).parameters
    except (TypeError, ValueError):  # builtins and C callables without a signature
        return False
    return "times" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


@dataclass(frozen=True)
class VideoItem:
    """One video of a dataset.

    Attributes:
        path: Video file or frame folder.
        label: Class index into the dataset's ``classes``.
        meta: Anything else the adapter knows, e.g. ``{"apex_frame": 42}`` (the apex
            frame's index in the original video, used for ``apex_clip``), a subject id,
            the original label string.
    """

    path: str
    label: int
    meta: dict[str, Any] = field(default_factory=dict)


class Sample(TypedDict):
    """One item as :meth:`VideoDataset.__getitem__` returns it (default collate works).

    Keys:
        video: ``float32 (N, K, 3, H, W)`` after the transform (``[0, 1]`` floats when
            the dataset has no transform).
        label: Class index.
        path: The video's path.
        apex_clip: Index of the clip nearest to the item's apex frame (see
            :func:`~cefl_zoo.video.apex_clip_index`), ``-1`` when the apex is unknown.
        frame_indices: Original frame index of every frame, ``LongTensor (N, K)``.
        index: Index of the item returned (differs from the one asked for when a broken
            item was skipped).
    """

    video: torch.Tensor
    label: int
    path: str
    apex_clip: int
    frame_indices: torch.Tensor
    index: int


def item_seed(seed: int, epoch: int, index: int, stream: str = "") -> int:
    """A 63-bit seed from ``(seed, epoch, index)``, independent of process and order.

    Example:
        >>> item_seed(0, 1, 5) == item_seed(0, 1, 5) != item_seed(0, 2, 5)
        True
    """
    digest = hashlib.blake2b(f"{seed}/{epoch}/{index}/{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class VideoDataset(Dataset):
    """Base class of the video datasets: sampling, decoding, transforms, bad files.

    Subclasses (dataset adapters) override :meth:`_load_items` and set :attr:`classes`;
    everything else is shared. The base class also works directly on a list of items.

    Args:
        items: The videos; ``None`` calls :meth:`_load_items`.
        classes: Class names in label order (canonical names, see
            :mod:`cefl_zoo.labels`); defaults to the class attribute :attr:`classes`.
        sampler: Temporal sampler; defaults to the paper's ``ClipSampler()`` (7 x 5).
        transform: Maps ``uint8 (N, K, 3, H, W)`` to the model input, e.g.
            :func:`cefl_zoo.transforms_for(model, train) <cefl_zoo.transforms.transforms_for>`.
            ``None`` gives ``float32`` frames in ``[0, 1]``.
        train: Random sampling (training) or the deterministic evaluation sampling.
        face_cropper: Optional ``(frames uint8 (T, 3, H, W), path) -> uint8 (T, 3, S, S)``,
            applied to the decoded frames (in temporal order, each frame once) before the
            transform; called with ``times=`` (the frames' original indices) when it takes
            that keyword (see :class:`FaceCropper`). Leave it ``None`` for datasets that
            ship face crops.
        on_error: ``"skip"``: a broken item (unreadable, truncated, too short, no face,
            ...) is reported with its path (a warning and a record in ``failures``)
            and the next item (``index + 1``, wrapping around) that loads is returned in
            its place, its ``"index"`` telling which. ``"raise"``: raise the error, with
            the path in the message.
        seed: Base seed of the per-item randomness.
        reader_kwargs: Options for :func:`~cefl_zoo.video.open_video` (e.g.
            ``{"fps": 30}`` for frame folders).

    Attributes:
        items: The :class:`VideoItem` list.
        classes: Class names, a tuple.
        epoch: Current epoch (see :meth:`set_epoch`).
        failures: One dict per failed load in this process: ``index``, ``path``,
            ``epoch``, ``error`` (type name), ``message``. (DataLoader workers keep
            their own list; the warnings reach the console either way.)
    """

    #: Class names in label order; adapters set this (or pass ``classes=``).
    classes: tuple[str, ...] = ()

    def __init__(
        self,
        items: Iterable[VideoItem] | None = None,
        classes: Sequence[str] | None = None,
        *,
        sampler: ClipSampler | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        train: bool = False,
        face_cropper: FaceCropper | None = None,
        on_error: str = "skip",
        seed: int = 0,
        reader_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        if classes is not None:
            self.classes = tuple(classes)
        self.items: list[VideoItem] = list(self._load_items() if items is None else items)
        self.classes = tuple(self.classes)
        if not self.classes:
            raise ValueError(
                f"{type(self).__name__} has no class names: pass classes=... or set the "
                "`classes` class attribute"
            )
        for item in self.items:
            if not 0 <= int(item.label) < len(self.classes):
                raise ValueError(
                    f"{item.path}: label {item.label} is outside 0..{len(self.classes) - 1} "
                    f"for the {len(self.classes)} classes {self.classes}"
                )
        self.sampler = sampler if sampler is not None else ClipSampler()
        self.transform = transform
        self.train = bool(train)
        self.face_cropper = face_cropper
        self.on_error = on_error
        self.seed = int(seed)
        self.reader_kwargs = dict(reader_kwargs or {})
        self.epoch = 0
        self.failures: list[dict[str, Any]] = []

    # -- the seam for adapters ---------------------------------------------------------
    def _load_items(self) -> list[VideoItem]:
        """Build the list of videos. Dataset adapters override this.

        Called once by ``__init__`` when no ``items`` are passed (after the subclass has
        set its own attributes, e.g. ``self.root``, and before anything else).

        Returns:
            The :class:`VideoItem` list, labels indexing :attr:`classes`.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override _load_items() or be given items=[...]"
        )

    def open(self, item: VideoItem) -> VideoReader:
        """Open an item's video. Override to read from elsewhere (memory, a cache)."""
        return open_video(item.path, **self.reader_kwargs)

    # -- basics --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def targets(self) -> list[int]:
        """The label of every item (e.g. for class weights or a balanced sampler)."""
        return [int(item.label) for item in self.items]

    def class_counts(self) -> dict[str, int]:
        """Number of items per class name, in class order."""
        counts = Counter(self.targets)
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random samples ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def seed_key(self, index: int) -> int:
        """The number item ``index`` is seeded by: the index itself (a frame cache: the
        item's index in the dataset it was built from)."""
        return index

    def generator(self, index: int, stream: str = "sampler") -> torch.Generator:
        """The generator of item ``index`` in the current epoch."""
        seed = item_seed(self.seed, self.epoch, self.seed_key(index), stream)
        return torch.Generator().manual_seed(seed)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(items={len(self)}, classes={len(self.classes)}, "
            f"train={self.train}, sampler={self.sampler!r})"
        )

    # -- loading -------------------------------------------------------------------------
    def load_sample(self, index: int) -> Sample:
        """Load item ``index`` without any error handling (see ``__getitem__``).

        Two stages: :meth:`read_clip` (the item's file: open, decode, sample, face-crop;
        its errors are the item's, :data:`ITEM_ERRORS`) and :meth:`make_sample` (the
        transform; its errors raise :class:`SampleTransformError`).
        """
        video, clip = self.read_clip(index)
        return self.make_sample(index, video, clip)

    def read_clip(self, index: int) -> tuple[torch.Tensor, ClipSample]:
        """Read the sampled frames of item ``index``: ``uint8 (N, K, 3, H, W)`` and the clip.

        Everything here is about the item's file (open, decode, temporal sampling, face
        crop); an error of it means the item is broken (skipped with ``on_error="skip"``).
        """
        item = self.items[index]
        with self.open(item) as reader:
            num_frames = len(reader)
            clip = self.sampler.sample(num_frames, self.train, self.generator(index))
            unique, inverse = torch.unique(clip.indices, return_inverse=True)
            frames = reader.read(unique)
        if self.face_cropper is not None:
            frames = crop_faces(self.face_cropper, frames, item.path, times=unique)
        return frames[inverse], clip  # (N, K, 3, H, W)

    def make_sample(self, index: int, video: torch.Tensor, clip: ClipSample) -> Sample:
        """Transform the frames :meth:`read_clip` returned into the sample of item ``index``.

        Raises:
            SampleTransformError: When the transform fails (chained to its error): the
                frames were read fine, so this is never an unreadable item.
        """
        item = self.items[index]
        try:
            video = self._apply_transform(video, index)
        except Exception as err:
            raise SampleTransformError(
                f"{item.path}: the transform failed on this video's frames "
                f"({tuple(video.shape)} {video.dtype}): {type(err).__name__}: {err}. This is "
                "not a problem of the video file (it was read and decoded fine) but of the "
                "transform or its settings (e.g. the input size), or of memory; fix that "
                "rather than the data (skipping the video would not help)"
            ) from err
        return {
            "video": video,
            "label": int(item.label),
            "path": item.path,
            "apex_clip": apex_clip_index(clip.windows, item.meta.get("apex_frame")),
            "frame_indices": clip.indices,
            "index": int(index),
        }

    def _apply_transform(self, video: torch.Tensor, index: int) -> torch.Tensor:
        if self.transform is None:
            return video.float().div_(255) if video.dtype == torch.uint8 else video
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(
                item_seed(self.seed, self.epoch, self.seed_key(index), "transform")
            )
            return self.transform(video)

    def __getitem__(self, index: int) -> Sample:
        """The sample of item ``index`` (see :class:`Sample`), or of a replacement.

        Raises:
            VideoReadError: With ``on_error="raise"``, for a broken item (the message
                names the file).
            RuntimeError: With ``on_error="skip"``, when every item fails.
            SampleTransformError: When the transform fails (whatever ``on_error``): not a
                problem of the item, so no other item is tried.
        """
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} items")
        index %= n
        for attempt in range(n):
            i = (index + attempt) % n
            try:
                return self.load_sample(i)
            except ITEM_ERRORS as err:
                if not is_item_error(err):
                    raise
                error = self._describe(i, err)
                self.failures.append(
                    {
                        "index": i,
                        "path": self.items[i].path,
                        "epoch": self.epoch,
                        "error": type(err).__name__,
                        "message": str(error),
                    }
                )
                if self.on_error == "raise":
                    if error is err:
                        raise
                    raise error from err
                path = self.items[i].path
                warn_skipped(
                    f"skipping unreadable item {i} ({path}): {item_error_reason(error, path)}; "
                    "returning the next item that loads in its place",
                    type(self).__name__,
                )
        raise RuntimeError(
            f"{type(self).__name__}: every one of its {n} items failed to load; first "
            f"failure: {self.failures[-n]['message']}"
        )

    def _describe(self, index: int, err: BaseException) -> BaseException:
        """The error as raised to the user: always naming the item's file."""
        path = self.items[index].path
        if isinstance(err, VideoTooShortError) and "ClipSampler(min_frames=1)" in str(err):
            return VideoReadError(
                path,
                f"{err} (cefl-zoo train/eval: {MIN_FRAMES_CLI}; cefl-zoo cache: --min-frames 1)",
            )
        if isinstance(err, VideoReadError) or path in str(err):
            return err
        return VideoReadError(path, str(err))

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["failures"] = []  # workers start with their own, empty list
        return state
