"""Video decoding and temporal sampling.

* :mod:`~cefl_zoo.video.io` - :func:`open_video`: one reader interface for video files
  (PyAV, frame-accurate seeking) and folders of frame images.
* :mod:`~cefl_zoo.video.sampling` - :class:`ClipSampler`: the paper's N clips x K frames
  sampling (section 4.1), as indices into a video's frames.
"""

from .io import (
    IMAGE_EXTENSIONS,
    FrameFolderReader,
    PyAVReader,
    TensorVideoReader,
    VideoInfo,
    VideoReader,
    VideoReadError,
    natural_sort_key,
    open_video,
)
from .sampling import ClipSample, ClipSampler, VideoTooShortError, apex_clip_index

__all__ = [
    "IMAGE_EXTENSIONS",
    "ClipSample",
    "ClipSampler",
    "FrameFolderReader",
    "PyAVReader",
    "TensorVideoReader",
    "VideoInfo",
    "VideoReadError",
    "VideoReader",
    "VideoTooShortError",
    "apex_clip_index",
    "natural_sort_key",
    "open_video",
]
