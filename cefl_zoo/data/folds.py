"""Subject-independent k-fold splits (MMI, BU-3DFE: the paper's 10-fold protocol).

In a subject-independent split no person appears in both the training and the test part,
so a model cannot score by recognising faces. :func:`subject_kfold` assigns whole
subjects to folds:

* **deterministic and seeded**: the same subjects and seed always give the same folds,
  whatever order the items come in;
* **balanced**: subjects are dealt largest first to the fold with the fewest items so
  far (ties broken by a seeded shuffle), so fold sizes differ by at most the size of one
  subject's item set, usually by one item or less.

Folds are numbered from 1, as the datasets number their official splits (DFEW's
``set_1 .. set_5``).

Example:
    >>> from cefl_zoo.data.folds import subject_kfold, fold_indices
    >>> subjects = ["s1", "s1", "s2", "s3", "s3", "s4"]
    >>> folds = subject_kfold(subjects, n_folds=2, seed=0)
    >>> sorted(set(folds))
    [1, 2]
    >>> train, test = fold_indices(subjects, fold=1, n_folds=2, seed=0)
    >>> {subjects[i] for i in train} & {subjects[i] for i in test}
    set()
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Hashable, Sequence

__all__ = ["check_fold", "fold_indices", "subject_kfold"]


def check_fold(fold: int | str | None, n_folds: int, dataset: str = "dataset") -> int:
    """Validate a 1-based fold number (``"3"`` is accepted) and return it as ``int``.

    Raises:
        ValueError: For ``None``, a non-number, or a number outside ``1..n_folds``.
    """
    if fold is None:
        raise ValueError(
            f"{dataset} has {n_folds} folds: pass fold=1..{n_folds} (the paper reports the "
            "mean over all folds)"
        )
    try:
        value = int(str(fold).strip().removeprefix("set_").removeprefix("fold"))
    except ValueError:
        raise ValueError(f"{dataset}: fold must be a number 1..{n_folds}, got {fold!r}") from None
    if not 1 <= value <= n_folds:
        raise ValueError(f"{dataset}: fold must be in 1..{n_folds}, got {fold!r}")
    return value


def subject_kfold(subjects: Sequence[Hashable], n_folds: int = 10, seed: int = 0) -> list[int]:
    """Assign every item to a fold (1-based) so that each subject is in one fold only.

    Args:
        subjects: The subject id of every item.
        n_folds: Number of folds.
        seed: Seed of the tie-breaking shuffle.

    Returns:
        The fold number (``1..n_folds``) of every item, in item order.

    Raises:
        ValueError: If there are fewer subjects than folds.

    Example:
        >>> subject_kfold(["a", "b", "a", "c"], n_folds=3)
        [1, 3, 1, 2]
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    counts = Counter(subjects)
    if len(counts) < n_folds:
        raise ValueError(
            f"{len(counts)} subjects cannot make {n_folds} subject-independent folds; "
            f"use n_folds <= {len(counts)}"
        )
    # Order independent of item order: sort by name, shuffle with the seed (tie-break),
    # then a stable sort puts subjects with more items first.
    names = sorted(counts, key=lambda s: (type(s).__name__, str(s)))
    random.Random(seed).shuffle(names)
    names.sort(key=lambda s: -counts[s])
    sizes = [0] * n_folds
    members = [0] * n_folds
    fold_of: dict[Hashable, int] = {}
    for name in names:
        f = min(range(n_folds), key=lambda k: (sizes[k], members[k], k))
        fold_of[name] = f + 1
        sizes[f] += counts[name]
        members[f] += 1
    return [fold_of[s] for s in subjects]


def fold_indices(
    subjects: Sequence[Hashable], fold: int, n_folds: int = 10, seed: int = 0
) -> tuple[list[int], list[int]]:
    """Train and test item indices of one fold of :func:`subject_kfold`.

    Args:
        subjects: The subject id of every item.
        fold: Test fold, ``1..n_folds``.
        n_folds: Number of folds.
        seed: Seed of :func:`subject_kfold`.

    Returns:
        ``(train, test)`` index lists, each in item order.
    """
    fold = check_fold(fold, n_folds)
    folds = subject_kfold(subjects, n_folds, seed)
    train = [i for i, f in enumerate(folds) if f != fold]
    test = [i for i, f in enumerate(folds) if f == fold]
    return train, test
