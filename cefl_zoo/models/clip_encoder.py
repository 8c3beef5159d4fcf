"""Clip-based feature encoder (CFE), paper section 3.2.

Two cascaded steps turn the K frame features of each clip into one clip feature:

* **SAL** (self-attention learning, eq. 1): ``f' = softmax(Q K^T / sqrt(d)) V`` where
  ``Q, K, V`` are linear maps of the clip's frame features; attention runs across the
  frames of one clip only.
* **LRL** (local-global relation learning, eq. 2-3): the clip summary
  ``f_hat = mean_k f'_k`` is concatenated with each frame, ``w_k = sigmoid(q0^T [f_hat ;
  f'_k])``, and the clip feature is ``R = q1(sum_k w_k f'_k / sum_k w_k)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ClipEncoder", "LocalGlobalRelation", "SelfAttention"]


class SelfAttention(nn.Module):
    """Single-head self-attention across the frames of each clip (paper eq. 1).

    Args:
        dim: Frame feature size d.
        qkv_bias: Use biases in the Q, K, V projections.
        attn_drop: Dropout on the attention weights during training.

    Shape:
        - Input: ``(..., K, d)`` (any leading axes, e.g. ``(B, N, K, d)``).
        - Output: ``(..., K, d)``.

    Example:
        >>> import torch
        >>> sal = SelfAttention(16)
        >>> sal(torch.randn(2, 7, 5, 16)).shape
        torch.Size([2, 7, 5, 16])
    """

    def __init__(self, dim: int, qkv_bias: bool = True, attn_drop: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.scale = dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)

    def _attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Written out rather than F.scaled_dot_product_attention: with K = 5 frames the
        # fused kernels gain nothing, and torch's flop counter misses some of them.
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        return attn, v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend across frames: ``(..., K, d) -> (..., K, d)``."""
        attn, v = self._attention(x)
        return self.attn_drop(attn) @ v

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The frame-to-frame attention matrix ``softmax(Q K^T / sqrt(d))``.

        Args:
            x: Frame features ``(..., K, d)``.

        Returns:
            ``(..., K, K)``; each row sums to 1.
        """
        return self._attention(x)[0]


class LocalGlobalRelation(nn.Module):
    """Local-global relation learning (paper eq. 2-3).

    Args:
        dim: Frame feature size d.
        out_dim: Clip feature size ``d_out`` (the output size of ``q1``).
        relation: Learn the weights ``w`` (eq. 2). If false, every frame gets weight 1,
            so eq. 3 becomes a plain mean, and ``q0`` is not created.

    Shape:
        - Input: frame features ``f'`` of shape ``(..., K, d)``.
        - Output: clip features ``R`` of shape ``(..., d_out)`` and frame weights ``w``
          of shape ``(..., K)``.

    Example:
        >>> import torch
        >>> lrl = LocalGlobalRelation(16, 8)
        >>> r, w = lrl(torch.randn(2, 7, 5, 16))
        >>> r.shape, w.shape
        (torch.Size([2, 7, 8]), torch.Size([2, 7, 5]))
    """

    def __init__(self, dim: int, out_dim: int, relation: bool = True) -> None:
        super().__init__()
        self.relation = nn.Linear(2 * dim, 1) if relation else None  # q0, eq. 2
        self.proj = nn.Linear(dim, out_dim)  # q1, eq. 3

    def _relation_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``q0^T [mean_k f'_k ; f'_k]``, ``(..., K, d) -> (..., K)``."""
        assert self.relation is not None
        summary = x.mean(dim=-2, keepdim=True).expand_as(x)
        return self.relation(torch.cat([summary, x], dim=-1)).squeeze(-1)

    def frame_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 2: ``w_k = sigmoid(q0^T [mean_k f'_k ; f'_k])``, ``(..., K, d) -> (..., K)``."""
        if self.relation is None:
            return torch.ones(x.shape[:-1], dtype=x.dtype, device=x.device)
        return torch.sigmoid(self._relation_logits(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted clip feature (eq. 3) and the frame weights (eq. 2)."""
        if self.relation is None:
            w = torch.ones(x.shape[:-1], dtype=x.dtype, device=x.device)
            return self.proj(x.mean(dim=-2)), w
        logits = self._relation_logits(x)
        w = torch.sigmoid(logits)
        # Eq. 3 divides by sum_k w_k. The same weights are softmax_k(log sigmoid(l_k)),
        # taken in fp32: under fp16 autocast every w_k of a logit below about -17 rounds
        # to 0 and w / sum(w) would be 0 / 0.
        share = torch.softmax(F.logsigmoid(logits.float()), dim=-1).to(x.dtype)
        pooled = (share.unsqueeze(-1) * x).sum(dim=-2)
        return self.proj(pooled), w


class ClipEncoder(nn.Module):
    """Clip-based feature encoder: SAL then LRL (paper section 3.2, Fig. 1(b)).

    Usable on its own after any per-frame feature extractor.

    Args:
        dim: Frame feature size d.
        out_dim: Clip feature size ``d_out``; defaults to ``dim``.
        self_attention: Apply SAL (eq. 1). Off gives the frame features to LRL as they are.
        relation: Apply LRL's frame weighting (eq. 2). Off weights all frames equally
            (a plain mean) before the ``q1`` projection; the "+SAL" ablation row.
        qkv_bias: Biases in SAL's Q, K, V projections.
        attn_drop: Dropout on SAL's attention weights during training.

    Shape:
        - Input: ``(B, N, K, d)``.
        - Output: ``(B, N, d_out)``; with ``return_weights=True`` also the frame weights
          ``(B, N, K)``.

    Example:
        >>> import torch
        >>> from cefl_zoo import ClipEncoder
        >>> enc = ClipEncoder(512)
        >>> clips, w = enc(torch.randn(2, 7, 5, 512), return_weights=True)
        >>> clips.shape, w.shape
        (torch.Size([2, 7, 512]), torch.Size([2, 7, 5]))
    """

    def __init__(
        self,
        dim: int,
        out_dim: int | None = None,
        self_attention: bool = True,
        relation: bool = True,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.out_dim = out_dim or dim
        self.sal = (
            SelfAttention(dim, qkv_bias=qkv_bias, attn_drop=attn_drop) if self_attention else None
        )
        self.lrl = LocalGlobalRelation(dim, self.out_dim, relation=relation)

    @property
    def has_frame_weights(self) -> bool:
        """Whether LRL learns the frame weights (eq. 2); ``False`` for ``relation=False``,
        whose weights are all 1."""
        return self.lrl.relation is not None

    def forward(
        self, x: torch.Tensor, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Encode each clip.

        Args:
            x: Frame features ``(B, N, K, d)``.
            return_weights: Also return the per-frame weights ``w`` ``(B, N, K)``.

        Returns:
            Clip features ``(B, N, d_out)``, and the weights if asked.
        """
        if x.ndim < 2 or x.shape[-1] != self.dim:
            raise ValueError(
                f"ClipEncoder expected frame features (B, N, K, {self.dim}), got {tuple(x.shape)}"
            )
        if self.sal is not None:
            x = self.sal(x)
        out, w = self.lrl(x)
        if return_weights:
            return out, w
        return out
