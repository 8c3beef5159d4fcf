"""cefl-zoo: a PyTorch model zoo for video-based facial expression recognition.

Built around CEFLNet (Liu et al., "Clip-aware Expressive Feature Learning for
Video-based Facial Expression Recognition", Information Sciences 2022).

Example:
    >>> import torch, cefl_zoo
    >>> model = cefl_zoo.create_model("ceflnet_tiny").eval()
    >>> logits = model(torch.randn(1, 7, 5, 3, 64, 64))  # (B, N, K, 3, H, W)
    >>> logits.shape
    torch.Size([1, 7])

Every public name loads on first use (PEP 562 ``__getattr__``), so ``import cefl_zoo``
costs milliseconds and the ``cefl-zoo`` command answers ``--help`` without importing
torch. ``cefl_zoo.create_model`` (or any other name) imports what it needs, and the
registry registers the built-in architectures before it answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _lazy
from ._version import __version__

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time these load lazily
    from .complexity import count_macs, count_parameters, model_complexity
    from .faces import FaceCropper, NoFaceError, RetinaFaceDetector, precompute_face_crops
    from .hub import PretrainedWeightsError, WeightsNotTrainedError, load_weights
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
    from .predict import Prediction, Predictor, Timeline
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
    from .train import TrainConfig, Trainer, run_folds
    from .train.evaluate import evaluate  # the function, not the module of its name
    from .transforms import create_model_and_transforms, transforms_for
    from .video import ClipSampler, open_video

# Public name -> the module that defines it; loaded on first access.
# One line per name; keep the list sorted by module. The TYPE_CHECKING block above
# must list the same names (tests/test_lazy_import.py checks both).
_LAZY_IMPORTS: dict[str, str] = {
    "count_macs": "cefl_zoo.complexity",
    "count_parameters": "cefl_zoo.complexity",
    "model_complexity": "cefl_zoo.complexity",
    "FaceCropper": "cefl_zoo.faces",
    "NoFaceError": "cefl_zoo.faces",
    "RetinaFaceDetector": "cefl_zoo.faces",
    "precompute_face_crops": "cefl_zoo.faces",
    "PretrainedWeightsError": "cefl_zoo.hub",
    "WeightsNotTrainedError": "cefl_zoo.hub",
    "load_weights": "cefl_zoo.hub",
    "CANONICAL_EMOTIONS": "cefl_zoo.labels",
    "DATASET_CLASSES": "cefl_zoo.labels",
    "canonical_label": "cefl_zoo.labels",
    "dataset_classes": "cefl_zoo.labels",
    "CEFLNetLoss": "cefl_zoo.losses",
    "ceflnet_loss": "cefl_zoo.losses",
    "CNNLSTM": "cefl_zoo.models",
    "CEFLNet": "cefl_zoo.models",
    "ClipEncoder": "cefl_zoo.models",
    "EmotionIntensityActivation": "cefl_zoo.models",
    "ExplainOutput": "cefl_zoo.models",
    "FrameAverage": "cefl_zoo.models",
    "LocalGlobalRelation": "cefl_zoo.models",
    "SelfAttention": "cefl_zoo.models",
    "VideoClassifier": "cefl_zoo.models",
    "check_video_input": "cefl_zoo.models",
    "emotion_rich_clip": "cefl_zoo.models",
    "Prediction": "cefl_zoo.predict",
    "Predictor": "cefl_zoo.predict",
    "Timeline": "cefl_zoo.predict",
    "PretrainedCfg": "cefl_zoo.registry",
    "UnknownModelError": "cefl_zoo.registry",
    "create_model": "cefl_zoo.registry",
    "get_pretrained_cfg": "cefl_zoo.registry",
    "is_model": "cefl_zoo.registry",
    "list_models": "cefl_zoo.registry",
    "list_pretrained": "cefl_zoo.registry",
    "register_model": "cefl_zoo.registry",
    "TrainConfig": "cefl_zoo.train",
    "Trainer": "cefl_zoo.train",
    "evaluate": "cefl_zoo.train",
    "run_folds": "cefl_zoo.train",
    "create_model_and_transforms": "cefl_zoo.transforms",
    "transforms_for": "cefl_zoo.transforms",
    "ClipSampler": "cefl_zoo.video",
    "open_video": "cefl_zoo.video",
}

# Sub-modules reachable as attributes (``cefl_zoo.models.build_model``) without an
# explicit ``import cefl_zoo.models``, as after an eager package import.
_SUBMODULES = (
    "cli",
    "commands",
    "complexity",
    "data",
    "faces",
    "hub",
    "hub_mixin",
    "labels",
    "losses",
    "model_card",
    "models",
    "predict",
    "registry",
    "train",
    "transforms",
    "video",
)

__all__ = [
    "CANONICAL_EMOTIONS",
    "CNNLSTM",
    "DATASET_CLASSES",
    "CEFLNet",
    "CEFLNetLoss",
    "ClipEncoder",
    "ClipSampler",
    "EmotionIntensityActivation",
    "ExplainOutput",
    "FaceCropper",
    "FrameAverage",
    "LocalGlobalRelation",
    "NoFaceError",
    "Prediction",
    "Predictor",
    "PretrainedCfg",
    "PretrainedWeightsError",
    "RetinaFaceDetector",
    "SelfAttention",
    "Timeline",
    "TrainConfig",
    "Trainer",
    "UnknownModelError",
    "VideoClassifier",
    "WeightsNotTrainedError",
    "__version__",
    "canonical_label",
    "ceflnet_loss",
    "check_video_input",
    "count_macs",
    "count_parameters",
    "create_model",
    "create_model_and_transforms",
    "dataset_classes",
    "emotion_rich_clip",
    "evaluate",
    "get_pretrained_cfg",
    "is_model",
    "list_models",
    "list_pretrained",
    "load_weights",
    "model_complexity",
    "open_video",
    "precompute_face_crops",
    "register_model",
    "run_folds",
    "transforms_for",
]


__getattr__, __dir__ = _lazy.attach(__name__, _LAZY_IMPORTS, _SUBMODULES)
