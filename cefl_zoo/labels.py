"""Emotion label vocabularies.

Every dataset orders (and spells) its classes its own way: DFEW numbers *Happy* first,
AFEW sorts its folders alphabetically, MAFW adds four compound emotions. Weights trained
on one dataset and read with another dataset's order predict the wrong names, the most
common complaint about published DFER checkpoints. ``cefl_zoo`` therefore keeps

* one **canonical vocabulary** of lower-case emotion names (:data:`CANONICAL_EMOTIONS`),
* the **published class order** of each supported dataset (:data:`DATASET_CLASSES`),
  spelled in canonical names, and
* :func:`canonical_label`, which maps the spellings found in the wild ("Happy", "happy",
  "Happiness", "joy", "angry", "Anger", ...) to canonical names.

Models store the class names they were trained with, in order, in
``model.pretrained_cfg.label_names``.

Example:
    >>> from cefl_zoo.labels import DATASET_CLASSES, canonical_label
    >>> DATASET_CLASSES["dfew"][:3]
    ('happiness', 'sadness', 'neutral')
    >>> canonical_label("Angry")
    'anger'
"""

from __future__ import annotations

import difflib

__all__ = [
    "BASIC6",
    "BASIC7",
    "CANONICAL_EMOTIONS",
    "DATASET_CLASSES",
    "canonical_label",
    "dataset_classes",
]

#: Every emotion name ``cefl_zoo`` knows, in canonical spelling.
CANONICAL_EMOTIONS: tuple[str, ...] = (
    "anger",
    "disgust",
    "fear",
    "happiness",
    "sadness",
    "surprise",
    "neutral",
    "contempt",
    "anxiety",
    "helplessness",
    "disappointment",
)

#: The six basic emotions plus neutral, in the order ``cefl_zoo`` uses when a dataset
#: does not impose one (for example the built-in synthetic data).
BASIC7: tuple[str, ...] = CANONICAL_EMOTIONS[:7]

#: The six basic emotions (MMI, BU-3DFE), in the order the paper lists them.
BASIC6: tuple[str, ...] = CANONICAL_EMOTIONS[:6]

#: Published class order of each dataset, in canonical names. The index of a name is the
#: 0-based class index the dataset adapters emit.
DATASET_CLASSES: dict[str, tuple[str, ...]] = {
    # DFEW's EmoLabel_DataSplit CSVs: 1 Happy, 2 Sad, 3 Neutral, 4 Angry, 5 Surprise,
    # 6 Disgust, 7 Fear (1-based in the files, 0-based here).
    "dfew": ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"),
    # FERV39k uses the same seven names as DFEW and, in its split files, the same order.
    "ferv39k": ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"),
    # MAFW's single-label split files use these eleven names in this order.
    "mafw": (
        "anger",
        "disgust",
        "fear",
        "happiness",
        "neutral",
        "sadness",
        "surprise",
        "contempt",
        "anxiety",
        "helplessness",
        "disappointment",
    ),
    # AFEW ships one folder per emotion; sorted folder names give this order.
    "afew": ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise"),
    # MMI and BU-3DFE: the six basic expressions, as listed in the paper (section 4.1).
    "mmi": BASIC6,
    "bu3dfe": ("anger", "disgust", "happiness", "fear", "sadness", "surprise"),
    # The built-in synthetic data (cefl_zoo.data.synthetic).
    "synthetic": BASIC7,
}

_ALIASES: dict[str, str] = {
    "angry": "anger",
    "anger": "anger",
    "an": "anger",
    "disgust": "disgust",
    "disgusted": "disgust",
    "di": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "fe": "fear",
    "happy": "happiness",
    "happiness": "happiness",
    "joy": "happiness",
    "ha": "happiness",
    "sad": "sadness",
    "sadness": "sadness",
    "sa": "sadness",
    "surprise": "surprise",
    "surprised": "surprise",
    "su": "surprise",
    "neutral": "neutral",
    "neu": "neutral",
    "ne": "neutral",
    "contempt": "contempt",
    "anxiety": "anxiety",
    "anxious": "anxiety",
    "helplessness": "helplessness",
    "helpless": "helplessness",
    "disappointment": "disappointment",
    "disappointed": "disappointment",
}


def canonical_label(name: str) -> str:
    """Map a dataset's spelling of an emotion to its canonical name.

    Args:
        name: An emotion name as found in a dataset (case and surrounding spaces are
            ignored), e.g. ``"Happy"``, ``"angry"``, ``"Surprised"``.

    Returns:
        The canonical name, one of :data:`CANONICAL_EMOTIONS`.

    Raises:
        ValueError: If the name is not a known emotion; the message lists the closest
            known names.

    Example:
        >>> canonical_label(" Happy ")
        'happiness'
    """
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    if key in _ALIASES:
        return _ALIASES[key]
    close = difflib.get_close_matches(key, list(_ALIASES), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"unknown emotion label {name!r}.{hint} Known labels: {', '.join(CANONICAL_EMOTIONS)}."
    )


def dataset_classes(dataset: str) -> tuple[str, ...]:
    """Return the published class order of a dataset, in canonical names.

    Args:
        dataset: One of the keys of :data:`DATASET_CLASSES` (case-insensitive, ``-`` and
            ``_`` ignored, so ``"BU-3DFE"`` works).

    Returns:
        The class names; a name's position is the class index.

    Raises:
        ValueError: For an unknown dataset name.

    Example:
        >>> dataset_classes("MMI")
        ('anger', 'disgust', 'fear', 'happiness', 'sadness', 'surprise')
    """
    key = dataset.strip().lower().replace("-", "").replace("_", "")
    if key not in DATASET_CLASSES:
        raise ValueError(
            f"unknown dataset {dataset!r}; known datasets: {', '.join(sorted(DATASET_CLASSES))}"
        )
    return DATASET_CLASSES[key]
