"""Subject-independent k-fold splits (cefl_zoo.data.folds)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from cefl_zoo.data.folds import check_fold, fold_indices, subject_kfold


def _mmi_like(seed=0):
    """205 sequences of 30 subjects with uneven counts, like MMI's six-class subset."""
    rng = random.Random(seed)
    counts = [3] * 30
    for _ in range(205 - 90):
        counts[rng.randrange(30)] += 1
    subjects = [f"S{k:03d}" for k, n in enumerate(counts) for _ in range(n)]
    rng.shuffle(subjects)
    return subjects


def test_no_subject_is_in_two_folds_and_every_fold_is_used():
    subjects = _mmi_like()
    folds = subject_kfold(subjects, n_folds=10, seed=0)
    assert sorted(set(folds)) == list(range(1, 11))
    fold_of = {}
    for s, f in zip(subjects, folds):
        assert fold_of.setdefault(s, f) == f


def test_fold_sizes_are_balanced():
    subjects = _mmi_like()
    sizes = Counter(subject_kfold(subjects, n_folds=10))
    largest_subject = max(Counter(subjects).values())
    assert max(sizes.values()) - min(sizes.values()) <= largest_subject
    assert sum(sizes.values()) == 205
    even = [f"s{k}" for k in range(20) for _ in range(6)]  # 20 subjects x 6 sequences
    assert set(Counter(subject_kfold(even, n_folds=10)).values()) == {12}


def test_folds_are_deterministic_seeded_and_independent_of_item_order():
    subjects = _mmi_like()
    a = subject_kfold(subjects, 10, seed=3)
    assert a == subject_kfold(list(subjects), 10, seed=3)
    shuffled = list(range(len(subjects)))
    random.Random(1).shuffle(shuffled)
    b = subject_kfold([subjects[i] for i in shuffled], 10, seed=3)
    assert {subjects[i]: f for i, f in zip(shuffled, b)} == dict(zip(subjects, a))
    assert any(subject_kfold(subjects, 10, seed=s) != a for s in range(4, 8))


def test_fold_indices_partition_items_without_shared_subjects():
    subjects = _mmi_like()
    seen_test = []
    for fold in range(1, 11):
        train, test = fold_indices(subjects, fold, n_folds=10, seed=0)
        assert sorted(train + test) == list(range(len(subjects)))
        assert not {subjects[i] for i in train} & {subjects[i] for i in test}
        seen_test += test
    assert sorted(seen_test) == list(range(len(subjects)))  # every item tested exactly once


def test_too_few_subjects_or_folds_raise():
    with pytest.raises(ValueError, match="3 subjects cannot make 10 subject-independent folds"):
        subject_kfold(["a", "b", "c", "a"], n_folds=10)
    with pytest.raises(ValueError, match="n_folds must be >= 2"):
        subject_kfold(["a", "b"], n_folds=1)


@pytest.mark.parametrize(
    "fold, message",
    [(None, "pass fold=1..10"), (0, "in 1..10"), (11, "in 1..10"), ("x", "must be a number")],
)
def test_check_fold_rejects_bad_folds(fold, message):
    with pytest.raises(ValueError, match=message):
        check_fold(fold, 10, "MMI")


def test_check_fold_accepts_numbers_and_set_names():
    assert check_fold(3, 5) == check_fold("3", 5) == check_fold("set_3", 5) == 3
