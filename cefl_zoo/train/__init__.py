"""Training and evaluation: the paper's recipe, resumable, mixed precision, multi-GPU.

* :class:`TrainConfig` - every option, defaults from the paper's Table 1;
* :class:`Trainer` / :func:`train` - the training loop (``cefl-zoo train``);
* :func:`evaluate` - WAR, UAR, per-class recall, confusion matrix and the emotion-rich
  clip-locating accuracy (``cefl-zoo eval``);
* :func:`run_folds` - k-fold / official-split protocols with mean +- std
  (``cefl-zoo kfold``);
* :mod:`~cefl_zoo.train.checkpoint`, :mod:`~cefl_zoo.train.metrics`,
  :mod:`~cefl_zoo.train.plots`, :mod:`~cefl_zoo.train.distributed` - the pieces.

Example:
    >>> from cefl_zoo.train import TrainConfig
    >>> TrainConfig(model="ceflnet_tiny", data="synthetic:/tmp/synth").epochs
    120
"""

from typing import TYPE_CHECKING

from .. import _lazy

if TYPE_CHECKING:
    from .checkpoint import CheckpointError, CheckpointMismatchError, load_checkpoint
    from .config import ConfigError, DataSpec, TrainConfig, parse_data_spec
    from .evaluate import EvalResult, evaluate
    from .kfold import FOLD_PROTOCOLS, fold_protocol, run_folds, summarize_folds
    from .loaders import DataError, label_mapping
    from .metrics import (
        classification_metrics,
        clip_locating_accuracy,
        compute_metrics,
        format_metrics,
    )
    from .trainer import Trainer, seed_everything, train

# Loaded on first access, so that ``cefl_zoo.train.config`` (the CLI's option parser)
# imports without torch.
_LAZY_IMPORTS: dict[str, str] = {
    "CheckpointError": "cefl_zoo.train.checkpoint",
    "CheckpointMismatchError": "cefl_zoo.train.checkpoint",
    "load_checkpoint": "cefl_zoo.train.checkpoint",
    "ConfigError": "cefl_zoo.train.config",
    "DataSpec": "cefl_zoo.train.config",
    "parse_data_spec": "cefl_zoo.train.config",
    "TrainConfig": "cefl_zoo.train.config",
    "EvalResult": "cefl_zoo.train.evaluate",
    "evaluate": "cefl_zoo.train.evaluate",
    "fold_protocol": "cefl_zoo.train.kfold",
    "FOLD_PROTOCOLS": "cefl_zoo.train.kfold",
    "run_folds": "cefl_zoo.train.kfold",
    "summarize_folds": "cefl_zoo.train.kfold",
    "DataError": "cefl_zoo.train.loaders",
    "label_mapping": "cefl_zoo.train.loaders",
    "classification_metrics": "cefl_zoo.train.metrics",
    "clip_locating_accuracy": "cefl_zoo.train.metrics",
    "compute_metrics": "cefl_zoo.train.metrics",
    "format_metrics": "cefl_zoo.train.metrics",
    "seed_everything": "cefl_zoo.train.trainer",
    "train": "cefl_zoo.train.trainer",
    "Trainer": "cefl_zoo.train.trainer",
}

__all__ = [
    "FOLD_PROTOCOLS",
    "CheckpointError",
    "CheckpointMismatchError",
    "ConfigError",
    "DataError",
    "DataSpec",
    "EvalResult",
    "TrainConfig",
    "Trainer",
    "classification_metrics",
    "clip_locating_accuracy",
    "compute_metrics",
    "evaluate",
    "fold_protocol",
    "format_metrics",
    "label_mapping",
    "load_checkpoint",
    "parse_data_spec",
    "run_folds",
    "seed_everything",
    "summarize_folds",
    "train",
]

# Sub-modules reachable as attributes without importing them first.
_SUBMODULES = (
    "checkpoint",
    "config",
    "distributed",
    "evaluate",
    "kfold",
    "loaders",
    "metrics",
    "plots",
    "schedule",
    "trainer",
)

__getattr__, __dir__ = _lazy.attach(__name__, _LAZY_IMPORTS, _SUBMODULES)
