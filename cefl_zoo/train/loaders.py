"""Datasets and DataLoaders for training: spec -> datasets, label maps, resumable loaders.

* :func:`build_split` turns a :class:`~cefl_zoo.train.TrainConfig`'s data spec into a
  dataset through :func:`cefl_zoo.data.build_dataset`, with the sampling and
  preprocessing the model needs (train or eval mode).
* :func:`label_mapping` maps a dataset's class order onto a model's output order by
  name, and raises a clear error for a class the model does not know.
* :func:`build_loader` makes a DataLoader whose sampler is distributed, resumable in
  the middle of an epoch, and tells every worker which epoch it is sampling for (so
  per-epoch random sampling stays correct with persistent workers).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from .config import ConfigError, TrainConfig, parse_data_spec
from .distributed import DistInfo, ResumableDistributedSampler

__all__ = [
    "DataError",
    "EpochAwareDataset",
    "EpochIndexSampler",
    "SubsetIndex",
    "build_loader",
    "build_split",
    "dataset_classes_of",
    "label_mapping",
    "subset_base_indices",
    "unreadable_video_message",
]

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A dataset that cannot be trained or evaluated on (empty split, unknown classes...)."""


def build_split(
    cfg: TrainConfig,
    split: str,
    train: bool,
    model: torch.nn.Module | None = None,
    encoded: bool = False,
) -> Dataset:
    """Build one split of the dataset named by ``cfg.data``.

    The temporal sampler is the paper's :class:`~cefl_zoo.video.ClipSampler` with
    ``cfg.num_clips`` x ``cfg.frames_per_clip``; the spatial transform is
    :func:`cefl_zoo.transforms_for` the model (its input size, mean and std), at
    ``cfg.img_size`` when set. ``cfg.data_kwargs`` may hold ``sampler_kwargs`` (more
    :class:`~cefl_zoo.video.ClipSampler` arguments), ``transform_kwargs`` (more
    :func:`~cefl_zoo.transforms.build_video_transform` arguments, e.g.
    ``{"color_jitter": 0.2}``) and anything else ``build_dataset`` takes (``on_error``,
    ``reader_kwargs``, ...).

    Args:
        cfg: The training configuration (``data``, ``fold``, ``num_clips``,
            ``frames_per_clip``, ``img_size``, ``seed``, ``data_kwargs``).
        split: Split name (``"train"``, ``"test"``, ``"val"``...).
        train: Random (training) sampling and augmentation, else deterministic.
        model: The model whose preprocessing the frames get (default: ``cfg.model``'s).
        encoded: Items carry the undecoded frames of a frame cache (``decode=False``,
            no transform) for :func:`cefl_zoo.data.cache.prepare_batch` on the GPU.

    Raises:
        ConfigError: Without a data spec.
        DataError: For an empty split (names the spec, split and fold).
    """
    if not cfg.data:
        raise ConfigError("no data given: pass --data NAME:ROOT (e.g. synthetic:DIR, dfew:ROOT)")
    from ..data import build_dataset
    from ..transforms import transforms_for
    from ..video import ClipSampler

    spec = parse_data_spec(cfg.data)
    kwargs = dict(cfg.data_kwargs)
    sampler_kwargs = dict(kwargs.pop("sampler_kwargs", None) or {})
    transform_kwargs = dict(kwargs.pop("transform_kwargs", None) or {})
    if cfg.img_size is not None:
        transform_kwargs.setdefault("input_size", cfg.img_size)
    try:
        sampler = ClipSampler(cfg.num_clips, cfg.frames_per_clip, **sampler_kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"data_kwargs 'sampler_kwargs' (--data-kwargs): {err}") from err
    try:
        transform = transforms_for(
            model if model is not None else cfg.model, train=train, **transform_kwargs
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"data_kwargs 'transform_kwargs' (--data-kwargs): {err}") from err
    kwargs.setdefault("sampler", sampler)
    kwargs.setdefault("transform", transform)
    kwargs.setdefault("seed", cfg.seed)
    kwargs["train"] = train
    if encoded:
        kwargs.update(decode=False, transform=None)
    what = f"{spec} split {split!r}" + (f" fold {cfg.fold}" if cfg.fold is not None else "")
    try:
        dataset = build_dataset(spec.name, spec.root, split=split, fold=cfg.fold, **kwargs)
    except (FileNotFoundError, ValueError) as err:  # the adapters name the file and the fix
        raise DataError(f"cannot build {what}: {err}") from err
    except TypeError as err:  # an argument the adapter does not take
        raise ConfigError(
            f"cannot build {what}: {err}. Check the keys and values of --data-kwargs "
            "(data_kwargs in a config file)."
        ) from err
    check_not_empty(dataset, what)
    return dataset


def unreadable_video_message(err: BaseException) -> str | None:
    """The one-line message of an unreadable video that stopped a run; ``None`` for
    other errors.

    With ``on_error="raise"`` (``--data-kwargs '{"on_error": "raise"}'``) a broken video
    raises :class:`~cefl_zoo.video.io.VideoReadError` where it is read. Read in a
    DataLoader worker, the loader raises it again in the main process, rebuilt from the
    worker's traceback (``Caught VideoReadError in DataLoader worker process 0 ...
    VideoReadError: PATH: problem``), which this reads back into ``PATH: problem``; a
    ``RuntimeError`` with that text is read the same way.

    Example:
        >>> from cefl_zoo.video.io import VideoReadError
        >>> unreadable_video_message(VideoReadError("a/b.mp4", "not a readable video"))
        'a/b.mp4: not a readable video'
        >>> unreadable_video_message(RuntimeError(
        ...     "Caught VideoReadError in DataLoader worker process 0.\\nOriginal Traceback "
        ...     "(most recent call last):\\n ...\\ncefl_zoo.video.io.VideoReadError: a.mp4: empty"))
        'a.mp4: empty (in DataLoader worker process 0)'
        >>> unreadable_video_message(RuntimeError("CUDA out of memory")) is None
        True
    """
    from ..video.io import VideoReadError

    if not isinstance(err, VideoReadError):
        if "Caught VideoReadError" not in str(err):
            return None
        err = VideoReadError(str(err))  # the worker's error, read back from its traceback
    return " ".join(str(err).split()) or type(err).__name__


def check_not_empty(dataset: Dataset, what: str) -> None:
    """Raise :class:`DataError` for a dataset without items."""
    try:
        n = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        return
    if n == 0:
        raise DataError(
            f"{what} has no videos. Check the dataset root, the split and fold names, and "
            "that the split files list videos that exist on disk."
        )


def dataset_classes_of(dataset: Dataset, fallback: Sequence[str] | None = None) -> list[str]:
    """``dataset.classes`` (class names in label order), or ``fallback``.

    Raises:
        DataError: The dataset names no classes and no fallback is given.
    """
    classes = getattr(dataset, "classes", None)
    inner = dataset
    while classes is None and getattr(inner, "dataset", None) is not None:  # Subset, wrappers
        inner = inner.dataset
        classes = getattr(inner, "classes", None)
    if classes is not None:
        return [str(c) for c in classes]
    if fallback is not None:
        return list(fallback)
    raise DataError(
        f"dataset {type(dataset).__name__} has no `classes` attribute (class names in label "
        "order); set it, or pass the label order with TrainConfig(classes=[...])."
    )


def _key(name: str) -> str:
    from ..labels import canonical_label

    try:
        return canonical_label(name)
    except ValueError:
        return str(name).strip().lower()


def label_mapping(
    dataset_classes: Sequence[str],
    target_classes: Sequence[str],
    what: str = "dataset",
    target_what: str = "the label map",
) -> torch.Tensor:
    """Map dataset label indices to the target (model) class indices by class name.

    Names are compared after canonicalisation (``"Happy"`` == ``"happiness"``).

    Args:
        dataset_classes: The dataset's class names in its label order.
        target_classes: The output classes in order.
        what: Description of the dataset, for the error message.
        target_what: Description of the target order, for the error message.

    Returns:
        LongTensor ``lut`` with ``lut[dataset_label] = target_index``.

    Raises:
        DataError: For dataset classes missing from the target classes (all listed).

    Example:
        >>> label_mapping(["sad", "happy"], ["happiness", "sadness", "neutral"]).tolist()
        [1, 0]
    """
    target = {_key(n): i for i, n in enumerate(target_classes)}
    missing = [n for n in dataset_classes if _key(n) not in target]
    if missing:
        raise DataError(
            f"{what} has class(es) {', '.join(repr(m) for m in missing)} that are not in "
            f"{target_what} ({', '.join(target_classes)}). Train with a label map that includes "
            "them (--classes a,b,c), or fine-tune a new head for this dataset's classes."
        )
    return torch.tensor([target[_key(n)] for n in dataset_classes], dtype=torch.long)


def subset_base_indices(dataset: Dataset) -> tuple[Dataset, list[int]] | None:
    """For a (nested) :class:`torch.utils.data.Subset`: the dataset under it, and the
    index in that dataset of each of the subset's items; ``None`` for anything else.

    Example:
        >>> from torch.utils.data import Subset
        >>> base, idx = subset_base_indices(Subset(Subset(list(range(10)), [9, 7, 5]), [2, 0]))
        >>> base, idx
        ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [5, 9])
    """
    indices: list[int] | None = None
    while isinstance(dataset, Subset):
        n = len(dataset.dataset)  # type: ignore[arg-type]
        own = [int(i) % n if n else int(i) for i in dataset.indices]  # Subset([-1, ...])
        indices = own if indices is None else [own[i] for i in indices]
        dataset = dataset.dataset
    return (dataset, indices) if indices is not None else None


class SubsetIndex:
    """Turns the ``"index"`` of a sample read through a (nested) ``Subset`` into the
    subset's own numbering.

    A :class:`~cefl_zoo.data.VideoDataset` names in ``"index"`` the item it returned:
    the one asked for, or, for a broken one, the next item that loads, which may lie
    outside the subset.

    Args:
        dataset: The subset.
    """

    def __init__(self, dataset: Dataset) -> None:
        from ..data.base import VideoDataset

        resolved = subset_base_indices(dataset)
        if resolved is None:
            raise TypeError(f"{type(dataset).__name__} is not a torch Subset")
        self.base, self.indices = resolved
        #: Whether the dataset under the subset puts its own item index in "index"
        #: (and replaces broken items); other datasets' "index" is left alone.
        self.replaces = isinstance(self.base, VideoDataset)
        self.first_position: dict[int, int] = {}
        for pos, base in enumerate(self.indices):
            self.first_position.setdefault(base, pos)

    def position(self, got: int, asked: int | None) -> int | None:
        """Position of a sample whose ``"index"`` is ``got``, read for position ``asked``
        (``None``: unknown); ``None`` when ``got`` is no item of the subset (a broken
        item's replacement from outside it, or an ``"index"`` that is an id of the
        dataset's own)."""
        if asked is not None and 0 <= asked < len(self.indices) and self.indices[asked] == got:
            return asked  # (also right for a subset that holds an item twice)
        return self.first_position.get(got)


class EpochAwareDataset(Dataset):
    """Wrap a dataset so that each item request carries its epoch: ``ds[(epoch, index)]``.

    DataLoader workers hold their own copy of the dataset; a ``set_epoch`` in the main
    process never reaches persistent workers. Passing the epoch with every index makes
    per-epoch sampling correct with any number of (persistent) workers.

    A :class:`torch.utils.data.Subset` works as well: the epoch reaches the dataset under
    it, a sample's ``"index"`` is its position in the subset, and an unreadable item is
    replaced by another item *of the subset* (the dataset under it would offer its own
    next item, which may lie outside the subset: a validation video in a training split).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._subset = SubsetIndex(dataset) if isinstance(dataset, Subset) else None
        self._epoch_target = self._subset.base if self._subset is not None else dataset
        self._epoch: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> Any:
        epoch, index = item
        if epoch != self._epoch and hasattr(self._epoch_target, "set_epoch"):
            self._epoch_target.set_epoch(epoch)
        self._epoch = epoch
        sample = self.dataset[index]
        if not isinstance(sample, dict):
            return sample
        subset = self._subset
        if subset is None or "index" not in sample:
            sample.setdefault("index", index)
            return sample
        try:
            int(sample["index"])
        except (TypeError, ValueError):  # not a number: nothing to translate
            return sample
        n = len(self)
        asked = index % n if n else index
        for step in range(1, n + 1):
            pos = subset.position(int(sample["index"]), asked)
            if pos is not None:
                sample["index"] = pos
                return sample
            if not subset.replaces:  # an id of the dataset's own: leave it
                return sample
            # The dataset under the subset replaced a broken item by one outside the
            # subset: ask for the subset's next item instead.
            asked = (index + step) % n
            sample = self.dataset[asked]
        raise RuntimeError(
            f"every item of this {type(self.dataset).__name__} of {n} items failed to load "
            "(each was replaced by an item outside the subset); see the warnings above"
        )


class EpochIndexSampler(torch.utils.data.Sampler):
    """Yield ``(epoch, index)`` pairs from a :class:`ResumableDistributedSampler`."""

    def __init__(self, sampler: ResumableDistributedSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.sampler.epoch
        return ((epoch, i) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


def build_loader(
    dataset: Dataset,
    cfg: TrainConfig,
    info: DistInfo,
    train: bool,
    batch_size: int | None = None,
    collate_fn: Any = None,
) -> tuple[DataLoader, ResumableDistributedSampler]:
    """A DataLoader over ``dataset`` for this process, and its resumable sampler.

    Training loaders shuffle (seeded by ``cfg.seed + epoch``); evaluation loaders keep
    the order and pad the last rank's share with repeats (drop them by index). Pinned
    memory only on CUDA; workers persistent when asked.

    Args:
        dataset: The dataset (items are dicts with ``video`` and ``label``).
        cfg: Loader settings (``num_workers``, ``pin_memory``, ...).
        info: This process's place in the run.
        train: Shuffle (training) or not (evaluation).
        batch_size: Per-process batch size; defaults to ``cfg.batch_size``.
        collate_fn: Batch collation (default: PyTorch's).

    Returns:
        ``(loader, sampler)``; call ``sampler.set_epoch(e)`` before each epoch.
    """
    sampler = ResumableDistributedSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=train, seed=cfg.seed
    )
    workers = int(cfg.num_workers)
    kwargs: dict[str, Any] = {}
    if workers > 0:
        kwargs["persistent_workers"] = bool(cfg.persistent_workers)
        kwargs["prefetch_factor"] = int(cfg.prefetch_factor)
    generator = torch.Generator().manual_seed(cfg.seed)  # keeps the global RNG untouched
    loader = DataLoader(
        EpochAwareDataset(dataset),
        batch_size=batch_size or cfg.batch_size,
        sampler=EpochIndexSampler(sampler),
        num_workers=workers,
        pin_memory=bool(cfg.pin_memory) and info.device.type == "cuda",
        drop_last=False,
        generator=generator,
        collate_fn=collate_fn,
        **kwargs,
    )
    return loader, sampler
