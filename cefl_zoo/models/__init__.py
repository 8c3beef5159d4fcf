"""Model architectures; importing this package registers them.

* :mod:`~cefl_zoo.models.clip_encoder` - SAL + LRL (paper section 3.2)
* :mod:`~cefl_zoo.models.eian` - emotional intensity activation (section 3.3)
* :mod:`~cefl_zoo.models.ceflnet` - the full model and its clip-encoder ablations
* :mod:`~cefl_zoo.models.baselines` - frame average and CNN-LSTM (Table 6)
"""

from .base import EXPECTED_SHAPE, ExplainOutput, VideoClassifier, build_model, check_video_input
from .baselines import CNNLSTM, FrameAverage
from .ceflnet import CEFLNet, MeanClipHead
from .clip_encoder import ClipEncoder, LocalGlobalRelation, SelfAttention
from .eian import EIANOutput, EmotionIntensityActivation, emotion_rich_clip

# isort: split
# Last: registering the weight sets needs the architectures registered above.
from . import weights  # noqa: F401

__all__ = [
    "CNNLSTM",
    "EXPECTED_SHAPE",
    "CEFLNet",
    "ClipEncoder",
    "EIANOutput",
    "EmotionIntensityActivation",
    "ExplainOutput",
    "FrameAverage",
    "LocalGlobalRelation",
    "MeanClipHead",
    "SelfAttention",
    "VideoClassifier",
    "build_model",
    "check_video_input",
    "emotion_rich_clip",
]
