"""A frame cache for fast training: pre-decoded (and pre-cropped) frames in shards.

Decoding video and cropping faces costs far more CPU than a GPU needs to train CEFLNet:
an H100 trains the ResNet-18 model at ~15,000 frames/s. The cache does that work once.
:func:`build_frame_cache` stores, for every video of a dataset, the frames its sampler can
ever pick (at most ``normalized_length`` = 105 per video), face-cropped when the dataset
has a ``face_cropper``, resized to the model's resolution, as JPEG or raw ``uint8``, packed
into large shard files. :class:`CachedVideoDataset` reads them back with one ``pread`` per
video and yields the same samples as the original dataset (same sampler, same per-item
seeds, same sample dicts).

The GPU path: with ``CachedVideoDataset(..., decode=False)`` the DataLoader workers only
read bytes; :func:`collate_encoded` batches them and :func:`prepare_batch` decodes all
JPEGs of a batch at once on the GPU (``torchvision.io.decode_jpeg(..., device="cuda")``,
nvJPEG) and applies the transform there. CPU decoding stays the default.

Layout of a cache directory (written to a temporary directory, renamed at the end)::

    index.json          classes, sampler, format, size, and per video: path, label,
                        meta, num_frames, cached frame indices, shard, offset, sizes
    shard_00000.bin     concatenated frames (JPEG files, or raw uint8 (3, H, W) planes)

Example:
    >>> from cefl_zoo.data import build_dataset, build_frame_cache, CachedVideoDataset
    >>> ds = build_dataset("synthetic", "synth", split="train")  # doctest: +SKIP
    >>> build_frame_cache(ds, "synth_cache", size=64)  # doctest: +SKIP
    >>> cached = CachedVideoDataset("synth_cache", train=True)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..video.io import (
    IMAGE_EXTENSIONS,
    VideoInfo,
    VideoReader,
    VideoReadError,
    natural_sort_key,
    quiet_image_io,
)
from ..video.sampling import ClipSampler
from .base import (
    ITEM_ERRORS,
    VideoDataset,
    VideoItem,
    crop_faces,
    is_item_error,
    item_error_reason,
    item_seed,
    warn_skipped,
)
from .factory import register_dataset

__all__ = [
    "CACHE_VERSION",
    "CachedVideoDataset",
    "EmptyCacheError",
    "build_frame_cache",
    "collate_encoded",
    "decode_jpeg_batch",
    "encoded_frames",
    "prepare_batch",
]

#: Format version of a cache directory's ``index.json``; other versions are refused.
CACHE_VERSION = 1
_INDEX = "index.json"
_SHARD = re.compile(r"shard_\d{5}\.bin")


class EmptyCacheError(ValueError):
    """:func:`build_frame_cache` could not cache a single video (nothing is written)."""


def _resize_square(frames: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize the shorter side to ``size`` and centre-crop a square (``None``: as is)."""
    if size is None:
        return frames
    from torchvision.transforms.v2 import functional as F

    h, w = frames.shape[-2:]
    if (h, w) == (size, size):
        return frames
    out = F.resize(frames, size, antialias=True)
    return F.center_crop(out, [size, size])


class _EncodeItems(Dataset):
    """Decodes, crops, resizes and encodes one video per item (runs in workers)."""

    def __init__(self, dataset: VideoDataset, size: int | None, fmt: str, quality: int) -> None:
        self.dataset, self.size, self.fmt, self.quality = dataset, size, fmt, quality

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from torchvision.io import encode_jpeg

        ds = self.dataset
        item = ds.items[index]
        try:  # the item's file: its errors are the item's (left out, or raised)
            with ds.open(item) as reader:
                num_frames = len(reader)
                ds.sampler.check_length(num_frames)
                fps = float(reader.info.fps)
                keep = ds.sampler.reachable_frames(num_frames)
                frames = reader.read(keep)
            if ds.face_cropper is not None:
                frames = crop_faces(ds.face_cropper, frames, item.path, times=keep)
        except ITEM_ERRORS as err:
            if not is_item_error(err):
                raise
            error = ds._describe(index, err)
            return {
                "index": index,
                "error": f"{type(err).__name__}: {error}",
                "reason": item_error_reason(error, item.path),
            }
        # Resizing and encoding frames that were read fine: errors here are not the item's.
        frames = _resize_square(frames, self.size).contiguous()
        if self.fmt == "jpeg":
            with quiet_image_io():
                encoded = encode_jpeg(list(frames), quality=self.quality)
            blobs = [bytes(b.numpy()) for b in encoded]
        else:
            blobs = [f.numpy().tobytes() for f in frames]
        return {
            "index": index,
            "source": _source_stamp(item.path),
            "num_frames": num_frames,
            "fps": fps,
            "frames": keep.tolist(),
            "shape": list(frames.shape[1:]),
            "blobs": blobs,
        }


def _source_stamp(path: str) -> dict[str, int]:
    """What tells a source video changed: a file's size and modification time (ns); a frame
    folder's number of frames and the newer modification time of its first and last frame
    (in the reader's natural order; two ``stat`` calls, so opening a cache of a large
    dataset stays quick, and frames re-extracted, added or removed show). ``{}`` if it is
    unreadable."""
    try:
        if os.path.isfile(path):
            st = os.stat(path)
            return {"source_size": st.st_size, "source_mtime_ns": st.st_mtime_ns}
        with os.scandir(path) as entries:
            names = sorted(
                (
                    e.name
                    for e in entries
                    if not e.name.startswith(".") and e.name.lower().endswith(IMAGE_EXTENSIONS)
                ),
                key=natural_sort_key,
            )
        if not names:
            return {"source_frames": 0}
        newest = max(os.stat(os.path.join(path, n)).st_mtime_ns for n in {names[0], names[-1]})
        return {"source_frames": len(names), "source_mtime_ns": newest}
    except OSError:
        return {}


def _source_change(entry: dict[str, Any], now: dict[str, int]) -> str:
    """How a source differs from its cache ``entry`` (``""``: it does not, or cannot tell).

    Caches of older versions store only ``source_size`` (``None`` for frame folders).
    """
    described = {
        "source_size": "{} bytes then, {} now",
        "source_frames": "{} frames then, {} now",
        "source_mtime_ns": "modification time differs",
    }
    for key, text in described.items():
        old = entry.get(key)
        if old is not None and key in now and now[key] != old:
            return text.format(old, now[key])
    return ""


def _first(batch: list[Any]) -> Any:
    return batch[0]


def build_frame_cache(
    dataset: VideoDataset,
    out_dir: str | os.PathLike,
    size: int | None = None,
    format: str = "jpeg",
    quality: int = 90,
    shard_bytes: int = 1 << 30,
    num_workers: int = 0,
    progress: bool = True,
    overwrite: bool = False,
    split: str | None = None,
) -> Path:
    """Decode a dataset once into a frame cache.

    For each video, the frames ``dataset.sampler`` can ever pick are decoded, passed
    through ``dataset.face_cropper`` (when set), resized (shorter side to ``size``, centre
    square crop) and stored. Items that fail to load are left out and listed (with the
    reason) in the index's ``failures``, with a warning; ``on_error="raise"`` datasets
    raise instead. The cache is built in a temporary directory and renamed into place, so
    ``out_dir`` is either complete or absent.

    Args:
        dataset: The source dataset (its items, classes, sampler and face cropper).
        out_dir: The cache directory to create.
        size: Stored frame size (square); ``None`` keeps the decoded size. Use the
            model's input size, or a little more for random-crop augmentation.
        format: ``"jpeg"`` (small; decodes on CPU or GPU) or ``"uint8"`` (raw, exact,
            ~10x larger, no decoding).
        quality: JPEG quality.
        shard_bytes: Start a new shard file after this many bytes.
        num_workers: DataLoader workers that decode in parallel.
        progress: Show a progress bar.
        overwrite: Replace an existing cache at ``out_dir``.
        split: The split the dataset holds (default: its ``split`` attribute), stored
            for items whose ``meta`` names none, so ``CachedVideoDataset(split=...)`` can
            select it.

    Returns:
        The cache directory.

    Raises:
        FileExistsError: If ``out_dir`` exists and not ``overwrite``; also with
            ``overwrite`` when it is anything but a frame cache (a file, a dataset, any
            folder holding more than a cache's ``index.json`` and shard files), which is
            never deleted.
        EmptyCacheError: (a ``ValueError``) When not one video could be cached (all
            failed, or the dataset is empty); nothing is written.
        ValueError: For an unknown format, or a bad ``size`` or ``quality``.
    """
    from tqdm.auto import tqdm

    if format not in ("jpeg", "uint8"):
        raise ValueError(f"format must be 'jpeg' or 'uint8', got {format!r}")
    if size is not None and (isinstance(size, bool) or int(size) != size or size < 1):
        raise ValueError(f"size must be a positive number of pixels (or None), got {size!r}")
    if format == "jpeg" and not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality!r}")
    out = Path(out_dir)
    if os.path.lexists(out):
        _check_replaceable(out)
        if not overwrite:
            raise FileExistsError(
                f"{out} already exists; pass overwrite=True (CLI: --overwrite) to rebuild it"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(out)
    tmp = _temp_dir(out, os.getpid())
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        entries, failures = _write_shards(
            dataset, tmp, size, format, quality, shard_bytes, num_workers, progress, tqdm
        )
        if not entries:
            raise EmptyCacheError(_nothing_cached(dataset, failures))
        index = {
            "version": CACHE_VERSION,
            "format": format,
            "size": size,
            "quality": quality if format == "jpeg" else None,
            "classes": list(dataset.classes),
            "sampler": dataset.sampler.config(),
            "face_cropped": dataset.face_cropper is not None,
            "source": type(dataset).__name__,
            "split": split if split is not None else getattr(dataset, "split", None),
            "items": entries,
            "failures": failures,
        }
        with open(tmp / _INDEX, "w", encoding="utf-8") as fh:
            json.dump(index, fh, default=str)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _temp_dir(out: Path, pid: int) -> Path:
    """Where the build of process ``pid`` writes ``out`` before renaming it into place."""
    return out.with_name(f".{out.name}.tmp-{pid}")


def _check_replaceable(out: Path) -> None:
    """Raise unless ``out`` is a directory that a rebuild may delete: a frame cache (its
    ``index.json``, shard files and nothing else) or an empty directory."""
    why = None
    if out.is_symlink():
        why = "is a symbolic link"
    elif not out.is_dir():
        why = "is a file"
    else:
        names = os.listdir(out)
        foreign = sorted(n for n in names if n != _INDEX and not _SHARD.fullmatch(n))
        if foreign:
            more = ", ..." if len(foreign) > 3 else ""
            why = f"holds {', '.join(foreign[:3])}{more}, which a frame cache does not"
        elif names and _INDEX not in names:
            why = f"has no {_INDEX}"
    if why is not None:
        raise FileExistsError(
            f"{out}: {why}, so it is not a frame cache; refusing to write the cache there, "
            "even with overwrite=True (CLI: --overwrite), which only ever replaces a frame "
            f"cache. Choose another output folder (or move {out} away yourself)"
        )


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` may still be running (``True`` when it cannot be told)."""
    if os.name != "posix" or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def _remove_stale_builds(out: Path) -> None:
    """Remove the temporary directories that killed builds of ``out`` left behind.

    Only directories named exactly as :func:`_temp_dir` names them, of processes that are
    no longer running (another build of ``out`` that is under way keeps its own).
    """
    stale = re.compile(rf"\.{re.escape(out.name)}\.tmp-([0-9]+)")
    with os.scandir(out.parent) as entries:
        for entry in entries:
            match = stale.fullmatch(entry.name)
            if match is None or not entry.is_dir(follow_symlinks=False):
                continue
            pid = int(match.group(1))
            if pid != os.getpid() and not _pid_alive(pid):
                shutil.rmtree(entry.path, ignore_errors=True)


def _nothing_cached(dataset: VideoDataset, failures: list[dict[str, Any]]) -> str:
    name = type(dataset).__name__
    if not failures:
        return f"nothing to cache: the {name} has no videos; no cache was written"
    first = failures[0]
    return (
        f"not one of the {len(failures)} videos of the {name} could be read, so no cache was "
        f"written; first failure: {first['path']}: {first.get('reason', first['error'])}"
    )


def _write_shards(dataset, tmp, size, fmt, quality, shard_bytes, num_workers, progress, tqdm):
    loader = DataLoader(
        _EncodeItems(dataset, size, fmt, quality),
        batch_size=1,
        num_workers=num_workers,
        collate_fn=_first,
    )
    entries: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    shard_id, shard_fh, shard_pos = -1, None, shard_bytes
    try:
        for result in tqdm(loader, desc="frame cache", unit="video", disable=not progress):
            item: VideoItem = dataset.items[result["index"]]
            if "error" in result:
                if dataset.on_error == "raise":
                    raise VideoReadError(item.path, result["reason"])
                warn_skipped(
                    f"frame cache: skipping {item.path}: {result['reason']}; it is left out "
                    "of the cache (listed in its index's failures)",
                    "build_frame_cache",
                )
                failures.append(
                    {"path": item.path, "error": result["error"], "reason": result["reason"]}
                )
                continue
            blobs = result["blobs"]
            total = sum(len(b) for b in blobs)
            if shard_pos + total > shard_bytes and shard_pos > 0:
                if shard_fh is not None:
                    shard_fh.close()
                shard_id += 1
                shard_fh = open(tmp / f"shard_{shard_id:05d}.bin", "wb")  # noqa: SIM115
                shard_pos = 0
            shard_fh.writelines(blobs)
            entries.append(
                {
                    "path": item.path,
                    "label": int(item.label),
                    "meta": item.meta,
                    "source_index": result["index"],
                    **result["source"],
                    "num_frames": result["num_frames"],
                    "fps": result["fps"],
                    "frames": result["frames"],
                    "shape": result["shape"],
                    "shard": shard_id,
                    "offset": shard_pos,
                    "sizes": [len(b) for b in blobs],
                }
            )
            shard_pos += total
    finally:
        if shard_fh is not None:
            shard_fh.close()
    return entries, failures


def _read_index(index_path: Path) -> dict[str, Any]:
    """A cache's ``index.json``, checked; damaged ones raise naming the file and the fix."""
    rebuild = (
        f"rebuild the cache with `cefl-zoo cache SPEC {index_path.parent} --overwrite` (SPEC: "
        "the dataset it was built from) or cefl_zoo.data.build_frame_cache(..., overwrite=True)"
    )
    try:
        with open(index_path, encoding="utf-8") as fh:
            index = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{index_path}: the frame cache's index is damaged (not valid JSON: {err}); {rebuild}"
        ) from None
    if not isinstance(index, dict):
        raise ValueError(  # noqa: TRY004 - a damaged file, as for invalid JSON
            f"{index_path}: is not a frame cache index (not a JSON object); {rebuild}"
        )
    if index.get("version") != CACHE_VERSION:
        raise ValueError(
            f"{index_path}: cache version {index.get('version')} is not supported "
            f"(expected {CACHE_VERSION}); {rebuild}"
        )
    missing = [k for k in ("format", "sampler", "classes", "items") if k not in index]
    if missing:
        raise ValueError(
            f"{index_path}: the frame cache's index is damaged (no {', '.join(missing)}); {rebuild}"
        )
    return index


class _CacheReader(VideoReader):
    """Reads the cached frames of one video with one ``pread``."""

    def __init__(self, cache: CachedVideoDataset, entry: dict[str, Any]) -> None:
        self.cache, self.entry, self.path = cache, entry, entry["path"]
        self._pos = {f: j for j, f in enumerate(entry["frames"])}

    @property
    def info(self) -> VideoInfo:
        e = self.entry
        _, h, w = e["shape"]
        return VideoInfo(e["path"], e["num_frames"], e["fps"], e["num_frames"] / e["fps"], w, h)

    def __len__(self) -> int:
        return int(self.entry["num_frames"])

    def read_encoded(self, indices: Sequence[int]) -> list[bytes]:
        """The stored bytes of the frames at ``indices`` (original frame numbers)."""
        e = self.entry
        missing = [i for i in indices if i not in self._pos]
        if missing:
            raise VideoReadError(
                self.cache.root,
                f"frame {missing[0]} of {e['path']} is not in the cache (it holds the frames "
                f"of sampler {self.cache.cache_sampler!r})",
                "Use that sampler, or rebuild the cache with yours",
            )
        slots = [self._pos[i] for i in indices]
        sizes = e["sizes"]
        starts = [0]
        for s in sizes[:-1]:
            starts.append(starts[-1] + s)
        lo, hi = min(slots), max(slots)
        span_start = starts[lo]
        data = self.cache._pread(
            e["shard"], e["offset"] + span_start, starts[hi] + sizes[hi] - span_start
        )
        return [data[starts[j] - span_start : starts[j] - span_start + sizes[j]] for j in slots]

    def _read_sorted(self, indices: list[int]) -> torch.Tensor:
        if self.cache.format == "jpeg":
            from torchvision.io import ImageReadMode, decode_jpeg

            blobs = self.read_encoded(indices)
            tensors = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
            with quiet_image_io():
                return torch.stack(decode_jpeg(tensors, mode=ImageReadMode.RGB))
        return self._read_raw(indices)

    def _read_raw(self, indices: list[int]) -> torch.Tensor:
        """uint8 frames straight into the output tensor (``preadv``, no extra copy)."""
        e = self.entry
        missing = [i for i in indices if i not in self._pos]
        if missing:
            self.read_encoded(missing)  # raises the "not in the cache" error
        shape = e["shape"]
        nbytes = shape[0] * shape[1] * shape[2]
        out = torch.empty((len(indices), *shape), dtype=torch.uint8)
        flat = out.numpy().reshape(len(indices), nbytes)
        slots = [self._pos[i] for i in indices]
        start = 0
        while start < len(slots):  # runs of consecutive slots are one contiguous read
            stop = start + 1
            while stop < len(slots) and slots[stop] == slots[stop - 1] + 1:
                stop += 1
            self.cache._read_into(e["shard"], e["offset"] + slots[start] * nbytes, flat[start:stop])
            start = stop
        return out


@register_dataset("cache")
class CachedVideoDataset(VideoDataset):
    """A frame cache built by :func:`build_frame_cache`, as a :class:`VideoDataset`.

    A video's samples equal those the source dataset gives for it with the same ``seed``
    and epoch, also when other videos failed to cache: items are seeded by their index in
    the source dataset, which the cache stores (exactly for a ``"uint8"`` cache at the
    decoded size, up to JPEG loss otherwise; with a face cropper, up to the face track,
    which the cache follows over all the frames it holds and a direct read over the
    sampled ones, so crop boxes differ by a fraction of a pixel). A source video that is
    still there but changed since the build (a file's size or modification time, a frame
    folder's number of frames or the modification time of its first or last frame) is
    reported with a warning:
    the cache keeps serving the old frames.

    Args:
        root: The cache directory.
        split: Keep items of this split (their ``meta["split"]``, else the split the
            cache was built from); ``None`` or ``""``: all (the way to use a cache built
            without splits, e.g. from a folder per class).
        fold: Not supported (``None``): build one cache per fold.
        decode: ``True``: frames are decoded in the dataset (CPU) and transformed; the
            sample's ``"video"`` is as usual. ``False``: the sample carries the stored
            frames undecoded for :func:`collate_encoded` + :func:`prepare_batch` (GPU
            decoding): ``"jpeg"`` (a list of N*K 1-D ``uint8`` tensors) for a JPEG cache,
            ``"video"`` as ``uint8 (N, K, 3, S, S)`` for a uint8 cache, plus
            ``"transform_seed"``; no transform is applied.
        sampler: Temporal sampler; default the one the cache was built for. Another
            sampler must only pick frames the cache holds (e.g. the same sampler with
            ``train`` sampling only), else a ``ValueError`` says which.
        **kwargs: :class:`VideoDataset` options (``transform``, ``train``, ``seed``,
            ``on_error``, ...).

    Raises:
        FileNotFoundError: If ``root`` holds no cache index.
        ValueError: For a damaged or unsupported index (naming it, and how to rebuild).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = None,
        fold: int | str | None = None,
        decode: bool = True,
        sampler: ClipSampler | None = None,
        **kwargs: Any,
    ) -> None:
        if fold is not None:
            raise ValueError(
                f"{root}: a frame cache holds one fold already; pass fold=None (build one "
                "cache per fold)"
            )
        self.root = str(root)
        index_path = Path(root) / _INDEX
        if Path(root).is_file():
            raise FileNotFoundError(
                f"{root}: is a file, not a frame cache folder; pass the folder that "
                "`cefl-zoo cache` (or cefl_zoo.data.build_frame_cache) created"
            )
        if not index_path.is_file():
            raise FileNotFoundError(
                f"{index_path}: not found; {root} is not a frame cache (or its build did not "
                "finish). Build it with cefl_zoo.data.build_frame_cache or `cefl-zoo cache`"
            )
        self.index = _read_index(index_path)
        self.format = self.index["format"]
        self.cache_sampler = ClipSampler(**self.index["sampler"])
        self.split = None if split is None or str(split).strip() == "" else split
        self.decode = bool(decode)
        self._fds: dict[int, int] = {}
        self._fd_pid = os.getpid()
        kwargs.setdefault("classes", self.index["classes"])
        super().__init__(sampler=sampler or self.cache_sampler, **kwargs)
        self._check_sampler()
        self._warn_changed_sources()

    def _check_sampler(self) -> None:
        """Refuse a sampler that can pick frames the cache does not hold."""
        if self.sampler == self.cache_sampler:
            return
        checked: set[int] = set()
        for entry in self.entries:
            n = int(entry["num_frames"])
            if n in checked:  # the frames held depend on the length only
                continue
            checked.add(n)
            held = set(entry["frames"])
            missing = [f for f in self.sampler.reachable_frames(n).tolist() if f not in held]
            if missing:
                raise ValueError(
                    f"{self.root}: sampler {self.sampler!r} can pick frames this cache does "
                    f"not hold (e.g. frame {missing[0]} of {entry['path']}, {n} frames); the "
                    f"cache holds the frames of {self.cache_sampler!r}. Use that sampler, or "
                    "rebuild the cache from a dataset with yours (cefl-zoo cache: --num-clips "
                    "/ --frames-per-clip; build_frame_cache(dataset with sampler=...))"
                )

    def _warn_changed_sources(self) -> None:
        """Warn when source videos that are still there changed since the build."""
        changed = []
        for entry in self.entries:
            if all(entry.get(k) is None for k in ("source_size", "source_frames")):
                continue  # a frame folder in a cache of an older version
            change = _source_change(entry, _source_stamp(entry["path"]))
            if change:
                changed.append((entry["path"], change))
        if changed:
            path, change = changed[0]
            warn_skipped(
                f"{self.root}: {len(changed)} of {len(self.entries)} cached videos changed "
                f"since the cache was built (e.g. {path}: {change}); the "
                "cache still serves the frames of the old files. Rebuild it with `cefl-zoo "
                f"cache SPEC {self.root} --overwrite` or build_frame_cache(..., "
                "overwrite=True)",
                "CachedVideoDataset",
            )

    def _item_split(self, entry: dict[str, Any]) -> str | None:
        split = entry["meta"].get("split", self.index.get("split"))
        return None if split is None else str(split)

    def _load_items(self) -> list[VideoItem]:
        items = self.index["items"]
        if self.split is None:
            self.entries = list(items)
        else:
            splits = sorted({str(self._item_split(e)) for e in items})
            if items and all(self._item_split(e) is None for e in items):
                raise ValueError(
                    f"{self.root}: the cache does not say which split its videos belong to, "
                    f"so split={self.split!r} cannot be selected; use all of it with "
                    "split=None (cefl-zoo train: --train-split none --val-split none), or "
                    "rebuild it with build_frame_cache(..., split=...) (cefl-zoo cache: --split)"
                )
            self.entries = [e for e in items if self._item_split(e) == self.split]
            if not self.entries:
                raise ValueError(
                    f"{self.root}: no cached videos of split {self.split!r} (found: "
                    f"{', '.join(splits)})"
                )
        return [
            VideoItem(e["path"], e["label"], {**e["meta"], "cache_entry": i})
            for i, e in enumerate(self.entries)
        ]

    def _fd(self, shard: int) -> int:
        if self._fd_pid != os.getpid():  # forked into a worker: open our own handles
            self._fds, self._fd_pid = {}, os.getpid()
        fd = self._fds.get(shard)
        if fd is None:
            fd = os.open(os.path.join(self.root, f"shard_{shard:05d}.bin"), os.O_RDONLY)
            self._fds[shard] = fd
        return fd

    def _short_read(self, shard: int, offset: int, wanted: int, got: int) -> VideoReadError:
        return VideoReadError(
            os.path.join(self.root, f"shard_{shard:05d}.bin"),
            f"truncated cache shard: wanted {wanted} bytes at {offset}, got {got}",
            "Rebuild the cache",
        )

    def _pread(self, shard: int, offset: int, length: int) -> bytes:
        data = os.pread(self._fd(shard), length, offset)
        if len(data) != length:
            raise self._short_read(shard, offset, length, len(data))
        return data

    def _read_into(self, shard: int, offset: int, rows: Any) -> None:
        """Fill the rows of a 2-D uint8 array with the bytes at ``offset`` (one read)."""
        wanted = rows.size
        if hasattr(os, "preadv"):
            got = os.preadv(self._fd(shard), [memoryview(r) for r in rows], offset)
        else:  # pragma: no cover - platforms without preadv
            data = os.pread(self._fd(shard), wanted, offset)
            got = len(data)
            if got == wanted:
                rows[:] = np.frombuffer(data, dtype=np.uint8).reshape(rows.shape)
        if got != wanted:
            raise self._short_read(shard, offset, wanted, got)

    def open(self, item: VideoItem) -> VideoReader:
        return _CacheReader(self, self.entries[item.meta["cache_entry"]])

    def seed_key(self, index: int) -> int:
        """The item's index in the source dataset (caches of older versions: ``index``)."""
        return int(self.entries[self.items[index].meta["cache_entry"]].get("source_index", index))

    def load_sample(self, index: int) -> dict[str, Any]:
        if self.decode:
            return super().load_sample(index)
        item = self.items[index]
        reader = _CacheReader(self, self.entries[item.meta["cache_entry"]])
        clip = self.sampler.sample(len(reader), self.train, self.generator(index))
        flat = clip.indices.reshape(-1).tolist()
        sample: dict[str, Any] = {
            "label": int(item.label),
            "path": item.path,
            "apex_clip": _apex(clip, item),
            "frame_indices": clip.indices,
            "index": int(index),
            "transform_seed": item_seed(self.seed, self.epoch, self.seed_key(index), "transform"),
        }
        if self.format == "jpeg":
            sample["jpeg"] = [
                torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in reader.read_encoded(flat)
            ]
        else:
            sample["video"] = reader.read(flat).reshape(*clip.indices.shape, *reader.entry["shape"])
        return sample

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_fds"] = {}
        return state

    def __del__(self) -> None:
        if getattr(self, "_fd_pid", None) == os.getpid():
            for fd in getattr(self, "_fds", {}).values():
                try:
                    os.close(fd)
                except OSError:
                    pass


def _apex(clip: Any, item: VideoItem) -> int:
    from ..video.sampling import apex_clip_index

    return apex_clip_index(clip.windows, item.meta.get("apex_frame"))


def collate_encoded(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch the samples of ``CachedVideoDataset(decode=False)`` for :func:`prepare_batch`.

    The encoded frames of the batch travel as one tensor: a loader worker hands each
    tensor to the training process as a shared-memory segment of its own, and one per
    frame (1,120 at batch 32 of 7 x 5 frames) would cap the loader at a few thousand
    frames/s, far below what nvJPEG decodes.

    Returns:
        A dict with ``"jpeg"`` (the B*N*K encoded frames end to end, one ``uint8``
        tensor) and ``"jpeg_sizes"`` (each frame's length; :func:`encoded_frames` splits
        them) or ``"video"`` (``uint8 (B, N, K, 3, S, S)``), ``"shape"`` ``(B, N, K)``,
        and the other keys collated as the default collate does.
    """
    from torch.utils.data import default_collate

    rest = [{k: v for k, v in s.items() if k != "jpeg"} for s in samples]
    batch = default_collate(rest)
    n, k = samples[0]["frame_indices"].shape
    batch["shape"] = (len(samples), n, k)
    if "jpeg" in samples[0]:
        frames = [frame for s in samples for frame in s["jpeg"]]
        batch["jpeg"] = torch.cat(frames)
        batch["jpeg_sizes"] = [int(f.numel()) for f in frames]
    return batch


def encoded_frames(batch: dict[str, Any]) -> list[torch.Tensor]:
    """The encoded frames of a :func:`collate_encoded` batch, one 1-D ``uint8`` tensor
    each (views of the batch's buffer), in ``(B, N, K)`` order."""
    jpeg = batch["jpeg"]
    if isinstance(jpeg, torch.Tensor):
        return list(torch.split(jpeg, list(batch["jpeg_sizes"])))
    return list(jpeg)  # a list of frames (batches made by hand)


def decode_jpeg_batch(
    jpegs: Sequence[torch.Tensor],
    shape: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Decode many JPEG frames in one call, on the CPU or the GPU (nvJPEG).

    Args:
        jpegs: Encoded frames, 1-D ``uint8`` tensors on the CPU.
        shape: Leading shape to give the result, e.g. ``(B, N, K)``; ``None`` for
            ``(len(jpegs),)``.
        device: ``"cuda"`` decodes the whole list in one batched nvJPEG call.

    Returns:
        ``uint8 (*shape, 3, H, W)`` on ``device`` (all frames must have one size).

    Raises:
        RuntimeError: For ``device="cuda"`` without CUDA.
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("decode_jpeg_batch(device='cuda') needs a CUDA GPU; use device='cpu'")
    lead = tuple(shape) if shape is not None else (len(jpegs),)
    if device.type != "cuda":
        with quiet_image_io():
            frames = decode_jpeg(list(jpegs), mode=ImageReadMode.RGB, device=device)
        out = torch.stack(frames)
        return out.reshape(*lead, *out.shape[1:])
    # torchvision allocates nvJPEG's outputs on the current stream but decodes on a
    # private one that does not wait for it, so with kernels still queued (a training
    # step that never syncs) it can be handed, and overwrite, memory they are about to
    # read (pytorch/vision#9606). With a side stream current, the outputs come from that
    # stream's pool, never from blocks just freed on the main stream; the main stream
    # then waits for the side stream, and the allocator learns the result is used there.
    main = torch.cuda.current_stream(device)
    side = _decode_stream(device)
    with torch.cuda.stream(side), quiet_image_io():
        frames = decode_jpeg(list(jpegs), mode=ImageReadMode.RGB, device=device)
        out = torch.stack(frames)
    main.wait_stream(side)
    out.record_stream(main)
    return out.reshape(*lead, *out.shape[1:])


#: One decoding side stream per CUDA device (see :func:`decode_jpeg_batch`).
_DECODE_STREAMS: dict[int, Any] = {}


def _decode_stream(device: torch.device) -> Any:
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _DECODE_STREAMS:
        _DECODE_STREAMS[index] = torch.cuda.Stream(device=index)
    return _DECODE_STREAMS[index]


#: Normalisation constants already on a device, by (device, dtype, mean, std), reused so
#: that a batch needs no host-to-device copy (each such copy of a Python list waits for
#: the device) besides its frames.
_NORM_CONSTANTS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _norm_constants(
    mean: Sequence[float], std: Sequence[float], dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    key = (str(device), dtype, tuple(mean), tuple(std))
    if key not in _NORM_CONSTANTS:
        if len(_NORM_CONSTANTS) > 64:
            _NORM_CONSTANTS.clear()
        _NORM_CONSTANTS[key] = tuple(  # type: ignore[assignment]
            torch.as_tensor(list(v), dtype=dtype).view(-1, 1, 1).to(device) for v in (mean, std)
        )
    return _NORM_CONSTANTS[key]


def _split_pointwise_tail(transform: Any) -> tuple[Any, Any]:
    """Split a video transform into its per-video part and a batched pointwise tail.

    A :class:`~cefl_zoo.transforms.VideoTransform` whose ``v2.Compose`` ends with
    ``ToDtype(float, scale=True)`` and ``Normalize`` (every transform
    :func:`~cefl_zoo.transforms.transforms_for` builds) gives ``(head, tail)``: ``head``
    the steps before (crop, resize, flip, jitter: random, drawn per video), or ``None``;
    ``tail(frames)`` the last two steps for a whole batch ``(..., 3, h, w)`` at once.
    Both steps are elementwise and draw no random numbers, so head-per-video then tail
    on the batch equals the whole transform per video, bit for bit. Any other
    transform gives ``(transform, None)``.
    """
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    from ..transforms import VideoTransform

    inner = getattr(transform, "transform", None)
    if type(transform) is not VideoTransform or type(inner) is not v2.Compose:
        return transform, None
    ops = list(inner.transforms)
    if len(ops) < 2 or type(ops[-2]) is not v2.ToDtype or type(ops[-1]) is not v2.Normalize:
        return transform, None
    to_dtype, norm = ops[-2], ops[-1]
    dtype = to_dtype.dtype
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point and to_dtype.scale):
        return transform, None
    mean, std = list(norm.mean), list(norm.std)
    if norm.inplace or not all(std):
        return transform, None

    def tail(frames: torch.Tensor) -> torch.Tensor:
        lead = frames.shape[:-3]
        video = to_dtype(tv_tensors.Video(frames.reshape(-1, *frames.shape[-3:])))
        video = video.as_subclass(torch.Tensor)
        # torchvision's normalize_image, with the constants kept on the device.
        m, s = _norm_constants(mean, std, video.dtype, video.device)
        return video.sub(m).div_(s).reshape(*lead, *video.shape[-3:])

    head = VideoTransform(v2.Compose(ops[:-2])) if len(ops) > 2 else None
    return head, tail


def prepare_batch(
    batch: dict[str, Any],
    device: str | torch.device = "cpu",
    transform: Any | None = None,
    non_blocking: bool = True,
    channels_last: bool = False,
) -> torch.Tensor:
    """Turn a :func:`collate_encoded` batch into model input on ``device``.

    JPEG frames are decoded there in one batched call (nvJPEG on CUDA); uint8 frames are
    copied. ``transform`` (e.g. :func:`cefl_zoo.transforms_for(model, train)
    <cefl_zoo.transforms.transforms_for>`) is applied to each video with the item's
    ``transform_seed``, so the augmentation equals the CPU path's. The random steps
    (crop, flip, jitter) run video by video on ``uint8`` frames; the final conversion to
    float and normalisation run once on the whole batch, without a host-device sync.

    Args:
        batch: The collated batch.
        device: Where to decode and transform.
        transform: Per-video transform ``(N, K, 3, H, W) -> (N, K, 3, h, w)``; ``None``
            returns ``uint8`` frames.
        non_blocking: Asynchronous host-to-device copies.
        channels_last: Store every transformed frame ``H, W, C``: the ``(B*N*K, 3, h, w)``
            view a model's backbone takes is then ``torch.channels_last`` without a
            copy. Same values, other strides.

    Returns:
        ``(B, N, K, 3, h, w)`` on ``device``.
    """
    device = torch.device(device)
    if "jpeg" in batch:
        video = decode_jpeg_batch(encoded_frames(batch), batch["shape"], device=device)
    else:
        video = batch["video"].to(device, non_blocking=non_blocking)
    if transform is None:
        return video
    head, tail = _split_pointwise_tail(transform)
    if head is None:
        out = video
    else:
        seeds = batch["transform_seed"].tolist()
        frames = []
        for v, seed in zip(video, seeds):
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(int(seed))
                frames.append(head(v))
        out = torch.stack(frames)
    if channels_last and out.ndim >= 3:
        dims = list(range(out.ndim))
        hwc = [*dims[:-3], out.ndim - 2, out.ndim - 1, out.ndim - 3]
        out = out.permute(hwc).contiguous().permute(_inverse(hwc))
    return tail(out) if tail is not None else out


def _inverse(perm: list[int]) -> list[int]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv
