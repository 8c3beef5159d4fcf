"""Prediction: from a video file to an explained expression prediction.

* :mod:`~cefl_zoo.predict.predictor` - :class:`Predictor`: sampling, decoding, face
  cropping, batching and the model, for one video, many, or a long video's timeline.
* :mod:`~cefl_zoo.predict.result` - :class:`Prediction` (label, probabilities, per-clip
  emotion intensity, emotion-rich clip in frames and seconds, frame weights) and
  :class:`PredictionFailure`.
* :mod:`~cefl_zoo.predict.timeline` - :class:`Timeline` and the sliding-window
  arithmetic for long, untrimmed videos.
* :mod:`~cefl_zoo.predict.plot` - the PNG figures (the paper's Fig. 6, timelines).
* :mod:`~cefl_zoo.predict.inputs` - folders to lists of videos.
* :mod:`~cefl_zoo.predict.benchmark` - predictor throughput and where the time goes.

Example:
    >>> import torch, cefl_zoo
    >>> predictor = cefl_zoo.Predictor(cefl_zoo.create_model("ceflnet_tiny"), device="cpu")
    >>> result = predictor.predict(torch.zeros(30, 3, 64, 64, dtype=torch.uint8))
    >>> sorted(result.to_dict())[:4]
    ['clips', 'emotion_rich_clip', 'label', 'model']
"""

from .inputs import VIDEO_EXTENSIONS, expand_inputs
from .predictor import (
    DEFAULT_MODEL,
    ModelForwardError,
    Predictor,
    StageTimes,
    load_model_for_inference,
)
from .result import Prediction, PredictionFailure
from .timeline import Timeline, parse_span, window_starts

__all__ = [
    "DEFAULT_MODEL",
    "VIDEO_EXTENSIONS",
    "ModelForwardError",
    "Prediction",
    "PredictionFailure",
    "Predictor",
    "StageTimes",
    "Timeline",
    "expand_inputs",
    "load_model_for_inference",
    "parse_span",
    "window_starts",
]
