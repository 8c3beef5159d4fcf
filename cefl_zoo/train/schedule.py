"""Learning-rate schedules: linear warm-up, then cosine annealing (the paper's recipe).

The schedule is defined per optimizer step, so a run resumed in the middle of an epoch
continues on exactly the same curve.

Example:
    >>> import torch
    >>> from cefl_zoo.train.schedule import warmup_cosine_factor
    >>> f = [warmup_cosine_factor(s, total_steps=10, warmup_steps=2) for s in (0, 1, 2, 6, 10)]
    >>> [round(x, 3) for x in f]
    [0.01, 0.505, 1.0, 0.5, 0.0]
"""

from __future__ import annotations

import math

import torch

__all__ = ["build_scheduler", "warmup_cosine_factor"]


def warmup_cosine_factor(
    step: int,
    total_steps: int,
    warmup_steps: int = 0,
    start_factor: float = 0.01,
    min_factor: float = 0.0,
    cosine: bool = True,
) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step``.

    Args:
        step: Optimizer steps taken so far (0 for the first step).
        total_steps: Steps of the whole run.
        warmup_steps: Steps of the linear warm-up from ``start_factor`` to 1.
        start_factor: Multiplier at step 0 when warming up.
        min_factor: Multiplier reached at the end of the cosine.
        cosine: Anneal with a half cosine after the warm-up; else stay at 1.

    Returns:
        The multiplier, in ``[min(start_factor, min_factor), 1]``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return start_factor + (1.0 - start_factor) * step / warmup_steps
    if not cosine:
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    kind: str,
    total_steps: int,
    warmup_steps: int = 0,
    start_factor: float = 0.01,
    min_lr: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step ``LambdaLR``: ``"cosine"`` (warm-up + cosine) or ``"constant"`` (warm-up).

    Args:
        optimizer: The optimizer; its ``lr`` of each group is the peak.
        kind: ``"cosine"`` or ``"constant"``.
        total_steps: Optimizer steps of the whole run.
        warmup_steps: Linear warm-up steps.
        start_factor: Warm-up starting multiplier.
        min_lr: Learning rate at the end of the cosine (absolute, same for all groups).

    Returns:
        A scheduler to ``step()`` after every optimizer step; its ``state_dict`` goes
        into checkpoints.
    """
    if kind not in ("cosine", "constant"):
        raise ValueError(f"scheduler must be 'cosine' or 'constant', got {kind!r}")
    lambdas = []
    for group in optimizer.param_groups:
        peak = float(group["lr"])
        if kind == "cosine" and peak > 0 and min_lr > peak:
            raise ValueError(
                f"min_lr={min_lr} exceeds the lr={peak} of a parameter group: the cosine "
                "would climb instead of fall; pass a min_lr no larger than every group's lr"
            )
        min_factor = min_lr / peak if peak > 0 else 0.0
        lambdas.append(
            lambda step, mf=min_factor: warmup_cosine_factor(
                step, total_steps, warmup_steps, start_factor, mf, cosine=kind == "cosine"
            )
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
