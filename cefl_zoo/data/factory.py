"""A registry of dataset builders: ``build_dataset("dfew", root, split="train", fold=1)``.

Adapters register themselves with :func:`register_dataset`; :func:`build_dataset` looks
the name up (case-insensitive; ``-`` and ``_`` ignored, so ``"BU-3DFE"`` finds
``"bu3dfe"``) and calls the builder as ``builder(root, split=split, fold=fold, **kwargs)``.

Example:
    >>> from cefl_zoo.data import build_dataset, list_datasets
    >>> {"folder", "csv", "synthetic"} <= set(list_datasets())
    True
    >>> ds = build_dataset("synthetic", "synth_out", split="test")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["build_dataset", "get_dataset_builder", "list_datasets", "register_dataset"]

_T = TypeVar("_T", bound=Callable[..., Any])
_BUILDERS: dict[str, Callable[..., Any]] = {}


def _key(name: str) -> str:
    return str(name).strip().lower().replace("-", "").replace("_", "")


def register_dataset(name: str) -> Callable[[_T], _T]:
    """Decorator that registers a dataset class (or factory function) under ``name``.

    The builder is called as ``builder(root, split=..., fold=..., **kwargs)`` and must
    return a :class:`~cefl_zoo.data.VideoDataset`.

    Example:
        >>> from cefl_zoo.data import VideoDataset, register_dataset
        >>> @register_dataset("my_videos")
        ... class MyVideos(VideoDataset):
        ...     classes = ("happiness", "sadness")
        ...     def __init__(self, root, split="train", fold=None, **kwargs):
        ...         self.root, self.split = root, split
        ...         super().__init__(**kwargs)
        ...     def _load_items(self):
        ...         return []
        >>> "myvideos" in list_datasets()
        True
    """

    def decorator(builder: _T) -> _T:
        key = _key(name)
        previous = _BUILDERS.get(key)
        if previous is not None and _qualname(previous) != _qualname(builder):
            raise ValueError(f"dataset {name!r} is already registered by {_qualname(previous)}")
        _BUILDERS[key] = builder
        return builder

    return decorator


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def list_datasets() -> list[str]:
    """Names of the registered datasets, sorted."""
    return sorted(_BUILDERS)


def get_dataset_builder(name: str) -> Callable[..., Any]:
    """The registered builder of ``name``.

    Raises:
        ValueError: For an unknown name; the message lists the known ones.
    """
    key = _key(name)
    if key not in _BUILDERS:
        import difflib

        close = difflib.get_close_matches(key, list(_BUILDERS), n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"unknown dataset {name!r}.{hint} Known datasets: {', '.join(list_datasets())}"
        )
    return _BUILDERS[key]


def build_dataset(
    name: str,
    root: str | os.PathLike,
    split: str | None = "train",
    fold: int | str | None = None,
    **kwargs: Any,
) -> Any:
    """Build a registered dataset.

    Args:
        name: Registered name (``"dfew"``, ``"folder"``, ``"csv"``, ``"synthetic"``, ...).
        root: The dataset's directory (for ``"csv"``: the CSV file).
        split: ``"train"``, ``"test"``, ... as the dataset defines them.
        fold: Fold or set number for datasets with several splits (DFEW's 1..5, ...).
        **kwargs: Passed to the builder and on to :class:`~cefl_zoo.data.VideoDataset`
            (``sampler``, ``transform``, ``face_cropper``, ``on_error``, ``seed``, ...).
            ``train`` defaults to ``split == "train"``.

    Returns:
        The :class:`~cefl_zoo.data.VideoDataset`.

    Raises:
        ValueError: For an unknown dataset name.
    """
    builder = get_dataset_builder(name)
    kwargs.setdefault("train", split == "train")
    return builder(os.fspath(root), split=split, fold=fold, **kwargs)
