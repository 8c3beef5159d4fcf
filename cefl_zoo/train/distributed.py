"""Multi-GPU and multi-node training through ``torchrun`` and DistributedDataParallel.

There is no launcher here: start a run with PyTorch's own::

    torchrun --nproc_per_node 8 -m cefl_zoo.cli train --data dfew:/data/DFEW --fold 1 \\
        --batch-size 1
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --nproc_per_node 8 \\
        -m cefl_zoo.cli train ...

``--batch-size`` is per process: 8 processes with ``--batch-size 1`` keep the paper's
batch of 8 videos per optimizer step (with the default 8 they make 64: scale ``--lr``).

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init_distributed`
reads them, picks the backend (NCCL on CUDA, gloo on CPU) and the device. Without them
everything runs in one process and the helpers below become no-ops.

Example:
    >>> from cefl_zoo.train.distributed import DistInfo, gather_objects
    >>> info = DistInfo()
    >>> info.world_size, info.is_main
    (1, True)
    >>> gather_objects({"a": 1}, info)
    [{'a': 1}]
"""

from __future__ import annotations

import datetime
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

__all__ = [
    "DistInfo",
    "ResumableDistributedSampler",
    "StopFlag",
    "all_reduce_mean",
    "barrier",
    "cleanup_distributed",
    "gather_objects",
    "init_distributed",
    "launch_rank",
    "resolve_device",
    "setup_logging",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a (possibly single-process) run.

    Attributes:
        rank: Global rank.
        world_size: Number of processes.
        local_rank: Rank on this node (selects the GPU).
        device: The device this process trains on.
        initialized: Whether a process group was created here.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes files and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``.

    Raises:
        RuntimeError: A CUDA device was asked for but CUDA is not available.
    """
    if device == "auto":
        return (
            torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        )
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"device {device!r} was asked for, but CUDA is not available; use --device cpu"
            )
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    return dev


def init_distributed(device: str = "auto", timeout_minutes: float = 30.0) -> DistInfo:
    """Join the process group ``torchrun`` describes in the environment, if any.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` (``cuda:LOCAL_RANK`` then).
        timeout_minutes: Collective timeout.

    Returns:
        A :class:`DistInfo`. Single-process when ``WORLD_SIZE`` is unset or 1.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistInfo(0, 1, 0, dev, False)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    created = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {
            "backend": backend,
            "timeout": datetime.timedelta(minutes=timeout_minutes),
        }
        if dev.type == "cuda":
            kwargs["device_id"] = dev
        dist.init_process_group(**kwargs)
        created = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev, created)


def cleanup_distributed(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if info.initialized and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op in a single process)."""
    if info.distributed and dist.is_initialized():
        dist.barrier()


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj``, in rank order, on every process."""
    if not (info.distributed and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(value: float, info: DistInfo, weight: float = 1.0) -> float:
    """Weighted mean of a float over the processes (``weight``: e.g. samples seen)."""
    if not (info.distributed and dist.is_initialized()):
        return float(value)
    device = info.device if info.device.type == "cuda" else torch.device("cpu")
    t = torch.tensor([float(value) * weight, float(weight)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t[0] / t[1]) if float(t[1]) else float("nan")


class StopFlag:
    """Agree across the processes on a flag, e.g. "stop after this step", at a small cost.

    Each call all-reduces one number, so every process gets the same answer at the same
    step. The collective runs on a CPU tensor over gloo (the default group when it is
    gloo, else a gloo group made here over every process): no wait for the GPU. Without
    gloo it falls back to a device tensor on the default group.

    Create and call it on every process; in a single process it returns the flag.

    Args:
        info: This process's place in the run.

    Example:
        >>> StopFlag(DistInfo())(True)
        True
    """

    def __init__(self, info: DistInfo) -> None:
        self.info = info
        self.group: Any = None  # None: the default group
        self.device = torch.device("cpu")
        self._active = info.distributed and dist.is_initialized()
        if self._active and "gloo" not in str(dist.get_backend()):
            if dist.is_gloo_available():
                self.group = dist.new_group(backend="gloo")
            else:
                self.device = info.device

    def __call__(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any process."""
        if not (self._active and dist.is_initialized()):
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, group=self.group)
        return bool(t.item() > 0)

    def close(self) -> None:
        """Destroy the gloo group made here, if any."""
        if self.group is not None and dist.is_initialized():
            dist.destroy_process_group(self.group)
        self.group = None
        self._active = False


class ResumableDistributedSampler(DistributedSampler):
    """``DistributedSampler`` that can skip the samples already used in an epoch.

    Same order as :class:`torch.utils.data.DistributedSampler` (a permutation seeded by
    ``seed + epoch``, split across ranks), so a one-process run sees, batch for batch,
    the union of what an n-process run with ``batch_size / n`` per rank sees. After
    :meth:`set_start_index` the first samples of the epoch's share are skipped; the
    next :meth:`set_epoch` resets it.

    Args:
        dataset: The dataset.
        num_replicas: World size.
        rank: This process's rank.
        shuffle: Shuffle every epoch.
        seed: Shuffling seed (shared by all ranks).
        drop_last: Drop the tail that does not divide evenly instead of padding with
            repeated samples.

    Example:
        >>> s = ResumableDistributedSampler(list(range(10)), num_replicas=1, rank=0, seed=0)
        >>> s.set_epoch(0)
        >>> full = list(s)
        >>> s.set_start_index(4)
        >>> list(s) == full[4:]
        True
    """

    def __init__(
        self,
        dataset: Dataset,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        super().__init__(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self.start_index = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's permutation and start from its beginning."""
        super().set_epoch(epoch)
        self.start_index = 0

    def set_start_index(self, start: int) -> None:
        """Skip the first ``start`` samples of this rank's share of the current epoch."""
        self.start_index = max(0, int(start))

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start_index :])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start_index)

    @property
    def samples_per_epoch(self) -> int:
        """This rank's share of one full epoch (independent of the start index)."""
        return self.num_samples

    @staticmethod
    def steps_per_epoch(num_samples: int, batch_size: int, drop_last: bool) -> int:
        """Batches of a full epoch for one rank."""
        return num_samples // batch_size if drop_last else math.ceil(num_samples / batch_size)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tqdm and test capture swap it)."""

    @property  # type: ignore[override]
    def stream(self):
        import sys

        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it
        pass


def launch_rank() -> int:
    """This process's rank as ``torchrun`` set it (``RANK``); 0 outside ``torchrun``.

    Needs no process group, so a command can tell "am I the process that reports?"
    before training starts or after it has ended.
    """
    return int(os.environ.get("RANK", "0"))


def setup_logging(verbose: bool = False) -> None:
    """Console logging for the command line: INFO on rank 0, warnings only elsewhere.

    Reads ``RANK`` from the environment (set by ``torchrun``), so it can run before the
    process group exists. Adds one handler to the ``cefl_zoo`` logger (idempotent).
    """
    rank = launch_rank()
    logger = logging.getLogger("cefl_zoo")
    if not any(getattr(h, "_cefl_cli", False) for h in logger.handlers):
        handler = _StderrHandler()
        prefix = f"[rank {rank}] " if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s {prefix}%(message)s", "%H:%M:%S"))
        handler._cefl_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    if rank == 0:
        logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    else:
        logger.setLevel(logging.WARNING)
