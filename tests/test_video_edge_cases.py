"""Video files and frame folders that are valid but unusual: start offsets, clips cut
mid-GOP, raw elementary streams, MPEG-TS seeking, variable frame rate, 16-bit PNGs."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from _video_utils import barcode_frames, read_barcode, write_video

from cefl_zoo.video import open_video


@pytest.mark.parametrize("name", ["offset.mkv", "offset.webm"])
def test_matroska_whose_timestamps_start_late_is_not_truncated(tmp_path, name):
    # Matroska counts the 40 s before the first frame in the file's duration.
    codec = "libvpx" if name.endswith("webm") else "libx264"
    frames = barcode_frames(30)
    pts = [40_000 + 40 * i for i in range(30)]
    path = write_video(tmp_path / name, frames, codec=codec, gop=10, pts=pts)
    with open_video(path) as video:
        assert len(video) == 30
        assert read_barcode(video.read([0, 15, 29])) == [0, 15, 29]
        assert video.info.duration == pytest.approx(1.2, abs=1e-3)


def _cut_before_packet(src, dst, first: int) -> None:
    """Stream-copy ``src`` to ``dst`` from its packet ``first`` on (as a cut without
    re-encoding does)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="matroska") as out:
        stream = inp.streams.video[0]
        target = out.add_stream_from_template(stream)
        for k, packet in enumerate(inp.demux(stream)):
            if packet.size and k >= first:
                packet.stream = target
                out.mux(packet)


@pytest.mark.parametrize("allow_truncated", [False, True])
def test_clip_cut_mid_gop_keeps_the_frames_that_decode(tmp_path, allow_truncated):
    src = write_video(tmp_path / "src.mkv", barcode_frames(60), gop=20)
    cut = tmp_path / "cut.mkv"
    _cut_before_packet(src, cut, 5)  # starts at a P-frame, 15 frames before a keyframe
    with av.open(str(cut)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    expected = read_barcode(torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2))
    assert expected == list(range(20, 60))
    with open_video(cut, allow_truncated=allow_truncated) as video:
        assert len(video) == 40
        assert read_barcode(video.read([0, 1, 25, 39])) == [20, 21, 45, 59]
        assert read_barcode(video.read_all()) == expected


def test_raw_h264_stream_that_cannot_seek_is_read_from_the_start(tmp_path):
    path = write_video(tmp_path / "raw.h264", barcode_frames(30), gop=10)
    with open_video(path) as video:
        assert len(video) == 30
        assert read_barcode(video.read([0, 12, 29])) == [0, 12, 29]
        assert read_barcode(video.read([3])) == [3]  # again: a fresh start, no seek


def test_mpegts_seek_landing_on_a_later_keyframe_is_used(tmp_path):
    path = write_video(tmp_path / "seek.ts", barcode_frames(200), gop=10, bframes=3)
    with open_video(path) as video:
        seeks = []
        decode_from = video._decode_from
        video._decode_from = lambda pts: (seeks.append(pts), decode_from(pts))[1]
        assert read_barcode(video.read([190, 191])) == [190, 191]
    assert seeks and None not in seeks  # never decoded from the start of the file
    assert len(seeks) <= 2


def test_variable_frame_rate_video_ends_after_its_last_frame(tmp_path):
    # 10 frames at 10 fps, then 10 at 50 fps: the last frame starts at 1.18 s, ends at 1.2 s.
    pts = [100 * i for i in range(10)] + [1000 + 20 * i for i in range(10)]
    path = write_video(tmp_path / "vfr.mkv", barcode_frames(20), pts=pts)
    with open_video(path) as video:
        assert float(video.frame_times()[-1]) == pytest.approx(1.18)
        assert video.info.duration == pytest.approx(1.2)


def test_a_pause_before_the_last_frame_does_not_stretch_the_duration(tmp_path):
    # 25 frames at 25 fps, then one last frame at 5 s (its packet says it shows 40 ms).
    pts = [40 * i for i in range(25)] + [5000]
    path = write_video(tmp_path / "pause.mkv", barcode_frames(26), pts=pts)
    with open_video(path) as video:
        assert video.info.duration == pytest.approx(5.04, abs=0.005)


def test_a_clip_without_any_keyframe_says_so(tmp_path):
    src = write_video(tmp_path / "src.mkv", barcode_frames(30), gop=40)  # one keyframe: 0
    cut = tmp_path / "cut.mkv"
    _cut_before_packet(src, cut, 5)
    from cefl_zoo.video import VideoReadError

    with pytest.raises(VideoReadError, match="starts mid-GOP .* holds no keyframe"):
        open_video(cut)


def test_16_bit_png_frames_come_out_as_8_bit_rgb(tmp_path):
    from PIL import Image

    for t, value in enumerate((0, 10_000, 65_535)):
        Image.fromarray(np.full((16, 16), value, np.uint16)).save(tmp_path / f"{t}.png")
    with open_video(tmp_path) as video:
        frames = video.read([0, 1, 2])
    assert frames.dtype == torch.uint8 and frames.shape == (3, 3, 16, 16)
    assert [int(f.max()) for f in frames] == [0, 10_000 // 257, 255]
