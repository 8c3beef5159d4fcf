"""Video reading: PyAV files (seeking, VFR, rotation, gray, odd sizes), frame folders, errors."""

from __future__ import annotations

import pickle
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from _video_utils import (
    barcode_frames,
    read_barcode,
    write_audio_only,
    write_frame_folder,
    write_video,
)

from cefl_zoo.video import (
    FrameFolderReader,
    PyAVReader,
    TensorVideoReader,
    VideoInfo,
    VideoReadError,
    natural_sort_key,
    open_video,
)


@pytest.fixture(scope="module")
def gop_video(tmp_path_factory):
    """60 frames, keyframe every 8 frames, B-frames: presentation != decode order."""
    path = tmp_path_factory.mktemp("io") / "gops.mp4"
    return write_video(path, barcode_frames(60), gop=8, bframes=2)


# -- PyAV files ----------------------------------------------------------------------------


def test_info_reports_frames_fps_duration_and_size(gop_video):
    with open_video(gop_video) as video:
        assert isinstance(video, PyAVReader)
        assert video.info == VideoInfo(str(gop_video), 60, 25.0, 2.4, 64, 48)
        assert len(video) == 60


def test_every_frame_decodes_in_presentation_order(gop_video):
    with open_video(gop_video) as video:
        assert read_barcode(video.read_all()) == list(range(60))


def test_seeking_reads_the_same_frames_as_decoding_everything(gop_video):
    with open_video(gop_video) as video:
        everything = video.read_all()
    rng = np.random.default_rng(0)
    subsets = [[59], [0], [8, 9], [17, 3, 3, 42], [7, 8, 15, 16, 55]]
    subsets += [sorted(rng.choice(60, 6, replace=False).tolist()) for _ in range(5)]
    for indices in subsets:
        with open_video(gop_video) as video:  # fresh reader: no decoder state to lean on
            frames = video.read(indices)
        assert torch.equal(frames, everything[indices]), indices
        assert read_barcode(frames) == indices


def test_seeking_skips_the_frames_before_the_last_keyframe(gop_video):
    decoded = []
    with open_video(gop_video) as video:
        original = video._decode_from

        def counting(seek_pts):
            for frame in original(seek_pts):
                decoded.append(frame.pts)
                yield frame

        video._decode_from = counting
        assert read_barcode(video.read([57])) == [57]
    # Frame 57 sits in the GOP starting at 56: a handful of frames, not all 58.
    assert 1 <= len(decoded) <= 8


def test_read_keeps_the_order_asked_and_duplicates(gop_video):
    with open_video(gop_video) as video:
        frames = video.read([30, 2, 2, 30, 0])
        assert frames.shape == (5, 3, 48, 64) and frames.dtype == torch.uint8
        assert read_barcode(frames) == [30, 2, 2, 30, 0]
        assert video.read([]).shape == (0, 3, 48, 64)
        assert read_barcode(video.read(torch.tensor([[1, 2], [3, 4]]))) == [1, 2, 3, 4]


def test_out_of_range_index_names_the_file(gop_video):
    with open_video(gop_video) as video, pytest.raises(IndexError, match="gops.mp4.*60 frames"):
        video.read([60])


def test_variable_frame_rate_indexes_frames_by_order_not_by_time(tmp_path):
    gaps = np.where(np.arange(40) % 3 == 0, 90, 20)  # irregular: 20 ms and 90 ms steps
    pts = np.concatenate([[0], np.cumsum(gaps)[:-1]]).tolist()
    path = write_video(
        tmp_path / "vfr.mp4",
        barcode_frames(40),
        gop=6,
        bframes=2,
        pts=pts,
        time_base=Fraction(1, 1000),
    )
    with open_video(path) as video:
        assert len(video) == 40
        assert read_barcode(video.read_all()) == list(range(40))
        assert read_barcode(video.read([39, 20, 1])) == [39, 20, 1]
        assert torch.allclose(video.frame_times(), torch.tensor(pts, dtype=torch.float64) / 1000)
        # The last frame is shown as long as the one before it (20 ms), not the average.
        assert video.info.duration == pytest.approx(
            video.frame_times()[-1].item() + 0.020, abs=1e-3
        )


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_turns_frames_upright(tmp_path, rotation):
    frames = barcode_frames(12)
    plain = write_video(tmp_path / "plain.mp4", frames, gop=4)
    turned = write_video(tmp_path / f"rot{rotation}.mp4", frames, gop=4, rotation=rotation)
    with open_video(plain) as a, open_video(turned) as b:
        upright, rotated = a.read([3, 7]), b.read([3, 7])
        expected_size = (64, 48) if rotation == 180 else (48, 64)  # (width, height)
        assert (b.info.width, b.info.height) == expected_size
    # Counter-clockwise display rotation (PyAV's VideoFrame.rotation convention).
    assert torch.equal(rotated, torch.rot90(upright, rotation // 90, dims=(2, 3)))
    assert read_barcode(torch.rot90(rotated, -(rotation // 90), dims=(2, 3))) == [3, 7]


def test_rotation_can_be_turned_off(tmp_path):
    path = write_video(tmp_path / "rot.mp4", barcode_frames(6), rotation=90)
    with open_video(path, apply_rotation=False) as video:
        assert video.read([2]).shape == (1, 3, 48, 64)
        assert read_barcode(video.read([2])) == [2]


def test_grayscale_video_comes_out_rgb(tmp_path):
    path = write_video(
        tmp_path / "gray.mkv", barcode_frames(20, gray=True), codec="ffv1", pix_fmt="gray"
    )
    with open_video(path) as video:
        frames = video.read([0, 13])
    assert frames.shape == (2, 3, 48, 64)
    assert torch.equal(frames[:, 0], frames[:, 1]) and torch.equal(frames[:, 1], frames[:, 2])
    assert read_barcode(frames) == [0, 13]


def test_odd_sized_video(tmp_path):
    path = write_video(tmp_path / "odd.mp4", barcode_frames(20, height=49, width=67), gop=5)
    with open_video(path) as video:
        assert (video.info.width, video.info.height) == (67, 49)
        frames = video.read([4, 19])
    assert frames.shape == (2, 3, 49, 67)
    assert read_barcode(frames) == [4, 19]


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("mpeg4.avi", {"codec": "mpeg4", "gop": 6}),
        ("h264.mkv", {"gop": 6, "bframes": 3}),
        ("mjpeg.avi", {"codec": "mjpeg", "pix_fmt": "yuvj420p"}),
    ],
)
def test_other_containers_and_codecs(tmp_path, name, kwargs):
    path = write_video(tmp_path / name, barcode_frames(30), **kwargs)
    with open_video(path) as video:
        assert len(video) == 30
        everything = video.read_all()
        assert read_barcode(everything) == list(range(30))
        assert torch.equal(video.read([29, 11, 12]), everything[[29, 11, 12]])


@pytest.mark.parametrize(
    "name, codec, gop, bframes",
    [
        ("mpeg1.mpg", "mpeg1video", 10, 2),  # MPEG-PS: the decoder mislabels after seeks
        ("mpeg1_nob.mpg", "mpeg1video", 10, 0),
        ("mpeg2.ts", "mpeg2video", 15, 2),  # MPEG-TS: the last GOP decodes nothing
    ],
)
def test_mpeg_program_and_transport_streams_read_the_right_frames(
    tmp_path, name, codec, gop, bframes
):
    frames = barcode_frames(90)
    options = {"g": str(gop), "bf": str(bframes), "qscale": "2"}
    path = write_video(tmp_path / name, frames, codec=codec, options=options)
    with open_video(path) as video:
        assert len(video) == 90
        everything = video.read_all()
    assert read_barcode(everything) == list(range(90))
    for i in range(90):  # every frame alone, each time from a fresh seek
        with open_video(path) as video:
            assert read_barcode(video.read([i])) == [i], i
    with open_video(path) as video:
        picks = [89, 3, 57, 58, 44, 44, 88]
        assert torch.equal(video.read(picks), everything[picks])


def test_close_is_idempotent_and_context_manager_closes(gop_video):
    video = open_video(gop_video)
    with video:
        video.read([1])
    assert video._container is None
    video.close()


# -- frame folders -------------------------------------------------------------------------


def test_natural_sort_key():
    names = ["10.jpg", "2.jpg", "1.jpg", "img_11.png", "img_9.png", "B.jpg", "a.jpg"]
    assert sorted(names, key=natural_sort_key) == [
        "1.jpg",
        "2.jpg",
        "10.jpg",
        "a.jpg",
        "B.jpg",
        "img_9.png",
        "img_11.png",
    ]


def test_frame_folder_sorts_frames_naturally(tmp_path):
    frames = barcode_frames(12)
    write_frame_folder(tmp_path / "clip", frames, ext="png")  # 1.png ... 12.png
    (tmp_path / "clip" / "notes.txt").write_text("ignored")
    with open_video(tmp_path / "clip", fps=30) as video:
        assert isinstance(video, FrameFolderReader)
        assert video.info == VideoInfo(str(tmp_path / "clip"), 12, 30.0, 0.4, 64, 48)
        # Plain string order would put 10.png, 11.png, 12.png before 2.png.
        assert [p.rsplit("/", 1)[-1] for p in video.files][:3] == ["1.png", "2.png", "3.png"]
        everything = video.read_all()
        assert torch.equal(everything, frames)  # png is lossless
        assert read_barcode(video.read([11, 1, 1])) == [11, 1, 1]


def test_frame_folder_jpeg_and_grayscale_images(tmp_path):
    frames = barcode_frames(5, gray=True)
    from torchvision.io import write_jpeg

    from cefl_zoo.video.io import quiet_image_io

    folder = tmp_path / "gray"
    folder.mkdir()
    with quiet_image_io():
        for i, f in enumerate(frames):
            write_jpeg(f[:1].contiguous(), str(folder / f"{i:03d}.jpg"), quality=95)  # 1-channel
    with open_video(folder) as video:
        out = video.read([0, 4])
    assert out.shape == (2, 3, 48, 64)
    assert read_barcode(out) == [0, 4]


def test_frame_folder_with_mixed_sizes_names_the_odd_file(tmp_path):
    folder = write_frame_folder(tmp_path / "mixed", barcode_frames(4))
    write_frame_folder(folder, barcode_frames(1, height=40, width=64), names=["3.jpg"])
    with open_video(folder) as video:
        video.read([0, 1])  # same sizes: fine
        with pytest.raises(VideoReadError, match=r"mixed.*3\.jpg is 64x40 but 1\.jpg is 64x48"):
            video.read([0, 2])
    with pytest.raises(VideoReadError, match="mixed frame sizes") as info:
        open_video(folder, verify_sizes=True)
    assert info.value.path == str(folder)


@pytest.mark.parametrize("content", [[], ["readme.txt", "video.mp4"]])
def test_frame_folder_without_images(tmp_path, content):
    folder = tmp_path / "empty"
    folder.mkdir()
    for name in content:
        (folder / name).write_text("x")
    with pytest.raises(VideoReadError, match="no frame images") as info:
        open_video(folder)
    assert str(folder) in str(info.value)
    if content:
        assert "video.mp4" in str(info.value)


def test_corrupt_frame_image_names_the_image(tmp_path):
    folder = write_frame_folder(tmp_path / "bad", barcode_frames(3))
    (folder / "2.jpg").write_bytes(b"not a jpeg at all")
    with open_video(folder) as video, pytest.raises(VideoReadError, match=r"2\.jpg"):
        video.read([1])


# -- bad input -----------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(VideoReadError, match="nope.mp4: file does not exist") as info:
        open_video(tmp_path / "nope.mp4")
    assert info.value.path == str(tmp_path / "nope.mp4")
    assert isinstance(info.value, ValueError)


def test_missing_folder_says_so(tmp_path):
    with pytest.raises(VideoReadError, match="folder .* does not exist either"):
        open_video(tmp_path / "no_such_dir" / "a.mp4")


def test_not_a_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is text, not a video\n" * 20)
    with pytest.raises(VideoReadError, match="notes.mp4: not a readable video"):
        open_video(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(VideoReadError, match="empty.mp4: file is empty"):
        open_video(path)


def test_audio_only_file(tmp_path):
    path = write_audio_only(tmp_path / "sound.m4a")
    with pytest.raises(VideoReadError, match=r"sound.m4a: has no video stream \(only audio"):
        open_video(path)


@pytest.mark.parametrize(
    "name, message",
    [
        ("zero.avi", "video stream has zero frames"),
        ("zero.mp4", "has no streams at all, so zero video"),
        ("zero.mkv", "the file ends before its first video frame"),
    ],
)
def test_zero_frame_video(tmp_path, name, message):
    path = tmp_path / name
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()  # header, no frames
    with pytest.raises(VideoReadError, match=f"{name}: {message}"):
        open_video(path)


def test_truncated_mp4_without_index(gop_video, tmp_path):
    data = gop_video.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])  # the moov index sits at the end: gone
    with pytest.raises(VideoReadError, match="cut.mp4: not a readable video.*truncated"):
        open_video(path)


def test_a_video_cut_anywhere_is_a_video_read_error(gop_video, tmp_path):
    # Cut at every 1 % of its length, the file either opens or raises VideoReadError,
    # never a bare error from PyAV's objects. (Cuts that keep part of the mp4's index
    # at the end give a stream without a codec context: that was an AttributeError.)
    data = gop_video.read_bytes()
    outcomes = set()
    for pct in range(1, 100):
        cut = tmp_path / f"cut{pct}.mp4"
        cut.write_bytes(data[: len(data) * pct // 100])
        try:
            with open_video(cut, allow_truncated=True) as video:
                frames = video.read([0, len(video) - 1])
                assert frames.shape[0] == 2
            outcomes.add("read")
        except VideoReadError as err:
            assert str(err).startswith(str(cut))
            outcomes.add("error")
    assert "error" in outcomes


def test_truncated_faststart_mp4_and_mkv(gop_video, tmp_path):
    # A faststart mp4 keeps its index at the front: the header promises more frames.
    fast = tmp_path / "fast.mp4"
    with (
        av.open(str(gop_video)) as src,
        av.open(str(fast), "w", options={"movflags": "faststart"}) as dst,
    ):
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out
                dst.mux(packet)
    mkv = write_video(tmp_path / "full.mkv", barcode_frames(40), gop=10)
    for full, declared in ((fast, "declares 60 frames"), (mkv, "declares 1.60 s")):
        data = full.read_bytes()
        cut = tmp_path / f"cut{full.suffix}"
        cut.write_bytes(data[: len(data) * 2 // 3])
        with pytest.raises(VideoReadError, match=f"{cut.name}: truncated: the header {declared}"):
            open_video(cut)
        with open_video(cut, allow_truncated=True) as video:
            n = len(video)
            assert 0 < n < (60 if full == fast else 40)
            assert read_barcode(video.read([0, n - 1])) == [0, n - 1]


def test_still_last_frame_is_not_taken_for_truncation(tmp_path):
    """A complete mkv whose last picture stays on screen for 3 s (a longer duration)."""
    path = tmp_path / "still_end.mkv"
    tb = Fraction(1, 1000)
    frames = barcode_frames(30).permute(0, 2, 3, 1).numpy()
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"crf": "0", "bf": "0", "threads": "1"}
        stream.time_base = stream.codec_context.time_base = tb
        packets = []
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts, frame.time_base = i * 40, tb
            packets += stream.encode(frame)
        packets += stream.encode()
        for packet in packets:
            if packet.pts == 29 * 40:
                packet.duration = 3000
            out.mux(packet)
    with av.open(str(path)) as container:
        assert container.duration / 1e6 > 4  # the header's length includes the still end
    with open_video(path) as video:
        assert len(video) == 30
        assert read_barcode(video.read([0, 29])) == [0, 29]


def test_picture_size_change_mid_stream_is_scaled_to_the_stream_size(tmp_path):
    # Two transport streams of different sizes, one after the other (as a recorder that
    # switched resolution writes them): ffmpeg scales to the first size; so do we.
    big = write_video(tmp_path / "a.ts", barcode_frames(20, height=48, width=64), gop=10)
    small = write_video(tmp_path / "b.ts", barcode_frames(20, height=48, width=48), gop=10)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(big.read_bytes() + small.read_bytes())
    with open_video(joined) as video:
        assert (video.info.width, video.info.height) == (64, 48)
        frames = video.read([0, 19, 25, len(video) - 1])
    assert frames.shape == (4, 3, 48, 64)


def test_video_read_error_pickles():
    err = VideoReadError("/data/x.mp4", "truncated", "re-encode it")
    copy = pickle.loads(pickle.dumps(err))
    assert (
        copy.path == "/data/x.mp4"
        and str(copy) == str(err) == "/data/x.mp4: truncated. re-encode it"
    )


def test_video_read_error_from_a_dataloader_worker_keeps_path_and_message():
    from torch.utils.data import DataLoader, Dataset

    class Broken(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            raise VideoReadError("/data/my clip.mp4", "truncated: frame 3 of 9", "re-encode it")

    with pytest.raises(VideoReadError) as info:  # not a RuntimeError, not a traceback dump
        next(iter(DataLoader(Broken(), num_workers=1)))
    err = info.value
    assert err.path == "/data/my clip.mp4"
    assert str(err) == (
        "/data/my clip.mp4: truncated: frame 3 of 9. re-encode it (in DataLoader worker process 0)"
    )
    assert str(VideoReadError("just a message")) == "just a message"


def test_unknown_open_video_option(gop_video):
    with pytest.raises(TypeError, match="unknown options.*thread"):
        open_video(gop_video, thread=2)


def test_tensor_reader():
    frames = barcode_frames(7)
    reader = TensorVideoReader(frames, fps=10)
    assert reader.info.num_frames == 7 and reader.info.duration == 0.7
    assert torch.equal(reader.read([6, 0, 6]), frames[[6, 0, 6]])
    with pytest.raises(ValueError, match="uint8 frames"):
        TensorVideoReader(frames.float())
