"""Precomputed face crops: detect once, train many times.

Face detection costs far more than decoding, so crops are best computed once per video
and stored as a frame folder (``000001.jpg``, ``000002.jpg``, ... one per frame of the
video, so frame ``i`` of the crops is frame ``i`` of the video) plus ``faces.json`` with
the boxes. :func:`~cefl_zoo.video.open_video` reads such a folder like any video, so a
dataset simply points at the crops instead of the videos
(:func:`precompute_dataset_face_crops` does that for a whole dataset).

Writes are atomic: a folder is built under a temporary name next to its final place and
renamed when complete, so an interrupted run never leaves half a video behind, and
parallel runs do not trip over each other. Crops are recomputed when the source video or
the cropper settings changed. Nothing is ever written inside a dataset's own directory.

``faces.json`` holds: ``format`` (2), ``source`` (the video path), ``source_signature``,
``num_frames``, ``fps``, ``width``/``height`` of the video, ``cropper`` (the settings),
``quality`` (of the JPEGs), and ``frames``: per frame ``file``, ``box`` (smoothed face box), ``crop_box`` (the square
region cut), ``detected`` (bool) and ``score`` (or ``null``).

Example:
    >>> from cefl_zoo.faces import FaceCropper, precompute_face_crops
    >>> folder = precompute_face_crops("clip.mp4", "crops/", FaceCropper())  # doctest: +SKIP
    >>> from cefl_zoo.video import open_video
    >>> open_video(folder).read([0]).shape  # doctest: +SKIP
    torch.Size([1, 3, 224, 224])
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import uuid
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from ..video.io import IMAGE_EXTENSIONS, open_video
from .cropper import FaceCropper, detection_indices

__all__ = [
    "FACES_JSON",
    "crop_folder_names",
    "load_face_track",
    "precompute_dataset_face_crops",
    "precompute_face_crops",
]

#: Name of the boxes file in a crops folder.
FACES_JSON = "faces.json"
#: 2: boxes filled and smoothed per face segment (a scene cut is no blend of two faces),
#: by a local linear fit of the centres; folders of format 1 are recomputed.
_FORMAT = 2


def _source_signature(path: str) -> dict[str, Any]:
    """What identifies a version of a video file or frame folder (size and mtime)."""
    st = os.stat(path)
    if os.path.isdir(path):
        files = [
            e for e in os.scandir(path) if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)
        ]
        return {
            "kind": "folder",
            "files": len(files),
            "bytes": sum(e.stat().st_size for e in files),
            "mtime_ns": max([e.stat().st_mtime_ns for e in files] + [st.st_mtime_ns]),
        }
    return {"kind": "file", "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def load_face_track(folder: str | os.PathLike) -> dict[str, Any]:
    """Read the ``faces.json`` of a crops folder.

    Raises:
        FileNotFoundError: If the folder has no ``faces.json`` (not a complete crops
            folder).
    """
    file = Path(folder) / FACES_JSON
    if not file.is_file():
        raise FileNotFoundError(
            f"{folder}: no {FACES_JSON}; not a folder written by precompute_face_crops"
        )
    with open(file, encoding="utf-8") as fh:
        return json.load(fh)


def _is_current(target: Path, source: str, cropper: FaceCropper, quality: int) -> bool:
    try:
        meta = load_face_track(target)
    except (FileNotFoundError, ValueError):
        return False
    return (
        meta.get("format") == _FORMAT
        and meta.get("source_signature") == _source_signature(source)
        and meta.get("cropper") == cropper.config()
        and meta.get("quality", 95) == quality  # (older folders: the default, 95)
    )


def _video_stem(path: str) -> str:
    name = os.path.basename(os.path.normpath(path))
    return name if os.path.isdir(path) else os.path.splitext(name)[0]


def crop_folder_names(videos: list[str]) -> list[str]:
    """The crops folder name of each video: its name without the suffix, except where two
    videos would share it (``a.mp4`` and ``a.avi``): those keep the suffix as ``a_mp4``,
    ``a_avi``, so that one never replaces the other's crops.

    Example:
        >>> crop_folder_names(["x/a.mp4", "x/a.avi", "x/b.mp4", "x/frames"])
        ['a_mp4', 'a_avi', 'b', 'frames']
        >>> crop_folder_names(["x/a.mp4", "x/a.avi", "x/a_mp4.mkv"])
        ['a_mp4', 'a_avi', 'a_mp4-2']
    """
    stems = [_video_stem(v) for v in videos]
    counts = Counter(stems)
    names = []
    for video, stem in zip(videos, stems):
        suffix = os.path.splitext(os.path.basename(os.path.normpath(video)))[1]
        clash = counts[stem] > 1 and suffix and not os.path.isdir(video)
        names.append(f"{stem}_{suffix[1:]}" if clash else stem)
    taken: set[str] = set()
    for i, name in enumerate(names):  # a_mp4.mkv beside a.mp4 and a.avi: a_mp4-2
        unique, k = name, 2
        while unique in taken:
            unique, k = f"{name}-{k}", k + 1
        taken.add(unique)
        names[i] = unique
    return names


def _chunks(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def precompute_face_crops(
    video: str | os.PathLike,
    out_dir: str | os.PathLike,
    cropper: FaceCropper | None = None,
    *,
    name: str | None = None,
    quality: int = 95,
    chunk_size: int = 64,
    overwrite: bool = False,
    reader_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Crop the faces of every frame of a video into a frame folder (cached, atomic).

    The video is read in chunks of ``chunk_size`` frames twice (detect, then crop), so
    memory stays bounded for long videos.

    Args:
        video: A video file or frame folder.
        out_dir: Folder that receives the crops folder (created if missing).
        cropper: The :class:`~cefl_zoo.faces.FaceCropper`; default ``FaceCropper()``
            (RetinaFace, 224 px).
        name: Name of the crops folder; default the video's file name without suffix.
        quality: JPEG quality.
        chunk_size: Frames decoded at a time.
        overwrite: Recompute even when current crops exist.
        reader_kwargs: Options for :func:`~cefl_zoo.video.open_video`.

    Returns:
        The crops folder ``out_dir / name``.

    Raises:
        NoFaceError: If no frame shows a face (nothing is written).
        VideoReadError: If the video cannot be read.
        ValueError: If ``out_dir / name`` would be the video itself or hold it, or is
            something other than a crops folder (a file, a folder without
            ``faces.json``): nothing is replaced that this function did not write.
    """
    from torchvision.io import encode_jpeg

    from ..video.io import quiet_image_io

    video = os.fspath(video)
    cropper = cropper if cropper is not None else FaceCropper()
    out_dir = Path(out_dir)
    target = out_dir / (name or _video_stem(video))
    if os.path.abspath(target) == os.path.abspath(video) or _is_within(Path(video), target):
        raise ValueError(
            f"{video}: the crops folder {target} would replace the video (or the folder "
            "holding it); pick another out_dir"
        )
    if (target.exists() or target.is_symlink()) and not (target / FACES_JSON).is_file():
        raise ValueError(
            f"{video}: {target} exists and is no crops folder (it has no {FACES_JSON}), so "
            "writing the crops there would replace it; pick another out_dir (or name)"
        )
    if not overwrite and _is_current(target, video, cropper, quality):
        return target
    with open_video(video, **(reader_kwargs or {})) as reader:
        info = reader.info
        t = len(reader)
        run = detection_indices(t, cropper.stride)
        detections: list[torch.Tensor | None] = [None] * t

        def detect(indices: list[int]) -> None:
            for chunk in _chunks(indices, chunk_size):
                found = cropper.detect(reader.read(chunk), list(range(len(chunk))))
                for i, det in zip(chunk, found):
                    detections[i] = det

        detect(run)
        if cropper.stride > 1 and not any(d is not None and len(d) for d in detections):
            detect([i for i in range(t) if detections[i] is None])
        track = cropper.track_detections(detections, video)

        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            files = [f"{i + 1:06d}.jpg" for i in range(t)]
            for chunk in _chunks(list(range(t)), chunk_size):
                crops = cropper.crop(reader.read(chunk), track.crop_boxes[chunk])
                with quiet_image_io():
                    encoded = encode_jpeg(list(crops), quality=quality)
                for i, data in zip(chunk, encoded):
                    (tmp / files[i]).write_bytes(data.numpy().tobytes())
            meta = {
                "format": _FORMAT,
                "source": video,
                "source_signature": _source_signature(video),
                "num_frames": t,
                "fps": info.fps,
                "width": info.width,
                "height": info.height,
                "cropper": cropper.config(),
                "quality": int(quality),
                "frames": [
                    {
                        "file": files[i],
                        "box": [round(float(v), 2) for v in track.boxes[i]],
                        "crop_box": [round(float(v), 2) for v in track.crop_boxes[i]],
                        "detected": bool(track.detected[i]),
                        "score": None
                        if not bool(track.detected[i])
                        else round(float(track.scores[i]), 4),
                    }
                    for i in range(t)
                ],
            }
            with open(tmp / FACES_JSON, "w", encoding="utf-8") as fh:
                json.dump(meta, fh, indent=1)
            _publish(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def _publish(tmp: Path, target: Path) -> None:
    """Move a finished folder into place atomically (replacing an outdated one)."""
    if target.exists():
        trash = target.with_name(f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(target, trash)
        except FileNotFoundError:  # another process replaced it meanwhile
            trash = None
        try:
            os.rename(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # a concurrent writer won: keep theirs
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        return
    try:
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # a concurrent writer finished first


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def precompute_dataset_face_crops(
    dataset: Any,
    out_dir: str | os.PathLike,
    cropper: FaceCropper | None = None,
    *,
    on_error: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **kwargs: Any,
) -> Any:
    """Precompute the face crops of every video of a dataset; return the dataset on them.

    Crops go to ``out_dir / <the video's path relative to the dataset root>`` (suffix
    dropped), so ``Clip/original/00001.mp4`` becomes ``out_dir/Clip/original/00001/``.
    The returned dataset is a shallow copy whose items point at the crop folders and
    whose ``face_cropper`` is ``None``; the original dataset is unchanged.

    Args:
        dataset: A :class:`~cefl_zoo.data.VideoDataset`.
        out_dir: Cache folder; must not lie inside the dataset's directory.
        cropper: Default ``FaceCropper()``.
        on_error: ``"skip"`` (report the video with a warning, leave it out of the
            returned dataset and record it in its ``failures``) or ``"raise"``; default
            the dataset's own ``on_error``.
        overwrite: Recompute existing crops.
        progress: Show a tqdm progress bar.
        **kwargs: Passed to :func:`precompute_face_crops` (``quality``, ``chunk_size``).

    Returns:
        The dataset copy reading the crops.

    Raises:
        ValueError: If ``out_dir`` is inside the dataset directory.
    """
    from tqdm.auto import tqdm

    from ..data.base import ITEM_ERRORS, VideoItem, is_item_error

    on_error = on_error or getattr(dataset, "on_error", "raise")
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    cropper = cropper if cropper is not None else FaceCropper()
    items = list(dataset.items)
    if not items:
        raise ValueError(f"{type(dataset).__name__} has no items to crop")
    root_attr = getattr(dataset, "root", None)
    root = Path(root_attr) if root_attr is not None and Path(root_attr).is_dir() else None
    if root is None or not all(_is_within(Path(it.path), root) for it in items):
        root = Path(os.path.commonpath([os.path.dirname(os.path.abspath(it.path)) for it in items]))
    out = Path(out_dir)
    if _is_within(out, root):
        raise ValueError(
            f"{out}: is inside the dataset directory {root}; datasets are never written "
            "to. Put the face-crop cache elsewhere"
        )
    new_items: list[VideoItem] = []
    failures: list[dict[str, Any]] = []
    bar = tqdm(items, desc="face crops", unit="video", disable=not progress)
    rels = [Path(os.path.relpath(Path(it.path).resolve(), root.resolve())) for it in items]
    by_parent: dict[Path, list[int]] = {}
    for i, rel in enumerate(rels):
        by_parent.setdefault(rel.parent, []).append(i)
    names: list[str] = [""] * len(items)
    for group in by_parent.values():  # a.mp4 beside a.avi: a_mp4, a_avi
        for i, name in zip(group, crop_folder_names([items[i].path for i in group])):
            names[i] = name
    for index, item in enumerate(bar):
        rel = rels[index]
        try:
            folder = precompute_face_crops(
                item.path,
                out / rel.parent,
                cropper,
                name=names[index],
                overwrite=overwrite,
                **kwargs,
            )
        except ITEM_ERRORS as err:
            if on_error == "raise" or not is_item_error(err):  # out of memory: all would fail
                raise
            failures.append(
                {
                    "index": index,
                    "path": item.path,
                    "error": type(err).__name__,
                    "message": str(err),
                }
            )
            warnings.warn(f"face crops: skipping {item.path}: {err}", RuntimeWarning, stacklevel=2)
            continue
        new_items.append(
            VideoItem(str(folder), item.label, {**item.meta, "source_path": item.path})
        )
    if not new_items:
        raise RuntimeError(
            f"face crops: every one of the {len(items)} videos failed; first failure: "
            f"{failures[0]['message']}"
        )
    cached = copy.copy(dataset)
    cached.items = new_items
    cached.face_cropper = None
    cached.failures = failures
    return cached
