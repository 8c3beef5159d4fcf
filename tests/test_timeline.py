"""Sliding-window prediction of long videos: window arithmetic, bounded decoding, the result."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from _predict_utils import (
    BrightnessModel,
    LazyReader,
    SpyReader,
    baseline_brightness_model,
    flash_frames,
)

from cefl_zoo.predict import Predictor, Timeline, parse_span, window_starts
from cefl_zoo.video import ClipSampler


# -- window arithmetic ------------------------------------------------------------------
@pytest.mark.parametrize(
    "num_frames, length, stride, expected",
    [
        (105, 105, 75, [0]),
        (40, 105, 75, [0]),  # shorter than a window: one window, the whole video
        (300, 105, 75, [0, 75, 150, 195]),  # the last window ends on the last frame
        (315, 105, 105, [0, 105, 210]),  # exact tiling: no extra window
        (106, 105, 200, [0, 1]),
    ],
)
def test_window_starts(num_frames, length, stride, expected):
    starts = window_starts(num_frames, length, stride)
    assert starts == expected
    # every frame is inside some window, no window leaves the video
    covered = set()
    for s in starts:
        covered.update(range(s, min(s + length, num_frames)))
    assert covered == set(range(num_frames))
    assert all(s + min(length, num_frames) <= num_frames for s in starts)


def test_window_starts_rejects_bad_numbers():
    with pytest.raises(ValueError, match="at least one frame"):
        window_starts(0, 105, 75)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        window_starts(100, 105, 0)


@pytest.mark.parametrize(
    "value, fps, frames",
    [
        (105, 25, 105),
        ("105", None, 105),
        ("35f", None, 35),
        ("4.2s", 25, 105),
        ("1s", 29.97, 30),
        ("0.01s", 25, 1),
    ],
)
def test_parse_span(value, fps, frames):
    assert parse_span(value, fps) == frames


@pytest.mark.parametrize("value", ["abc", "-3", "0", "1.5", "s", "-1s", "0s"])
def test_parse_span_rejects(value):
    with pytest.raises(ValueError, match="window span"):
        parse_span(value, 25)


def test_parse_span_seconds_need_fps():
    with pytest.raises(ValueError, match="frame rate"):
        parse_span("2s", None)


# -- the predictor's sliding window -----------------------------------------------------
def test_timeline_reads_one_batch_of_windows_at_a_time():
    frames = flash_frames(1000, size=16)
    reader = SpyReader(frames, fps=25)
    model = BrightnessModel()
    predictor = Predictor(model, device="cpu", batch_size=3, num_workers=0)
    events: list[tuple[str, int]] = []
    original = predictor._explain

    def spy_explain(batch):
        events.append(("model", len(reader.calls)))
        return original(batch)

    predictor._explain = spy_explain
    tl = predictor.predict_timeline(reader, window=105, stride=75)
    starts = window_starts(1000, 105, 75)
    assert tl.starts.tolist() == starts
    assert (tl.ends - tl.starts + 1).unique().tolist() == [105]
    per_window = 7 * 5
    sampler = ClipSampler()
    local = sampler(105)
    batches = [starts[i : i + 3] for i in range(0, len(starts), 3)]
    # exactly one read per batch of windows, asking only for that batch's sampled frames
    assert len(reader.calls) == len(batches)
    for call, batch in zip(reader.calls, batches):
        assert len(call) == per_window * len(batch)
        expected = torch.cat([(local + s).reshape(-1) for s in batch]).tolist()
        assert call == expected
        assert max(call) - min(call) < (len(batch) - 1) * 75 + 105
    # at most one batch is decoded ahead of the model: bounded memory
    for b, (_, reads_before) in enumerate(events):
        assert reads_before <= b + 2
    assert len(events) == len(batches)


def test_timeline_of_a_ten_minute_video_follows_the_content():
    """A 10-minute video (5 fps): dark for 4 minutes, bright for 3, dark again."""
    fps = 5.0
    n = int(10 * 60 * fps)
    bright = (4 * 60 * fps, 7 * 60 * fps)

    def value(t: int) -> int:
        return 220 if bright[0] <= t < bright[1] else 30

    reader = LazyReader(n, fps, value)
    predictor = Predictor(BrightnessModel(), device="cpu", batch_size=8, num_workers=0)
    tl = predictor.predict_timeline(reader, window="21s", stride="10s")
    assert tl.window == 105 and tl.stride == 50
    assert len(tl) == len(window_starts(n, 105, 50))
    # the reader was never asked for more than one batch of windows' frames at a time
    assert max(len(c) for c in reader.calls) <= 8 * 35
    assert sum(len(c) for c in reader.calls) == len(tl) * 35
    # windows whose sampled span lies wholly in a part get that part's label
    for w in range(len(tl)):
        lo, hi = int(tl.starts[w]) + 15, int(tl.starts[w]) + 89  # the centred 75-frame span
        label = tl.labels[w]
        if hi < bright[0] or lo >= bright[1]:
            assert label == "dark", (w, lo, hi)
        elif lo >= bright[0] and hi < bright[1]:
            assert label == "bright", (w, lo, hi)
    segments = tl.segments()
    assert [s["label"] for s in segments] == ["dark", "bright", "dark"]
    assert abs(segments[1]["start_s"] - 240) < 25 and abs(segments[1]["end_s"] - 420) < 25
    # the emotion-rich clip of every window lies inside that window
    assert ((tl.rich_clip_frames[:, 0] >= tl.starts) & (tl.rich_clip_frames[:, 1] <= tl.ends)).all()


def test_timeline_rich_clip_points_at_the_flash():
    frames = flash_frames(300, flash=(160, 166), base=200, bright=250, size=16)
    predictor = Predictor(BrightnessModel(), device="cpu", num_workers=0)
    tl = predictor.predict_timeline(frames, window=105, stride=105, fps=25)
    w = next(i for i in range(len(tl)) if tl.starts[i] + 15 <= 163 <= tl.starts[i] + 89)
    first, last = tl.rich_clip_frames[w].tolist()
    assert first <= 163 <= last


def test_timeline_short_video_is_one_window_and_too_short_is_an_error():
    predictor = Predictor(BrightnessModel(), device="cpu", num_workers=0)
    tl = predictor.predict_timeline(flash_frames(50, size=16), fps=25)
    assert len(tl) == 1 and tl.starts.tolist() == [0] and tl.ends.tolist() == [49]
    with pytest.raises(ValueError, match="only 2 frames.*min_frames=1"):
        predictor.predict_timeline(flash_frames(2, size=16), fps=25)


def test_timeline_without_clip_scores():
    tl = Predictor(baseline_brightness_model(), device="cpu", num_workers=0).predict_timeline(
        flash_frames(400, size=16), fps=25
    )
    assert tl.rich_clip_frames is None
    assert tl.to_dict()["windows"][0]["emotion_rich_clip"] is None  # as Prediction writes it


# -- the result object ------------------------------------------------------------------
def _timeline() -> Timeline:
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]])
    starts = torch.tensor([0, 50, 100, 150, 200])
    return Timeline(
        "long.mp4",
        ("neutral", "happiness"),
        starts,
        starts + 104,
        probs,
        rich_clip_frames=torch.stack([starts + 20, starts + 34], 1),
        fps=25.0,
        num_frames=305,
        window=105,
        stride=50,
        model="m",
    )


def test_timeline_to_dict_round_trip_and_segments(tmp_path):
    tl = _timeline()
    data = json.loads(tl.to_json(tmp_path / "t.json"))
    assert json.loads((tmp_path / "t.json").read_text()) == data
    assert data["label"] == "neutral"  # mean p: 0.56 vs 0.44
    assert [w["label"] for w in data["windows"]] == ["neutral"] * 2 + ["happiness"] * 2 + [
        "neutral"
    ]
    assert data["windows"][2]["start_s"] == 4.0 and data["windows"][2]["end_s"] == 8.2
    assert data["windows"][2]["emotion_rich_clip"] == {
        "first_frame": 120,
        "last_frame": 134,
        "start_s": 4.8,
        "end_s": 5.4,
    }
    assert [s["label"] for s in data["segments"]] == ["neutral", "happiness", "neutral"]
    # the runs meet where the shared frames of their windows are split between the centres
    assert data["segments"] == [
        {
            "label": "neutral",
            "first_frame": 0,
            "last_frame": 127,
            "start_s": 0.0,
            "end_s": 5.12,
            "first_window": 0,
            "last_window": 1,
        },
        {
            "label": "happiness",
            "first_frame": 128,
            "last_frame": 227,
            "start_s": 5.12,
            "end_s": 9.12,
            "first_window": 2,
            "last_window": 3,
        },
        {
            "label": "neutral",
            "first_frame": 228,
            "last_frame": 304,
            "start_s": 9.12,
            "end_s": 12.2,
            "first_window": 4,
            "last_window": 4,
        },
    ]
    again = Timeline.from_dict(data)
    assert torch.allclose(again.probs, tl.probs)
    assert again.starts.tolist() == tl.starts.tolist() and again.ends.tolist() == tl.ends.tolist()
    assert again.rich_clip_frames.tolist() == tl.rich_clip_frames.tolist()
    assert "neutral" in tl.summary() and "3 segments" in tl.summary()


@pytest.mark.parametrize(
    "length,stride", [(105, 35), (105, 1), (105, 104), (20, 7), (9, 9), (4, 1)]
)
def test_timeline_segments_tile_the_video_without_overlap(length, stride):
    """Whatever the labels, the segments cover every frame of the windows exactly once,
    in order, and each frame goes to the run of the window whose centre is nearest."""
    gen = torch.Generator().manual_seed(length * 1000 + stride)
    num_frames = 400
    starts = torch.tensor(window_starts(num_frames, length, stride))
    probs = torch.rand(len(starts), 3, generator=gen)
    probs[::3] = probs[::3].flip(1)  # plenty of label changes, some one-window runs
    tl = Timeline("v.mp4", ("a", "b", "c"), starts, starts + length - 1, probs, fps=25.0)
    segs = tl.segments()
    assert segs[0]["first_frame"] == 0 and segs[-1]["last_frame"] == num_frames - 1
    for seg, nxt in itertools.pairwise(segs):
        assert nxt["first_frame"] == seg["last_frame"] + 1
        assert nxt["start_s"] == seg["end_s"]
        assert nxt["label"] != seg["label"] and nxt["first_window"] == seg["last_window"] + 1
    centres = (tl.starts + tl.ends).double() / 2
    for seg in segs:
        assert seg["first_frame"] <= seg["last_frame"]
        assert (seg["start_s"], seg["end_s"]) == (
            seg["first_frame"] / 25,
            (seg["last_frame"] + 1) / 25,
        )
        frames = torch.arange(seg["first_frame"], seg["last_frame"] + 1).double()
        nearest = (frames[:, None] - centres[None]).abs()
        # frames in the segment are nearer (or as near) to one of its windows' centres
        # than to any window of another label
        own = nearest[:, seg["first_window"] : seg["last_window"] + 1].min(1).values
        assert (own <= nearest.min(1).values + 0.5).all()
        assert {tl.labels[w] for w in range(seg["first_window"], seg["last_window"] + 1)} == {
            seg["label"]
        }


def test_timeline_segments_leave_unscored_gaps_out():
    """A stride longer than the window leaves frames no window saw: no segment has them."""
    starts = torch.tensor([0, 100, 200])
    probs = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])
    tl = Timeline("v.mp4", ("a", "b"), starts, starts + 49, probs, fps=10.0)
    assert [
        (s["first_frame"], s["last_frame"], s["start_s"], s["end_s"]) for s in tl.segments()
    ] == [
        (0, 49, 0.0, 5.0),
        (100, 249, 10.0, 25.0),
    ]


def test_timeline_segment_seconds_follow_the_window_timestamps():
    """With the video's timestamps (variable frame rate), a cut inside a window is placed
    within that window's own time span, and a segment's end is the next one's start."""
    starts = torch.tensor([0, 10, 20])
    probs = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])
    # 20-frame windows: the first runs at 10 fps, the later ones at 20 fps
    times = torch.tensor([[0.0, 2.0], [1.0, 1.5 + 0.5], [1.5, 2.5]], dtype=torch.float64)
    tl = Timeline("v.mp4", ("a", "b"), starts, starts + 19, probs, fps=15.0, window_times=times)
    first, second = tl.segments()
    assert (first["first_frame"], first["last_frame"]) == (0, 14)
    assert (second["first_frame"], second["last_frame"]) == (15, 39)
    # frame 15 starts a quarter into window 1 (frames 10..29, 1.0 s .. 2.0 s)
    assert first["end_s"] == second["start_s"] == 1.25
    assert first["start_s"] == 0.0 and second["end_s"] == 2.5


def test_timeline_segments_survive_the_json_round_trip():
    """The seconds of a cut come from the window times as the JSON rounds them, so a
    timeline read back has the very segments it was written with."""
    gen = torch.Generator().manual_seed(3)
    starts = torch.tensor(window_starts(500, 60, 17))
    frame_times = torch.cumsum(torch.rand(500, generator=gen, dtype=torch.float64) / 20, 0)
    times = torch.stack([frame_times[starts], frame_times[starts + 59] + 0.03], 1)
    probs = torch.rand(len(starts), 3, generator=gen)
    tl = Timeline(
        "v.mp4", ("a", "b", "c"), starts, starts + 59, probs, fps=22.0, window_times=times
    )
    data = json.loads(tl.to_json())
    assert len(data["segments"]) > 5
    assert Timeline.from_dict(data).segments() == data["segments"]
    # without timestamps (seconds from the fps) too
    tl.window_times, tl.fps = None, 29.97
    data = json.loads(tl.to_json())
    assert Timeline.from_dict(data).segments() == data["segments"]


def test_timeline_segments_of_hand_made_unequal_windows_keep_order():
    """Windows of unequal lengths (the constructor takes any) still give ordered,
    non-empty, non-overlapping segments."""
    starts, ends = torch.tensor([0, 10, 30, 40]), torch.tensor([200, 20, 300, 45])
    probs = torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])
    segs = Timeline("v.mp4", ("a", "b"), starts, ends, probs, fps=25.0).segments()
    assert [s["label"] for s in segs] == ["a", "b", "a", "b"]
    for seg, nxt in itertools.pairwise(segs):
        assert seg["first_frame"] <= seg["last_frame"] < nxt["first_frame"]
        assert seg["start_s"] < seg["end_s"] <= nxt["start_s"]


@pytest.mark.parametrize("fps", [None, 0.0, float("nan"), float("inf"), -25.0])
def test_timeline_segments_without_a_usable_frame_rate_have_no_seconds(fps):
    starts = torch.tensor([0, 50])
    probs = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    tl = Timeline("v.mp4", ("a", "b"), starts, starts + 104, probs, fps=fps)
    segs = tl.segments()
    assert [(s["first_frame"], s["last_frame"]) for s in segs] == [(0, 77), (78, 154)]
    assert all("start_s" not in s and "end_s" not in s for s in segs)
    json.dumps(segs, allow_nan=False)  # valid JSON: no NaN seconds


def test_timeline_plot_writes_a_png(tmp_path):
    from PIL import Image

    path = _timeline().plot(tmp_path / "plots" / "t.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 300 and img.height > 200
