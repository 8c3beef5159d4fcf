"""DFEW (Jiang et al., ACM MM 2020): 7 classes, 5 official folds.

Example:
    >>> from cefl_zoo.data import build_dataset
    >>> ds = build_dataset("dfew", "/data/DFEW", split="test", fold=1)  # doctest: +SKIP
    >>> ds.classes  # doctest: +SKIP
    ('happiness', 'sadness', 'neutral', 'anger', 'surprise', 'disgust', 'fear')
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from ..factory import register_dataset
from ._common import BenchmarkDataset, FolderIndex, ListedVideo, warn_user

__all__ = ["DFEW"]


def _parse_int(text: str) -> int:
    """``"3"`` or ``"3.0"`` -> 3; anything else raises ``ValueError``."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not value.is_integer():
            raise
        return int(value)


@register_dataset("dfew")
class DFEW(BenchmarkDataset):
    """DFEW, read from the layout its authors ship::

        DFEW/
          EmoLabel_DataSplit/
            train(single-labeled)/set_1.csv ... set_5.csv
            test(single-labeled)/set_1.csv ... set_5.csv
          Clip/
            clip_224x224/00001/00001.jpg ...      (face crops, all frames)
            clip_224x224_16f/00001/00001.jpg ...  (face crops, 16 frames)
            original/00001.mp4 ...                (raw clips: pass a face_cropper)

    The split files have a ``video_name,label`` header; ``video_name`` is the clip
    number (``1`` means folder ``00001``) and ``label`` is 1-based in DFEW's order:
    1 Happy, 2 Sad, 3 Neutral, 4 Angry, 5 Surprise, 6 Disgust, 7 Fear. Items get
    0-based labels in that order (:data:`~cefl_zoo.labels.DATASET_CLASSES` ``["dfew"]``).
    Some re-distributions ship 0-based split files; they are detected (a label 0) and
    refused unless ``label_base=0`` says so.

    Args:
        root: The ``DFEW`` folder.
        split: ``"train"`` or ``"test"``.
        fold: The official fold (``set_N``), 1..5. The paper reports the mean of all 5.
        source: ``"clip_224x224"`` (default), ``"clip_224x224_16f"`` or ``"original"``
            (video files). A frames folder nested once more in the same name
            (``clip_224x224/clip_224x224/00001``, as some archives unpack) is found too.
        label_base: ``1`` (official files), ``0`` (a 0-based copy in DFEW's order), or
            ``"auto"`` (0-based if any label is 0, with a warning).
        **kwargs: :class:`~cefl_zoo.data.VideoDataset` options.

    Raises:
        FileNotFoundError: Missing root, split file, or frames folder; a listed clip
            without frames (``on_error="raise"``; with ``"skip"`` it is reported and left
            out, see ``missing``).
        ValueError: A malformed line, a label outside 1..7, a 0-based file, an empty split
            (each naming the file and line).
    """

    name = "dfew"
    title = "DFEW"
    num_folds = 5
    sources = ("clip_224x224", "clip_224x224_16f", "original")

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = "train",
        fold: int | str | None = None,
        source: str = "clip_224x224",
        label_base: int | str = 1,
        **kwargs: Any,
    ) -> None:
        if source not in self.sources:
            raise ValueError(
                f"DFEW source must be one of {', '.join(self.sources)}, got {source!r}"
            )
        if label_base not in (0, 1, "auto"):
            raise ValueError(f"label_base must be 1, 0 or 'auto', got {label_base!r}")
        self.source = source
        self.label_base = label_base
        super().__init__(root, split, fold, **kwargs)

    @property
    def split_file(self) -> Path:
        """The split file of this split and fold."""
        return (
            self.root
            / "EmoLabel_DataSplit"
            / f"{self.split}(single-labeled)"
            / f"set_{self.fold}.csv"
        )

    def _clip_folder(self) -> Path:
        clip = self.root / "Clip"
        folder = clip / self.source
        if not folder.is_dir():
            found = sorted(p.name for p in clip.iterdir() if p.is_dir()) if clip.is_dir() else []
            raise FileNotFoundError(
                f"{folder}: DFEW {self.source} folder does not exist"
                + (f" ({clip} holds: {', '.join(found)})" if found else f" ({clip} is missing)")
                + f". Pass source= one of {', '.join(self.sources)} that you have"
            )
        nested = folder / self.source
        if nested.is_dir() and not any(
            name.isdigit() for name in os.listdir(folder) if not name.startswith(".")
        ):
            folder = nested
        return folder

    def _read_rows(self) -> list[tuple[int, str, str]]:
        file = self.split_file
        if not file.is_file():
            raise FileNotFoundError(
                f"{file}: DFEW split file does not exist; expected "
                "EmoLabel_DataSplit/{train,test}(single-labeled)/set_{1..5}.csv under the "
                "DFEW root"
            )
        rows: list[tuple[int, str, str]] = []
        with open(file, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            name_col, label_col = 0, 1
            for row in reader:
                line = reader.line_num
                cells = [c.strip() for c in row]
                if not any(cells):
                    continue
                if not rows and line == 1 and not cells[0].isdigit():
                    header = [c.lower() for c in cells]
                    if "video_name" not in header or "label" not in header:
                        raise ValueError(
                            f"{file}: line 1: header {','.join(cells)!r} lacks video_name and "
                            "label columns"
                        )
                    name_col, label_col = header.index("video_name"), header.index("label")
                    continue
                if len(cells) <= max(name_col, label_col):
                    raise ValueError(
                        f"{file}: line {line}: expected video_name,label, got {','.join(cells)!r}"
                    )
                rows.append((line, cells[name_col], cells[label_col]))
        return rows

    def _list_videos(self) -> tuple[list[ListedVideo], str]:
        file = self.split_file
        rows = self._read_rows()
        source = str(file)
        labels: list[int] = []
        for line, _, text in rows:
            try:
                labels.append(_parse_int(text))
            except ValueError:
                raise ValueError(
                    f"{file}: line {line}: label {text!r} is not a number; DFEW labels are "
                    "1 Happy, 2 Sad, 3 Neutral, 4 Angry, 5 Surprise, 6 Disgust, 7 Fear"
                ) from None
        base = self.label_base
        zeros = [line for (line, _, _), lab in zip(rows, labels) if lab == 0]
        if zeros and base == 1:
            raise ValueError(
                f"{file}: line {zeros[0]}: label 0. Official DFEW split files number labels "
                "1..7 (1 Happy ... 7 Fear); this one is a 0-based re-distribution. Pass "
                "label_base=0 if it keeps DFEW's order (0 Happy ... 6 Fear), or use the "
                "official EmoLabel_DataSplit files"
            )
        if base == "auto":
            base = 0 if zeros else 1
            if zeros:
                warn_user(
                    f"{file}: 0-based labels detected (label 0 on line {zeros[0]}); reading "
                    "them as 0 Happy ... 6 Fear. Official DFEW files are 1-based",
                    UserWarning,
                )
        first, last = base, base + len(self.classes) - 1
        clips = self._clip_folder() if rows else self.root
        index = FolderIndex(clips)
        listed = []
        for (line, name, _), lab in zip(rows, labels):
            if not first <= lab <= last:
                raise ValueError(
                    f"{file}: line {line}: label {lab} is outside {first}..{last} "
                    f"({'1-based' if base == 1 else '0-based'} DFEW labels)"
                )
            stem = os.path.splitext(name)[0]
            if not stem.isdigit():
                raise ValueError(
                    f"{file}: line {line}: video_name {name!r} is not a DFEW clip number"
                )
            vid = f"{int(stem):05d}"
            if self.source == "original":
                path, exists = index.video_file(vid, str(int(stem)))
            else:
                path, exists = index.frames_dir(vid, str(int(stem)))
            listed.append(ListedVideo(f"line {line}", path, lab - base, exists, {"video_id": vid}))
        return listed, source
