"""AFEW 7.0 / 8.0 (Dhall et al., EmotiW): 7 classes, a folder per emotion, Train and Val.

Example:
    >>> from cefl_zoo.data import build_dataset
    >>> ds = build_dataset("afew", "/data/AFEW", split="val")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from ...labels import canonical_label
from ...video.io import natural_sort_key
from ..factory import register_dataset
from ._common import BenchmarkDataset, ListedVideo, is_video_entry, sorted_dirs, warn_user

__all__ = ["AFEW"]


@register_dataset("afew")
class AFEW(BenchmarkDataset):
    """AFEW, read from the layout of the EmotiW releases::

        AFEW/
          Train/Angry/000046280.avi ... Disgust/ Fear/ Happy/ Neutral/ Sad/ Surprise/
          Val/Angry/... (same folders)

    ``Train_AFEW`` / ``Val_AFEW`` (the archive names) are accepted for ``Train`` /
    ``Val``. A video is a file (``.avi``, ``.mp4``, ...) or a folder of frames. Folders
    that are not emotions (e.g. ``AlignedFaces_LBPTOP_Points``) are ignored. Classes in
    sorted folder order (:data:`~cefl_zoo.labels.DATASET_CLASSES` ``["afew"]``). The
    test labels were never published: as in the paper, train on Train and evaluate on
    Val. AFEW's videos are movie frames, so pass a ``face_cropper`` (RetinaFace, as in
    the paper) or precompute crops.

    Args:
        root: The ``AFEW`` folder.
        split: ``"train"`` or ``"val"`` (``"test"`` raises, explaining why).
        fold: Must be ``None``.
        **kwargs: :class:`~cefl_zoo.data.VideoDataset` options.

    Raises:
        FileNotFoundError: Missing root or split folder.
        ValueError: ``split="test"``; a split without videos.
    """

    name = "afew"
    title = "AFEW"
    splits = ("train", "val")
    split_aliases: ClassVar[dict[str, str]] = {"validation": "val", "valid": "val"}
    #: Accepted folder names of each split (the first is the documented one).
    folder_names: ClassVar[dict[str, tuple[str, ...]]] = {
        "train": ("Train", "Train_AFEW", "train"),
        "val": ("Val", "Val_AFEW", "val"),
    }

    def _check_split(self, split: str | None) -> str:
        if split is not None and str(split).strip().lower() == "test":
            raise ValueError(
                "AFEW's test labels are not public (EmotiW kept them for the challenge), so "
                "there is no labelled test split. Evaluate on split='val', as the paper and "
                "other AFEW results do"
            )
        return super()._check_split(split)

    @property
    def split_dir(self) -> Path:
        """The folder of this split."""
        for name in self.folder_names[self.split]:
            if (self.root / name).is_dir():
                return self.root / name
        return self.root / self.folder_names[self.split][0]

    def _list_videos(self) -> tuple[list[ListedVideo], str]:
        folder = self.split_dir
        if not folder.is_dir():
            found = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            raise FileNotFoundError(
                f"{folder}: AFEW {self.split} folder does not exist ({self.root} holds: "
                f"{', '.join(found) or 'no folders'}); expected "
                f"{' or '.join(self.folder_names[self.split][:2])}/<Emotion>/<video>"
            )
        by_label: dict[int, Path] = {}
        for sub in sorted_dirs(folder):
            try:
                canon = canonical_label(sub.name)
            except ValueError:
                continue  # not an emotion folder (landmarks, aligned faces, ...)
            if canon in self.classes:
                by_label.setdefault(self.classes.index(canon), sub)
        absent = [c for i, c in enumerate(self.classes) if i not in by_label]
        if absent and by_label:
            warn_user(
                f"{folder}: no folder for {', '.join(absent)}; AFEW has all 7 emotions, so the "
                "copy may be incomplete"
            )
        listed = []
        for label in sorted(by_label):
            sub = by_label[label]
            names = sorted(os.listdir(sub), key=natural_sort_key)
            for name in names:
                path = sub / name
                if is_video_entry(path):
                    listed.append(
                        ListedVideo(
                            f"{sub.name}/{name}",
                            str(path),
                            label,
                            True,
                            {"video_id": os.path.splitext(name)[0]},
                        )
                    )
        return listed, str(folder)
