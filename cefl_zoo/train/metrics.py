"""Metrics the video FER literature reports, and the paper's clip-locating accuracy.

* **WAR** (weighted average recall) = overall accuracy.
* **UAR** (unweighted average recall) = mean of the per-class recalls, over the classes
  that occur in the ground truth (a class without test videos has no recall).
* **Per-class recall** and the **confusion matrix** (rows: true class, columns:
  predicted class).
* **Emotion-rich clip-locating accuracy** (paper Table 7): the share of videos whose
  emotion-rich clip (eq. 6: the clip with the highest EIAN score) is the apex clip,
  counted over the videos whose apex clip is known (``apex_clip >= 0``). Reported for
  the ground-truth class's scores and for the predicted class's scores.

Example:
    >>> import torch
    >>> from cefl_zoo.train.metrics import classification_metrics
    >>> m = classification_metrics(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), 3)
    >>> m["war"], m["uar"], m["per_class_recall"]
    (0.75, 0.8333333333333334, [1.0, 1.0, 0.5])
    >>> m["confusion_matrix"]
    [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

__all__ = [
    "classification_metrics",
    "clip_locating_accuracy",
    "compute_metrics",
    "confusion_matrix",
    "format_metrics",
]


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Confusion matrix ``(C, C)``: entry ``[t, p]`` counts videos of class t predicted p.

    Args:
        preds: ``(V,)`` predicted class indices.
        labels: ``(V,)`` true class indices.
        num_classes: C.

    Raises:
        ValueError: For mismatched lengths or indices outside ``[0, C)``.
    """
    preds = torch.as_tensor(preds).long().flatten()
    labels = torch.as_tensor(labels).long().flatten()
    if preds.shape != labels.shape:
        raise ValueError(f"preds and labels differ in length: {preds.numel()} vs {labels.numel()}")
    for name, t in (("preds", preds), ("labels", labels)):
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
            raise ValueError(
                f"{name} must lie in [0, {num_classes - 1}], "
                f"got min {int(t.min())}, max {int(t.max())}"
            )
    flat = labels * num_classes + preds
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def classification_metrics(
    preds: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """WAR, UAR, per-class recall and the confusion matrix.

    Args:
        preds: ``(V,)`` predicted class indices.
        labels: ``(V,)`` true class indices.
        num_classes: C.
        class_names: Names of the C classes, for the ``per_class`` mapping.

    Returns:
        A JSON-serialisable dict with ``num_videos``, ``war``, ``uar``,
        ``per_class_recall`` (list of C floats; ``None`` for a class without videos),
        ``per_class`` (name -> recall), ``support`` (videos per class) and
        ``confusion_matrix`` (C lists of C ints).
    """
    cm = confusion_matrix(preds, labels, num_classes)
    support = cm.sum(dim=1)
    correct = cm.diagonal()
    total = int(support.sum())
    recalls: list[float | None] = [
        (float(correct[c]) / float(support[c])) if int(support[c]) > 0 else None
        for c in range(num_classes)
    ]
    present = [r for r in recalls if r is not None]
    names = (
        list(class_names) if class_names is not None else [f"class_{i}" for i in range(num_classes)]
    )
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names for {num_classes} classes")
    return {
        "num_videos": total,
        "war": float(correct.sum()) / total if total else float("nan"),
        "uar": sum(present) / len(present) if present else float("nan"),
        "per_class_recall": recalls,
        "per_class": dict(zip(names, recalls)),
        "support": [int(s) for s in support],
        "confusion_matrix": cm.tolist(),
        "class_names": names,
    }


def clip_locating_accuracy(rich_clip: torch.Tensor, apex_clip: torch.Tensor) -> dict[str, Any]:
    """Share of videos whose emotion-rich clip equals the known apex clip (Table 7).

    Args:
        rich_clip: ``(V,)`` emotion-rich clip index per video.
        apex_clip: ``(V,)`` apex clip per video, ``-1`` where unknown.

    Returns:
        ``{"accuracy": float or None, "num_videos": int}``; ``accuracy`` is ``None``
        when no video knows its apex clip.

    Example:
        >>> import torch
        >>> clip_locating_accuracy(torch.tensor([3, 2, 0]), torch.tensor([3, 1, -1]))
        {'accuracy': 0.5, 'num_videos': 2}
    """
    rich_clip = torch.as_tensor(rich_clip).long().flatten()
    apex_clip = torch.as_tensor(apex_clip).long().flatten()
    if rich_clip.shape != apex_clip.shape:
        raise ValueError(
            f"rich_clip and apex_clip differ in length: {rich_clip.numel()} vs {apex_clip.numel()}"
        )
    known = apex_clip >= 0
    n = int(known.sum())
    if n == 0:
        return {"accuracy": None, "num_videos": 0}
    hits = int((rich_clip[known] == apex_clip[known]).sum())
    return {"accuracy": hits / n, "num_videos": n}


def compute_metrics(
    logits: torch.Tensor,
    labels: torch.Tensor,
    class_names: Sequence[str],
    clip_scores: torch.Tensor | None = None,
    apex_clip: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Every evaluation metric from a model's outputs over a whole split.

    Args:
        logits: ``(V, C)`` logits.
        labels: ``(V,)`` true class indices.
        class_names: The C class names in output order.
        clip_scores: ``(V, C, N)`` EIAN clip scores, if the model has them.
        apex_clip: ``(V,)`` apex clip per video (``-1`` unknown), if the data has it.

    Returns:
        :func:`classification_metrics` plus ``clip_locating`` (when both clip scores and
        at least one known apex exist): ``{"gt_class": ..., "pred_class": ...,
        "num_videos": ..., "chance": 1/N}``; the first two are accuracies.
    """
    from ..models.eian import emotion_rich_clip

    logits = torch.as_tensor(logits).float()
    labels = torch.as_tensor(labels).long()
    preds = logits.argmax(dim=-1)
    out = classification_metrics(preds, labels, logits.shape[-1], class_names)
    if clip_scores is not None and apex_clip is not None:
        apex = torch.as_tensor(apex_clip).long()
        if bool((apex >= 0).any()):
            gt = clip_locating_accuracy(emotion_rich_clip(clip_scores, labels), apex)
            pr = clip_locating_accuracy(emotion_rich_clip(clip_scores, preds), apex)
            out["clip_locating"] = {
                "gt_class": gt["accuracy"],
                "pred_class": pr["accuracy"],
                "num_videos": gt["num_videos"],
                "chance": 1.0 / clip_scores.shape[-1],
            }
    return out


def _pct(x: float | None) -> str:
    return "  -  " if x is None or math.isnan(x) else f"{100 * x:5.2f}"


def format_metrics(metrics: dict[str, Any]) -> str:
    """A short human-readable table of :func:`compute_metrics` output."""
    lines = [
        (
            f"videos {metrics['num_videos']}   WAR {_pct(metrics['war'])} %   "
            f"UAR {_pct(metrics['uar'])} %"
        )
    ]
    if "loss" in metrics:
        lines[0] += f"   loss {metrics['loss']:.4f}"
    skipped = metrics.get("skipped")
    if skipped:
        names = ", ".join(str(s["path"] or s["index"]) for s in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        count = f"{len(skipped)} video" + ("s" if len(skipped) != 1 else "")
        lines.append(f"not evaluated, unreadable: {count} ({names}{more})")
    loc = metrics.get("clip_locating")
    if loc:
        lines.append(
            f"emotion-rich clip = apex clip: {_pct(loc['gt_class'])} % (true class), "
            f"{_pct(loc['pred_class'])} % (predicted class) over {loc['num_videos']} videos; "
            f"chance {_pct(loc['chance'])} %"
        )
    width = max(len(n) for n in metrics["class_names"])
    for name, recall, n in zip(
        metrics["class_names"], metrics["per_class_recall"], metrics["support"]
    ):
        lines.append(
            f"  {name:<{width}}  recall {_pct(recall)} %  ({n} video{'' if n == 1 else 's'})"
        )
    return "\n".join(lines)
