"""Adapters for the benchmark datasets, each reading its publisher's own layout.

Importing this package registers them with :func:`~cefl_zoo.data.register_dataset`:

=========  ==========================  =======  ===============================
name       class                       classes  splits
=========  ==========================  =======  ===============================
dfew       :class:`DFEW`               7        train / test, folds 1..5
ferv39k    :class:`FERV39k`            7        train / test
mafw       :class:`MAFW`               11       train / test, folds 1..5
afew       :class:`AFEW`               7        train / val
mmi        :class:`MMI`                6        train / test / all, folds 1..10
bu3dfe     :class:`BU3DFE`             6        train / test / all, folds 1..10
=========  ==========================  =======  ===============================

Class indices follow :data:`cefl_zoo.labels.DATASET_CLASSES`. MMI and BU-3DFE folds are
subject-independent (:mod:`cefl_zoo.data.folds`). No adapter ever writes into the dataset
directory.

Example:
    >>> from cefl_zoo.data import build_dataset, list_datasets
    >>> {"dfew", "ferv39k", "mafw", "afew", "mmi", "bu3dfe"} <= set(list_datasets())
    True
    >>> ds = build_dataset("dfew", "/data/DFEW", split="test", fold=1)  # doctest: +SKIP
"""

from .._listing import ListedVideo
from ._common import BenchmarkDataset, SubjectFoldsMixin
from .afew import AFEW
from .bu3dfe import BU3DFE
from .dfew import DFEW
from .ferv39k import FERV39k
from .mafw import MAFW
from .mmi import MMI

__all__ = [
    "AFEW",
    "BU3DFE",
    "DFEW",
    "MAFW",
    "MMI",
    "BenchmarkDataset",
    "FERV39k",
    "ListedVideo",
    "SubjectFoldsMixin",
]
