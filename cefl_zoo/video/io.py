"""Frame-accurate video reading: video files through PyAV, and folders of frame images.

One interface for both: :func:`open_video` returns a :class:`VideoReader` whose
:meth:`~VideoReader.read` takes frame indices and returns RGB ``uint8`` frames
``(T, 3, H, W)`` in the order asked.

* :class:`PyAVReader` indexes a file's packets once (demuxing only, no decoding), so it
  knows the presentation time of every frame without ``pts / fps`` arithmetic that breaks
  on variable frame rate videos. A read seeks to the keyframe before the first frame it
  needs and decodes forward, matching frames by their timestamp, instead of decoding the
  whole video. Rotation metadata (the container's display matrix) is applied, grayscale
  and odd-sized videos come out as RGB.
* :class:`FrameFolderReader` reads ``.jpg`` / ``.png`` / ``.bmp`` frames sorted naturally
  (``2.jpg`` before ``10.jpg``), as DFEW and other datasets ship their face crops.

Every problem with a file raises :class:`VideoReadError` (a ``ValueError``) whose message
names the file, says what was wrong and what to do.

Example:
    >>> from cefl_zoo.video import open_video
    >>> with open_video("clip.mp4") as video:  # doctest: +SKIP
    ...     print(video.info.num_frames, video.info.fps)
    ...     frames = video.read([0, 10, 10, 20])  # uint8 (4, 3, H, W)
"""

from __future__ import annotations

import bisect
import contextlib
import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "IMAGE_EXTENSIONS",
    "FrameFolderReader",
    "PyAVReader",
    "TensorVideoReader",
    "VideoInfo",
    "VideoReadError",
    "VideoReader",
    "natural_sort_key",
    "open_video",
]

#: File name endings :class:`FrameFolderReader` treats as frames (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp")


class VideoReadError(ValueError):
    """A video file or frame folder could not be read.

    Attributes:
        path: The file or folder at fault.
    """

    def __init__(
        self, path: str | os.PathLike, problem: str | None = None, advice: str = ""
    ) -> None:
        if problem is None:
            # One argument: a whole message, as a DataLoader passes when it re-raises the
            # error of a worker ("Caught VideoReadError in DataLoader worker process 0.
            # Original Traceback ... VideoReadError: <path>: <problem>").
            path, problem, advice = _split_reraised(str(path), type(self).__name__)
        self.path = str(path)
        self.problem = problem
        self.advice = advice
        message = f"{self.path}: {problem}" if self.path else problem
        if advice:
            message += f". {advice}"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across DataLoader workers
        return (type(self), (self.path, self.problem, self.advice))


def _split_reraised(message: str, name: str = "VideoReadError") -> tuple[str, str, str]:
    """``(path, problem, advice)`` of a message wrapping a worker's error ``name``."""
    import re

    name = re.escape(name)
    where = re.match(rf"Caught {name} (in DataLoader worker process \d+)", message)
    last = re.findall(rf"^\S*\b{name}: (.*)$", message, flags=re.MULTILINE)
    if not last:
        return "", message, ""
    original = last[-1]
    suffix = f" ({where.group(1)})" if where else ""
    path, sep, problem = original.partition(": ")
    if not sep:
        return "", original + suffix, ""
    return path, problem + suffix, ""


@dataclass(frozen=True)
class VideoInfo:
    """What a reader knows about a video before decoding it.

    Attributes:
        path: The video file or frame folder.
        num_frames: Number of frames (for files: counted from the packet index, not
            estimated from the duration).
        fps: Average frame rate in frames per second.
        duration: Duration in seconds.
        width: Frame width after rotation, in pixels.
        height: Frame height after rotation, in pixels.
    """

    path: str
    num_frames: int
    fps: float
    duration: float
    width: int
    height: int


@contextlib.contextmanager
def quiet_image_io() -> Iterator[None]:
    """Silence torchvision's image-IO deprecation warning (0.29+) for the calls inside.

    ``torchvision.io.decode_jpeg`` / ``encode_jpeg`` / ``decode_image`` still work (and
    ``decode_jpeg`` is the batched nvJPEG path on CUDA); the warning only points to
    TorchCodec, which is not a dependency.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="The image decoding and encoding capabilities of TorchVision",
            category=DeprecationWarning,
        )
        yield


def natural_sort_key(name: str) -> list[Any]:
    """Sort key that orders embedded numbers by value: ``2.jpg`` before ``10.jpg``.

    Example:
        >>> sorted(["10.jpg", "2.jpg", "1.jpg"], key=natural_sort_key)
        ['1.jpg', '2.jpg', '10.jpg']
    """
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name)]


class VideoReader:
    """Base class of the readers: random access to the frames of one video.

    Subclasses set ``path`` and implement :attr:`info`, :meth:`_read_sorted` and
    (optionally) :meth:`close`.
    """

    path: str

    @property
    def info(self) -> VideoInfo:
        """The video's :class:`VideoInfo`."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self.info.num_frames

    def frame_times(self) -> torch.Tensor:
        """Presentation time of every frame in seconds, ``(num_frames,)`` float64."""
        info = self.info
        return torch.arange(info.num_frames, dtype=torch.float64) / info.fps

    def read(self, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Decode the frames at ``indices``.

        Args:
            indices: Frame indices in ``[0, len(self))``, in any order, duplicates
                allowed (e.g. ``[0, 0, 3]``); a tensor of any shape is flattened.

        Returns:
            RGB frames, ``uint8`` tensor ``(T, 3, H, W)`` with ``T = len(indices)``, in the
            order asked.

        Raises:
            IndexError: For an index outside the video.
            VideoReadError: If the frames cannot be decoded.
        """
        if isinstance(indices, torch.Tensor):
            idx = [int(i) for i in indices.reshape(-1).tolist()]
        else:
            idx = [int(i) for i in indices]
        n = len(self)
        bad = [i for i in idx if i < 0 or i >= n]
        if bad:
            raise IndexError(
                f"{self.path}: frame index {bad[0]} is out of range for a video of {n} frames "
                f"(valid: 0..{n - 1})"
            )
        if not idx:
            info = self.info
            return torch.empty((0, 3, info.height, info.width), dtype=torch.uint8)
        unique = sorted(set(idx))
        frames = self._read_sorted(unique)
        if len(unique) == len(idx) and unique == idx:
            return frames
        pos = {f: j for j, f in enumerate(unique)}
        return frames[torch.tensor([pos[i] for i in idx])]

    def read_all(self) -> torch.Tensor:
        """Decode every frame, ``uint8 (num_frames, 3, H, W)``."""
        return self.read(range(len(self)))

    def _read_sorted(self, indices: list[int]) -> torch.Tensor:
        """Decode distinct, sorted, in-range indices to ``uint8 (T, 3, H, W)``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file handles (idempotent)."""

    def __enter__(self) -> VideoReader:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"


# ----------------------------------------------------------------------------------------
# Frame folders
# ----------------------------------------------------------------------------------------


class FrameFolderReader(VideoReader):
    """A folder of frame images, ordered by natural sort of their file names.

    16-bit PNGs are scaled to 8 bits, so frames are ``uint8`` whatever the images are.

    Args:
        path: The folder.
        fps: Frame rate to report (folders carry none).
        verify_sizes: Check at open that every image has the size of the first one
            (reads each image's header). Without it, a frame of another size raises when
            it is read.

    Raises:
        VideoReadError: For a missing folder, or one without images.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 25.0, verify_sizes: bool = False):
        self.path = str(path)
        self.fps = float(fps)
        folder = Path(path)
        if not folder.is_dir():
            raise VideoReadError(path, "frame folder does not exist", "Check the path")
        names = [
            e.name
            for e in os.scandir(folder)
            if e.is_file()
            and not e.name.startswith(".")
            and e.name.lower().endswith(IMAGE_EXTENSIONS)
        ]
        if not names:
            others = sorted(e.name for e in os.scandir(folder) if not e.name.startswith("."))
            seen = f" (it holds: {', '.join(others[:5])}{', ...' if len(others) > 5 else ''})"
            raise VideoReadError(
                path,
                f"folder contains no frame images{seen if others else ' (it is empty)'}",
                f"A frame folder needs {'/'.join(IMAGE_EXTENSIONS)} files; pass a video file "
                "path instead if the frames are in a video",
            )
        names.sort(key=natural_sort_key)
        self.files: list[str] = [str(folder / n) for n in names]
        self._size: tuple[int, int] | None = None
        if verify_sizes:
            self.verify_sizes()

    def _image_size(self, file: str) -> tuple[int, int]:
        from PIL import Image, ImageOps

        try:
            with Image.open(file) as img:
                w, h = img.size
                orientation = (
                    img.getexif().get(0x0112, 1) if file.lower().endswith((".jpg", ".jpeg")) else 1
                )
        except Exception as err:
            raise VideoReadError(
                file, f"cannot read image ({err})", "Replace or remove it"
            ) from err
        del ImageOps
        return (h, w) if orientation in (5, 6, 7, 8) else (w, h)

    def verify_sizes(self) -> None:
        """Raise :class:`VideoReadError` unless all frames have the same size."""
        first = self._image_size(self.files[0])
        for f in self.files[1:]:
            size = self._image_size(f)
            if size != first:
                self._raise_mixed(f, size, first)

    def _raise_mixed(self, file: str, size: tuple[int, int], first: tuple[int, int]) -> None:
        raise VideoReadError(
            self.path,
            f"frame folder has mixed frame sizes: {Path(file).name} is {size[0]}x{size[1]} but "
            f"{Path(self.files[0]).name} is {first[0]}x{first[1]}",
            "All frames of a video must have one size; re-extract or resize the frames",
        )

    @property
    def info(self) -> VideoInfo:
        if self._size is None:
            self._size = self._image_size(self.files[0])
        w, h = self._size
        n = len(self.files)
        return VideoInfo(self.path, n, self.fps, n / self.fps, w, h)

    def _decode(self, file: str) -> torch.Tensor:
        from torchvision.io import ImageReadMode, decode_image, read_file

        try:
            with quiet_image_io():
                data = read_file(file)
                image = decode_image(data, mode=ImageReadMode.RGB, apply_exif_orientation=True)
        except Exception as err:
            raise VideoReadError(
                file, f"cannot decode frame image ({err})", "The file is corrupt; replace it"
            ) from err
        if image.dtype == torch.uint16:  # a 16-bit PNG: scale 0..65535 to 0..255
            image = (image.to(torch.int32) // 257).to(torch.uint8)
        return image

    def _read_sorted(self, indices: list[int]) -> torch.Tensor:
        frames = [self._decode(self.files[i]) for i in indices]
        if self._size is None:
            first = self._decode(self.files[0]) if indices[0] != 0 else frames[0]
            self._size = (first.shape[2], first.shape[1])
        w, h = self._size
        for i, fr in zip(indices, frames):
            if fr.shape[1:] != (h, w):
                self._raise_mixed(self.files[i], (fr.shape[2], fr.shape[1]), (w, h))
        return torch.stack(frames)


# ----------------------------------------------------------------------------------------
# Video files (PyAV)
# ----------------------------------------------------------------------------------------


def _av_errors() -> tuple[type[BaseException], ...]:
    import av

    return (av.error.FFmpegError, OSError, EOFError)


class PyAVReader(VideoReader):
    """A video file decoded with PyAV, with frame-accurate seeking.

    At open, the packets of the video stream are demuxed (not decoded) to list the
    presentation timestamp of every frame and which frames are keyframes. Frame ``i`` is
    the ``i``-th frame in presentation order, whatever the frame rate does. A
    :meth:`read` seeks to the keyframe at or before each needed frame (only when that
    skips ahead of the current decoding position) and decodes forward. A clip cut
    mid-GOP (its first packet is no keyframe) is decoded once at open and holds only
    the frames that decode, as FFmpeg's own decoding gives them; a stream that cannot
    seek (a raw ``.h264`` file) is read from a newly opened file instead.

    Args:
        path: The video file.
        threads: Decoder threads (``0``: FFmpeg's choice). ``1`` suits DataLoader
            workers, which already run in parallel.
        apply_rotation: Rotate frames as the container's display matrix says (phone
            videos), so that faces are upright.
        allow_truncated: Accept a file that holds fewer frames than its header declares
            (a cut-off download) and read the frames that are there, instead of raising.

    Raises:
        VideoReadError: For a missing file, a file that is not a video (or has no video
            stream), a video with zero frames, or a truncated or corrupt file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        threads: int = 1,
        apply_rotation: bool = True,
        allow_truncated: bool = False,
    ):
        import av

        self.path = str(path)
        self.apply_rotation = apply_rotation
        self.allow_truncated = allow_truncated
        if not os.path.exists(self.path):
            raise VideoReadError(path, "file does not exist", "Check the path")
        if os.path.isdir(self.path):
            raise VideoReadError(path, "is a directory, not a video file", "Use open_video()")
        if os.path.getsize(self.path) == 0:
            raise VideoReadError(path, "file is empty (0 bytes)", "Re-copy or re-encode it")
        try:
            self._container = av.open(self.path, mode="r", metadata_errors="ignore")
        except EOFError as err:
            raise VideoReadError(
                path,
                "the file ends before its first video frame (empty, unfinished or truncated)",
                "Re-encode or re-download it, or drop it from the dataset",
            ) from err
        except _av_errors() as err:
            raise VideoReadError(
                path,
                f"not a readable video: FFmpeg could not open it ({err.__class__.__name__}: "
                f"{getattr(err, 'strerror', None) or err})",
                "The file is truncated, corrupt or not a video; re-encode or re-download it",
            ) from err
        try:
            self._init_stream(threads)
        except BaseException:
            self.close()
            raise

    # -- indexing --------------------------------------------------------------------
    def _init_stream(self, threads: int) -> None:
        streams = self._container.streams.video
        if not streams:
            kinds = sorted({s.type for s in self._container.streams})
            if not kinds:
                raise VideoReadError(
                    self.path,
                    "has no streams at all, so zero video frames (an empty or unfinished file)",
                    "Re-encode or re-download it, or drop it from the dataset",
                )
            raise VideoReadError(
                self.path,
                f"has no video stream (only {', '.join(kinds)} streams)",
                "Pass a file with video (audio-only and subtitle files cannot be read)",
            )
        self._stream = stream = streams[0]
        if stream.codec_context is None:  # e.g. an mp4 cut off before its codec parameters
            raise VideoReadError(
                self.path,
                "has a video stream with no decoder (no codec parameters: the file is "
                "truncated, or its codec is one FFmpeg does not know)",
                "Re-encode or re-download it, or drop it from the dataset",
            )
        # The stream's picture size (the decoder's context follows the frames it decodes).
        self._frame_size = (int(stream.codec_context.width), int(stream.codec_context.height))
        stream.thread_type = "AUTO" if threads != 1 else "SLICE"
        stream.codec_context.thread_count = threads
        pts: list[int] = []
        keys: list[bool] = []
        durations: list[int] = []  # packet durations (0: not stored)
        skipped = 0  # packets that are no frame: empty (dropped frames) or discarded
        has_all_pts = True
        try:
            for packet in self._container.demux(stream):
                if packet.size == 0 or packet.is_discard:
                    # (PyAV ends the demux with an empty flush packet without timestamps.)
                    skipped += packet.pts is not None or packet.dts is not None
                    continue
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:
                    has_all_pts = False
                pts.append(ts if ts is not None else len(pts))
                keys.append(bool(packet.is_keyframe))
                durations.append(int(packet.duration or 0))
        except _av_errors() as err:
            raise VideoReadError(
                self.path,
                f"truncated or corrupt: demuxing stopped after {len(pts)} frames ({err})",
                "Re-encode or re-download the file",
            ) from err
        if not pts:
            raise VideoReadError(
                self.path,
                "video stream has zero frames",
                "The file holds no pictures; re-encode it or drop it from the dataset",
            )
        last = max(range(len(pts)), key=pts.__getitem__)
        self._last_duration = durations[last]  # how long the last frame shows (0: not stored)
        problem = self._incomplete(pts, has_all_pts, skipped, durations[last])
        if problem and not self.allow_truncated:
            raise VideoReadError(
                self.path,
                f"truncated: {problem}",
                "Re-download or re-encode the file; to use the frames that are there, "
                "open it with allow_truncated=True (a dataset: reader_kwargs={'allow_truncated': "
                "True}; cefl-zoo train / eval: --data-kwargs "
                '\'{"reader_kwargs": {"allow_truncated": true}}\')',
            )
        if has_all_pts and (problem or not keys[0]):
            # Keep the frames that actually decode: the last packets may be cut off or
            # reference missing ones, and a clip cut mid-GOP (a stream copy) starts with
            # packets that reference frames before the cut.
            decodable = self._decodable_pts()
            keep = [i for i, p in enumerate(pts) if p in decodable]
            if not keep:
                raise VideoReadError(
                    self.path,
                    f"truncated: {problem}; no frame decodes"
                    if problem
                    else "no frame decodes: the stream starts mid-GOP (cut without "
                    "re-encoding) and holds no keyframe",
                    "Re-download or re-encode the file",
                )
            pts, keys = [pts[i] for i in keep], [keys[i] for i in keep]
        order = sorted(range(len(pts)), key=lambda i: pts[i])
        self._pts = [pts[i] for i in order]
        self._keyframe_pts = sorted(pts[i] for i in range(len(pts)) if keys[i])
        # Without unique timestamps frames cannot be matched by pts: decode sequentially.
        self._sequential = not has_all_pts or len(set(self._pts)) != len(self._pts)
        if not self._keyframe_pts:
            self._keyframe_pts = [self._pts[0]]
        self._keyframe_set = frozenset(self._keyframe_pts)  # where a seek may land
        self._rotation: int | None = None
        self._info: VideoInfo | None = None

    def _incomplete(
        self, pts: list[int], has_all_pts: bool, skipped: int = 0, last_duration: int = 0
    ) -> str:
        """What is missing when the header promises more frames (or time) than found.

        ``last_duration``: how long the last frame is shown (time-base units; 0 when the
        container does not say), which a still last frame makes much longer than the rest.
        """
        stream = self._stream
        declared = int(stream.frames or 0)
        found = len(pts)
        if declared > found + skipped:
            return f"the header declares {declared} frames but the file holds only {found}"
        if not declared and has_all_pts and stream.time_base and found > 1:
            tb = float(stream.time_base)
            step = (max(pts) - min(pts)) / (found - 1)
            span = (max(pts) - min(pts) + max(step, last_duration)) * tb
            length = float(stream.duration * tb) if stream.duration else 0.0
            only_video = all(s.type == "video" for s in self._container.streams)
            if not length and only_video and self._container.duration:
                length = self._container.duration / 1e6
                if "matroska" in self._container.format.name and self._container.start_time:
                    # Matroska counts the time before the first timestamp in its duration.
                    length -= self._container.start_time / 1e6
            if length and span < 0.9 * length - 2 * span / found:
                return (
                    f"the header declares {length:.2f} s but the frames stop after {span:.2f} s "
                    f"({found} frames)"
                )
        return ""

    def _decodable_pts(self) -> set[int]:
        """Timestamps of the frames that decode, decoding the file once from the start."""
        found: set[int] = set()
        try:
            for frame in self._decode_from(None):
                p = frame.pts if frame.pts is not None else frame.dts
                if p is not None:
                    found.add(p)
        except _av_errors():
            pass
        return found

    def _legacy_rotation(self) -> int:
        """Rotation from the old ``rotate`` stream tag (clockwise degrees), as CCW."""
        tag = self._stream.metadata.get("rotate")
        try:
            return -int(float(tag)) if tag else 0
        except ValueError:
            return 0

    def _frame_rotation(self, frame: Any) -> int:
        """Counter-clockwise display rotation of a decoded frame (0, 90, 180 or 270)."""
        rot = getattr(frame, "rotation", 0) or 0
        if not rot:
            rot = self._legacy_rotation()
        return round(float(rot) / 90.0) * 90 % 360

    def _display_rotation(self) -> int:
        """Counter-clockwise rotation in degrees of the video (decodes one frame once)."""
        if self._rotation is None:
            try:
                frame = next(iter(self._decode_from(self._keyframe_pts[0])))
                self._rotation = self._frame_rotation(frame)
            except (StopIteration, *_av_errors()):
                self._rotation = self._frame_rotation(None)
        return self._rotation

    @property
    def info(self) -> VideoInfo:
        if self._info is None:
            stream = self._stream
            n = len(self._pts)
            tb = float(stream.time_base) if stream.time_base else 0.0
            duration = 0.0
            if n > 1 and tb and not self._sequential:
                # Until the last frame ends (the average step would be wrong for a variable
                # frame rate): shown as long as the frame before it, or as its packet says
                # when that is shorter (a pause before the last frame; muxers store a
                # nominal duration for the last frame of a variable frame rate).
                last_step = self._pts[-1] - self._pts[-2]
                if 0 < self._last_duration < last_step:
                    last_step = self._last_duration
                duration = (self._pts[-1] - self._pts[0] + last_step) * tb
            if duration <= 0 and stream.duration and tb:
                duration = float(stream.duration * tb)
            if duration <= 0 and self._container.duration:
                duration = self._container.duration / 1e6
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 0.0
            if (not fps or not math.isfinite(fps)) and duration > 0:
                fps = n / duration
            if not fps:
                fps = 25.0
            if duration <= 0:
                duration = n / fps
            w, h = self._frame_size
            if not (w and h):
                w, h = stream.codec_context.width, stream.codec_context.height
            if self.apply_rotation and self._display_rotation() in (90, 270):
                w, h = h, w
            self._info = VideoInfo(self.path, n, fps, duration, int(w), int(h))
        return self._info

    def __len__(self) -> int:
        return len(self._pts)

    def frame_times(self) -> torch.Tensor:
        """Presentation time of every frame in seconds (exact, also for VFR video)."""
        if self._sequential or not self._stream.time_base:
            return super().frame_times()
        tb = float(self._stream.time_base)
        start = self._pts[0]
        return torch.tensor([(p - start) * tb for p in self._pts], dtype=torch.float64)

    # -- decoding --------------------------------------------------------------------
    def _decode_from(self, seek_pts: int | None):
        """Seek to the keyframe at or before ``seek_pts`` (``None``: the start), decode."""
        if seek_pts is None:
            try:
                self._container.seek(0, backward=True, any_frame=False)
            except _av_errors():
                # Not seekable (a raw H.264 elementary stream: EPERM): open it afresh.
                self._reopen()
        else:
            self._container.seek(int(seek_pts), stream=self._stream, backward=True, any_frame=False)
        return self._container.decode(self._stream)

    def _reopen(self) -> None:
        """Replace the container by a newly opened one, positioned at the start."""
        import av

        thread_type, threads = self._stream.thread_type, self._stream.codec_context.thread_count
        self._container.close()
        self._container = av.open(self.path, mode="r", metadata_errors="ignore")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = thread_type
        self._stream.codec_context.thread_count = threads

    def _to_tensor(self, frame: Any) -> torch.Tensor:
        w, h = self._frame_size
        if not (w and h):  # the container did not say: the first frame decoded does
            self._frame_size = w, h = int(frame.width), int(frame.height)
        if (frame.width, frame.height) != (w, h):
            # The picture size changes mid-stream: scale to the stream's size, as the
            # ffmpeg command line does, so that every frame of the video has one size.
            array = frame.to_ndarray(format="rgb24", width=w, height=h)
        else:
            array = frame.to_ndarray(format="rgb24")  # (H, W, 3), also for gray / odd sizes
        t = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
        if self.apply_rotation:
            k = self._frame_rotation(frame) // 90
            if k:
                t = torch.rot90(t, k, dims=(1, 2))
        return t.contiguous()

    def _truncated(self, missing: list[int], err: BaseException | None = None) -> VideoReadError:
        detail = f" ({err.__class__.__name__}: {err})" if err is not None else ""
        return VideoReadError(
            self.path,
            f"truncated or corrupt: frame {missing[0]} of {len(self._pts)} could not be "
            f"decoded{detail}",
            "Re-encode or re-download the file, or remove it from the dataset",
        )

    def _read_sorted(self, indices: list[int]) -> torch.Tensor:
        if self._sequential:
            return self._read_sequential(indices)
        wanted = {self._pts[i]: i for i in indices}
        remaining = sorted(wanted)  # pts still to decode, ascending
        out: dict[int, torch.Tensor] = {}
        keys, key_set = self._keyframe_pts, self._keyframe_set
        back = 0  # how many keyframes further back than the natural one to seek
        while remaining:
            k = bisect.bisect_right(keys, remaining[0]) - 1 - back
            seek_pts = keys[k] if k >= 0 else None
            missed = False
            first = True
            try:
                # The decoder returns frames in presentation order, so the frames come
                # out with increasing pts from the keyframe we seek to.
                for frame in self._decode_from(seek_pts):
                    p = frame.pts if frame.pts is not None else frame.dts
                    if p is None:
                        continue
                    if first and seek_pts is not None and p not in key_set:
                        # A seek must land on a keyframe (one past the one asked for but
                        # not past the frame we need is fine: MPEG-TS seeks land there).
                        # Elsewhere (MPEG program and transport streams) the decoder
                        # labels the frames after the seek with shifted timestamps:
                        # trust no frame of this seek.
                        missed = True
                        break
                    first = False
                    if p > remaining[0]:
                        missed = True  # the seek landed after it, or it is not decodable
                        break
                    if p == remaining[0]:
                        out[wanted[p]] = self._to_tensor(frame)
                        remaining.pop(0)
                        if not remaining:
                            break
                        # Seek again only when a keyframe lies ahead of us before the
                        # next frame we need; otherwise decoding on is cheaper.
                        if keys[bisect.bisect_right(keys, remaining[0]) - 1] > p:
                            break
                else:
                    if remaining:
                        if seek_pts is None:
                            raise self._truncated([wanted[remaining[0]]])
                        # Nothing (more) came out after this seek (MPEG-TS seeks to the
                        # last keyframe can decode nothing): start further back.
                        missed = True
            except _av_errors() as err:
                raise self._truncated([wanted[remaining[0]]], err) from err
            if missed:
                if seek_pts is None:
                    raise self._truncated([wanted[remaining[0]]])
                # A few keyframes further back, then from the start of the file, which
                # decodes correctly whatever the container's seeking does.
                back = back + 1 if back < 3 else len(keys)
            else:
                back = 0
        return torch.stack([out[i] for i in indices])

    def _read_sequential(self, indices: list[int]) -> torch.Tensor:
        wanted = set(indices)
        out: dict[int, torch.Tensor] = {}
        count = 0
        try:
            for frame in self._decode_from(None):
                if count in wanted:
                    out[count] = self._to_tensor(frame)
                    if len(out) == len(wanted):
                        break
                count += 1
        except _av_errors() as err:
            raise self._truncated([i for i in indices if i not in out], err) from err
        if len(out) != len(wanted):
            raise self._truncated([i for i in indices if i not in out])
        return torch.stack([out[i] for i in indices])

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
            self._container = None


# ----------------------------------------------------------------------------------------
# In-memory frames
# ----------------------------------------------------------------------------------------


class TensorVideoReader(VideoReader):
    """A reader over frames already in memory (tests, synthetic data, caches).

    Args:
        frames: ``uint8 (T, 3, H, W)`` RGB frames.
        fps: Frame rate to report.
        path: Name to report in messages.
    """

    def __init__(self, frames: torch.Tensor, fps: float = 25.0, path: str = "<memory>"):
        if frames.ndim != 4 or frames.shape[1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(
                f"{path}: expected uint8 frames (T, 3, H, W), got {frames.dtype} "
                f"{tuple(frames.shape)}"
            )
        self.frames = frames
        self.fps = float(fps)
        self.path = path

    @property
    def info(self) -> VideoInfo:
        t, _, h, w = self.frames.shape
        return VideoInfo(self.path, int(t), self.fps, t / self.fps, int(w), int(h))

    def _read_sorted(self, indices: list[int]) -> torch.Tensor:
        return self.frames[torch.tensor(indices)]


def open_video(path: str | os.PathLike, **kwargs: Any) -> VideoReader:
    """Open a video file or a folder of frame images.

    Args:
        path: A video file (anything FFmpeg reads: mp4, avi, mkv, webm, ...) or a folder
            of ``.jpg`` / ``.png`` frames.
        **kwargs: Passed to :class:`PyAVReader` (``threads``, ``apply_rotation``,
            ``allow_truncated``) or
            :class:`FrameFolderReader` (``fps``, ``verify_sizes``); options meant for the
            other kind are ignored.

    Returns:
        A :class:`VideoReader`; use it as a context manager or call ``close()``.

    Raises:
        VideoReadError: For a missing path or an unreadable video (see the readers).

    Example:
        >>> from cefl_zoo.video import open_video
        >>> with open_video("frames/00001") as video:  # doctest: +SKIP
        ...     video.read([0, 1]).shape
        torch.Size([2, 3, 224, 224])
    """
    path = os.fspath(path)
    folder_opts, file_opts = (
        ("fps", "verify_sizes"),
        ("threads", "apply_rotation", "allow_truncated"),
    )
    unknown = sorted(set(kwargs) - set(folder_opts) - set(file_opts))
    if unknown:
        raise TypeError(
            f"open_video() got unknown options {unknown}; known: {folder_opts + file_opts}"
        )
    if os.path.isdir(path):
        keep = {k: v for k, v in kwargs.items() if k in folder_opts}
        return FrameFolderReader(path, **keep)
    if not os.path.exists(path):
        parent = os.path.dirname(path) or "."
        hint = "Check the path"
        if not os.path.isdir(parent):
            hint = f"Its folder {parent} does not exist either; check the dataset root"
        raise VideoReadError(path, "file does not exist", hint)
    keep = {k: v for k, v in kwargs.items() if k in file_opts}
    return PyAVReader(path, **keep)
