"""Adapters for a user's own videos: a folder per class, or a CSV of ``path,label``.

Both accept video files (``.mp4``, ``.avi``, ``.mkv``, ...) and frame folders (a
directory of ``.jpg`` / ``.png`` frames) as videos, and both map label spellings to the
canonical emotion names of :mod:`cefl_zoo.labels` (``"Happy"`` -> ``"happiness"``).
Pass ``classes=model.label_names`` (or ``DATASET_CLASSES["dfew"]``) to fix the label
order to the one a model was trained with.

Example:
    >>> from cefl_zoo.data import CSVVideoDataset, VideoFolderDataset
    >>> ds = VideoFolderDataset("my_videos", split=None)  # my_videos/<class>/<video>  # doctest: +SKIP
    >>> ds = CSVVideoDataset("labels.csv", split="train")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..labels import canonical_label
from ..video.io import IMAGE_EXTENSIONS, natural_sort_key
from ._listing import ListedVideo, leave_out_missing, warn_user
from .base import VideoDataset, VideoItem
from .factory import register_dataset

__all__ = ["VIDEO_EXTENSIONS", "CSVVideoDataset", "LabelMap", "VideoFolderDataset"]

#: File name endings treated as video files (case-insensitive).
VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4",
    ".avi",
    ".mkv",
    ".mov",
    ".webm",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".flv",
    ".wmv",
    ".3gp",
    ".ts",
    ".mts",
    ".m2ts",
    ".ogv",
)


#: How to pass ``classes=`` on the command line (``cefl-zoo train`` / ``eval``).
CLASSES_CLI = """--data-kwargs '{"classes": ["name0", "name1", ...]}'"""
#: How to pass ``split=None`` on the command line.
NO_SPLIT_CLI = "cefl-zoo train: --train-split none --val-split none; cefl-zoo eval: --split ''"


def _no_split(split: str | None) -> str | None:
    """``""`` (an empty ``--split``) means no split, as ``None`` does."""
    return None if split is None or str(split).strip() == "" else split


def _canonical_or_none(name: str) -> str | None:
    try:
        return canonical_label(name)
    except ValueError:
        return None


class LabelMap:
    """Maps label strings (names, or indices as text) to class indices.

    Args:
        classes: Class names in label order; ``None`` derives them from the labels
            seen (sorted canonical emotion names).
        source: Where the labels come from, for error messages (a file name).
    """

    def __init__(self, classes: Sequence[str] | None, source: str) -> None:
        self.classes = tuple(classes) if classes is not None else None
        self.source = source
        if self.classes is not None:
            self._lookup: dict[str, int] = {}
            for i, name in enumerate(self.classes):
                self._lookup.setdefault(name.strip().lower(), i)
                canon = _canonical_or_none(name)
                if canon is not None:
                    self._lookup.setdefault(canon, i)

    @classmethod
    def from_names(cls, names: Sequence[str], source: str, where: Sequence[str]) -> LabelMap:
        """Classes = the sorted canonical names of ``names`` (all must be emotions).

        Args:
            names: Label strings as found.
            source: File or folder the labels come from.
            where: Location of each name (e.g. ``"line 7"``) for the error message.
        """
        canon = []
        for name, loc in zip(names, where):
            c = _canonical_or_none(name)
            if c is None:
                raise ValueError(
                    f"{source}: {loc}: unknown label {name!r}: not an emotion name cefl_zoo "
                    "knows. Fix the label, or pass classes=(...) listing your own class names "
                    f"in label order (CLI: {CLASSES_CLI})"
                )
            canon.append(c)
        return cls(sorted(set(canon)), source)

    def index(self, label: str, where: str) -> int:
        """Class index of a label string (a name or an integer index)."""
        assert self.classes is not None
        text = str(label).strip()
        if text.lstrip("-").isdigit():
            value = int(text)
            if not 0 <= value < len(self.classes):
                raise ValueError(
                    f"{self.source}: {where}: label index {value} is outside 0.."
                    f"{len(self.classes) - 1} for the classes {self.classes}"
                )
            return value
        key = text.lower()
        if key in self._lookup:
            return self._lookup[key]
        canon = _canonical_or_none(text)
        if canon is not None and canon in self._lookup:
            return self._lookup[canon]
        raise ValueError(
            f"{self.source}: {where}: unknown label {text!r}; known classes: "
            f"{', '.join(self.classes)}. Fix the label or pass the right classes=(...) "
            f"(CLI: {CLASSES_CLI})"
        )


def _is_video_entry(entry: os.DirEntry) -> bool:
    if entry.name.startswith("."):
        return False
    if entry.is_file():
        return entry.name.lower().endswith(VIDEO_EXTENSIONS)
    if entry.is_dir():
        with os.scandir(entry.path) as inner:
            return any(e.name.lower().endswith(IMAGE_EXTENSIONS) for e in inner)
    return False


def _resolve_split_dir(root: Path, split: str | None) -> Path:
    if root.is_file():
        csv_file = root.suffix.lower() == ".csv"
        hint = " (a CSV file of path,label rows is read by csv:FILE)" if csv_file else ""
        raise FileNotFoundError(
            f"{root}: is a file, not a folder; a folder-per-class dataset is a folder laid out "
            f"as root/[split/]<class>/<video>{hint}"
        )
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder does not exist; check the root path")
    if split is None:
        return root
    sub = root / split
    if sub.is_dir():
        return sub
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    raise FileNotFoundError(
        f"{root}: has no {split!r} folder (it holds: {', '.join(folders) or 'no folders'}). "
        f"Use root/<split>/<class>/<video>, or pass split=None for root/<class>/<video> "
        f"({NO_SPLIT_CLI})"
    )


@register_dataset("folder")
class VideoFolderDataset(VideoDataset):
    """Videos in a folder per class: ``root/[split/]<class>/<video file or frame folder>``.

    Class folders are read in natural sort order (``class2`` before ``class10``) and
    their names mapped to canonical emotion names when they are emotions
    (``Happy`` -> ``happiness``), so AFEW's ``Angry ... Surprise`` folders give AFEW's
    published order.

    Args:
        root: The dataset folder.
        split: Sub-folder to read (``"train"``, ``"test"``, ...); ``None`` (or ``""``)
            reads ``root/<class>/`` directly.
        fold: Not supported (``None``); folder datasets have no folds.
        classes: Class names in label order; folders are matched to them (by canonical
            name). Default: the names of the folders that hold videos (a class folder
            without any is left out, with a warning).
        **kwargs: :class:`~cefl_zoo.data.VideoDataset` options.

    Raises:
        FileNotFoundError: For a missing root or split folder (or a root that is a file).
        ValueError: For a class folder not among ``classes``.

    Example:
        >>> ds = VideoFolderDataset("AFEW", split="Train", classes=None)  # doctest: +SKIP
        >>> ds.classes  # doctest: +SKIP
        ('anger', 'disgust', 'fear', 'happiness', 'neutral', 'sadness', 'surprise')
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = None,
        fold: int | str | None = None,
        classes: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if fold is not None:
            raise ValueError(f"{root}: a folder-per-class dataset has no folds; pass fold=None")
        self.root = Path(root)
        self.split = _no_split(split)
        self.folder = _resolve_split_dir(self.root, self.split)
        self._requested_classes = tuple(classes) if classes is not None else None
        super().__init__(classes=None, **kwargs)

    def _load_items(self) -> list[VideoItem]:
        class_dirs = sorted(
            (p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: natural_sort_key(p.name),
        )
        if not class_dirs:
            raise ValueError(
                f"{self.folder}: no class folders found; expected "
                f"{self.folder}/<class>/<video file or frame folder>"
            )
        videos: dict[Path, list[str]] = {}
        for class_dir in class_dirs:
            with os.scandir(class_dir) as entries:
                videos[class_dir] = sorted(
                    (e.path for e in entries if _is_video_entry(e)),
                    key=lambda p: natural_sort_key(os.path.basename(p)),
                )
        if self._requested_classes is None:
            empty = [d for d in class_dirs if not videos[d]]
            if empty and len(empty) < len(class_dirs):
                warn_user(
                    f"{self.folder}: leaving out the class folder(s) "
                    f"{', '.join(repr(d.name) for d in empty)}: no videos in them (video files "
                    f"{'/'.join(VIDEO_EXTENSIONS[:4])}... or folders of frame images), so they "
                    "are no class of the dataset. Pass classes=(...) to keep a class without "
                    f"videos in the label order (CLI: {CLASSES_CLI})"
                )
                class_dirs = [d for d in class_dirs if videos[d]]
            names = [_canonical_or_none(p.name) or p.name for p in class_dirs]
            self.classes = tuple(dict.fromkeys(names))  # unique, in folder order
        else:
            self.classes = self._requested_classes
        labels = LabelMap(self.classes, str(self.folder))
        items = []
        for class_dir in class_dirs:
            label = labels.index(class_dir.name, f"class folder {class_dir.name!r}")
            meta = {"class_folder": class_dir.name}
            items.extend(VideoItem(v, label, dict(meta)) for v in videos[class_dir])
        if not items:
            raise ValueError(
                f"{self.folder}: the class folders hold no videos (video files "
                f"{'/'.join(VIDEO_EXTENSIONS[:4])}... or folders of frame images)"
            )
        return items


def _parse_value(text: str) -> Any:
    text = text.strip()
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@register_dataset("csv")
class CSVVideoDataset(VideoDataset):
    """Videos listed in a CSV file with a header: ``path,label[,split,apex_frame,...]``.

    ``label`` holds class names (any spelling :func:`~cefl_zoo.labels.canonical_label`
    knows, or the names in ``classes``) or 0-based class indices (then ``classes`` is
    required). An optional ``split`` column selects rows with ``split=``; any other
    column goes to the item's ``meta`` (numbers parsed), ``apex_frame`` included.

    Args:
        csv_path: The CSV file.
        root: Folder the ``path`` column is relative to; default the CSV's folder.
        split: Keep rows whose ``split`` column equals this; ``None`` (or ``""``) keeps
            all rows.
        fold: Not supported (``None``).
        classes: Class names in label order. Default: the sorted canonical names of the
            labels found.
        delimiter: Field separator.
        **kwargs: :class:`~cefl_zoo.data.VideoDataset` options. With ``on_error="skip"``
            (the default) rows naming a file or frame folder that does not exist are left
            out when the dataset is built, with one warning naming the CSV lines (recorded
            in ``missing``); ``on_error="raise"`` raises for them.

    Attributes:
        missing: Rows left out because their video is missing: dicts with ``where``
            (``"line N"``), ``path``, ``source`` (the CSV file).

    Raises:
        FileNotFoundError: For a missing CSV file; for rows naming missing videos with
            ``on_error="raise"``, or when none of the rows' videos exist (naming the CSV
            file and line).
        ValueError: For missing columns, an unknown label (naming the CSV file and
            line), or a split the CSV does not have.

    Example:
        >>> ds = CSVVideoDataset("labels.csv", split="test")  # doctest: +SKIP
    """

    def __init__(
        self,
        csv_path: str | os.PathLike,
        root: str | os.PathLike | None = None,
        split: str | None = None,
        fold: int | str | None = None,
        classes: Sequence[str] | None = None,
        delimiter: str = ",",
        **kwargs: Any,
    ) -> None:
        if fold is not None:
            raise ValueError(f"{csv_path}: a CSV dataset has no folds; pass fold=None")
        self.csv_path = Path(csv_path)
        if self.csv_path.is_dir():
            raise ValueError(f"{csv_path}: is a folder; pass the CSV file itself")
        if not self.csv_path.is_file():
            raise FileNotFoundError(f"{csv_path}: CSV file does not exist; check the path")
        self.root = Path(root) if root is not None else self.csv_path.parent
        self.split = _no_split(split)
        self.delimiter = delimiter
        self._requested_classes = tuple(classes) if classes is not None else None
        self.missing: list[dict[str, Any]] = []
        self._missing_policy = kwargs.get("on_error", "skip")
        super().__init__(classes=None, **kwargs)

    def _read_rows(self) -> list[tuple[int, dict[str, str]]]:
        source = str(self.csv_path)
        with open(self.csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh, delimiter=self.delimiter)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            missing = [c for c in ("path", "label") if c not in header]
            if missing:
                raise ValueError(
                    f"{source}: line 1: missing column(s) {', '.join(missing)}; the header "
                    f"must include path,label (found: {','.join(header) or 'nothing'})"
                )
            reader.fieldnames = header
            rows = []
            for row in reader:
                if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    continue  # blank line
                rows.append((reader.line_num, {k: (v or "") for k, v in row.items() if k}))
        if self.split is not None:
            if "split" not in header:
                raise ValueError(
                    f"{source}: has no 'split' column, so split={self.split!r} cannot be "
                    f"selected; pass split=None to use every row ({NO_SPLIT_CLI})"
                )
            splits = sorted({r["split"].strip() for _, r in rows})
            rows = [(n, r) for n, r in rows if r["split"].strip() == self.split]
            if not rows:
                raise ValueError(
                    f"{source}: no rows with split {self.split!r} (splits found: "
                    f"{', '.join(splits) or 'none'})"
                )
        return rows

    def _load_items(self) -> list[VideoItem]:
        source = str(self.csv_path)
        rows = self._read_rows()
        if self._requested_classes is not None:
            labels = LabelMap(self._requested_classes, source)
        else:
            raw = [r["label"].strip() for _, r in rows]
            if any(t.lstrip("-").isdigit() for t in raw):
                line = next(n for (n, _), t in zip(rows, raw) if t.lstrip("-").isdigit())
                raise ValueError(
                    f"{source}: line {line}: labels are class indices, which need "
                    "classes=(...) to name them (e.g. cefl_zoo.labels.DATASET_CLASSES['dfew']; "
                    f"CLI: {CLASSES_CLI})"
                )
            labels = LabelMap.from_names(raw, source, [f"line {n}" for n, _ in rows])
        self.classes = labels.classes or ()
        listed = []
        for line, row in rows:
            path = row["path"].strip()
            if not path:
                raise ValueError(f"{source}: line {line}: empty path")
            label = labels.index(row["label"], f"line {line}")
            meta = {k: _parse_value(v) for k, v in row.items() if k not in ("path", "label")}
            meta["label_name"] = row["label"].strip()
            meta["csv_line"] = line
            full = path if os.path.isabs(path) else str(self.root / path)
            listed.append(ListedVideo(f"line {line}", full, label, os.path.exists(full), meta))
        present, self.missing = leave_out_missing(
            listed,
            source,
            self._missing_policy,
            check=f"Check the path column (relative paths are read from {self.root}; "
            "root= changes that)",
        )
        return [VideoItem(v.path, v.label, v.meta) for v in present]
