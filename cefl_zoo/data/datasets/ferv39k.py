"""FERV39k (Wang et al., CVPR 2022): 7 classes, one train/test split.

Example:
    >>> from cefl_zoo.data import build_dataset
    >>> ds = build_dataset("ferv39k", "/data/FERV39k", split="test")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..factory import register_dataset
from ._common import BenchmarkDataset, ListedVideo, label_from_name

__all__ = ["FERV39k"]


@register_dataset("ferv39k")
class FERV39k(BenchmarkDataset):
    """FERV39k, read from the layout its authors ship::

        FERV39k/
          4_setups/All_scenes/train_All.csv, test_All.csv
          2_ClipsforFaceCrop/<Scene>/<Emotion>/<NNNN>/*.jpg   (face crops)

    Split lines are space-separated ``<Scene>/<Emotion>/<NNNN> <EmotionName>`` (names,
    e.g. ``Happy``); the path is relative to the frames folder. Classes in the order of
    :data:`~cefl_zoo.labels.DATASET_CLASSES` ``["ferv39k"]``.

    Args:
        root: The ``FERV39k`` folder.
        split: ``"train"`` or ``"test"``.
        fold: Must be ``None`` (one split).
        setup: Folder under ``4_setups`` (``"All_scenes"``; a per-scene setup folder
            works if it holds exactly one ``train_*.csv`` / ``test_*.csv``).
        frames_dir: Folder the listed paths are relative to. When it holds nothing but a
            folder of the same name (an archive unpacked into its own name), that inner
            folder is used.
        **kwargs: :class:`~cefl_zoo.data.VideoDataset` options.

    Raises:
        FileNotFoundError: Missing root or split file; a listed clip without frames
            (``on_error="raise"``).
        ValueError: A malformed line or an unknown label name (naming file and line), an
            empty split.
    """

    name = "ferv39k"
    title = "FERV39k"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = "train",
        fold: int | str | None = None,
        setup: str = "All_scenes",
        frames_dir: str = "2_ClipsforFaceCrop",
        **kwargs: Any,
    ) -> None:
        self.setup = setup
        self.frames_dir = frames_dir
        super().__init__(root, split, fold, **kwargs)

    @property
    def split_file(self) -> Path:
        """The split file of this split."""
        folder = self.root / "4_setups" / self.setup
        default = folder / f"{self.split}_All.csv"
        if default.is_file() or not folder.is_dir():
            return default
        found = sorted(folder.glob(f"{self.split}_*.csv"))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ValueError(
                f"{folder}: several {self.split} split files ({', '.join(p.name for p in found)}); "
                f"cannot tell which to use"
            )
        return default

    def _frames_folder(self) -> Path:
        """``root/frames_dir``, or the same name inside it when the archive was unpacked
        into a folder of its own name (``2_ClipsforFaceCrop/2_ClipsforFaceCrop/...``)."""
        frames = self.root / self.frames_dir
        nested = frames / Path(self.frames_dir).name
        if nested.is_dir() and [
            name for name in os.listdir(frames) if not name.startswith(".")
        ] == [nested.name]:
            return nested
        return frames

    def _list_videos(self) -> tuple[list[ListedVideo], str]:
        file = self.split_file
        if not file.is_file():
            raise FileNotFoundError(
                f"{file}: FERV39k split file does not exist; expected "
                f"4_setups/{self.setup}/{{train,test}}_All.csv under the FERV39k root"
            )
        frames = self._frames_folder()
        listed = []
        with open(file, encoding="utf-8-sig") as fh:
            for line, text in enumerate(fh, 1):
                parts = text.replace(",", " ").split()
                if not parts:
                    continue
                if len(parts) < 2:
                    raise ValueError(
                        f"{file}: line {line}: expected '<Scene>/<Emotion>/<NNNN> <Emotion>', "
                        f"got {text.strip()!r}"
                    )
                rel, name = parts[0].strip("/"), parts[1]
                if line == 1 and "/" not in rel and name.lower() in ("label", "emotion", "class"):
                    continue  # a header line
                label = label_from_name(name, self.classes, str(file), f"line {line}", "FERV39k")
                path = frames / rel
                listed.append(
                    ListedVideo(f"line {line}", str(path), label, path.is_dir(), {"video_id": rel})
                )
        return listed, str(file)
