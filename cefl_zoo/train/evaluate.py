"""Evaluate a model on a dataset: WAR, UAR, per-class recall, confusion matrix, apex clips.

Works in one process or under ``torchrun``: each process runs its share of the videos,
the predictions are gathered on every rank, and the repeats that
``DistributedSampler`` pads the last share with are dropped by dataset index, so every
video counts exactly once.

Example:
    >>> import torch, cefl_zoo
    >>> from cefl_zoo.train import evaluate
    >>> class Videos(torch.utils.data.Dataset):
    ...     classes = ["happiness", "sadness"]
    ...     def __len__(self): return 4
    ...     def __getitem__(self, i):
    ...         return {"video": torch.randn(2, 2, 3, 32, 32), "label": i % 2, "apex_clip": 1}
    >>> model = cefl_zoo.create_model("ceflnet_tiny", num_classes=2)
    >>> result = evaluate(model, Videos(), batch_size=2)
    >>> result.metrics["num_videos"], sorted(result.metrics["clip_locating"])
    (4, ['chance', 'gt_class', 'num_videos', 'pred_class'])
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    SequentialSampler,
    Subset,
)

from .checkpoint import unwrap_model
from .config import TrainConfig
from .distributed import DistInfo, gather_objects
from .loaders import (
    DataError,
    EpochAwareDataset,
    EpochIndexSampler,
    SubsetIndex,
    build_loader,
    check_not_empty,
    dataset_classes_of,
    label_mapping,
    subset_base_indices,
)
from .metrics import compute_metrics, format_metrics

__all__ = ["EvalResult", "autocast_context", "evaluate"]

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Metrics and per-video outputs of :func:`evaluate`.

    Attributes:
        metrics: :func:`~cefl_zoo.train.metrics.compute_metrics` output plus ``loss``
            (when a loss function was given) and ``skipped`` (``index`` and ``path`` of
            each video that could not be read and is not counted, when there are any).
        indices: ``(V,)`` dataset index of each video, ascending.
        labels: ``(V,)`` true class, in the model's output order.
        logits: ``(V, C)`` logits.
        clip_scores: ``(V, C, N)`` EIAN clip scores, or ``None``.
        apex_clip: ``(V,)`` apex clip (``-1`` unknown).
        paths: Video paths where the dataset gives them.
    """

    metrics: dict[str, Any]
    indices: torch.Tensor
    labels: torch.Tensor
    logits: torch.Tensor
    clip_scores: torch.Tensor | None
    apex_clip: torch.Tensor
    paths: list[str] | None = None

    def __str__(self) -> str:
        return format_metrics(self.metrics)

    def save(self, path: str | os.PathLike, predictions: bool = True) -> Path:
        """Write the metrics (and per-video predictions) as JSON; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {"metrics": self.metrics}
        if predictions:
            names = self.metrics["class_names"]
            preds = self.logits.argmax(-1)
            rows = []
            for j in range(len(self.indices)):
                row = {
                    "index": int(self.indices[j]),
                    "label": names[int(self.labels[j])],
                    "pred": names[int(preds[j])],
                    "probs": [round(float(p), 5) for p in self.logits[j].float().softmax(-1)],
                    "apex_clip": int(self.apex_clip[j]),
                }
                if self.clip_scores is not None:
                    row["emotion_rich_clip"] = int(self.clip_scores[j, preds[j]].argmax())
                if self.paths is not None:
                    row["path"] = self.paths[j]
                rows.append(row)
            data["predictions"] = rows
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(data, indent=1) + "\n")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)  # (gone once replaced; left by a failed write)
        return path


def _item_path(dataset: Dataset, index: int) -> str | None:
    """The file of item ``index`` of ``dataset`` (through ``Subset``s), if it names one."""
    resolved = subset_base_indices(dataset)
    if resolved is not None:
        dataset, base = resolved[0], resolved[1]
        index = base[index]
    items = getattr(dataset, "items", None)
    return str(items[index].path) if items is not None else None


def _sampler_order(loader: DataLoader) -> tuple[Any, list[int] | None]:
    """What picks the items of ``loader``, and the dataset index of each item it yields
    where that fixes the order (sequential or distributed); ``None`` for a random or
    custom one."""
    batches = loader.batch_sampler
    if type(batches) is not BatchSampler or batches.sampler is not loader.sampler:
        return batches, None  # a batch_sampler of its own chooses the items
    sampler = loader.sampler
    if isinstance(sampler, EpochIndexSampler):
        sampler = sampler.sampler
    if not isinstance(sampler, (SequentialSampler, DistributedSampler)):
        return sampler, None
    return sampler, [int(i[-1] if isinstance(i, tuple) else i) for i in sampler]


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``amp`` in ``("bf16", "fp16")`` on ``device``, else a no-op."""
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if amp == "fp16" and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Dataset | DataLoader,
    *,
    class_names: Sequence[str] | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    amp: str = "none",
    loss_fn: nn.Module | None = None,
    dist_info: DistInfo | None = None,
    progress: bool = False,
    desc: str = "eval",
) -> EvalResult:
    """Run ``model`` over every video of ``data`` and compute the metrics.

    Args:
        model: A video classifier (``forward_explain`` gives clip scores where the model
            has them). DDP / compile wrappers are unwrapped.
        data: A dataset of dicts (``video``, ``label``, optional ``apex_clip``,
            ``path``) or a DataLoader over one (then ``dist_info`` must match it). A
            DataLoader that shuffles, or has a sampler or batch sampler of its own
            (other than a ``DistributedSampler``), needs items that name their dataset
            index under ``index``.
        class_names: The model's output classes. Defaults to the model's
            ``label_names`` if they name real classes, else the dataset's classes.
            Dataset labels are mapped onto them by name.
        batch_size: Videos per forward pass (for a dataset).
        num_workers: Loader workers (for a dataset).
        device: Where to run; defaults to the model's device.
        amp: ``"none"``, ``"bf16"`` or ``"fp16"`` autocast.
        loss_fn: If given, also report the mean loss.
        dist_info: Process placement under ``torchrun``; ``None`` for one process.
        progress: Show a tqdm bar (rank 0).
        desc: Progress bar label.

    Returns:
        :class:`EvalResult` (the same on every rank).

    Raises:
        DataError: For an empty dataset, dataset classes the model does not know, a
            ``DistributedSampler`` of another world size than ``dist_info``'s, or
            items without ``index`` from a DataLoader whose order is unknown.
    """
    from tqdm.auto import tqdm

    info = dist_info or DistInfo()
    bare = unwrap_model(model)
    dev = torch.device(device) if device is not None else next(bare.parameters()).device
    info = DistInfo(info.rank, info.world_size, info.local_rank, dev, info.initialized)

    # A sample's "index" is its place in `dataset`, except from a plain DataLoader over a
    # Subset of a VideoDataset: there it is the index in the dataset under the subset
    # (translated below).
    subset: SubsetIndex | None = None
    if isinstance(data, DataLoader):
        loader = data
        wrapped = isinstance(data.dataset, EpochAwareDataset)
        dataset = data.dataset.dataset if wrapped else data.dataset
        if not wrapped and isinstance(dataset, Subset):
            subset = SubsetIndex(dataset)
    else:
        dataset = data
        check_not_empty(dataset, f"evaluation dataset {type(dataset).__name__}")
        cfg = TrainConfig(num_workers=num_workers, batch_size=batch_size, persistent_workers=False)
        loader, sampler = build_loader(dataset, cfg, info, train=False)
        sampler.set_epoch(0)
    check_not_empty(dataset, f"evaluation dataset {type(dataset).__name__}")
    # The dataset index of each row, for items without an "index" of their own
    picker, order = _sampler_order(loader)
    if isinstance(picker, DistributedSampler) and picker.num_replicas != info.world_size:
        raise DataError(
            f"the DataLoader's DistributedSampler splits the videos over "
            f"{picker.num_replicas} processes but dist_info has {info.world_size}: pass the "
            "dist_info of this run (init_distributed()), or the dataset itself"
        )

    model_names = list(getattr(bare, "label_names", []) or [])
    if class_names is None:
        real = model_names and not all(n.startswith("class_") for n in model_names)
        class_names = model_names if real else dataset_classes_of(dataset, model_names or None)
    class_names = list(class_names)
    outputs_n = getattr(bare, "num_classes", None)
    if isinstance(outputs_n, int) and outputs_n != len(class_names):
        raise DataError(
            f"the model has {outputs_n} outputs but evaluation is over {len(class_names)} "
            f"classes ({', '.join(class_names)}). Evaluate a model trained on these classes "
            "(a model whose label_names name its outputs is mapped onto the dataset by name); "
            "from Python, class_names=[...] names the outputs"
        )
    data_names = dataset_classes_of(dataset, class_names)
    lut = label_mapping(
        data_names,
        class_names,
        what=f"dataset {type(dataset).__name__}",
        target_what="the model's classes",
    )

    was_training = bare.training
    bare.eval()
    rows: list[dict[str, Any]] = []
    own_index = False  # samples name their dataset index (then skipped items are known)
    seen = 0
    # The model's outputs stay on the device until the loop ends: reading them batch by
    # batch (per video, even) would wait for the device every time and leave it idle
    # while the next batch is fetched.
    outputs: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    meta: list[tuple[list[int], torch.Tensor, torch.Tensor, Any]] = []
    bar = tqdm(
        loader, desc=desc, leave=False, disable=not (progress and info.is_main), dynamic_ncols=True
    )
    for batch in bar:
        video = batch["video"].to(dev, non_blocking=True)
        labels = lut[batch["label"].long()]  # host side: only needed for the rows
        with autocast_context(dev, amp):
            out = bare.forward_explain(video)
        b = len(labels)
        if "index" in batch:
            idx = torch.as_tensor(batch["index"]).tolist()
            if subset is not None:
                asked = [order[seen + j] if order else None for j in range(len(idx))]
                pos = [subset.position(int(i), a) for i, a in zip(idx, asked)]
                # None: a VideoDataset's replacement from outside the subset (-1: dropped),
                # or an id of another dataset's own (kept as it is)
                idx = [
                    p if p is not None else (-1 if subset.replaces else int(i))
                    for p, i in zip(pos, idx)
                ]
            own_index = True
        elif order is not None:
            idx = order[seen : seen + b]
        elif (
            isinstance(dataset, IterableDataset) and info.world_size == 1 and not loader.num_workers
        ):
            idx = list(range(seen, seen + b))  # one process, no workers: as it iterates
        elif isinstance(dataset, IterableDataset):
            raise DataError(
                "evaluate() cannot tell which video each row is: an IterableDataset read by "
                f"{loader.num_workers} loader workers and {info.world_size} process(es) "
                "yields its items in an order of its own, and they have no 'index' (each "
                "worker may also yield every item). Put each item's index under 'index', or "
                "read it with num_workers=0 in one process"
            )
        else:
            raise DataError(
                f"evaluate() cannot tell which video each row is: the DataLoader's "
                f"{type(picker).__name__} picks the items "
                "in an order it does not reveal, and they have no 'index'. Put each item's "
                "dataset index under 'index', use a DataLoader with shuffle=False or a "
                "DistributedSampler, or pass the dataset itself"
            )
        seen += b
        apex = batch.get("apex_clip")
        apex = apex.long() if torch.is_tensor(apex) else torch.full((b,), -1, dtype=torch.long)
        outputs.append(
            (
                out.logits.float(),
                out.clip_scores.float() if out.clip_scores is not None else None,
            )
        )
        meta.append((idx, labels, apex, batch.get("path")))
    bar.close()
    if was_training:
        bare.train()
    if outputs:
        all_logits = torch.cat([o[0] for o in outputs]).cpu()
        all_scores = torch.cat([o[1] for o in outputs]).cpu() if outputs[0][1] is not None else None
    start = 0
    for idx, labels, apex, paths in meta:
        for j in range(len(labels)):
            rows.append(
                {
                    "index": int(idx[j]),
                    "label": int(labels[j]),
                    "logits": all_logits[start + j].clone(),
                    "scores": all_scores[start + j].clone() if all_scores is not None else None,
                    "apex": int(apex[j]),
                    "path": paths[j] if isinstance(paths, (list, tuple)) else None,
                }
            )
        start += len(labels)

    by_index: dict[int, dict[str, Any]] = {}
    for part_rows in gather_objects(rows, info):
        for r in part_rows:
            if r["index"] >= 0:
                by_index.setdefault(r["index"], r)  # padded repeats share an index
    if not by_index:
        raise DataError(
            f"no video of the evaluation dataset {type(dataset).__name__} could be read: "
            "every item failed to load (see the warnings above for each file)"
        )
    ordered = [by_index[i] for i in sorted(by_index)]
    logits = torch.stack([r["logits"] for r in ordered])
    labels = torch.tensor([r["label"] for r in ordered], dtype=torch.long)
    apex = torch.tensor([r["apex"] for r in ordered], dtype=torch.long)
    scores = (
        torch.stack([r["scores"] for r in ordered]) if ordered[0]["scores"] is not None else None
    )
    metrics = compute_metrics(logits, labels, class_names, clip_scores=scores, apex_clip=apex)
    if loss_fn is not None:
        metrics["loss"] = float(loss_fn(logits, labels))
    if own_index and len(by_index) < len(dataset):
        # Items that failed to load were replaced by others (on_error="skip"): name them.
        missing = sorted(set(range(len(dataset))) - set(by_index))
        metrics["skipped"] = [{"index": i, "path": _item_path(dataset, i)} for i in missing]
        if info.is_main:
            log.warning(
                "%d of %d videos could not be read and are not in the metrics: %s",
                len(missing),
                len(dataset),
                ", ".join(str(m["path"] or m["index"]) for m in metrics["skipped"][:5])
                + (" ..." if len(missing) > 5 else ""),
            )
    paths = [r["path"] for r in ordered]
    return EvalResult(
        metrics=metrics,
        indices=torch.tensor(sorted(by_index), dtype=torch.long),
        labels=labels,
        logits=logits,
        clip_scores=scores,
        apex_clip=apex,
        paths=paths if all(p is not None for p in paths) else None,
    )
