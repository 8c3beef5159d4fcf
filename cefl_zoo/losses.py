"""Training objectives.

The paper's loss (eq. 11) is a binary cross-entropy between the softmax probabilities
``p = softmax(logits)`` and the one-hot label ``Y``, summed over the C classes:

.. math::

    L = -\\sum_c Y_c \\log p_c + (1 - Y_c) \\log (1 - p_c)

The paper sums over the videos of a batch; :func:`ceflnet_loss` averages over them by
default (``reduction="mean"``). Under Adam that only changes how strongly coupled weight
decay weighs against the data term (B times more for a batch of B); ``log(1 - p_c)`` is
computed as ``logsumexp_{j != c} z_j - logsumexp_j z_j``, exact and stable even when
``p_c`` rounds to 1 in floating point.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CEFLNetLoss", "ceflnet_loss"]


def _soft_targets(target: torch.Tensor, num_classes: int, label_smoothing: float) -> torch.Tensor:
    if target.ndim == 1:
        if target.dtype.is_floating_point:
            raise TypeError("class-index targets must be an integer tensor (B,)")
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
            raise ValueError(
                f"target class indices must lie in [0, {num_classes - 1}], got "
                f"min {int(target.min())}, max {int(target.max())}"
            )
        y = F.one_hot(target.long(), num_classes).float()
    elif target.ndim == 2 and target.shape[1] == num_classes:
        y = target.float()
    else:
        raise ValueError(
            f"target must be class indices (B,) or probabilities (B, {num_classes}), got "
            f"shape {tuple(target.shape)}"
        )
    if label_smoothing:
        y = y * (1.0 - label_smoothing) + label_smoothing / num_classes
    return y


def _check_label_smoothing(label_smoothing: float) -> None:
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def ceflnet_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """The paper's classification loss (eq. 11).

    Args:
        logits: ``(B, C)`` class logits, C >= 2.
        target: ``(B,)`` class indices or ``(B, C)`` target probabilities.
        reduction: ``"mean"`` over videos (default), ``"sum"`` (the paper's sum over
            videos) or ``"none"`` (per video, ``(B,)``).
        label_smoothing: Mix the targets with the uniform distribution by this amount,
            in ``[0, 1)``.

    Returns:
        The loss; a scalar unless ``reduction="none"``.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[2.0, 0.0, -1.0]])
        >>> p = logits.softmax(-1)[0]
        >>> manual = -(p[0].log() + (1 - p[1]).log() + (1 - p[2]).log())
        >>> bool(torch.isclose(ceflnet_loss(logits, torch.tensor([0])), manual))
        True
    """
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape (B, C) with C >= 2, got {tuple(logits.shape)}")
    _check_label_smoothing(label_smoothing)
    z = logits.float()
    num_classes = z.shape[1]
    y = _soft_targets(target, num_classes, label_smoothing).to(z.device)
    lse = torch.logsumexp(z, dim=1, keepdim=True)
    log_p = z - lse
    eye = torch.eye(num_classes, dtype=torch.bool, device=z.device)
    log_not_p = torch.logsumexp(z.unsqueeze(1).masked_fill(eye, float("-inf")), dim=-1) - lse
    loss = -(y * log_p + (1.0 - y) * log_not_p).sum(dim=1)
    return _reduce(loss, reduction)


class CEFLNetLoss(nn.Module):
    """Loss module: the paper's eq. 11 (``kind="bce"``) or plain cross-entropy (``"ce"``).

    Args:
        kind: ``"bce"`` (paper, eq. 11) or ``"ce"`` (softmax cross-entropy).
        label_smoothing: Target smoothing for either kind, in ``[0, 1)``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Shape:
        - logits: ``(B, C)``; target: ``(B,)`` indices or ``(B, C)`` probabilities.

    Example:
        >>> import torch
        >>> loss = CEFLNetLoss("ce")(torch.zeros(4, 7), torch.tensor([0, 1, 2, 3]))
        >>> round(float(loss), 4)  # log(7)
        1.9459
    """

    def __init__(
        self, kind: str = "bce", label_smoothing: float = 0.0, reduction: str = "mean"
    ) -> None:
        super().__init__()
        if kind not in ("bce", "ce"):
            raise ValueError(f"kind must be 'bce' (paper eq. 11) or 'ce', got {kind!r}")
        _check_label_smoothing(label_smoothing)
        self.kind = kind
        self.label_smoothing = label_smoothing
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of ``(B, C)`` logits against the targets."""
        if self.kind == "bce":
            return ceflnet_loss(logits, target, self.reduction, self.label_smoothing)
        if logits.ndim != 2:
            raise ValueError(f"logits must have shape (B, C), got {tuple(logits.shape)}")
        y = _soft_targets(target, logits.shape[1], 0.0)
        return F.cross_entropy(
            logits.float(), y, reduction=self.reduction, label_smoothing=self.label_smoothing
        )
