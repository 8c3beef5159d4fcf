"""Baselines of the paper's ablation (Table 6): frame average and CNN-LSTM.

With :mod:`cefl_zoo.models.ceflnet`'s ``ceflnet_resnet18_sal`` and
``ceflnet_resnet18_sal_lrl``, they make every row of Table 6 one ``--model`` flag away.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..registry import register_model, register_pretrained_cfgs
from .base import VideoClassifier, build_model
from .ceflnet import default_cfg

__all__ = ["CNNLSTM", "FrameAverage"]


class FrameAverage(VideoClassifier):
    """Average the backbone features of all frames, then a linear classifier.

    The "ResNet-18" row of Table 6.

    Args:
        backbone: timm name or module with ``num_features``.
        num_classes: Number of classes C.
        drop_rate: Dropout before the classifier.
        in_chans: Channels per frame.
        pretrained_backbone: Load ImageNet weights for the backbone through timm.
        backbone_kwargs: Extra ``timm.create_model`` arguments.

    Shape:
        - Input: ``(B, N, K, 3, H, W)``.
        - Output: ``(B, C)``.
    """

    def __init__(
        self,
        backbone: str | nn.Module = "resnet18",
        num_classes: int = 7,
        drop_rate: float = 0.0,
        in_chans: int = 3,
        pretrained_backbone: bool = False,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(backbone, num_classes, in_chans, pretrained_backbone, backbone_kwargs)
        self.init_kwargs["drop_rate"] = drop_rate
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, self.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Frame features ``(B, N, K, d)``."""
        return self.forward_frames(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Average ``(B, N, K, d)`` over clips and frames, then classify to ``(B, C)``."""
        pooled = self.head_drop(x.mean(dim=(1, 2)))
        return pooled if pre_logits else self.fc(pooled)

    def get_classifier(self) -> nn.Module:
        """The final linear layer."""
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """New linear classifier for ``num_classes`` classes."""
        self._set_num_classes(num_classes, global_pool)
        self.fc = nn.Linear(self.num_features, self.num_classes).to(self.fc.weight)


class CNNLSTM(VideoClassifier):
    """Backbone features of all frames, clip after clip, through an LSTM.

    The "CNN-LSTM" row of Table 6: the N*K sampled frames form one sequence, the K frames
    of clip 1, then those of clip 2, ... (the paper's clips overlap in time, so the
    sequence steps back at each clip boundary); the last hidden state is classified.

    Args:
        backbone: timm name or module with ``num_features``.
        num_classes: Number of classes C.
        hidden_size: LSTM hidden size.
        num_layers: LSTM layers.
        drop_rate: Dropout before the classifier.
        in_chans: Channels per frame.
        pretrained_backbone: Load ImageNet weights for the backbone through timm.
        backbone_kwargs: Extra ``timm.create_model`` arguments.

    Shape:
        - Input: ``(B, N, K, 3, H, W)``.
        - Output: ``(B, C)``.
    """

    def __init__(
        self,
        backbone: str | nn.Module = "resnet18",
        num_classes: int = 7,
        hidden_size: int = 512,
        num_layers: int = 1,
        drop_rate: float = 0.0,
        in_chans: int = 3,
        pretrained_backbone: bool = False,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(backbone, num_classes, in_chans, pretrained_backbone, backbone_kwargs)
        self.init_kwargs.update(hidden_size=hidden_size, num_layers=num_layers, drop_rate=drop_rate)
        self.lstm = nn.LSTM(self.num_features, hidden_size, num_layers=num_layers, batch_first=True)
        self.head_hidden_size = int(hidden_size)
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(hidden_size, self.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """LSTM outputs over the N*K frames: ``(B, N*K, hidden_size)``."""
        frames = self.forward_frames(x)
        out, _ = self.lstm(frames.flatten(1, 2))
        return out

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Classify the last LSTM output: ``(B, T, h) -> (B, C)``."""
        last = self.head_drop(x[:, -1])
        return last if pre_logits else self.fc(last)

    def get_classifier(self) -> nn.Module:
        """The final linear layer."""
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """New linear classifier for ``num_classes`` classes."""
        self._set_num_classes(num_classes, global_pool)
        self.fc = nn.Linear(self.fc.in_features, self.num_classes).to(self.fc.weight)


register_pretrained_cfgs(
    [
        default_cfg("frameavg_resnet18", "resnet18", input_size=(3, 224, 224)),
        default_cfg("cnnlstm_resnet18", "resnet18", input_size=(3, 224, 224)),
    ]
)


@register_model
def frameavg_resnet18(pretrained: bool = False, **kwargs: Any) -> FrameAverage:
    """Table 6 "ResNet-18" row: frame-average ResNet-18."""
    model = build_model(
        FrameAverage,
        "frameavg_resnet18",
        pretrained,
        default_args={"backbone": "resnet18"},
        **kwargs,
    )
    return model  # type: ignore[return-value]


@register_model
def cnnlstm_resnet18(pretrained: bool = False, **kwargs: Any) -> CNNLSTM:
    """Table 6 "CNN-LSTM" row: ResNet-18 frame features through a 512-unit LSTM."""
    model = build_model(
        CNNLSTM, "cnnlstm_resnet18", pretrained, default_args={"backbone": "resnet18"}, **kwargs
    )
    return model  # type: ignore[return-value]
