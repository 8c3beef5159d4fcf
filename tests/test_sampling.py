"""The paper's temporal sampling (section 4.1): exact indices, determinism, parameters."""

from __future__ import annotations

import pickle

import pytest
import torch

import cefl_zoo
from cefl_zoo.video import ClipSampler, VideoTooShortError, apex_clip_index

EVAL_OFFSETS = [1, 4, 7, 10, 13]  # K = 5 evenly spaced frames of a 15-frame sub-video


def test_paper_defaults():
    s = ClipSampler()
    assert s.config() == {
        "num_clips": 7,
        "frames_per_clip": 5,
        "normalized_length": 105,
        "max_start": 30,
        "span": 75,
        "clip_length": 15,
        "clip_stride": 10,
        "min_frames": 5,
    }


def test_eval_indices_exact_length_video():
    # 105 frames: no resampling. Centred span starts at (105 - 75) // 2 = 15; sub-video n
    # covers [15 + 10 n, 30 + 10 n); K = 5 frames at offsets 1, 4, 7, 10, 13.
    expected = [[15 + 10 * n + o for o in EVAL_OFFSETS] for n in range(7)]
    assert ClipSampler()(105, train=False).tolist() == expected
    assert expected[0] == [16, 19, 22, 25, 28] and expected[6] == [76, 79, 82, 85, 88]


def test_eval_indices_short_video_repeat_frames():
    # 20 frames stretched to 105: normalised position p shows frame floor((p + 0.5) * 20 / 105).
    assert ClipSampler()(20, train=False).tolist() == [
        [3, 3, 4, 4, 5],
        [5, 5, 6, 6, 7],
        [6, 7, 8, 8, 9],
        [8, 9, 10, 10, 11],
        [10, 11, 11, 12, 13],
        [12, 13, 13, 14, 14],
        [14, 15, 15, 16, 16],
    ]


def test_eval_indices_long_video_drop_frames():
    # 300 frames squeezed to 105: position p shows frame floor((p + 0.5) * 300 / 105).
    assert ClipSampler()(300, train=False).tolist() == [
        [47, 55, 64, 72, 81],
        [75, 84, 92, 101, 110],
        [104, 112, 121, 130, 138],
        [132, 141, 150, 158, 167],
        [161, 170, 178, 187, 195],
        [190, 198, 207, 215, 224],
        [218, 227, 235, 244, 252],
    ]


def test_normalized_indices_even_resampling():
    s = ClipSampler()
    assert s.normalized_indices(105).tolist() == list(range(105))
    short = s.normalized_indices(21)  # every frame repeated exactly 5 times
    assert short.tolist() == [i // 5 for i in range(105)]
    long = s.normalized_indices(210)  # one frame of each pair kept (the later, centred one)
    assert long.tolist() == [2 * i + 1 for i in range(105)]


def test_eval_is_deterministic_and_ignores_the_generator():
    s = ClipSampler()
    a = s(137, train=False, generator=torch.Generator().manual_seed(1))
    b = s(137, train=False, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and torch.equal(a, s(137))


def test_train_indices_follow_the_paper_structure():
    s = ClipSampler()
    starts = set()
    for seed in range(400):
        sample = s.sample(105, train=True, generator=torch.Generator().manual_seed(seed))
        idx = sample.indices
        assert idx.shape == (7, 5) and idx.dtype == torch.long
        start = sample.start
        assert 0 <= start < 30
        starts.add(start)
        for n in range(7):
            lo = start + 10 * n
            clip = idx[n].tolist()
            assert all(lo <= i < lo + 15 for i in clip), (seed, n, clip)
            assert clip == sorted(clip) and len(set(clip)) == 5  # distinct, in order
    assert starts == set(range(30))  # every start in the first 30 frames happens


def test_train_sampling_reproducible_from_the_generator():
    s = ClipSampler()
    a = s(250, train=True, generator=torch.Generator().manual_seed(7))
    b = s(250, train=True, generator=torch.Generator().manual_seed(7))
    c = s(250, train=True, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert int(a.min()) >= 0 and int(a.max()) < 250


def test_train_frames_are_random_within_a_sub_video():
    s = ClipSampler()
    seen = {tuple(s(105, True, torch.Generator().manual_seed(i))[0].tolist()) for i in range(50)}
    assert len(seen) > 40


@pytest.mark.parametrize("n, k", [(1, 1), (4, 3), (3, 15), (10, 2)])
def test_other_clip_counts_scale_the_defaults(n, k):
    s = ClipSampler(num_clips=n, frames_per_clip=k)
    assert s.span == (n - 1) * 10 + 15
    assert s.max_start == max(1, round(0.4 * s.span))
    assert s.normalized_length == s.span + s.max_start
    for t in (max(5, k), 60, 400):
        for train in (False, True):
            idx = s(t, train=train, generator=torch.Generator().manual_seed(0))
            assert idx.shape == (n, k)
            assert int(idx.min()) >= 0 and int(idx.max()) < t
            assert (idx[:, 1:] >= idx[:, :-1]).all()


def test_explicit_numbers():
    s = ClipSampler(num_clips=3, frames_per_clip=2, normalized_length=40, span=30, clip_length=10)
    assert (s.clip_stride, s.max_start) == (10, 10)  # stride derived from span
    assert s(40, train=False).tolist() == [[7, 12], [17, 22], [27, 32]]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"frames_per_clip": 16}, "exceeds clip_length"),
        ({"span": 50, "clip_stride": 10}, "span=50 is shorter"),
        ({"normalized_length": 80, "max_start": 30}, "normalized_length=80 is too short"),
        ({"max_start": 0}, "max_start must be >= 1"),
        ({"min_frames": 0}, "min_frames must be >= 1"),
        ({"num_clips": 0}, "num_clips and frames_per_clip must be >= 1"),
    ],
)
def test_inconsistent_numbers_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClipSampler(**kwargs)


def test_video_shorter_than_one_clip_is_an_error_naming_the_knob():
    s = ClipSampler()
    with pytest.raises(
        VideoTooShortError,
        match=r"3 frames, fewer than one clip \(frames_per_clip=5\).*min_frames=1",
    ):
        s(3)
    assert s(5).shape == (7, 5)  # exactly one clip's worth is enough
    lenient = ClipSampler(min_frames=1)
    for t in (1, 2, 3):
        idx = lenient(t, train=True, generator=torch.Generator().manual_seed(0))
        assert idx.shape == (7, 5) and int(idx.max()) < t
    with pytest.raises(VideoTooShortError, match="no frames"):
        lenient(0)
    err = pickle.loads(pickle.dumps(VideoTooShortError(3, 5, 5)))
    assert err.num_frames == 3 and "min_frames=1" in str(err)


def test_windows_and_apex_clip():
    s = ClipSampler()
    windows = s.sample(105).windows
    assert windows.tolist() == [[15 + 10 * n, 29 + 10 * n] for n in range(7)]
    assert apex_clip_index(windows, 50) == 3  # only in [45, 59]
    assert apex_clip_index(windows, 57) == 3  # in [45, 59] and [55, 69], equally central
    assert apex_clip_index(windows, 58) == 4  # nearer the centre of [55, 69]
    assert apex_clip_index(windows, 2) == 0  # before the span: the nearest clip
    assert apex_clip_index(windows, 104) == 6
    assert apex_clip_index(windows, None) == -1 and apex_clip_index(windows, -1) == -1
    long = s.sample(300).windows  # original-frame coordinates
    assert long[0].tolist() == [44, 84] and long[6].tolist() == [215, 255]


def test_reachable_frames_cover_every_sample():
    s = ClipSampler()
    for t in (20, 105, 300):
        reachable = set(s.reachable_frames(t).tolist())
        assert len(reachable) <= 105
        for seed in range(50):
            assert (
                set(s(t, True, torch.Generator().manual_seed(seed)).flatten().tolist()) <= reachable
            )
        assert set(s(t).flatten().tolist()) <= reachable


def test_from_cfg_reads_the_model_config():
    model = cefl_zoo.create_model("ceflnet_tiny")
    assert ClipSampler.from_cfg(model) == ClipSampler()
    cfg = model.pretrained_cfg.replace(num_clips=4, frames_per_clip=2)
    assert ClipSampler.from_cfg(cfg).config()["num_clips"] == 4
    assert cefl_zoo.ClipSampler is ClipSampler
    assert "ClipSampler(num_clips=7" in repr(ClipSampler())
