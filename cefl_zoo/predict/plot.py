"""PNG figures of predictions: the paper's Fig. 6 for one video, and a long video's timeline.

Drawn with matplotlib's object API on the Agg canvas (no ``pyplot`` state, no display),
so plotting works in threads, on servers and in tests.

* :func:`plot_prediction` - a strip of face thumbnails, one per clip, above the emotion
  intensity of every clip for the predicted class (the emotional activation map), the
  emotion-rich clip outlined in orange as in the paper; optionally a heat map of every
  class's clip scores and the frame weights of the clip encoder.
* :func:`plot_timeline` - per-window class probabilities over time (heat map) with the
  winning class's probability as a curve.

Example:
    >>> import os, tempfile, torch
    >>> from cefl_zoo.predict import Prediction
    >>> p = Prediction("v.mp4", ("happiness", "neutral"), torch.tensor([0.7, 0.3]),
    ...                clip_scores=torch.tensor([[0.2, 0.8], [0.5, 0.5]]))
    >>> path = plot_prediction(p, os.path.join(tempfile.mkdtemp(), "v.png"))
    >>> path.stat().st_size > 0
    True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._plotting import new_figure as _figure
from .._plotting import save_png as _save
from ..commands._common import plural

if TYPE_CHECKING:
    from .result import Prediction
    from .timeline import Timeline

__all__ = ["RICH_CLIP_COLOR", "plot_prediction", "plot_timeline", "timeline_edges"]

#: Colour of the emotion-rich clip's highlight (the paper's orange boxes).
RICH_CLIP_COLOR = "#ff7f0e"
_OTHER_COLOR = "#7f9fbf"


def _clip_tick(pred: Prediction, n: int) -> str:
    seconds = pred.clip_seconds(n)
    if seconds is not None:
        return f"{n}\n{seconds[0]:.1f}-{seconds[1]:.1f}s"
    frames = pred.clip_frames(n)
    if frames is not None:
        return f"{n}\nf{frames[0]}-{frames[1]}"
    return str(n)


def _title(pred: Prediction) -> str:
    name = os.path.basename(str(pred.source).rstrip("/")) or str(pred.source)
    text = f"{name}: {pred.label} (p={pred.probability:.2f})"
    if pred.rich_clip is not None:
        text += f" - emotion-rich clip {pred.rich_clip}"
        seconds = pred.rich_clip_seconds
        if seconds is not None:
            text += f" ({seconds[0]:.2f}-{seconds[1]:.2f} s)"
    if pred.model:
        text += f"\nmodel: {pred.model}"
    return text


def plot_prediction(pred: Prediction, path: str | os.PathLike, all_classes: bool = True) -> Path:
    """Draw the paper's Fig. 6 for one prediction and save it as a PNG.

    Rows, top to bottom (each only when the prediction has what it needs):

    1. thumbnails, one per clip (the clip's middle sampled frame), the emotion-rich clip
       framed in orange;
    2. the emotion intensity of every clip for the predicted class (bars; eq. 5), the
       emotion-rich clip's bar orange, clips labelled with their time range;
    3. with ``all_classes``: a heat map of every class's clip scores (darker = more
       intense), the emotion-rich clip's column outlined;
    4. with ``all_classes``: the clip encoder's frame weights (K rows x N clips), left out
       for a model that does not weight frames (``frame_weights`` is ``None``);

    and on the right the class probabilities.

    Args:
        pred: The prediction.
        path: PNG file to write (folders are created).
        all_classes: Add the class heat map and the frame weights.

    Returns:
        The path written.
    """
    from matplotlib.patches import Rectangle

    n = pred.num_clips or (0 if pred.thumbnails is None else int(pred.thumbnails.shape[0]))
    rich = pred.rich_clip
    rows: list[tuple[str, float]] = []
    if pred.thumbnails is not None and n:
        rows.append(("thumbs", 1.3))
    if pred.clip_scores is not None:
        rows.append(("intensity", 1.6))
        if all_classes:
            rows.append(("heat", 0.28 * len(pred.label_names) + 0.4))
    if all_classes and pred.frame_weights is not None:
        rows.append(("weights", 0.25 * pred.frame_weights.shape[1] + 0.4))
    cols = max(n, 1)
    width = max(6.0, 1.1 * cols + 3.2)
    height = sum(h for _, h in rows) + 1.0 if rows else 2.5
    fig = _figure(width, height)
    gs = fig.add_gridspec(
        max(len(rows), 1),
        cols + 2,
        height_ratios=[h for _, h in rows] or [1.0],
        width_ratios=[1.0] * cols + [0.9, 2.2],
        wspace=0.08,
        hspace=0.55,
    )
    fig.suptitle(_title(pred), fontsize=10)
    for r, (kind, _) in enumerate(rows):
        if kind == "thumbs":
            thumbs = pred.thumbnails
            for i in range(n):
                ax = fig.add_subplot(gs[r, i])
                if i < thumbs.shape[0]:
                    ax.imshow(thumbs[i].permute(1, 2, 0).numpy())
                ax.set_xticks([])
                ax.set_yticks([])
                highlight = i == rich
                for spine in ax.spines.values():
                    spine.set_edgecolor(RICH_CLIP_COLOR if highlight else "#cccccc")
                    spine.set_linewidth(4 if highlight else 0.8)
                title = f"clip {i}"
                if len(rows) == 1:  # no rows below to carry the clip times
                    seconds = pred.clip_seconds(i)
                    if seconds is not None:
                        title += f"\n{seconds[0]:.1f}-{seconds[1]:.1f}s"
                ax.set_title(title, fontsize=7, color=RICH_CLIP_COLOR if highlight else "black")
            continue
        ax = fig.add_subplot(gs[r, :cols])
        ax.set_xlim(-0.5, n - 0.5)
        if kind == "intensity":
            values = pred.intensity.tolist()
            colors = [RICH_CLIP_COLOR if i == rich else _OTHER_COLOR for i in range(n)]
            ax.bar(range(n), values, color=colors, width=0.8)
            ax.axhline(1.0 / n, color="gray", lw=0.8, ls="--")
            ax.set_ylabel(f"intensity\n({pred.label})", fontsize=8)
            ax.set_ylim(0, max(values + [1.0 / n]) * 1.15)
        elif kind == "heat":
            scores = pred.clip_scores.numpy()
            ax.imshow(
                scores,
                aspect="auto",
                cmap="Oranges",
                vmin=0,
                interpolation="nearest",
                extent=(-0.5, n - 0.5, len(pred.label_names) - 0.5, -0.5),
            )
            ax.set_yticks(range(len(pred.label_names)))
            ax.set_yticklabels(
                [f"> {c}" if c == pred.label else c for c in pred.label_names], fontsize=7
            )
            if rich is not None:
                ax.add_patch(
                    Rectangle(
                        (rich - 0.5, -0.5),
                        1,
                        len(pred.label_names),
                        fill=False,
                        edgecolor=RICH_CLIP_COLOR,
                        lw=2.5,
                        clip_on=False,
                    )
                )
            ax.set_ylabel("clip score\nper class", fontsize=8)
        elif kind == "weights":
            weights = pred.frame_weights.t().numpy()  # (K, N)
            ax.imshow(
                weights,
                aspect="auto",
                cmap="Blues",
                vmin=0,
                vmax=1,
                interpolation="nearest",
                extent=(-0.5, n - 0.5, weights.shape[0] - 0.5, -0.5),
            )
            ax.set_yticks(range(weights.shape[0]))
            ax.set_yticklabels([f"f{k}" for k in range(weights.shape[0])], fontsize=6)
            ax.set_ylabel("frame\nweight", fontsize=8)
        ax.set_xticks(range(n))
        last = r == len(rows) - 1
        ax.set_xticklabels([_clip_tick(pred, i) for i in range(n)] if last else [], fontsize=7)
        if last:
            ax.set_xlabel("clip (time)", fontsize=8)
    # class probabilities on the right
    pax = fig.add_subplot(gs[:, cols + 1])
    order = list(range(len(pred.label_names)))[::-1]
    probs = pred.probs.tolist()
    pax.barh(
        range(len(order)),
        [probs[i] for i in order],
        color=[RICH_CLIP_COLOR if i == pred.label_index else _OTHER_COLOR for i in order],
    )
    pax.set_yticks(range(len(order)))
    pax.set_yticklabels([pred.label_names[i] for i in order], fontsize=7)
    pax.yaxis.tick_right()
    pax.set_xlim(0, 1)
    pax.set_xlabel("probability", fontsize=8)
    pax.tick_params(axis="x", labelsize=7)
    return _save(fig, path)


def timeline_edges(timeline: Timeline) -> np.ndarray:
    """x edges of the timeline heat map's cells, ``(W + 1,)``, in the plot's unit.

    Window ``w``'s cell runs from the midpoint between its centre and the previous
    window's to the midpoint between its centre and the next one's, so every cell holds
    its window's true centre (:attr:`Timeline.times <cefl_zoo.predict.Timeline.times>`)
    even where the windows are not evenly spaced (the last window, which ends on the last
    frame). The outer edges are the first window's start and the last window's end,
    clipped to ``[0, duration]``. :meth:`Timeline.segments
    <cefl_zoo.predict.Timeline.segments>` cuts its runs at the same midpoints.

    Example:
        >>> import torch
        >>> from cefl_zoo.predict import Timeline
        >>> tl = Timeline("v.mp4", ("a", "b"), starts=[0, 50, 60], ends=[99, 149, 159],
        ...               probs=torch.ones(3, 2) / 2, fps=10.0, num_frames=160)
        >>> tl.times.tolist(), timeline_edges(tl).tolist()
        ([5.0, 10.0, 11.0], [0.0, 7.5, 10.5, 16.0])
    """
    centres = timeline.times.numpy().astype(np.float64)
    if timeline.window_times is not None:  # the video's own timestamps
        first = float(timeline.window_times[0, 0])
        last = float(timeline.window_times[-1, 1])
        end = timeline.duration
    else:
        scale = float(timeline.fps) if timeline.fps else 1.0
        first = float(timeline.starts[0]) / scale
        last = float(timeline.ends[-1] + 1) / scale
        end = timeline.num_frames / scale if timeline.num_frames else None
    edges = np.empty(len(centres) + 1, dtype=np.float64)
    edges[1:-1] = (centres[:-1] + centres[1:]) / 2
    edges[0], edges[-1] = min(first, centres[0]), max(last, centres[-1])
    if end:
        edges = np.clip(edges, 0.0, end)
    return edges


def plot_timeline(timeline: Timeline, path: str | os.PathLike) -> Path:
    """Draw a long video's expression timeline and save it as a PNG.

    Top: the probability of each window's predicted class over time, coloured by class.
    Bottom: a heat map of every class's probability per window, each window's cell
    spanning :func:`timeline_edges` (x: seconds, or frames when the fps is unknown). The
    legend sits right of the axes, never on the data. Windows that were not scored (no
    face found) are grey crosses at the bottom of the top panel and grey cells below.

    Args:
        timeline: The sliding-window result.
        path: PNG file to write.

    Returns:
        The path written.

    Example:
        >>> import os, tempfile, torch
        >>> from cefl_zoo.predict import Timeline
        >>> tl = Timeline("long.mp4", ("happiness", "neutral"), starts=[0, 50, 100],
        ...               ends=[104, 154, 204], probs=torch.tensor([[.9, .1], [.4, .6], [.2, .8]]),
        ...               fps=25.0, num_frames=205, window=105, stride=50)
        >>> plot_timeline(tl, os.path.join(tempfile.mkdtemp(), "t.png")).suffix
        '.png'
    """
    import matplotlib

    names = timeline.label_names
    c = len(names)
    times = timeline.times.numpy()
    unit = "s" if timeline.fps else "frame"
    fig = _figure(max(7.0, min(18.0, 4 + 0.08 * len(timeline))), 2.2 + 0.25 * c + 1.6)
    gs = fig.add_gridspec(2, 1, height_ratios=[1.6, 0.25 * c + 0.6], hspace=0.15)
    top = fig.add_subplot(gs[0])
    bottom = fig.add_subplot(gs[1], sharex=top)
    cmap = matplotlib.colormaps["tab10" if c <= 10 else "tab20"]
    scored = timeline.scored
    winners = timeline.probs.argmax(1)
    best = timeline.probs.max(1).values  # NaN where not scored: the line breaks there
    top.plot(times, best.numpy(), color="#555555", lw=0.8, zorder=1)
    if not bool(scored.all()):
        missing = (~scored).numpy()
        top.scatter(
            times[missing],
            np.full(int(missing.sum()), 0.03),
            s=14,
            marker="x",
            color="#999999",
            label="no face",
            zorder=2,
        )
    for k in range(c):
        mask = ((winners == k) & scored).numpy()
        if mask.any():
            top.scatter(
                times[mask],
                best.numpy()[mask],
                s=14,
                color=cmap(k % cmap.N),
                label=names[k],
                zorder=2,
            )
    top.set_ylim(0, 1.05)
    top.set_ylabel("p(predicted)", fontsize=8)
    # Outside the axes, right of the plot: low probabilities sit at the bottom, high ones
    # at the top, so no corner of the axes is free of data.
    top.legend(
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        ncol=1 if c <= 12 else 2,
        frameon=False,
        title="predicted",
        title_fontsize=7,
    )
    name = os.path.basename(str(timeline.source).rstrip("/")) or str(timeline.source)
    top.set_title(
        f"{name}: {timeline.label} overall - {plural(len(timeline), 'window')} of {timeline.window} "
        f"frames, stride {timeline.stride}",
        fontsize=9,
    )
    top.tick_params(labelbottom=False, labelsize=7)
    edges = timeline_edges(timeline)
    bottom.pcolormesh(
        edges,
        np.arange(c + 1) - 0.5,
        np.ma.masked_invalid(timeline.probs.t().numpy()),
        cmap=matplotlib.colormaps["Oranges"].with_extremes(bad="#dddddd"),
        vmin=0,
        vmax=1,
        shading="flat",
    )
    bottom.set_xlim(float(edges[0]), float(edges[-1]))
    bottom.set_ylim(c - 0.5, -0.5)
    bottom.set_yticks(range(c))
    bottom.set_yticklabels(list(names), fontsize=7)
    bottom.set_xlabel(f"time ({unit}; dots at window centres)", fontsize=8)
    bottom.tick_params(labelsize=7)
    return _save(fig, path)
