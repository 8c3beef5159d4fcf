"""Emotional intensity activation network (EIAN), paper section 3.3.

Given the clip features of a video ``V^f`` (eq. 4, the N clip features stacked):

* eq. 5: a 1-D convolution over the clip axis maps d channels to C class channels; a
  softmax over the N clips, separately per class, gives the emotion-intensity scores
  ``A`` of shape ``(B, C, N)`` (each ``A[b, c, :]`` sums to 1);
* eq. 6: the emotion-rich clip is ``argmax_n A[b, c, n]`` for the predicted class c;
* eq. 7: ``M_c = A_c * V^f`` weights each clip feature by its score for class c;
* eq. 8: ``V_hat_c = maxpool over clips of M_c`` (d values per class);
* eq. 9: ``logit_c = <q2_c, V_hat_c> + b_c``, row c of a ``Linear(d -> C)`` ``q2``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

__all__ = ["EIANOutput", "EmotionIntensityActivation", "emotion_rich_clip"]


class EIANOutput(NamedTuple):
    """Outputs of :meth:`EmotionIntensityActivation.forward_explain`.

    Attributes:
        logits: ``(B, C)`` class logits (eq. 9 before the softmax).
        clip_scores: ``(B, C, N)`` emotion-intensity scores (eq. 5).
        emotion_rich_clip: ``(B,)`` emotion-rich clip of the predicted class (eq. 6).
        representation: ``(B, C, d)`` class-wise emotion-rich representations (eq. 8).
    """

    logits: torch.Tensor
    clip_scores: torch.Tensor
    emotion_rich_clip: torch.Tensor
    representation: torch.Tensor


class EmotionIntensityActivation(nn.Module):
    """EIAN head: clip features ``(B, N, d)`` to logits ``(B, C)`` and clip scores.

    Works for any number of clips N (the convolution pads to keep N).

    Args:
        dim: Clip feature size d.
        num_classes: Number of classes C.
        kernel_size: Temporal kernel of the eq. 5 convolution, odd. The paper does not
            state it; 1 (the default) is its "fully-connected" reading.

    Shape:
        - Input: ``(B, N, d)``.
        - Output: logits ``(B, C)``.

    Example:
        >>> import torch
        >>> from cefl_zoo import EmotionIntensityActivation
        >>> eian = EmotionIntensityActivation(512, num_classes=7)
        >>> out = eian.forward_explain(torch.randn(2, 7, 512))
        >>> out.logits.shape, out.clip_scores.shape, out.emotion_rich_clip.shape
        (torch.Size([2, 7]), torch.Size([2, 7, 7]), torch.Size([2]))
    """

    def __init__(self, dim: int, num_classes: int, kernel_size: int = 1) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        self.dim = dim
        self.num_classes = num_classes
        self.kernel_size = kernel_size
        # W in eq. 5: d input channels -> C attention channels, over the clip axis.
        self.temporal_conv = nn.Conv1d(dim, num_classes, kernel_size, padding=kernel_size // 2)
        # q2 in eq. 9.
        self.fc = nn.Linear(dim, num_classes)

    def _check(self, v: torch.Tensor) -> None:
        if v.ndim != 3 or v.shape[-1] != self.dim or v.shape[1] == 0:
            raise ValueError(
                f"EmotionIntensityActivation expected clip features (B, N, {self.dim}) with "
                f"N >= 1, got {tuple(v.shape)}"
            )

    def clip_scores(self, v: torch.Tensor) -> torch.Tensor:
        """Eq. 5: emotion-intensity scores ``(B, N, d) -> (B, C, N)``, softmax over N."""
        self._check(v)
        return torch.softmax(self.temporal_conv(v.transpose(1, 2)), dim=-1)

    def representation(self, v: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Eq. 7-8: ``V_hat[b, c] = max_n scores[b, c, n] * v[b, n]``, shape ``(B, C, d)``."""
        return (scores.unsqueeze(-1) * v.unsqueeze(1)).amax(dim=2)

    def classify(self, rep: torch.Tensor) -> torch.Tensor:
        """Eq. 9 before the softmax: ``(B, C, d) -> (B, C)`` using row c of ``q2`` for class c."""
        return (rep * self.fc.weight).sum(dim=-1) + self.fc.bias

    def forward(self, v: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Classify clip features.

        Args:
            v: Clip features ``(B, N, d)``.
            pre_logits: Return the class-wise emotion-rich representations ``(B, C, d)``
                (eq. 8) instead of logits.

        Returns:
            Logits ``(B, C)``, or ``(B, C, d)`` with ``pre_logits``.
        """
        rep = self.representation(v, self.clip_scores(v))
        return rep if pre_logits else self.classify(rep)

    def forward_explain(self, v: torch.Tensor) -> EIANOutput:
        """Logits with the clip scores, the emotion-rich clip and the representation."""
        scores = self.clip_scores(v)
        rep = self.representation(v, scores)
        logits = self.classify(rep)
        return EIANOutput(logits, scores, emotion_rich_clip(scores, logits.argmax(-1)), rep)


def emotion_rich_clip(clip_scores: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Eq. 6: the clip with the highest score for the given class of each video.

    Args:
        clip_scores: ``(B, C, N)`` scores.
        classes: ``(B,)`` class index per video (predicted or ground truth).

    Returns:
        ``(B,)`` clip indices.

    Example:
        >>> import torch
        >>> scores = torch.tensor([[[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]])
        >>> emotion_rich_clip(scores, torch.tensor([0])).tolist()
        [1]
    """
    index = classes.view(-1, 1, 1).expand(-1, 1, clip_scores.shape[-1])
    return clip_scores.gather(1, index).squeeze(1).argmax(-1)
