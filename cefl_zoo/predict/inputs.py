"""Turn what a user passes on the command line into a list of videos.

A path can be a video file, a folder of frame images (one video, as DFEW ships its face
crops), or a folder of videos and frame folders, searched recursively.

Example:
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> for name in ("b.mp4", "a.avi", "notes.txt"):
    ...     open(os.path.join(root, name), "wb").close()
    >>> [os.path.basename(p) for p in expand_inputs([root])]
    ['a.avi', 'b.mp4']
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..data.generic import VIDEO_EXTENSIONS
from ..video.io import IMAGE_EXTENSIONS, natural_sort_key

__all__ = ["VIDEO_EXTENSIONS", "expand_inputs", "is_frame_folder", "is_video_file"]

# VIDEO_EXTENSIONS: the datasets' list (cefl_zoo.data.generic), so that a folder expands
# to the same videos for ``cefl-zoo predict`` / ``benchmark`` as for a dataset.


def is_video_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file with a video file-name ending."""
    return os.path.isfile(path) and str(path).lower().endswith(VIDEO_EXTENSIONS)


def is_frame_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder of frame images: it directly holds images and no
    video files (a folder of videos with a stray ``cover.png`` is a folder of videos)."""
    images = False
    try:
        with os.scandir(path) as it:
            for e in it:
                if e.name.startswith(".") or not e.is_file():
                    continue
                name = e.name.lower()
                if name.endswith(VIDEO_EXTENSIONS):
                    return False
                images = images or name.endswith(IMAGE_EXTENSIONS)
    except (NotADirectoryError, FileNotFoundError, PermissionError):
        return False
    return images


def expand_inputs(paths: Iterable[str | os.PathLike]) -> list[str]:
    """Expand folders to the videos inside them, keeping the order of ``paths``.

    * a file (of any kind) or a missing path is kept as it is, so that the predictor
      reports what is wrong with it;
    * a folder holding frame images (and no video files) is one video;
    * any other folder is searched recursively for video files (:data:`VIDEO_EXTENSIONS`)
      and frame folders, in natural order (``2.mp4`` before ``10.mp4``); hidden entries
      are skipped. A folder with nothing in it to predict is kept as it is, so that the
      predictor reports it.

    Args:
        paths: Files and folders.

    Returns:
        Paths of videos and frame folders, without duplicates.
    """
    out: list[str] = []
    seen: set[str] = set()

    def add(p: str) -> None:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            out.append(p)

    for raw in paths:
        path = os.fspath(raw)
        if not os.path.isdir(path) or is_frame_folder(path):
            add(path)
            continue
        found: list[str] = []
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(
                (d for d in dirnames if not d.startswith(".")), key=natural_sort_key
            )
            keep = []
            for d in dirnames:
                full = os.path.join(dirpath, d)
                if is_frame_folder(full):
                    found.append(full)
                else:
                    keep.append(d)
            dirnames[:] = keep
            found.extend(
                os.path.join(dirpath, f)
                for f in filenames
                if not f.startswith(".") and f.lower().endswith(VIDEO_EXTENSIONS)
            )
        if not found:
            add(path)
        # order: by path components, naturally
        for p in sorted(found, key=lambda f: [natural_sort_key(part) for part in Path(f).parts]):
            add(p)
    return out
