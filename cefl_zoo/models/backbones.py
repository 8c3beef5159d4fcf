"""Frame backbones: any ``timm`` image model, used as a per-frame feature extractor."""

from __future__ import annotations

from typing import Any

import timm
from torch import nn

__all__ = ["backbone_data_config", "backbone_feature_dim", "create_backbone"]


def create_backbone(
    backbone: str | nn.Module,
    pretrained: bool = False,
    in_chans: int = 3,
    **kwargs: Any,
) -> nn.Module:
    """Create a pooled frame feature extractor.

    Args:
        backbone: A ``timm.create_model`` name (``"resnet18"``, ``"convnext_tiny"``,
            ``"resnet18.a1_in1k"``, ``"hf-hub:timm/resnet18.a1_in1k"``,
            ``"local-dir:/path"``, ...) or a module that maps ``(M, C, H, W)`` frames to
            ``(M, d)`` features and has a ``num_features`` attribute giving ``d``.
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
        backbone_feature_dim(backbone)  # raises for a module without num_features
        return backbone
    # timm resolves "hf-hub:org/repo" and "local-dir:/path" itself (config + weights).
    remote = backbone.startswith(("hf-hub:", "hf_hub:", "local-dir:"))
    if not remote and not timm.is_model(backbone):
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


def backbone_feature_dim(backbone: nn.Module) -> int:
    """Size d of the ``(M, d)`` features a backbone made by :func:`create_backbone` returns.

    timm models built with ``num_classes=0`` return their pre-logits features, which is
    ``head_hidden_size`` where a model has a head block after its last stage
    (MobileNetV3: 1024 or 1280 against ``num_features`` 288 or 960) and ``num_features``
    otherwise.
    """
    dim = getattr(backbone, "head_hidden_size", None) or getattr(backbone, "num_features", None)
    if not isinstance(dim, int):
        raise ValueError(  # noqa: TRY004 (kept: callers catch ValueError for a bad backbone)
            f"backbone module {type(backbone).__name__} has no integer `num_features` "
            "attribute; set it to the size d of the (M, d) features it returns."
        )
    return dim


def _fixed_input_size(backbone: nn.Module) -> tuple[int, int] | None:
    """The frame size a backbone insists on (ViT-style patch embeddings), else ``None``."""
    embed = getattr(backbone, "patch_embed", None)
    size = getattr(embed, "img_size", None)
    if size is None or not getattr(embed, "strict_img_size", True):
        return None
    if getattr(backbone, "dynamic_img_size", False):
        return None
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    return int(h), int(w)


def backbone_data_config(backbone: nn.Module) -> dict[str, Any]:
    """Preprocessing timm recommends for a backbone.

    Returns:
        A dict with ``input_size`` ``(C, H, W)``, ``mean``, ``std`` and
        ``interpolation``; ImageNet defaults for modules that are not timm models. A
        backbone built for a fixed frame size (a ViT made with ``img_size=64``) reports
        that size rather than its weights' default.
    """
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    input_size = tuple(cfg.get("input_size", (3, 224, 224)))
    fixed = _fixed_input_size(backbone)
    if fixed is not None:
        input_size = (input_size[0], *fixed)
    return {
        "input_size": input_size,
        "mean": tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
        "std": tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        "interpolation": cfg.get("interpolation", "bilinear"),
    }
