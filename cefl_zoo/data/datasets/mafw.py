"""MAFW (Liu et al., ACM MM 2022): 11 classes, 5 folds (single-label, no caption).

Example:
    >>> from cefl_zoo.data import build_dataset
    >>> ds = build_dataset("mafw", "/data/MAFW", split="train", fold=3)  # doctest: +SKIP
    >>> len(ds.classes)  # doctest: +SKIP
    11
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from ..factory import register_dataset
from ._common import BenchmarkDataset, FolderIndex, ListedVideo, label_from_name

__all__ = ["MAFW"]


@register_dataset("mafw")
class MAFW(BenchmarkDataset):
    """MAFW, read from the layout its authors ship::

        MAFW/
          split/single/no_caption/set_1/train.txt, test.txt ... set_5/
                                          (or "Train & Test Set/single/no_caption/...")
          data/frames/03747/*.jpg ...   (frames of each clip)
          data/clips/03747.mp4 ...      (the clips)

    Split lines are ``<clip file> <label name>``, e.g. ``03747.mp4 anger``. The 11
    classes in MAFW's order: anger, disgust, fear, happiness, neutral, sadness,
    surprise, contempt, anxiety, helplessness, disappointment
    (:data:`~cefl_zoo.labels.DATASET_CLASSES` ``["mafw"]``).

    Args:
        root: The ``MAFW`` folder.
        split: ``"train"`` or ``"test"``.
        fold: The set, 1..5.
        source: ``"frames"`` (``data/frames/<id>/``) or ``"clips"``
            (``data/clips/<id>.mp4``; MAFW's frames are not face crops either, so pass a
            ``face_cropper`` for the paper's preprocessing).
        **kwargs: :class:`~cefl_zoo.data.VideoDataset` options.

    Raises:
        FileNotFoundError: Missing root or split file; a listed clip without frames
            (``on_error="raise"``).
        ValueError: A malformed line or an unknown label name (naming file and line), an
            empty split.
    """

    name = "mafw"
    title = "MAFW"
    num_folds = 5
    sources = ("frames", "clips")

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = "train",
        fold: int | str | None = None,
        source: str = "frames",
        **kwargs: Any,
    ) -> None:
        if source not in self.sources:
            raise ValueError(
                f"MAFW source must be one of {', '.join(self.sources)}, got {source!r}"
            )
        self.source = source
        super().__init__(root, split, fold, **kwargs)

    #: Accepted names of the folder that holds the splits (the first is the documented
    #: one; the release's archive unpacks as ``Train & Test Set``).
    split_folder_names: ClassVar[tuple[str, ...]] = (
        "split",
        "Train & Test Set",
        "Train_Test_Set",
        "Train and Test Set",
    )

    @property
    def split_file(self) -> Path:
        """The split file of this split and fold (in the first split folder that exists)."""
        rel = Path("single", "no_caption", f"set_{self.fold}", f"{self.split}.txt")
        for name in self.split_folder_names:
            if (self.root / name).is_dir():
                return self.root / name / rel
        return self.root / self.split_folder_names[0] / rel

    def _list_videos(self) -> tuple[list[ListedVideo], str]:
        file = self.split_file
        if not file.is_file():
            folders = " or ".join(f"'{name}'" for name in self.split_folder_names)
            raise FileNotFoundError(
                f"{file}: MAFW split file does not exist; expected "
                "<splits>/single/no_caption/set_{1..5}/{train,test}.txt under the MAFW root, "
                f"where <splits> is {folders}"
            )
        index = FolderIndex(self.root / "data" / self.source)
        listed = []
        with open(file, encoding="utf-8-sig") as fh:
            for line, text in enumerate(fh, 1):
                parts = text.split()
                if not parts:
                    continue
                if len(parts) < 2:
                    raise ValueError(
                        f"{file}: line {line}: expected '<clip> <label>', e.g. '03747.mp4 "
                        f"anger', got {text.strip()!r}"
                    )
                clip, name = parts[0], parts[1]
                label = label_from_name(name, self.classes, str(file), f"line {line}", "MAFW")
                vid = os.path.splitext(os.path.basename(clip))[0]
                if self.source == "frames":
                    path, exists = index.frames_dir(vid)
                else:
                    path, exists = index.video_file(vid)
                listed.append(ListedVideo(f"line {line}", path, label, exists, {"video_id": vid}))
        return listed, str(file)
