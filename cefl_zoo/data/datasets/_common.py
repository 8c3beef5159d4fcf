"""Shared machinery of the benchmark adapters: split/fold checks, file lookup, messages.

Every adapter turns its dataset's own index (split files, or a folder layout) into a
list of :class:`ListedVideo` - where it was listed, where its frames or video should
be, its label - and :meth:`BenchmarkDataset._collect` turns that into
:class:`~cefl_zoo.data.VideoItem` s, handling the problems all datasets share: an empty
split, and listed videos whose frames or file are missing (raised, or reported and left
out, following the dataset's ``on_error`` flag).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ...labels import DATASET_CLASSES, canonical_label
from ...video.io import IMAGE_EXTENSIONS, natural_sort_key
from .._listing import ListedVideo, leave_out_missing, warn_user
from ..base import VideoDataset, VideoItem
from ..folds import check_fold, subject_kfold
from ..generic import VIDEO_EXTENSIONS

__all__ = [
    "BenchmarkDataset",
    "FolderIndex",
    "ListedVideo",
    "SubjectFoldsMixin",
    "is_video_entry",
    "label_from_name",
    "sorted_dirs",
    "warn_user",
]


def is_video_entry(path: str | os.PathLike) -> bool:
    """A video file (by suffix) or a folder holding frame images."""
    path = os.fspath(path)
    name = os.path.basename(path)
    if name.startswith("."):
        return False
    if os.path.isfile(path):
        return name.lower().endswith(VIDEO_EXTENSIONS)
    if os.path.isdir(path):
        with os.scandir(path) as entries:
            return any(e.name.lower().endswith(IMAGE_EXTENSIONS) for e in entries)
    return False


class FolderIndex:
    """One directory listing, read once, to look many videos up by name.

    Args:
        folder: The directory (may be missing: every lookup then fails).
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._dirs: set[str] | None = None
        self._videos: dict[str, str] = {}

    def _scan(self) -> None:
        if self._dirs is not None:
            return
        self._dirs = set()
        if not self.folder.is_dir():
            return
        with os.scandir(self.folder) as entries:
            for e in entries:
                if e.name.startswith("."):
                    continue
                if e.is_dir():
                    self._dirs.add(e.name)
                elif e.name.lower().endswith(VIDEO_EXTENSIONS):
                    self._videos.setdefault(os.path.splitext(e.name)[0], e.name)

    def frames_dir(self, *names: str) -> tuple[str, bool]:
        """Path of the first sub-folder named one of ``names``, and whether one exists."""
        self._scan()
        assert self._dirs is not None
        for name in names:
            if name in self._dirs:
                return str(self.folder / name), True
        return str(self.folder / names[0]), False

    def video_file(self, *stems: str) -> tuple[str, bool]:
        """Path of the first video file whose name without suffix is one of ``stems``."""
        self._scan()
        for stem in stems:
            if stem in self._videos:
                return str(self.folder / self._videos[stem]), True
        return str(self.folder / f"{stems[0]}.<video>"), False


def label_from_name(
    name: str, classes: Sequence[str], source: str, where: str, dataset: str
) -> int:
    """Class index of an emotion name (any spelling :func:`canonical_label` knows).

    Raises:
        ValueError: Naming ``source`` and ``where`` for an unknown name or an emotion the
            dataset does not have.
    """
    try:
        canon = canonical_label(name)
    except ValueError:
        canon = None
    if canon is None or canon not in classes:
        raise ValueError(
            f"{source}: {where}: unknown label {name!r} for {dataset}, whose classes are "
            f"{', '.join(classes)}. Fix the entry (or check that the file belongs to {dataset})"
        )
    return classes.index(canon)


class BenchmarkDataset(VideoDataset):
    """Base class of the benchmark adapters (DFEW, FERV39k, MAFW, AFEW, MMI, BU-3DFE).

    Subclasses set the class attributes and implement :meth:`_list_videos`.

    Args:
        root: The dataset's directory, as its publisher ships it.
        split: One of :attr:`splits` (or an alias in :attr:`split_aliases`).
        fold: Fold number ``1..num_folds`` for datasets with folds, else ``None``.
        **kwargs: :class:`~cefl_zoo.data.VideoDataset` options (``sampler``,
            ``transform``, ``train``, ``face_cropper``, ``on_error``, ``seed``, ...).

    Attributes:
        root: The dataset directory (never written to).
        split: The split, normalised (``"train"``, ``"test"``, ...).
        fold: The fold number, or ``None``.
        missing: Listed videos left out because their frames or file are missing (with
            ``on_error="skip"``): dicts with ``where``, ``path``, ``source``.
    """

    #: Registry name and key of :data:`~cefl_zoo.labels.DATASET_CLASSES`.
    name: ClassVar[str] = ""
    #: Name in messages.
    title: ClassVar[str] = ""
    #: Splits the dataset has.
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    #: Other spellings of the splits.
    split_aliases: ClassVar[dict[str, str]] = {}
    #: Number of folds, or ``None`` for a dataset with one fixed split.
    num_folds: ClassVar[int | None] = None

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = "train",
        fold: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        classes = kwargs.pop("classes", None)
        own = DATASET_CLASSES[self.name]
        if classes is not None and tuple(classes) != own:
            raise ValueError(
                f"{self.title} has a fixed class order {own}; its labels cannot be mapped to "
                f"{tuple(classes)}. Remap the model's head instead"
            )
        self.root = Path(root)
        if self.root.is_file():
            raise FileNotFoundError(
                f"{root}: is a file, not a folder; pass the folder that holds the "
                f"{self.title} dataset as its publisher ships it (see the "
                f"{type(self).__name__} docs)"
            )
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"{root}: {self.title} root folder does not exist; pass the folder that holds "
                f"the dataset as its publisher ships it (see the {type(self).__name__} docs)"
            )
        self.split = self._check_split(split)
        self.fold = self._check_fold(fold)
        self.missing: list[dict[str, Any]] = []
        self._missing_policy = kwargs.get("on_error", "skip")
        self.classes = own
        super().__init__(**kwargs)

    # -- checks --------------------------------------------------------------------------
    def _check_split(self, split: str | None) -> str:
        if split is None or str(split).strip() == "":
            raise ValueError(
                f"{self.title}: no split given; pass "
                + " or ".join(f"split={s!r}" for s in self.splits)
                + " (cefl-zoo: "
                + " or ".join(f"--split {s}" for s in self.splits)
                + ")"
            )
        key = str(split).strip().lower()
        key = self.split_aliases.get(key, key)
        if key not in self.splits:
            raise ValueError(
                f"{self.title} has no split {split!r}; choose one of {', '.join(self.splits)}"
            )
        return key

    def _check_fold(self, fold: int | str | None) -> int | None:
        if self.num_folds is None:
            if fold is not None:
                raise ValueError(
                    f"{self.title} has one fixed train/test split, no folds; pass fold=None"
                )
            return None
        return check_fold(fold, self.num_folds, self.title)

    # -- items ---------------------------------------------------------------------------
    def _load_items(self) -> list[VideoItem]:
        listed, source = self._list_videos()
        return self._collect(listed, source)

    def _list_videos(self) -> tuple[list[ListedVideo], str]:
        """The videos of the selected split and where they were listed (file/folder)."""
        raise NotImplementedError

    def _collect(self, listed: Iterable[ListedVideo], source: str) -> list[VideoItem]:
        listed = list(listed)
        if not listed:
            raise ValueError(
                f"{source}: the {self.title} {self.split} split"
                f"{f' of fold {self.fold}' if self.fold is not None else ''} lists no videos"
            )
        listed, self.missing = leave_out_missing(listed, source, self._missing_policy)
        return [
            VideoItem(v.path, v.label, {**v.meta, "listed_in": source, "listed_at": v.where})
            for v in listed
        ]

    def __repr__(self) -> str:
        fold = f", fold={self.fold}" if self.fold is not None else ""
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}{fold}, "
            f"items={len(self)}, train={self.train})"
        )


def sorted_dirs(folder: Path) -> list[Path]:
    """Sub-folders (no hidden ones), in natural order."""
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: natural_sort_key(p.name),
    )


class SubjectFoldsMixin:
    """Selects the items of a subject-independent fold (see :mod:`cefl_zoo.data.folds`)."""

    num_folds: int | None
    split: str
    fold: int | None
    n_folds: int
    fold_seed: int
    root: Path
    title: str

    def _set_folds(self, n_folds: int, fold_seed: int) -> None:
        """Call before ``BenchmarkDataset.__init__``: the fold count is the user's choice."""
        self.n_folds = int(n_folds)
        self.fold_seed = int(fold_seed)
        self.num_folds = self.n_folds

    def _check_fold(self, fold: int | str | None) -> int | None:
        if self.split == "all":  # every subject, no fold needed
            return None
        return super()._check_fold(fold)  # type: ignore[misc]

    def _select_fold(self, listed: list[ListedVideo]) -> list[ListedVideo]:
        """Tag every video with its fold (``meta["fold"]``) and keep the split's ones."""
        subjects = [v.meta["subject"] for v in listed]
        if not listed:
            return listed
        try:
            folds = subject_kfold(subjects, self.n_folds, self.fold_seed)
        except ValueError as err:
            if self.split == "all":  # no folds needed; items just carry no fold number
                return listed
            raise ValueError(f"{self.root}: {self.title}: {err}") from None
        for video, fold in zip(listed, folds):
            video.meta["fold"] = fold
        if self.split == "all":
            return listed
        if self.split == "test":
            return [v for v in listed if v.meta["fold"] == self.fold]
        return [v for v in listed if v.meta["fold"] != self.fold]
