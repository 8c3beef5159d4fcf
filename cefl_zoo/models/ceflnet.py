"""CEFLNet: backbone -> clip-based feature encoder -> emotional intensity activation.

Paper section 3.1, Fig. 1(a). The ablation rows of Table 6 that keep the clip encoder
("+SAL", "+SAL +LRL") are CEFLNet configurations with a mean-over-clips head; the
other two rows (frame average, CNN-LSTM) live in :mod:`cefl_zoo.models.baselines`.
"""

from __future__ import annotations

from typing import Any

import timm
import torch
from torch import nn

from ..registry import PretrainedCfg, register_model, register_pretrained_cfgs
from .base import ExplainOutput, VideoClassifier, build_model
from .clip_encoder import ClipEncoder
from .eian import EmotionIntensityActivation

__all__ = ["CEFLNet", "MeanClipHead", "default_cfg"]


class MeanClipHead(nn.Module):
    """Average the clip features and classify: ``(B, N, d) -> (B, C)``.

    The head of the ablation models without EIAN (Table 6, "+SAL" and "+LRL" rows).

    Args:
        dim: Clip feature size d.
        num_classes: Number of classes C.
    """

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, v: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``(B, N, d)`` clip features to logits ``(B, C)`` (or ``(B, d)`` pre-logits)."""
        pooled = v.mean(dim=1)
        return pooled if pre_logits else self.fc(pooled)


class CEFLNet(VideoClassifier):
    """Clip-aware emotion-rich feature learning network (Liu et al., 2022).

    Frames go through a timm backbone (folded into the batch), the
    :class:`~cefl_zoo.ClipEncoder` turns the K frames of each clip into a clip feature,
    and the :class:`~cefl_zoo.EmotionIntensityActivation` head scores the clips per class
    and classifies the video. N and K may change from call to call.

    Args:
        backbone: ``timm.create_model`` name (created with ``num_classes=0``) or a module
            with ``num_features``.
        num_classes: Number of classes C.
        clip_dim: Clip feature size ``d_out`` (output of LRL's ``q1``); defaults to the
            backbone's feature size d.
        self_attention: Use SAL (eq. 1).
        relation: Use LRL's learned frame weights (eq. 2); off gives equal weights.
        head: ``"eian"`` (the paper) or ``"mean"`` (average the clips, then a linear
            classifier: the ablation rows without EIAN).
        eian_kernel_size: Temporal kernel of the eq. 5 convolution (odd).
        drop_rate: Dropout on the clip features before the head.
        attn_drop: Dropout on SAL's attention weights.
        in_chans: Channels per frame.
        pretrained_backbone: Load ImageNet weights for the backbone through timm.
        backbone_kwargs: Extra ``timm.create_model`` arguments (e.g. ``drop_path_rate``).

    Shape:
        - Input: ``(B, N, K, 3, H, W)`` float frames, normalised.
        - Output: logits ``(B, C)``.

    Example:
        >>> import torch
        >>> from cefl_zoo import CEFLNet
        >>> model = CEFLNet(backbone="test_convnext", num_classes=7).eval()
        >>> x = torch.randn(2, 7, 5, 3, 64, 64)
        >>> model(x).shape
        torch.Size([2, 7])
        >>> out = model.forward_explain(x)
        >>> out.clip_scores.shape, out.frame_weights.shape, out.emotion_rich_clip.shape
        (torch.Size([2, 7, 7]), torch.Size([2, 7, 5]), torch.Size([2]))
    """

    def __init__(
        self,
        backbone: str | nn.Module = "resnet18",
        num_classes: int = 7,
        clip_dim: int | None = None,
        self_attention: bool = True,
        relation: bool = True,
        head: str = "eian",
        eian_kernel_size: int = 1,
        drop_rate: float = 0.0,
        attn_drop: float = 0.0,
        in_chans: int = 3,
        pretrained_backbone: bool = False,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            backbone=backbone,
            num_classes=num_classes,
            in_chans=in_chans,
            pretrained_backbone=pretrained_backbone,
            backbone_kwargs=backbone_kwargs,
        )
        if head not in ("eian", "mean"):
            raise ValueError(f"head must be 'eian' or 'mean', got {head!r}")
        self.clip_dim = int(clip_dim or self.num_features)
        self.head_hidden_size = self.clip_dim
        self.head_type = head
        self.eian_kernel_size = eian_kernel_size
        self.init_kwargs.update(
            clip_dim=self.clip_dim,
            self_attention=self_attention,
            relation=relation,
            head=head,
            eian_kernel_size=eian_kernel_size,
            drop_rate=drop_rate,
            attn_drop=attn_drop,
        )
        self.clip_encoder = ClipEncoder(
            self.num_features,
            self.clip_dim,
            self_attention=self_attention,
            relation=relation,
            attn_drop=attn_drop,
        )
        self.head_drop = nn.Dropout(drop_rate)
        self.head = self._make_head(self.num_classes)

    @property
    def has_frame_weights(self) -> bool:
        """Whether LRL learns frame weights (eq. 2); ``False`` for ``relation=False``."""
        return self.clip_encoder.has_frame_weights

    def _make_head(self, num_classes: int) -> nn.Module:
        if self.head_type == "eian":
            return EmotionIntensityActivation(self.clip_dim, num_classes, self.eian_kernel_size)
        return MeanClipHead(self.clip_dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Clip features ``V^f``: ``(B, N, K, 3, H, W) -> (B, N, d_out)``."""
        return self.clip_encoder(self.forward_frames(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Clip features ``(B, N, d_out)`` to logits ``(B, C)``.

        With ``pre_logits=True`` returns what the classifier sees: the class-wise
        emotion-rich representations ``(B, C, d_out)`` (eq. 8) for the EIAN head, the
        clip average ``(B, d_out)`` for the mean head.
        """
        return self.head(self.head_drop(x), pre_logits=pre_logits)

    def forward_explain(self, x: torch.Tensor) -> ExplainOutput:
        """Logits plus clip scores, emotion-rich clip, frame weights and clip features.

        Args:
            x: ``(B, N, K, 3, H, W)``.

        Returns:
            :class:`~cefl_zoo.models.ExplainOutput`; ``clip_scores`` and
            ``emotion_rich_clip`` are ``None`` for the mean head.
        """
        clips, weights = self.clip_encoder(self.forward_frames(x), return_weights=True)
        v = self.head_drop(clips)
        if isinstance(self.head, EmotionIntensityActivation):
            out = self.head.forward_explain(v)
            return ExplainOutput(out.logits, out.clip_scores, out.emotion_rich_clip, weights, clips)
        return ExplainOutput(self.head(v), None, None, weights, clips)

    def get_classifier(self) -> nn.Module:
        """The head (EIAN or mean head): every class-specific parameter lives there."""
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the head with a fresh one for ``num_classes`` classes."""
        self._set_num_classes(num_classes, global_pool)
        ref = next(self.head.parameters())
        self.head = self._make_head(self.num_classes).to(device=ref.device, dtype=ref.dtype)


def default_cfg(architecture: str, backbone: str, **overrides: Any) -> PretrainedCfg:
    """Untrained default configuration of an architecture: its backbone's preprocessing.

    Args:
        architecture: Registry name.
        backbone: timm name of the backbone; its ``pretrained_cfg`` gives mean, std,
            input size and interpolation.
        **overrides: Fields to set explicitly (e.g. ``input_size=(3, 64, 64)``).
    """
    timm_cfg = timm.get_pretrained_cfg(backbone)
    timm_cfg = timm_cfg.to_dict() if timm_cfg is not None else {}
    fields: dict[str, Any] = {
        "architecture": architecture,
        "input_size": tuple(timm_cfg.get("input_size", (3, 224, 224))),
        "mean": tuple(timm_cfg.get("mean", (0.485, 0.456, 0.406))),
        "std": tuple(timm_cfg.get("std", (0.229, 0.224, 0.225))),
        "interpolation": timm_cfg.get("interpolation", "bilinear"),
        "notes": f"untrained architecture; {backbone} backbone",
    }
    fields.update(overrides)
    return PretrainedCfg(**fields)


register_pretrained_cfgs(
    [
        default_cfg("ceflnet_resnet18", "resnet18", input_size=(3, 224, 224)),
        default_cfg("ceflnet_resnet18_sal", "resnet18", input_size=(3, 224, 224)),
        default_cfg("ceflnet_resnet18_sal_lrl", "resnet18", input_size=(3, 224, 224)),
        default_cfg("ceflnet_resnet34", "resnet34", input_size=(3, 224, 224)),
        default_cfg("ceflnet_resnet50", "resnet50", input_size=(3, 224, 224)),
        default_cfg("ceflnet_efficientnet_b0", "efficientnet_b0", input_size=(3, 224, 224)),
        default_cfg("ceflnet_tiny", "test_convnext", input_size=(3, 64, 64)),
    ]
)


def _create_ceflnet(
    variant: str, pretrained: bool, defaults: dict[str, Any], **kwargs: Any
) -> CEFLNet:
    model = build_model(CEFLNet, variant, pretrained=pretrained, default_args=defaults, **kwargs)
    return model  # type: ignore[return-value]


@register_model
def ceflnet_resnet18(pretrained: bool = False, **kwargs: Any) -> CEFLNet:
    """CEFLNet with a ResNet-18 backbone: the paper's model (Table 8: 12.83 M, 63.80 GMACs)."""
    return _create_ceflnet("ceflnet_resnet18", pretrained, {"backbone": "resnet18"}, **kwargs)


@register_model
def ceflnet_resnet18_sal(pretrained: bool = False, **kwargs: Any) -> CEFLNet:
    """Table 6 "+SAL" row: ResNet-18, self-attention, equal frame weights, mean head."""
    defaults = {"backbone": "resnet18", "relation": False, "head": "mean"}
    return _create_ceflnet("ceflnet_resnet18_sal", pretrained, defaults, **kwargs)


@register_model
def ceflnet_resnet18_sal_lrl(pretrained: bool = False, **kwargs: Any) -> CEFLNet:
    """Table 6 "+LRL" row: ResNet-18, SAL and LRL, mean head (no EIAN)."""
    defaults = {"backbone": "resnet18", "head": "mean"}
    return _create_ceflnet("ceflnet_resnet18_sal_lrl", pretrained, defaults, **kwargs)


@register_model
def ceflnet_resnet34(pretrained: bool = False, **kwargs: Any) -> CEFLNet:
    """CEFLNet with a ResNet-34 backbone."""
    return _create_ceflnet("ceflnet_resnet34", pretrained, {"backbone": "resnet34"}, **kwargs)


@register_model
def ceflnet_resnet50(pretrained: bool = False, **kwargs: Any) -> CEFLNet:
    """CEFLNet with a ResNet-50 backbone (d = 2048)."""
    return _create_ceflnet("ceflnet_resnet50", pretrained, {"backbone": "resnet50"}, **kwargs)


@register_model
def ceflnet_efficientnet_b0(pretrained: bool = False, **kwargs: Any) -> CEFLNet:
    """CEFLNet with an EfficientNet-B0 backbone (d = 1280)."""
    defaults = {"backbone": "efficientnet_b0"}
    return _create_ceflnet("ceflnet_efficientnet_b0", pretrained, defaults, **kwargs)


@register_model
def ceflnet_tiny(pretrained: bool = False, **kwargs: Any) -> CEFLNet:
    """A 0.2 M-parameter CEFLNet (timm's ``test_convnext`` backbone) at 64 px.

    For CPU demos, tests and the built-in synthetic data; not a paper model.
    """
    return _create_ceflnet("ceflnet_tiny", pretrained, {"backbone": "test_convnext"}, **kwargs)
