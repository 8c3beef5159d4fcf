"""Frame backbones: any ``timm`` image model, used as a per-frame feature extractor."""

from __future__ import annotations

from typing import Any

import timm
from torch import nn

__all__ = ["backbone_data_config", "create_backbone"]


def create_backbone(
    backbone: str | nn.Module,
    pretrained: bool = False,
    in_chans: int = 3,
    **kwargs: Any,
) -> nn.Module:
    """Create a pooled frame feature extractor.

    Args:
        backbone: A ``timm.create_model`` name (``"resnet18"``, ``"convnext_tiny"``, ...)
            or a module that maps ``(M, C, H, W)`` frames to ``(M, d)`` features and has a
            ``num_features`` attribute giving ``d``.
        pretrained: Load the backbone's ImageNet weights through timm (needs network
            access or a populated Hugging Face cache).
        in_chans: Input channels of each frame.
        **kwargs: Passed to ``timm.create_model`` (e.g. ``drop_path_rate``).

    Returns:
        A module with ``num_features`` set, created with ``num_classes=0`` so that it
        returns globally pooled features.

    Raises:
        ValueError: For a module without ``num_features``, or an unknown timm name.
        RuntimeError: When ``pretrained=True`` and the weights cannot be fetched.
    """
    if isinstance(backbone, nn.Module):
        if not isinstance(getattr(backbone, "num_features", None), int):
            raise ValueError(
                f"backbone module {type(backbone).__name__} has no integer `num_features` "
                "attribute; set it to the size d of the (M, d) features it returns."
            )
        return backbone
    if not timm.is_model(backbone):
        import difflib

        close = difflib.get_close_matches(backbone, timm.list_models(), n=5)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ValueError(f"unknown timm backbone {backbone!r}.{hint}")
    try:
        return timm.create_model(
            backbone, pretrained=pretrained, num_classes=0, in_chans=in_chans, **kwargs
        )
    except Exception as err:  # network / cache failures surface with many types
        if not pretrained:
            raise
        raise RuntimeError(
            f"could not load ImageNet weights for backbone {backbone!r} through timm "
            f"({type(err).__name__}: {err}). Without network access, either pass "
            "pretrained_backbone=False, or put the weights in the Hugging Face cache "
            "beforehand (HF_HUB_CACHE), or pass "
            "backbone_kwargs={'pretrained_cfg_overlay': {'file': '/path/to/weights'}}."
        ) from err


def backbone_data_config(backbone: nn.Module) -> dict[str, Any]:
    """Preprocessing timm recommends for a backbone.

    Returns:
        A dict with ``input_size`` ``(C, H, W)``, ``mean``, ``std`` and
        ``interpolation``; ImageNet defaults for modules that are not timm models.
    """
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    return {
        "input_size": tuple(cfg.get("input_size", (3, 224, 224))),
        "mean": tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
        "std": tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        "interpolation": cfg.get("interpolation", "bilinear"),
    }
