"""BU-3DFE as the paper uses it: 101 subjects x 6 expression sequences, 10 folds.

The paper's "BU-3DFE" - 606 sequences of about 100 frames at 25 fps from 101 subjects -
is the dynamic release of the Binghamton database (distributed as BU-4DFE), whose 2-D
texture frames this adapter reads.

Example:
    >>> from cefl_zoo.data import build_dataset
    >>> ds = build_dataset("bu3dfe", "/data/BU4DFE", split="test", fold=1)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
from typing import Any

from ...labels import canonical_label
from ...video.io import IMAGE_EXTENSIONS
from ..factory import register_dataset
from ..generic import VIDEO_EXTENSIONS
from ._common import BenchmarkDataset, ListedVideo, SubjectFoldsMixin, sorted_dirs

__all__ = ["BU3DFE"]

#: Subject folders (F001..F058 female, M001..M043 male).
_SUBJECT = re.compile(r"^[FM]\d{3,4}$")


@register_dataset("bu3dfe")
class BU3DFE(SubjectFoldsMixin, BenchmarkDataset):
    """The Binghamton dynamic 3-D expression sequences, read from the publisher's layout::

        BU4DFE/
          F001/Angry/000.jpg 001.jpg ... (2-D texture frames; .wrl meshes are ignored)
               Disgust/ Fear/ Happy/ Sad/ Surprise/
          F002/ ... M001/ ...

    Subject folders are named ``F<nnn>`` / ``M<nnn>`` (other folders are ignored); each
    holds one folder of frames per expression. Classes in the paper's order: anger,
    disgust, happiness, fear, sadness, surprise
    (:data:`~cefl_zoo.labels.DATASET_CLASSES` ``["bu3dfe"]``). Folds are
    subject-independent (:mod:`~cefl_zoo.data.folds`), 10 as in the paper. The frames
    show the whole head on a plain background; pass a ``face_cropper`` for the paper's
    224 x 224 face crops.

    Args:
        root: The folder holding the subject folders.
        split: ``"train"``, ``"test"`` or ``"all"``.
        fold: Test fold, 1..``n_folds``.
        n_folds: Number of subject-independent folds.
        fold_seed: Seed of the fold assignment.
        **kwargs: :class:`~cefl_zoo.data.VideoDataset` options.

    Raises:
        FileNotFoundError: Missing root; an expression folder without frames
            (``on_error="raise"``).
        ValueError: An expression folder that is not one of the six (naming it), no
            subject folders, fewer subjects than folds.
    """

    name = "bu3dfe"
    title = "BU-3DFE"
    splits = ("train", "test", "all")
    num_folds = 10

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = "train",
        fold: int | str | None = None,
        n_folds: int = 10,
        fold_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        self._set_folds(n_folds, fold_seed)
        super().__init__(root, split, fold, **kwargs)

    def _list_videos(self) -> tuple[list[ListedVideo], str]:
        subjects = [p for p in sorted_dirs(self.root) if _SUBJECT.match(p.name)]
        if not subjects:
            found = [p.name for p in sorted_dirs(self.root)][:5]
            raise ValueError(
                f"{self.root}: no BU-3DFE subject folders (F001 ... M043) found"
                + (f"; it holds {', '.join(found)}" if found else "")
                + ". Pass the folder that holds the subject folders"
            )
        listed = []
        for subject in subjects:
            for expr in sorted_dirs(subject):
                try:
                    canon = canonical_label(expr.name)
                except ValueError:
                    canon = None
                if canon not in self.classes:
                    raise ValueError(
                        f"{expr}: {expr.name!r} is not one of BU-3DFE's six expression folders "
                        "(Angry, Disgust, Fear, Happy, Sad, Surprise); move it out of the "
                        "subject folder"
                    )
                with os.scandir(expr) as entries:
                    has_frames = any(
                        e.name.lower().endswith(IMAGE_EXTENSIONS)
                        for e in entries
                        if not e.name.startswith(".")
                    )
                path = str(expr)
                if not has_frames:  # a sequence shipped as one video file
                    videos = sorted(
                        e.path
                        for e in os.scandir(expr)
                        if e.name.lower().endswith(VIDEO_EXTENSIONS)
                    )
                    if videos:
                        path, has_frames = videos[0], True
                listed.append(
                    ListedVideo(
                        f"{subject.name}/{expr.name}",
                        path,
                        self.classes.index(canon),
                        has_frames,
                        {"video_id": f"{subject.name}_{expr.name}", "subject": subject.name},
                    )
                )
        return self._select_fold(listed), str(self.root)
