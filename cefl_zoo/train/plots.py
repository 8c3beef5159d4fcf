"""PNG figures of a run: the confusion matrix and the training curves.

Drawn with matplotlib's object API on the Agg canvas, so nothing touches ``pyplot``'s
global state or needs a display.

Example:
    >>> import tempfile, os
    >>> from cefl_zoo.train.plots import plot_confusion_matrix
    >>> path = os.path.join(tempfile.mkdtemp(), "cm.png")
    >>> plot_confusion_matrix([[3, 1], [0, 4]], ["joy", "sad"], path)  # doctest: +ELLIPSIS
    PosixPath('...cm.png')
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._plotting import new_figure as _figure
from .._plotting import save_png as _save

__all__ = ["plot_confusion_matrix", "plot_training_curves"]


def plot_confusion_matrix(
    matrix: Sequence[Sequence[int]],
    class_names: Sequence[str],
    path: str | os.PathLike,
    normalize: bool = True,
    title: str = "Confusion matrix",
) -> Path:
    """Draw a confusion matrix (rows: true class, columns: predicted class) to a PNG.

    Args:
        matrix: ``C x C`` counts.
        class_names: The C class names.
        path: Output ``.png`` path.
        normalize: Colour and annotate row-normalised recall (counts in brackets).
        title: Figure title.

    Returns:
        The written path.
    """
    import numpy as np

    cm = np.asarray(matrix, dtype=float)
    c = cm.shape[0]
    rows = cm.sum(axis=1, keepdims=True)
    shown = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0) if normalize else cm
    size = 1.0 + 0.75 * c
    fig = _figure(size + 1.5, size)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(c), labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(range(c), labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = shown.max() / 2.0 if shown.size else 0.0
    for i in range(c):
        for j in range(c):
            text = f"{shown[i, j]:.2f}\n({int(cm[i, j])})" if normalize else f"{int(cm[i, j])}"
            color = "white" if shown[i, j] > threshold else "black"
            ax.text(j, i, text, ha="center", va="center", color=color, fontsize=7)
    return _save(fig, path)


def plot_training_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Draw loss, accuracy and learning rate per epoch to a PNG.

    Args:
        history: One dict per epoch with ``epoch`` and any of ``train_loss``,
            ``val_loss``, ``train_acc``, ``val_war``, ``val_uar``, ``val_clip_locating``,
            ``lr`` (missing or ``None`` values are skipped).
        path: Output ``.png`` path.

    Returns:
        The written path.
    """

    def series(key: str) -> tuple[list[float], list[float]]:
        pts = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
        return [p[0] for p in pts], [p[1] for p in pts]

    from matplotlib.ticker import MaxNLocator

    fig = _figure(13, 3.8)
    panels = [
        ("loss", [("train_loss", "train"), ("val_loss", "val")]),
        (
            "accuracy",
            [
                ("train_acc", "train acc"),
                ("val_war", "val WAR"),
                ("val_uar", "val UAR"),
                ("val_clip_locating", "val apex-clip acc"),
            ],
        ),
        ("learning rate", [("lr", "lr")]),
    ]
    for i, (title, keys) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        for key, label in keys:
            xs, ys = series(key)
            if xs:
                ax.plot(xs, ys, marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if title == "accuracy":
            ax.set_ylim(0.0, 1.0)
        if title == "learning rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
