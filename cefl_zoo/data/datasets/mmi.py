"""MMI Facial Expression Database (Pantic et al., 2005): six basic expressions, 10 folds.

Example:
    >>> from cefl_zoo.data import build_dataset
    >>> ds = build_dataset("mmi", "/data/mmi", split="test", fold=1)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ...video.io import natural_sort_key
from ..factory import register_dataset
from ..generic import VIDEO_EXTENSIONS
from ._common import BenchmarkDataset, ListedVideo, SubjectFoldsMixin, sorted_dirs

__all__ = ["MMI"]


_SUBJECT_IN_NAME = re.compile(r"^S(\d+)", re.IGNORECASE)
_SUBJECT_ID = re.compile(r"S?(\d+)", re.IGNORECASE)  # session.xml ids: "1" or "S001"


@register_dataset("mmi")
class MMI(SubjectFoldsMixin, BenchmarkDataset):
    """MMI, read from the layout of its download (``Sessions/``)::

        mmi/
          Sessions/
            1/S001-001.avi
              S001-001.xml        <Metatag Name="Emotion" Value="1"/> ...
              S001-001-oao_aucs.xml, session.xml
            2/...

    Each session folder holds a video and ``<video name>.xml`` whose ``Emotion``
    metatag codes the expression: 1 anger, 2 disgust, 3 fear, 4 happiness, 5 sadness,
    6 surprise (:data:`~cefl_zoo.labels.DATASET_CLASSES` ``["mmi"]``). Sessions without
    an Emotion metatag, or with another code, are not part of the six-class protocol and
    are left out (listed in ``excluded``). The subject (``meta["subject"]``) is the
    number in the ``id`` of the ``<subject>`` element of ``session.xml`` (``"1"`` or
    ``"S001"``: ``1``) when there is one, else the number in the ``S<number>`` prefix of
    the video name; a warning says when the two disagree. Folds are subject-independent
    (:mod:`~cefl_zoo.data.folds`): 10 folds, as in the paper. The paper uses the 205
    frontal-view sequences of 30 subjects; ``views=("0",)`` keeps sessions whose
    ``session.xml`` track has ``view="0"`` (frontal). MMI's videos are not face crops: pass a ``face_cropper``.

    Args:
        root: The MMI folder (holding ``Sessions/``) or the ``Sessions`` folder itself.
        split: ``"train"``, ``"test"`` or ``"all"`` (every session; ``fold`` unused).
        fold: Test fold, 1..``n_folds``.
        n_folds: Number of subject-independent folds.
        fold_seed: Seed of the fold assignment.
        views: Keep only sessions whose ``session.xml`` view is one of these; ``None``
            keeps all.
        **kwargs: :class:`~cefl_zoo.data.VideoDataset` options.

    Raises:
        FileNotFoundError: Missing root or ``Sessions`` folder.
        ValueError: An unreadable XML file or a non-numeric Emotion code (naming the
            file), a session whose subject cannot be told, no labelled session, fewer
            subjects than folds.
    """

    name = "mmi"
    title = "MMI"
    splits = ("train", "test", "all")
    num_folds = 10

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = "train",
        fold: int | str | None = None,
        n_folds: int = 10,
        fold_seed: int = 0,
        views: tuple[str, ...] | None = None,
        **kwargs: Any,
    ) -> None:
        self._set_folds(n_folds, fold_seed)
        self.views = tuple(str(v) for v in views) if views is not None else None
        self.excluded: list[dict[str, str]] = []
        super().__init__(root, split, fold, **kwargs)

    @property
    def sessions_dir(self) -> Path:
        """The ``Sessions`` folder."""
        sessions = self.root / "Sessions"
        return sessions if sessions.is_dir() else self.root

    @staticmethod
    def _parse(file: Path) -> ET.Element:
        try:
            return ET.parse(file).getroot()
        except ET.ParseError as err:
            raise ValueError(
                f"{file}: not valid XML ({err}); re-extract the MMI download"
            ) from None

    def _emotion_code(self, file: Path) -> str | None:
        for el in self._parse(file).iter():
            if el.tag.rsplit("}", 1)[-1].lower() == "metatag" and (
                el.get("Name", el.get("name", "")).strip().lower() == "emotion"
            ):
                return el.get("Value", el.get("value", "")).strip()
        return None

    def _session_info(self, session: Path, stem: str) -> tuple[int | str | None, str | None]:
        """``(subject, view)`` from ``session.xml`` (each ``None`` if not stated)."""
        subject_id = view = None
        file = session / "session.xml"
        if file.is_file():
            for el in self._parse(file).iter():
                tag = el.tag.rsplit("}", 1)[-1].lower()
                if tag == "subject" and subject_id is None and el.get("id"):
                    subject_id = el.get("id", "").strip()
                if tag == "track" and view is None and el.get("view") is not None:
                    view = el.get("view", "").strip()
        match = _SUBJECT_IN_NAME.match(stem)
        named = int(match.group(1)) if match else None
        if subject_id is None:
            return named, view
        match = _SUBJECT_ID.fullmatch(subject_id)
        subject = int(match.group(1)) if match else subject_id
        if named is not None and subject != named:
            warnings.warn(
                f"{file}: subject id {subject_id!r} is not the subject of the video name "
                f"{stem} (S{named:03d}); using {subject!r} from session.xml. Check which is "
                "right: a wrong subject can put one person in both train and test",
                stacklevel=2,
            )
        return subject, view

    def _list_videos(self) -> tuple[list[ListedVideo], str]:
        sessions = self.sessions_dir
        listed: list[ListedVideo] = []
        for session in sorted_dirs(sessions):
            videos = sorted(
                (
                    p
                    for p in session.iterdir()
                    if p.is_file() and p.name.lower().endswith(VIDEO_EXTENSIONS)
                ),
                key=lambda p: natural_sort_key(p.name),
            )
            for video in videos:
                stem = video.stem
                meta_file = session / f"{stem}.xml"
                code = self._emotion_code(meta_file) if meta_file.is_file() else None
                where = f"{session.name}/{video.name}"
                if code is None:
                    self.excluded.append({"path": str(video), "reason": "no Emotion metatag"})
                    continue
                if not code.lstrip("-").isdigit():
                    raise ValueError(
                        f"{meta_file}: Emotion value {code!r} is not a number (MMI codes: "
                        "1 anger, 2 disgust, 3 fear, 4 happiness, 5 sadness, 6 surprise)"
                    )
                if not 1 <= int(code) <= len(self.classes):
                    self.excluded.append(
                        {
                            "path": str(video),
                            "reason": f"Emotion code {code} is not a basic expression",
                        }
                    )
                    continue
                subject, view = self._session_info(session, stem)
                if self.views is not None and view not in self.views:
                    self.excluded.append({"path": str(video), "reason": f"view {view}"})
                    continue
                if subject is None:
                    raise ValueError(
                        f"{session}: cannot tell the subject of {video.name}: session.xml has no "
                        "<subject id=...> and the name does not start with S<number>"
                    )
                listed.append(
                    ListedVideo(
                        where,
                        str(video),
                        int(code) - 1,
                        True,
                        {"video_id": stem, "subject": subject, "session": session.name},
                    )
                )
        if not listed:
            raise ValueError(
                f"{sessions}: no MMI session with a basic-expression Emotion label found; "
                "expected Sessions/<n>/<video>.avi with <video>.xml holding "
                '<Metatag Name="Emotion" Value="1..6"/>'
            )
        return self._select_fold(listed), str(sessions)
