"""From per-frame detections to one smooth face track: pick, fill, smooth, square.

The steps :class:`~cefl_zoo.faces.FaceCropper` runs after detection, as plain functions
on tensors so that each can be tested (and reused) alone:

1. :func:`select_main_face` - one box per frame for the *main* face: detections are
   linked over time into face tracks, and the track that is largest and most confident
   over the whole video wins, so a bystander does not steal the crop for a frame or two.
2. :func:`fill_track` - frames without a box get one: frames the detector skipped
   (``stride``) are interpolated between their detected neighbours; frames where no
   face was found take the nearest detected box in time.
3. :func:`smooth_track` - a Gaussian filter over time on the box centre and size removes
   detector jitter.
4. :func:`square_boxes` - square crop regions around the faces, with a margin.

Boxes are ``(x1, y1, x2, y2)`` in pixels, ``x2``/``y2`` being exclusive edges.

Example:
    >>> import torch
    >>> from cefl_zoo.faces.tracking import select_main_face, fill_track, square_boxes
    >>> dets = [torch.tensor([[10., 10., 30., 30., 0.9]]), torch.zeros(0, 5),
    ...         torch.tensor([[12., 10., 32., 30., 0.9]])]
    >>> boxes, scores = select_main_face(dets)
    >>> filled = fill_track(boxes, detected=[True, True, True])
    >>> filled[1].tolist()  # no face in frame 1: the nearest box (frame 0) is used
    [10.0, 10.0, 30.0, 30.0]
    >>> square_boxes(filled[:1], margin=0.5).tolist()
    [[0.0, 0.0, 40.0, 40.0]]
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence

import torch

__all__ = [
    "box_iou",
    "fill_track",
    "select_main_face",
    "smooth_track",
    "square_boxes",
    "track_segments",
]


def box_iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """IoU of one box ``(4,)`` with each of ``boxes`` ``(n, 4)``; returns ``(n,)``."""
    x1 = torch.maximum(box[0], boxes[:, 0])
    y1 = torch.maximum(box[1], boxes[:, 1])
    x2 = torch.minimum(box[2], boxes[:, 2])
    y2 = torch.minimum(box[3], boxes[:, 3])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    area_a = (box[2] - box[0]).clamp(min=0) * (box[3] - box[1]).clamp(min=0)
    area_b = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    return inter / (area_a + area_b - inter).clamp(min=1e-6)


def _quality(dets: torch.Tensor) -> torch.Tensor:
    """Main-face preference: size (side length) times confidence."""
    w = (dets[:, 2] - dets[:, 0]).clamp(min=0)
    h = (dets[:, 3] - dets[:, 1]).clamp(min=0)
    return (w * h).sqrt() * dets[:, 4]


def _same_face(last: torch.Tensor, cands: torch.Tensor, min_iou: float) -> torch.Tensor:
    """Match score of each candidate with the tracked box; ``-1`` where it is not a match.

    A candidate matches when it overlaps the tracked box by ``min_iou`` or more, or when
    its centre lies within half a face of the tracked centre at a similar size (fast
    motion between sparsely detected frames).
    """
    iou = box_iou(last, cands[:, :4])
    side = ((last[2] - last[0]) * (last[3] - last[1])).clamp(min=1e-6).sqrt()
    c_last = (last[:2] + last[2:4]) / 2
    c = (cands[:, :2] + cands[:, 2:4]) / 2
    dist = (c - c_last).norm(dim=1)
    sides = ((cands[:, 2] - cands[:, 0]) * (cands[:, 3] - cands[:, 1])).clamp(min=1e-6).sqrt()
    ratio = sides / side
    near = (dist < 0.5 * side) & (ratio > 0.5) & (ratio < 2.0)
    ok = (iou >= min_iou) | near
    score = iou + near.float() * (1 - dist / (0.5 * side)).clamp(min=0) * 0.5
    return torch.where(ok, score, torch.full_like(score, -1.0))


def _link_tracks(detections: Sequence[torch.Tensor | None], min_iou: float) -> list[dict[int, int]]:
    """Link detections over time into tracks: ``[{frame: detection index}, ...]``.

    Frame by frame, each detection continues the track whose last box it matches best
    (see :func:`_same_face`; each track takes at most one detection per frame), and
    starts a new track when it matches none.
    """
    tracks: list[dict[int, int]] = []
    last: list[torch.Tensor] = []
    for i, det in enumerate(detections):
        if det is None or len(det) == 0:
            continue
        pairs = []
        for k, box in enumerate(last):
            match = _same_face(box, det, min_iou)
            pairs += [(float(m), k, j) for j, m in enumerate(match.tolist()) if m >= 0]
        used_t: set[int] = set()
        used_d: set[int] = set()
        for _, k, j in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
            if k in used_t or j in used_d:
                continue
            tracks[k][i] = j
            last[k] = det[j, :4]
            used_t.add(k)
            used_d.add(j)
        for j in range(len(det)):
            if j not in used_d:
                tracks.append({i: j})
                last.append(det[j, :4])
    return tracks


def select_main_face(
    detections: Sequence[torch.Tensor | None],
    min_iou: float = 0.2,
    reacquire: int = 3,
    return_tracks: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Pick the main face in every frame, consistently over time.

    Detections are linked over time into face tracks (by overlap, see ``min_iou``). The
    main face is the track with the largest total of size x confidence over the video:
    the face that is big, sure and there most of the time, so a bystander who is larger
    for a frame or two does not take over. Where the main track is absent for
    ``reacquire`` or more detected frames in a row while other faces are visible (a
    scene cut, the person left), those frames take the best other track there.

    Args:
        detections: Per frame: ``(n, 5)`` detections, or ``None`` for a frame the detector
            did not run on.
        min_iou: Overlap with a track's last box for a detection to continue the track.
        reacquire: Detected frames in a row without the main face after which another
            visible face is used.
        return_tracks: Also return which face track each frame's box comes from.

    Returns:
        ``(boxes, scores)``: ``float32 (T, 4)`` and ``(T,)``, ``nan`` where the frame has
        no main face (not detected, or only faces that are not the main one). With
        ``return_tracks``, also ``int64 (T,)`` track ids (``-1`` where no box): where the
        id changes, the box jumps to another face.

    Example:
        >>> import torch
        >>> big = torch.tensor([[0., 0., 50., 50., 0.9]])
        >>> small = torch.tensor([[60., 60., 70., 70., 0.99]])
        >>> boxes, _ = select_main_face([torch.cat([small, big]), big + 1])
        >>> boxes[:, 0].tolist()  # the larger face is the main face in both frames
        [0.0, 1.0]
    """
    t = len(detections)
    boxes = torch.full((t, 4), math.nan)
    scores = torch.full((t,), math.nan)
    ids = torch.full((t,), -1, dtype=torch.long)
    tracks = _link_tracks(detections, min_iou)
    if not tracks:
        return (boxes, scores, ids) if return_tracks else (boxes, scores)

    def total(track: dict[int, int], frames: Sequence[int] | None = None) -> float:
        keys = track if frames is None else [f for f in frames if f in track]
        return sum(float(_quality(detections[f][track[f] : track[f] + 1])[0]) for f in keys)  # type: ignore[index]

    main = max(range(len(tracks)), key=lambda k: (total(tracks[k]), -k))
    chosen: dict[int, int] = {f: main for f in tracks[main]}
    # Long stretches of detected frames without the main face, where other faces show.
    ran = [i for i, d in enumerate(detections) if d is not None]
    run: list[int] = []
    for i in ran + [-1]:
        if i >= 0 and i not in tracks[main]:
            run.append(i)
            continue
        with_faces = [f for f in run if len(detections[f])]  # type: ignore[arg-type]
        if len(run) >= reacquire and with_faces:
            others = [k for k in range(len(tracks)) if k != main]
            best = max(others, key=lambda k: (total(tracks[k], run), -k))
            for f in run:
                if f in tracks[best]:
                    chosen[f] = best
        run = []
    for f, k in chosen.items():
        det = detections[f]
        assert det is not None
        boxes[f] = det[tracks[k][f], :4]
        scores[f] = det[tracks[k][f], 4]
        ids[f] = k
    return (boxes, scores, ids) if return_tracks else (boxes, scores)


def track_segments(ids: torch.Tensor, times: torch.Tensor | None = None) -> list[slice]:
    """Split a video's frames where the main face changes (a scene cut).

    Each frame without a box joins the face of the nearest frame in time that has one
    (the earlier on a tie), so every segment shows one face, and filling and smoothing
    run per segment: a box is never interpolated or averaged between two faces.

    Args:
        ids: ``(T,)`` track ids from :func:`select_main_face` (``-1``: no box).
        times: ``(T,)`` frame times; default ``0 .. T-1``.

    Returns:
        Consecutive slices covering ``0 .. T``.

    Example:
        >>> track_segments(torch.tensor([0, 0, -1, -1, -1, 1, 1]))
        [slice(0, 4, None), slice(4, 7, None)]
    """
    t = int(ids.shape[0])
    known = (ids >= 0).nonzero().flatten()
    if t == 0 or known.numel() == 0:
        return [slice(0, t)]
    times = torch.arange(t, dtype=torch.float64) if times is None else times.double()
    # The nearest frame with a box, by a sorted search: O(T log K), not a T x K matrix
    # (a whole video's frames are tracked at once).
    known_t = times[known].contiguous()
    right = torch.searchsorted(known_t, times).clamp(max=len(known_t) - 1)
    left = (right - 1).clamp(min=0)
    earlier = (times - known_t[left]).abs() <= (known_t[right] - times).abs()  # a tie: earlier
    owner = ids[known][torch.where(earlier, left, right)]
    changes = ((owner[1:] != owner[:-1]).nonzero().flatten() + 1).tolist()
    return [slice(a, b) for a, b in itertools.pairwise([0, *changes, t])]


def fill_track(
    boxes: torch.Tensor,
    detected: Sequence[bool] | torch.Tensor,
    times: torch.Tensor | None = None,
) -> torch.Tensor:
    """Give every frame a box.

    * A frame the detector ran on keeps its box; if it has none (no face found), it
      takes the box of the nearest frame in time that has one (the earlier on a tie).
    * A frame the detector skipped (``detected[i]`` false) lying between two detected
      frames that both have a box gets the linear interpolation of the two; otherwise
      the nearest box.

    Args:
        boxes: ``(T, 4)`` with ``nan`` rows for frames without a box.
        detected: ``(T,)`` whether the detector ran on each frame.
        times: ``(T,)`` frame times (e.g. original frame indices) for distances and
            interpolation; default ``0 .. T-1``.

    Returns:
        ``float32 (T, 4)`` without ``nan``.

    Raises:
        ValueError: If no frame has a box.
    """
    boxes = boxes.float()
    t = boxes.shape[0]
    ran = torch.as_tensor(detected, dtype=torch.bool)
    if ran.shape != (t,):
        raise ValueError(f"detected must have shape ({t},), got {tuple(ran.shape)}")
    times = torch.arange(t, dtype=torch.float64) if times is None else times.double()
    have = ~torch.isnan(boxes).any(1)
    if not bool(have.any()):
        raise ValueError("no frame has a face box to fill the track from")
    out = boxes.clone()
    known = have.nonzero().flatten().tolist()
    ran_idx = ran.nonzero().flatten().tolist()
    for i in range(t):
        if bool(have[i]):
            continue
        if not bool(ran[i]):
            k = bisect.bisect_left(ran_idx, i)  # ran_idx[k - 1] < i < ran_idx[k]
            if 0 < k < len(ran_idx) and bool(have[ran_idx[k - 1]]) and bool(have[ran_idx[k]]):
                p, n = ran_idx[k - 1], ran_idx[k]
                span = float(times[n] - times[p])
                w = float(times[i] - times[p]) / span if span > 0 else 0.0
                out[i] = boxes[p] * (1 - w) + boxes[n] * w
                continue
        dist = (times[known] - times[i]).abs()
        out[i] = boxes[known[int(dist.argmin())]]  # argmin returns the first (earlier) tie
    return out


def smooth_track(
    boxes: torch.Tensor, sigma: float, times: torch.Tensor | None = None
) -> torch.Tensor:
    """Gaussian smoothing over time of the box centres and sizes.

    Each box centre is a local linear fit with Gaussian weights (degree-1 LOESS): in the
    middle of a track that is the Gaussian-weighted mean, and at the first and last
    frames, where the window is cut off, a face in steady motion is still followed
    exactly instead of being pulled back toward the middle of the track; a centre never
    leaves the range of the centres given. The box size is the Gaussian-weighted mean, so
    it stays within the sizes given.

    Args:
        boxes: ``(T, 4)`` boxes (no ``nan``).
        sigma: Standard deviation in frames (in units of ``times``); ``0`` returns the
            boxes unchanged.
        times: ``(T,)`` frame times; default ``0 .. T-1``.

    Returns:
        ``float32 (T, 4)`` smoothed boxes.
    """
    if sigma <= 0 or boxes.shape[0] < 2:
        return boxes.float().clone()
    t = boxes.shape[0]
    times = torch.arange(t, dtype=torch.float64) if times is None else times.double()
    b = boxes.double()
    params = torch.stack(
        [(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]],
        1,
    )
    out = torch.empty_like(params)
    for start in range(0, t, 1024):  # rows in chunks: memory stays O(1024 * T)
        x = times[None, :] - times[start : start + 1024, None]  # other frames, relative
        w = torch.exp(-0.5 * (x / sigma) ** 2)
        s0, s1, s2 = (
            w.sum(1, keepdim=True),
            (w * x).sum(1, keepdim=True),
            (w * x * x).sum(1, keepdim=True),
        )
        sy, sxy = w @ params, (w * x) @ params
        det = s0 * s2 - s1 * s1
        linear = (s2 * sy - s1 * sxy) / det.clamp(min=1e-300)
        # Where the fit is degenerate (all weight on one frame), the weighted mean.
        ok = det > 1e-9 * s0 * s0
        mean = sy / s0
        fit = torch.where(ok, linear, mean)
        out[start : start + 1024, :2] = fit[:, :2]  # centres: the linear fit
        out[start : start + 1024, 2:] = mean[:, 2:]  # sizes: the weighted mean
    # A fit never leaves the centres that were seen (noise at a track's end extrapolated).
    out[:, :2] = torch.maximum(
        torch.minimum(out[:, :2], params[:, :2].max(0).values), params[:, :2].min(0).values
    )
    cx, cy, w_, h_ = out.unbind(1)
    return torch.stack([cx - w_ / 2, cy - h_ / 2, cx + w_ / 2, cy + h_ / 2], 1).float()


def square_boxes(boxes: torch.Tensor, margin: float = 0.25) -> torch.Tensor:
    """Square crop regions centred on the faces.

    The side is the face box's longer side times ``1 + 2 * margin`` (``margin`` of the
    face size added on every side). Regions may extend past the image; the cropper
    pads there.

    Args:
        boxes: ``(T, 4)`` face boxes.
        margin: Fraction of the face's longer side added on each side.

    Returns:
        ``float32 (T, 4)`` square boxes.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    b = boxes.float()
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    side = torch.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]).clamp(min=1.0) * (1 + 2 * margin)
    half = side / 2
    return torch.stack([cx - half, cy - half, cx + half, cy + half], 1)
