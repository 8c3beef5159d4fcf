"""Parameter and MAC counts, measured with torch's own flop counter.

``torch.utils.flop_counter.FlopCounterMode`` counts the floating-point operations of
matrix products and convolutions; a multiply-accumulate is two of them, so
``MACs = FLOPs / 2``. Element-wise work (normalisation, activations, softmax) is not
counted, which is how the paper's counter (ptflops) treats convolutional networks to
within a fraction of a percent.

Counting runs on the ``meta`` device by default: no memory is allocated and no
arithmetic is done, so even the full-size model at 15 frames per clip counts in
well under a second.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_macs", "count_parameters", "model_complexity"]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (optionally only those that require grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, inputs: torch.Tensor | tuple[Any, ...]) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on ``inputs``.

    Args:
        model: Any module.
        inputs: A tensor or a tuple of positional arguments (may live on ``meta``).

    Returns:
        MACs (FLOPs counted by ``FlopCounterMode`` divided by 2).

    The forward pass runs on ``meta`` copies of the parameters, buffers and inputs
    (``torch.func.functional_call``), whatever device they are on: the counter sees the
    same operators everywhere. (On the CPU and on CUDA, ``nn.LSTM`` runs as one fused
    kernel that ``FlopCounterMode`` has no formula for and would count as 0.) Models
    with operators that have no meta implementation are counted where they are.

    Example:
        >>> import torch
        >>> count_macs(torch.nn.Linear(10, 4), torch.randn(3, 10))
        120
        >>> count_macs(torch.nn.LSTM(16, 8, batch_first=True), torch.randn(2, 5, 16))
        7680
    """
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    on_meta = [t.is_meta for t in (*model.parameters(), *model.buffers())]
    on_meta += [a.is_meta for a in args if isinstance(a, torch.Tensor)]
    if not all(on_meta):
        from torch.func import functional_call

        state = {
            name: torch.empty_like(t, device="meta")
            for name, t in (*model.named_parameters(), *model.named_buffers())
        }
        meta_args = tuple(
            torch.empty_like(a, device="meta") if isinstance(a, torch.Tensor) else a for a in args
        )
        try:
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                functional_call(model, state, meta_args)
            return counter.get_total_flops() // 2
        except (NotImplementedError, RuntimeError):
            pass  # an operator without a meta kernel: count on the real device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args)
    return counter.get_total_flops() // 2


def model_complexity(
    model: str | nn.Module,
    num_clips: int | None = None,
    frames_per_clip: int | None = None,
    img_size: int | None = None,
    device: str | torch.device = "meta",
    **model_kwargs: Any,
) -> dict[str, Any]:
    """Parameters and MACs per video of a zoo model.

    Args:
        model: Registry name or a built model.
        num_clips: Clips per video N; defaults to the model's ``pretrained_cfg``.
        frames_per_clip: Frames per clip K; defaults to the model's ``pretrained_cfg``.
        img_size: Frame side in pixels; defaults to the model's ``pretrained_cfg``.
        device: Where to count; ``"meta"`` (default) allocates nothing.
        **model_kwargs: Passed to :func:`cefl_zoo.create_model` when ``model`` is a name.

    Returns:
        ``{"params": int, "macs": int, "input_shape": tuple}`` for one video.

    Example:
        >>> c = model_complexity("ceflnet_resnet18")
        >>> round(c["params"] / 1e6, 2), round(c["macs"] / 1e9, 1)
        (12.24, 63.5)
    """
    if isinstance(model, str):
        from .registry import _create_on_meta, create_model

        if torch.device(device).type == "meta":
            model = _create_on_meta(model, **model_kwargs)
        else:
            with torch.device(device):
                model = create_model(model, **model_kwargs)
    cfg = getattr(model, "pretrained_cfg", None)
    n = num_clips or (cfg.num_clips if cfg else 7)
    k = frames_per_clip or (cfg.frames_per_clip if cfg else 5)
    chans, height, width = cfg.input_size if cfg else (3, 224, 224)
    if img_size:
        height = width = img_size
    shape = (1, n, k, chans, height, width)
    param = next(model.parameters())
    x = torch.zeros(shape, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        macs = count_macs(model, x)
    finally:
        model.train(was_training)  # the caller's model comes back as it was
    return {"params": count_parameters(model), "macs": macs, "input_shape": shape}
