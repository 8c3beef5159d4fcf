"""Datasets: the base class, generic adapters, synthetic data, the frame cache.

* :mod:`~cefl_zoo.data.base` - :class:`VideoDataset` (sampling, decoding, transforms,
  broken files, reproducible randomness) and :class:`VideoItem`.
* :mod:`~cefl_zoo.data.factory` - :func:`build_dataset` / :func:`register_dataset`.
* :mod:`~cefl_zoo.data.generic` - :class:`VideoFolderDataset` (``root/<class>/<video>``)
  and :class:`CSVVideoDataset` (``path,label`` CSV) for a user's own videos.
* :mod:`~cefl_zoo.data.synthetic` - seeded face-like videos with a known expression apex.
* :mod:`~cefl_zoo.data.cache` - pre-decoded frame shards for fast GPU training.
* :mod:`~cefl_zoo.data.datasets` - DFEW, FERV39k, MAFW, AFEW, MMI, BU-3DFE adapters.

Example:
    >>> from cefl_zoo.data import build_dataset, list_datasets
    >>> "synthetic" in list_datasets()
    True
"""

from importlib import import_module as _import_module

from .base import FaceCropper, Sample, SampleTransformError, VideoDataset, VideoItem, item_seed
from .cache import (
    CachedVideoDataset,
    EmptyCacheError,
    build_frame_cache,
    collate_encoded,
    decode_jpeg_batch,
    encoded_frames,
    prepare_batch,
)
from .factory import build_dataset, get_dataset_builder, list_datasets, register_dataset
from .generic import CSVVideoDataset, VideoFolderDataset
from .synthetic import (
    SyntheticTensorDataset,
    SyntheticVideoDataset,
    render_synthetic_video,
    write_synthetic_dataset,
)

# --- benchmark dataset adapters -------------------------------------------------------
# The adapters of cefl_zoo/data/datasets/ (DFEW, FERV39k, MAFW, AFEW, MMI, BU-3DFE)
# register themselves with register_dataset on import; imported last, after everything
# they build on.
_import_module(f"{__name__}.datasets")
# ---------------------------------------------------------------------------------------

__all__ = [
    "CSVVideoDataset",
    "CachedVideoDataset",
    "EmptyCacheError",
    "FaceCropper",
    "Sample",
    "SampleTransformError",
    "SyntheticTensorDataset",
    "SyntheticVideoDataset",
    "VideoDataset",
    "VideoFolderDataset",
    "VideoItem",
    "build_dataset",
    "build_frame_cache",
    "collate_encoded",
    "decode_jpeg_batch",
    "encoded_frames",
    "get_dataset_builder",
    "item_seed",
    "list_datasets",
    "prepare_batch",
    "register_dataset",
    "render_synthetic_video",
    "write_synthetic_dataset",
]
