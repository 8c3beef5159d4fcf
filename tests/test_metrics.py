"""Metrics: WAR, UAR, per-class recall, confusion matrix, clip-locating accuracy, plots."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cefl_zoo.train.metrics import (
    classification_metrics,
    clip_locating_accuracy,
    compute_metrics,
    confusion_matrix,
    format_metrics,
)


def test_confusion_matrix_rows_are_true_classes():
    cm = confusion_matrix(torch.tensor([0, 2, 2, 1, 0]), torch.tensor([0, 0, 2, 1, 1]), 3)
    assert cm.tolist() == [[1, 0, 1], [1, 1, 0], [0, 0, 1]]
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        confusion_matrix(torch.tensor([0]), torch.tensor([3]), 3)
    with pytest.raises(ValueError, match="differ in length"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 3)


def test_war_and_uar_differ_on_imbalanced_data():
    # 8 videos of class 0 (all right), 2 of class 1 (one right): WAR 0.9, UAR 0.75
    labels = torch.tensor([0] * 8 + [1, 1])
    preds = torch.tensor([0] * 8 + [1, 0])
    m = classification_metrics(preds, labels, 2, ["happiness", "sadness"])
    assert m["war"] == pytest.approx(0.9)
    assert m["uar"] == pytest.approx(0.75)
    assert m["per_class"] == {"happiness": 1.0, "sadness": 0.5}
    assert m["support"] == [8, 2]
    json.dumps(m)  # serialisable


def test_uar_skips_classes_without_videos():
    m = classification_metrics(torch.tensor([0, 1, 0]), torch.tensor([0, 1, 1]), 3)
    assert m["per_class_recall"] == [1.0, 0.5, None]
    assert m["uar"] == pytest.approx(0.75)
    assert m["class_names"] == ["class_0", "class_1", "class_2"]


def test_clip_locating_counts_only_known_apex():
    out = clip_locating_accuracy(torch.tensor([1, 2, 3, 0]), torch.tensor([1, 0, -1, 0]))
    assert out == {"accuracy": pytest.approx(2 / 3), "num_videos": 3}
    assert clip_locating_accuracy(torch.tensor([1]), torch.tensor([-1])) == {
        "accuracy": None,
        "num_videos": 0,
    }


def test_compute_metrics_reports_apex_for_true_and_predicted_class():
    # 2 videos, 2 classes, 3 clips. Video 0: true class 0, predicted 1. Video 1: right.
    logits = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    labels = torch.tensor([0, 0])
    scores = torch.tensor(
        [
            [[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]],  # class 0 peaks at clip 0, class 1 at clip 2
            [[0.1, 0.8, 0.1], [0.3, 0.3, 0.4]],
        ]
    )
    apex = torch.tensor([0, 1])
    m = compute_metrics(logits, labels, ["anger", "fear"], clip_scores=scores, apex_clip=apex)
    assert m["war"] == 0.5
    loc = m["clip_locating"]
    assert loc["gt_class"] == 1.0  # ground-truth class scores peak at the apex both times
    assert loc["pred_class"] == 0.5  # video 0's predicted class peaks at clip 2
    assert loc["num_videos"] == 2 and loc["chance"] == pytest.approx(1 / 3)
    text = format_metrics(m)
    assert "WAR 50.00 %" in text and "chance 33.33" in text and "anger" in text
    # without known apex clips there is nothing to report
    m2 = compute_metrics(
        logits, labels, ["anger", "fear"], clip_scores=scores, apex_clip=torch.tensor([-1, -1])
    )
    assert "clip_locating" not in m2


def test_empty_metrics_are_nan_not_errors():
    m = classification_metrics(
        torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), 2
    )
    assert m["num_videos"] == 0 and math.isnan(m["war"]) and math.isnan(m["uar"])


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_plots_write_pngs(tmp_path):
    from cefl_zoo.train.plots import plot_confusion_matrix, plot_training_curves

    names = ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]
    cm = torch.eye(7, dtype=torch.long) * 5
    cm[6, 5] = 3
    path = plot_confusion_matrix(cm.tolist(), names, tmp_path / "cm.png")
    w, h = _png_size(path)
    assert w > 300 and h > 300
    history = [
        {
            "epoch": 1,
            "train_loss": 1.5,
            "val_loss": 1.4,
            "train_acc": 0.3,
            "val_war": 0.35,
            "val_uar": 0.3,
            "lr": 1e-4,
        },
        {
            "epoch": 2,
            "train_loss": 1.0,
            "val_loss": 1.1,
            "train_acc": 0.6,
            "val_war": 0.5,
            "val_uar": None,
            "lr": 5e-5,
        },
    ]
    w, h = _png_size(plot_training_curves(history, tmp_path / "sub" / "curves.png"))
    assert w > h > 200
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["cm.png", "curves.png"]
