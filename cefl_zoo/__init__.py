"""cefl-zoo: a PyTorch model zoo for video-based facial expression recognition.

Built around CEFLNet (Liu et al., "Clip-aware Expressive Feature Learning for
Video-based Facial Expression Recognition", Information Sciences 2022).

Example:
    >>> import torch, cefl_zoo
    >>> model = cefl_zoo.create_model("ceflnet_tiny").eval()
    >>> logits = model(torch.randn(1, 7, 5, 3, 64, 64))  # (B, N, K, 3, H, W)
    >>> logits.shape
    torch.Size([1, 7])

The core (models, registry, losses, complexity) is imported eagerly. Names from the
data, training, hub and prediction modules load on first use, so ``import cefl_zoo``
stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .complexity import count_macs, count_parameters, model_complexity
from .labels import CANONICAL_EMOTIONS, DATASET_CLASSES, canonical_label, dataset_classes
from .losses import CEFLNetLoss, ceflnet_loss
from .models import (
    CNNLSTM,
    CEFLNet,
    ClipEncoder,
    EmotionIntensityActivation,
    ExplainOutput,
    FrameAverage,
    LocalGlobalRelation,
    SelfAttention,
    VideoClassifier,
    check_video_input,
    emotion_rich_clip,
)
from .registry import (
    PretrainedCfg,
    UnknownModelError,
    create_model,
    get_pretrained_cfg,
    is_model,
    list_models,
    list_pretrained,
    register_model,
)

# Public names defined in modules that load on first access: name -> module.
# One line per name; keep the list sorted by module.
_LAZY_IMPORTS: dict[str, str] = {
    "FaceCropper": "cefl_zoo.faces",
    "NoFaceError": "cefl_zoo.faces",
    "RetinaFaceDetector": "cefl_zoo.faces",
    "precompute_face_crops": "cefl_zoo.faces",
    "PretrainedWeightsError": "cefl_zoo.hub",
    "WeightsNotTrainedError": "cefl_zoo.hub",
    "load_weights": "cefl_zoo.hub",
    "Prediction": "cefl_zoo.predict",
    "Predictor": "cefl_zoo.predict",
    "Timeline": "cefl_zoo.predict",
    "TrainConfig": "cefl_zoo.train",
    "Trainer": "cefl_zoo.train",
    "evaluate": "cefl_zoo.train",
    "run_folds": "cefl_zoo.train",
    "create_model_and_transforms": "cefl_zoo.transforms",
    "transforms_for": "cefl_zoo.transforms",
    "open_video": "cefl_zoo.video",
    "ClipSampler": "cefl_zoo.video",
}

__all__ = [
    "__version__",
    "CANONICAL_EMOTIONS",
    "CEFLNet",
    "CEFLNetLoss",
    "CNNLSTM",
    "ClipEncoder",
    "DATASET_CLASSES",
    "EmotionIntensityActivation",
    "ExplainOutput",
    "FrameAverage",
    "LocalGlobalRelation",
    "PretrainedCfg",
    "SelfAttention",
    "UnknownModelError",
    "VideoClassifier",
    "canonical_label",
    "ceflnet_loss",
    "check_video_input",
    "count_macs",
    "count_parameters",
    "create_model",
    "dataset_classes",
    "emotion_rich_clip",
    "get_pretrained_cfg",
    "is_model",
    "list_models",
    "list_pretrained",
    "model_complexity",
    "register_model",
    *_LAZY_IMPORTS,
]


def __getattr__(name: str) -> Any:
    module = _LAZY_IMPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cefl_zoo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_IMPORTS))
