"""Face detection and cropping: tracking, filling, smoothing, crops, cache, RetinaFace."""

from __future__ import annotations

import json
import math
import os
import pickle
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as nnf
from _faces_utils import (
    ScriptedDetector,
    astronaut,
    face_clip,
    indexed_frames,
    requires_faces_extra,
)
from _video_utils import tree_snapshot, write_frame_folder, write_video
from torchvision.transforms.v2 import functional as F

from cefl_zoo.data import VideoDataset, VideoFolderDataset, VideoItem
from cefl_zoo.faces import (
    FACES_JSON,
    FaceCropper,
    FaceDetector,
    MissingFaceDependencyError,
    NoFaceError,
    RetinaFaceDetector,
    check_detections,
    crop_boxes,
    detection_indices,
    fill_track,
    load_face_track,
    precompute_dataset_face_crops,
    precompute_face_crops,
    select_main_face,
    smooth_track,
    square_boxes,
)
from cefl_zoo.video import VideoReadError, open_video

NAN = math.nan


def _det(*rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 5)


# -- protocol -------------------------------------------------------------------------------


def test_any_object_with_detect_is_a_face_detector():
    assert isinstance(ScriptedDetector({}), FaceDetector)
    assert not isinstance(object(), FaceDetector)


def test_check_detections_rejects_malformed_output():
    with pytest.raises(TypeError, match="list of 3 tensors"):
        check_detections([torch.zeros(0, 5)], 3, "Bad")
    with pytest.raises(TypeError, match=r"frame 1: expected a \(n, 5\) tensor"):
        check_detections([torch.zeros(0, 5), torch.zeros(2, 4)], 2)
    out = check_detections([[], [[1, 2, 3, 4, 0.5]]], 2)
    assert out[0].shape == (0, 5) and out[1].dtype == torch.float32


def test_face_cropper_rejects_objects_without_detect():
    with pytest.raises(TypeError, match="detect"):
        FaceCropper(object())


# -- main face selection ----------------------------------------------------------------------


def test_main_face_is_the_large_persistent_one_not_a_momentary_bystander():
    dets = []
    for t in range(8):
        main = [100 + t, 100, 200 + t, 200, 0.95]
        small = [300, 300, 320, 320, 0.99]
        rows = [small, main]
        if t == 3:  # a bigger face for a single frame, elsewhere in the image
            rows.append([400, 0, 700, 300, 0.99])
        dets.append(_det(*rows))
    boxes, scores = select_main_face(dets)
    assert boxes[:, 0].tolist() == [100.0 + t for t in range(8)]
    assert torch.allclose(scores, torch.full((8,), 0.95))


def test_main_face_switches_after_a_scene_cut():
    a = [[0, 0, 100, 100, 0.9]]
    b = [[300, 300, 380, 380, 0.9]]
    dets = [_det(*a)] * 6 + [_det(*b)] * 6
    boxes, _ = select_main_face(dets, reacquire=3)
    assert boxes[:6, 0].tolist() == [0.0] * 6
    assert boxes[6:, 0].tolist() == [300.0] * 6


def test_crops_around_a_scene_cut_show_one_face_not_a_blend_of_two():
    # Face A in frames 0-9, face B far away in 10-19, every other frame detected: the
    # boxes near the cut used to be smoothed and interpolated between the two faces.
    a, b = [10, 40, 50, 80, 0.9], [200, 40, 240, 80, 0.9]
    cropper = FaceCropper(ScriptedDetector({}), size=16, stride=1)
    dets = [_det(a if i < 10 else b) if i % 2 == 0 else None for i in range(20)]
    track = cropper.track_detections(dets)
    x1 = track.boxes[:, 0]
    assert torch.allclose(x1[:10], torch.full((10,), 10.0), atol=1e-3), x1
    assert torch.allclose(x1[10:], torch.full((10,), 200.0), atol=1e-3), x1
    ids = select_main_face(dets, return_tracks=True)[2]
    assert ids.tolist() == [-1 if i % 2 else 0 if i < 10 else 1 for i in range(20)]


def test_short_absence_of_the_main_face_leaves_a_gap_not_a_switch():
    main = [0, 0, 100, 100, 0.9]
    other = [300, 300, 340, 340, 0.9]
    dets = [_det(main, other)] * 4 + [_det(other)] * 2 + [_det(main, other)] * 4
    boxes, _ = select_main_face(dets, reacquire=3)
    assert torch.isnan(boxes[4:6]).all()
    assert boxes[[0, 3, 6, 9], 0].tolist() == [0.0] * 4


def test_no_detections_gives_all_nan():
    boxes, scores = select_main_face([None, _det(), None])
    assert torch.isnan(boxes).all() and torch.isnan(scores).all()


# -- filling, smoothing, squares --------------------------------------------------------------


def test_fill_interpolates_skipped_frames_and_uses_nearest_for_faceless_ones():
    boxes = torch.full((5, 4), NAN)
    boxes[0] = torch.tensor([0.0, 0, 10, 10])
    boxes[4] = torch.tensor([40.0, 0, 50, 10])
    skipped = fill_track(boxes, detected=[True, False, False, False, True])
    assert skipped[:, 0].tolist() == [0.0, 10.0, 20.0, 30.0, 40.0]
    faceless = fill_track(boxes, detected=[True] * 5)
    # frame 2 is as far from 0 as from 4: the earlier box wins
    assert faceless[:, 0].tolist() == [0.0, 0.0, 0.0, 40.0, 40.0]


def test_fill_uses_frame_times_for_interpolation():
    boxes = torch.full((3, 4), NAN)
    boxes[0] = torch.tensor([0.0, 0, 10, 10])
    boxes[2] = torch.tensor([40.0, 0, 50, 10])
    out = fill_track(boxes, [True, False, True], times=torch.tensor([0, 1, 10]))
    assert out[1, 0].item() == pytest.approx(4.0)


def test_fill_without_any_box_raises():
    with pytest.raises(ValueError, match="no frame has a face box"):
        fill_track(torch.full((3, 4), NAN), [True] * 3)


def test_smoothing_removes_jitter_and_keeps_steady_motion():
    t = torch.arange(40, dtype=torch.float32)
    jitter = torch.tensor([2.0, -2.0]).repeat(20)
    cx = 2 * t + jitter
    boxes = torch.stack([cx - 20, 10 + 0 * t, cx + 20, 50 + 0 * t], 1)
    smooth = smooth_track(boxes, sigma=2.0)
    centre = (smooth[:, 0] + smooth[:, 2]) / 2
    inner = slice(8, 32)  # away from the ends, a Gaussian keeps a straight line straight
    assert (centre[inner] - 2 * t[inner]).abs().max() < 0.05
    # ... and at the ends, where its window is cut off, the box still follows the face
    # (a weighted mean there trailed it by several pixels toward the middle)
    steady = torch.stack([2 * t - 20, 10 + 0 * t, 2 * t + 20, 50 + 0 * t], 1)
    assert (smooth_track(steady, sigma=2.0) - steady).abs().max() < 1e-3
    assert (centre[[0, -1]] - 2 * t[[0, -1]]).abs().max() < 2.0  # within the jitter
    # a face that shrinks fast at a track's end: sizes and centres stay within what was seen
    sizes = torch.tensor([100.0, 60.0, 36.0, 22.0])
    shrinking = torch.stack([50 - sizes / 2, 50 - sizes / 2, 50 + sizes / 2, 50 + sizes / 2], 1)
    shrinking[:, [0, 2]] += torch.tensor([0.0, 3.0, 9.0, 20.0])[:, None]
    out = smooth_track(shrinking, sigma=2.0)
    width = out[:, 2] - out[:, 0]
    cx, seen = (out[:, 0] + out[:, 2]) / 2, (shrinking[:, 0] + shrinking[:, 2]) / 2
    assert ((width >= 22 - 1e-4) & (width <= 100 + 1e-4)).all(), width
    assert ((cx >= seen.min() - 1e-4) & (cx <= seen.max() + 1e-4)).all(), cx
    assert (smooth[:, 2] - smooth[:, 0]).sub(40).abs().max() < 1e-4
    assert torch.equal(smooth_track(boxes, 0.0), boxes)


def test_square_boxes_add_the_margin_around_the_longer_side():
    sq = square_boxes(torch.tensor([[10.0, 20.0, 30.0, 60.0]]), margin=0.25)
    assert sq.tolist() == [[-10.0, 10.0, 50.0, 70.0]]
    with pytest.raises(ValueError, match="margin"):
        square_boxes(sq, margin=-1)


# -- cropping ----------------------------------------------------------------------------------


def test_crop_takes_the_box_region_and_shrinks_it_smoothly():
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (2, 3, 48, 64), dtype=torch.uint8, generator=g)
    box = torch.tensor([[8.0, 4.0, 40.0, 36.0], [8.2, 3.8, 39.9, 36.1]])  # rounds to the same
    assert torch.equal(crop_boxes(frames, box, 32), frames[:, :, 4:36, 8:40])
    half = crop_boxes(frames, box, 16)
    assert torch.equal(half, F.resize(frames[:, :, 4:36, 8:40], [16, 16], antialias=True))
    # anti-aliased: 1-pixel stripes shrink to grey, not to black or white columns
    stripes = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    stripes[..., 1::2] = 255
    grey = crop_boxes(stripes, torch.tensor([[0.0, 0.0, 64.0, 64.0]]), 16)
    assert (grey.float() - 127.5).abs().max() < 20


def test_crop_pads_with_black_past_the_image():
    frames = torch.full((1, 3, 32, 32), 200, dtype=torch.uint8)
    out = crop_boxes(frames, torch.tensor([[-16.0, 0.0, 16.0, 32.0]]), 32)
    assert (out[..., :16] == 0).all()
    assert (out[..., 16:] == 200).all()
    outside = crop_boxes(frames, torch.tensor([[100.0, 100.0, 140.0, 140.0]]), 8)
    assert (outside == 0).all()


def test_cropper_fills_a_faceless_frame_with_the_nearest_box():
    script = {i: [[20, 10, 40, 30, 0.9]] for i in range(10) if i != 4}
    det = ScriptedDetector(script)
    cropper = FaceCropper(det, size=16, margin=0.0, smoothing=0.0)
    frames = indexed_frames(10)
    track = cropper.track(frames, "v.mp4")
    assert track.detected.tolist() == [i != 4 for i in range(10)]
    assert track.boxes[4].tolist() == [20.0, 10.0, 40.0, 30.0]
    assert math.isnan(track.scores[4].item())
    crops = cropper(frames, "v.mp4")
    assert crops.shape == (10, 3, 16, 16) and crops.dtype == torch.uint8
    assert (crops == 100).all()  # the face region holds only the grey background


def test_cropper_with_stride_detects_on_few_frames_and_interpolates():
    det = ScriptedDetector({i: [[20 + i, 10, 40 + i, 30, 0.9]] for i in range(10)})
    cropper = FaceCropper(det, size=16, margin=0.0, smoothing=0.0, stride=4)
    track = cropper.track(indexed_frames(10))
    assert det.seen == [0, 4, 8, 9] == detection_indices(10, 4)
    assert track.boxes[:, 0].tolist() == [20.0 + i for i in range(10)]
    assert track.detected.tolist() == [i in (0, 4, 8, 9) for i in range(10)]


def test_cropper_with_stride_searches_the_other_frames_before_giving_up():
    det = ScriptedDetector({2: [[5, 5, 25, 25, 0.9]]})
    track = FaceCropper(det, size=8, smoothing=0.0, stride=4).track(indexed_frames(10))
    assert sorted(det.seen) == list(range(10))
    assert (track.boxes[:, 0] == 5).all()


def test_video_without_any_face_raises_no_face_error_naming_the_file():
    cropper = FaceCropper(ScriptedDetector({}), size=8)
    with pytest.raises(NoFaceError, match=r"clips/empty\.mp4: no face found in any of the 6"):
        cropper(indexed_frames(6), "clips/empty.mp4")
    err = pytest.raises(NoFaceError, cropper, indexed_frames(6), "x.mp4").value
    assert isinstance(err, VideoReadError) and isinstance(err, ValueError)
    again = pickle.loads(pickle.dumps(err))  # crosses DataLoader worker boundaries
    assert type(again) is NoFaceError and str(again) == str(err) and again.path == "x.mp4"


def test_cropper_rejects_frames_that_are_not_uint8_video():
    cropper = FaceCropper(ScriptedDetector({}), size=8)
    with pytest.raises(ValueError, match=r"a\.mp4: FaceCropper expects uint8 frames"):
        cropper(torch.zeros(2, 3, 8, 8), "a.mp4")
    with pytest.raises(ValueError, match="no frames"):
        cropper(torch.zeros(0, 3, 8, 8, dtype=torch.uint8), "a.mp4")


@pytest.mark.parametrize(
    "kwargs", [{"size": 0}, {"margin": -0.1}, {"smoothing": -1}, {"stride": 0}]
)
def test_cropper_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        FaceCropper(ScriptedDetector({}), **kwargs)


# -- inside a dataset ----------------------------------------------------------------------------


def test_dataset_crops_faces_of_the_sampled_frames(tmp_path):
    folder = write_frame_folder(tmp_path / "v0", indexed_frames(20), ext="png")
    det = ScriptedDetector({i: [[16, 8, 48, 40, 0.9]] for i in range(20)})
    ds = VideoDataset(
        [VideoItem(str(folder), 0)],
        classes=("happiness",),
        face_cropper=FaceCropper(det, size=16, margin=0.0),
    )
    sample = ds[0]
    assert sample["video"].shape == (7, 5, 3, 16, 16)
    assert sorted(set(det.seen)) == sorted(set(sample["frame_indices"].flatten().tolist()))
    assert torch.allclose(sample["video"], torch.full_like(sample["video"], 100 / 255))


class _RecordingCropper:
    """A face cropper that records the ``times`` it is given (and crops nothing)."""

    def __init__(self) -> None:
        self.times: list[list[int] | None] = []

    def __call__(self, frames, path, times=None):
        self.times.append(None if times is None else torch.as_tensor(times).tolist())
        return frames[:, :, :16, :16].contiguous()


class _PlainCropper:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, frames, path):
        self.calls += 1
        return frames[:, :, :16, :16].contiguous()


def test_dataset_and_cache_tell_the_cropper_which_frames_it_gets(tmp_path):
    from cefl_zoo.data import build_frame_cache

    folder = write_frame_folder(tmp_path / "v0", indexed_frames(120), ext="png")
    cropper = _RecordingCropper()
    ds = VideoDataset([VideoItem(str(folder), 0)], ("happiness",), face_cropper=cropper)
    sample = ds[0]
    # The original frame index of every frame the cropper saw (smoothing runs in those).
    assert cropper.times[-1] == sorted(set(sample["frame_indices"].flatten().tolist()))
    assert cropper.times[-1] != list(range(len(cropper.times[-1])))
    build_frame_cache(ds, tmp_path / "cache", format="uint8", progress=False)
    assert cropper.times[-1] == ds.sampler.reachable_frames(120).tolist()
    plain = _PlainCropper()  # a cropper without ``times`` is called as (frames, path)
    VideoDataset([VideoItem(str(folder), 0)], ("happiness",), face_cropper=plain)[0]
    assert plain.calls == 1


def test_dataset_follows_its_on_error_flag_for_videos_without_faces(tmp_path):
    a = write_frame_folder(tmp_path / "a", indexed_frames(10), ext="png")
    b = write_frame_folder(tmp_path / "b", indexed_frames(10, start=100), ext="png")
    det = ScriptedDetector({100 + i: [[16, 8, 48, 40, 0.9]] for i in range(10)})
    items = [VideoItem(str(a), 0), VideoItem(str(b), 1)]
    cropper = FaceCropper(det, size=8)
    strict = VideoDataset(items, ("happiness", "sadness"), face_cropper=cropper, on_error="raise")
    with pytest.raises(NoFaceError, match=str(a)):
        strict[0]
    lenient = VideoDataset(items, ("happiness", "sadness"), face_cropper=cropper)
    with pytest.warns(RuntimeWarning, match="no face found"):
        sample = lenient[0]
    assert sample["index"] == 1 and sample["label"] == 1
    assert lenient.failures[0]["path"] == str(a) and lenient.failures[0]["error"] == "NoFaceError"


# -- precomputed crops ----------------------------------------------------------------------------


def _hidden(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_precomputed_crops_are_a_readable_frame_folder_with_boxes(tmp_path):
    src = write_frame_folder(tmp_path / "src" / "clip1", indexed_frames(12), ext="png")
    det = ScriptedDetector({i: [[10 + i, 8, 30 + i, 28, 0.9]] for i in range(12) if i != 5})
    cropper = FaceCropper(det, size=16, margin=0.0, smoothing=0.0, stride=3)
    out = precompute_face_crops(src, tmp_path / "crops", cropper, chunk_size=5)
    assert out == tmp_path / "crops" / "clip1"
    assert det.seen == detection_indices(12, 3)
    with open_video(out) as video:
        assert len(video) == 12
        assert video.read([0, 11]).shape == (2, 3, 16, 16)
    meta = load_face_track(out)
    assert meta["num_frames"] == 12 and meta["source"] == str(src)
    assert meta["cropper"]["stride"] == 3
    assert meta["frames"][3]["box"] == [13.0, 8.0, 33.0, 28.0]
    assert [f["detected"] for f in meta["frames"]] == [i in (0, 3, 6, 9, 11) for i in range(12)]
    assert meta["frames"][1]["score"] is None and meta["frames"][0]["score"] == 0.9
    assert _hidden(tmp_path / "crops") == []


def test_precomputed_crops_are_reused_until_source_or_settings_change(tmp_path):
    src = write_frame_folder(tmp_path / "src" / "clip", indexed_frames(6), ext="png")
    det = ScriptedDetector({i: [[10, 8, 30, 28, 0.9]] for i in range(6)})
    out = precompute_face_crops(src, tmp_path / "crops", FaceCropper(det, size=16))
    stamp = os.stat(out / FACES_JSON).st_mtime_ns
    calls = det.calls
    assert precompute_face_crops(src, tmp_path / "crops", FaceCropper(det, size=16)) == out
    assert det.calls == calls and os.stat(out / FACES_JSON).st_mtime_ns == stamp
    precompute_face_crops(src, tmp_path / "crops", FaceCropper(det, size=24))
    assert det.calls > calls
    with open_video(out) as video:
        assert video.read([0]).shape[-1] == 24
    calls = det.calls
    write_frame_folder(src, indexed_frames(7), ext="png")  # the source gained a frame
    precompute_face_crops(src, tmp_path / "crops", FaceCropper(det, size=24))
    assert det.calls > calls and load_face_track(out)["num_frames"] == 7
    assert load_face_track(out)["quality"] == 95
    calls = det.calls
    precompute_face_crops(src, tmp_path / "crops", FaceCropper(det, size=24), quality=20)
    assert det.calls > calls and load_face_track(out)["quality"] == 20  # other JPEGs
    # a folder an older cefl-zoo wrote (format 1: smoothing across scene cuts) is redone
    meta = load_face_track(out)
    (out / FACES_JSON).write_text(json.dumps({**meta, "format": 1}))
    calls = det.calls
    precompute_face_crops(src, tmp_path / "crops", FaceCropper(det, size=24), quality=20)
    assert det.calls > calls and load_face_track(out)["format"] == 2
    assert _hidden(tmp_path / "crops") == []


class _EveryFrameFace:
    def detect(self, frames):
        return [torch.tensor([[16.0, 8.0, 48.0, 40.0, 0.9]]) for _ in frames]


def test_videos_that_share_a_name_get_crops_folders_of_their_own(tmp_path):
    # a.mp4 and a.avi used to share the folder "a": one's crops replaced the other's
    root = tmp_path / "data"
    write_video(root / "happy" / "a.mp4", indexed_frames(8, height=64))
    write_video(root / "happy" / "a.avi", indexed_frames(8, height=64), codec="mpeg4")
    write_video(root / "happy" / "b.mp4", indexed_frames(8, height=64))
    ds = VideoFolderDataset(root, split=None, classes=("happiness",))
    cropper = FaceCropper(_EveryFrameFace(), size=16, margin=0.0)
    cached = precompute_dataset_face_crops(ds, tmp_path / "cache", cropper, progress=False)
    folders = {Path(it.meta["source_path"]).name: it.path for it in cached.items}
    assert folders == {
        "a.avi": str(tmp_path / "cache" / "happy" / "a_avi"),
        "a.mp4": str(tmp_path / "cache" / "happy" / "a_mp4"),
        "b.mp4": str(tmp_path / "cache" / "happy" / "b"),
    }
    for name, folder in folders.items():
        assert load_face_track(folder)["source"].endswith(name)


def test_failed_precompute_leaves_nothing_behind(tmp_path):
    src = write_frame_folder(tmp_path / "src" / "clip", indexed_frames(8), ext="png")
    with pytest.raises(NoFaceError, match="clip"):
        precompute_face_crops(src, tmp_path / "crops", FaceCropper(ScriptedDetector({}), size=8))
    assert not (tmp_path / "crops" / "clip").exists()

    cropper = FaceCropper(ScriptedDetector({i: [[0, 0, 8, 8, 0.9]] for i in range(8)}), size=8)
    real_crop = cropper.crop
    chunks = []

    def crash_on_second_chunk(frames, boxes):
        chunks.append(len(frames))
        if len(chunks) == 2:
            raise OSError("disk full")
        return real_crop(frames, boxes)

    cropper.crop = crash_on_second_chunk
    with pytest.raises(OSError, match="disk full"):
        precompute_face_crops(src, tmp_path / "crops", cropper, chunk_size=4)
    assert not (tmp_path / "crops" / "clip").exists()
    assert _hidden(tmp_path / "crops") == []


def _class_tree(root):
    write_frame_folder(root / "happy" / "v1", indexed_frames(8), ext="png")
    write_frame_folder(root / "sad" / "v2", indexed_frames(8, start=100), ext="png")
    return VideoFolderDataset(root, split=None, classes=("happiness", "sadness"))


def test_dataset_crops_are_cached_outside_the_dataset_which_stays_untouched(tmp_path):
    root = tmp_path / "data"
    ds = _class_tree(root)
    snap = tree_snapshot(root)
    det = ScriptedDetector(
        {i: [[16, 8, 48, 40, 0.9]] for i in list(range(8)) + list(range(100, 108))}
    )
    cropper = FaceCropper(det, size=16, margin=0.0)
    with pytest.raises(ValueError, match="inside the dataset directory"):
        precompute_dataset_face_crops(ds, root / "cache", cropper, progress=False)
    cached = precompute_dataset_face_crops(ds, tmp_path / "cache", cropper, progress=False)
    assert [it.path for it in cached.items] == [
        str(tmp_path / "cache" / "happy" / "v1"),
        str(tmp_path / "cache" / "sad" / "v2"),
    ]
    assert cached.targets == ds.targets == [0, 1]
    assert cached.face_cropper is None and cached.items[0].meta["source_path"] == ds.items[0].path
    assert ds.items[0].path == str(root / "happy" / "v1")  # the original is unchanged
    assert cached[1]["video"].shape == (7, 5, 3, 16, 16)
    assert tree_snapshot(root) == snap


def test_dataset_crops_report_and_skip_videos_without_faces(tmp_path):
    ds = _class_tree(tmp_path / "data")
    det = ScriptedDetector({i: [[16, 8, 48, 40, 0.9]] for i in range(8)})  # none in v2
    cropper = FaceCropper(det, size=8)
    with pytest.raises(NoFaceError, match="v2"):
        precompute_dataset_face_crops(
            ds, tmp_path / "c1", cropper, on_error="raise", progress=False
        )
    with pytest.warns(RuntimeWarning, match=r"skipping .*v2"):
        cached = precompute_dataset_face_crops(
            ds, tmp_path / "c2", cropper, on_error="skip", progress=False
        )
    assert len(cached) == 1 and cached.failures[0]["path"].endswith("v2")


def test_dataset_crops_raise_out_of_memory_instead_of_skipping(tmp_path):
    class OutOfMemoryDetector(ScriptedDetector):
        def detect(self, frames):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    ds = _class_tree(tmp_path / "data")
    cropper = FaceCropper(OutOfMemoryDetector({}), size=8)
    with pytest.raises(torch.OutOfMemoryError):  # every other video would fail the same way
        precompute_dataset_face_crops(ds, tmp_path / "c", cropper, on_error="skip", progress=False)


# -- the optional RetinaFace detector ------------------------------------------------------------


def test_missing_faces_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "retinaface", None)  # import retinaface -> ImportError
    with pytest.raises(MissingFaceDependencyError, match=r'pip install "cefl-zoo\[faces\]"'):
        RetinaFaceDetector()
    with pytest.raises(ImportError, match=r"cefl-zoo\[faces\]"):
        FaceCropper()  # the default detector


@pytest.fixture(scope="module")
def retina():
    if not _faces_extra():
        pytest.skip('needs the faces extra: pip install "cefl-zoo[faces]"')
    return RetinaFaceDetector(num_threads=1)


def _faces_extra():
    from _faces_utils import HAS_FACES_EXTRA

    return HAS_FACES_EXTRA


@pytest.fixture(scope="module")
def astronaut_face(retina):
    image = astronaut()
    det = retina.detect(image[None])[0]
    assert len(det) == 1, "the astronaut photo shows exactly one face"
    return image, det[0]


@requires_faces_extra
def test_retinaface_finds_the_astronauts_face(retina, astronaut_face):
    _, box = astronaut_face
    # The face in skimage's astronaut.png spans about x 177-272, y 56-176 (forehead to chin).
    assert torch.allclose(box[:4], torch.tensor([177.0, 56.0, 272.0, 176.0]), atol=12)
    assert box[4] > 0.9
    assert retina.detect(torch.zeros(1, 3, 128, 128, dtype=torch.uint8))[0].shape == (0, 5)


@requires_faces_extra
def test_retinaface_maps_boxes_back_from_downscaled_frames(retina, astronaut_face):
    image, box = astronaut_face
    big = nnf.interpolate(image[None].float(), scale_factor=2, mode="bilinear").round().byte()
    small_side = RetinaFaceDetector(max_size=512, num_threads=1)
    found = small_side.detect(big)[0]
    assert len(found) == 1
    assert torch.allclose(found[0, :4], box[:4] * 2, atol=8)


@requires_faces_extra
def test_retinaface_survives_pickling_for_dataloader_workers(retina, astronaut_face):
    image, box = astronaut_face
    clone = pickle.loads(pickle.dumps(retina))
    assert clone._session is None
    assert torch.allclose(clone.detect(image[None])[0][0], box)


@requires_faces_extra
def test_real_clip_track_follows_the_face_and_crops_centre_it(retina, astronaut_face):
    image, box = astronaut_face
    frames, expected = face_clip(image, box, num_frames=12, size=160)
    cropper = FaceCropper(retina, size=96, margin=0.25, smoothing=1.0, stride=3)
    track = cropper.track(frames, "astronaut.mp4")
    side = (expected[:, 2] - expected[:, 0]).mean()
    err = (track.boxes - expected).abs()
    assert err.mean() < 0.1 * side and err.max() < 0.25 * side
    crops = cropper.crop(frames, track)
    assert crops.shape == (12, 3, 96, 96)
    for det in retina.detect(crops):  # the face is found again, centred, at the set scale
        assert len(det) >= 1
        x1, y1, x2, y2, _ = det[0].tolist()
        assert abs((x1 + x2) / 2 - 48) < 10 and abs((y1 + y2) / 2 - 48) < 10
        assert 96 / 1.5 * 0.75 < max(x2 - x1, y2 - y1) < 96 / 1.5 * 1.25


@requires_faces_extra
def test_cli_precomputes_crops_of_a_video(tmp_path, retina, astronaut_face, capsys):
    from cefl_zoo.cli import main

    image, box = astronaut_face
    frames, _ = face_clip(image, box, num_frames=10, size=160)
    video = write_video(tmp_path / "in" / "astro.mp4", frames)
    rc = main(
        [
            "faces",
            str(video),
            str(tmp_path / "out"),
            "--size",
            "64",
            "--stride",
            "3",
            "--threads",
            "1",
            "--no-progress",
        ]
    )
    assert rc == 0
    meta = load_face_track(tmp_path / "out" / "astro")
    assert meta["num_frames"] == 10 and meta["cropper"]["size"] == 64
    assert str(tmp_path / "out" / "astro") in capsys.readouterr().out
    empty = write_video(
        tmp_path / "in2" / "blank.mp4", torch.zeros(6, 3, 64, 64, dtype=torch.uint8)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["faces", str(empty.parent), str(tmp_path / "out2"), "--no-progress"])
    assert rc == 1
    assert "blank.mp4: no face found" in capsys.readouterr().err


def test_cli_without_the_faces_extra_is_a_usage_error(tmp_path, monkeypatch, capsys):
    from cefl_zoo.cli import main

    monkeypatch.setitem(sys.modules, "retinaface", None)
    assert main(["faces", str(tmp_path), str(tmp_path / "out")]) == 2
    assert 'pip install "cefl-zoo[faces]"' in capsys.readouterr().err


@requires_faces_extra
@pytest.mark.filterwarnings("ignore:.*no folder for")
def test_cli_precomputes_a_dataset_outside_its_folder(tmp_path, retina, astronaut_face, capsys):
    from cefl_zoo.cli import main

    image, box = astronaut_face
    frames, _ = face_clip(image, box, num_frames=8, size=128)
    root = tmp_path / "AFEW"
    write_video(root / "Val" / "Happy" / "astro.mp4", frames)
    write_video(root / "Val" / "Angry" / "blank.mp4", torch.zeros(8, 3, 64, 64, dtype=torch.uint8))
    snap = tree_snapshot(root)
    args = [
        "--dataset",
        "afew",
        "--split",
        "val",
        "--size",
        "48",
        "--threads",
        "1",
        "--no-progress",
    ]
    assert main(["faces", str(root), str(root / "crops"), *args]) == 2
    assert "inside the dataset directory" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["faces", str(root), str(tmp_path / "crops"), *args]) == 1
    captured = capsys.readouterr()
    assert "1 of 2 videos cropped" in captured.out
    assert "blank.mp4" in captured.err and "no face found" in captured.err
    meta = load_face_track(tmp_path / "crops" / "Val" / "Happy" / "astro")
    assert meta["num_frames"] == 8 and all(f["detected"] for f in meta["frames"][:1])
    assert tree_snapshot(root) == snap


# -- the faces command: options, folder expansion, the no-face hint ------------------------
@pytest.mark.parametrize(
    "option, value",
    [
        ("--quality", "150"),
        ("--quality", "0"),
        ("--size", "0"),
        ("--stride", "0"),
        ("--threads", "-1"),
    ],
)
def test_cli_bad_options_are_usage_errors_before_detection(
    tmp_path, monkeypatch, capsys, option, value
):
    from cefl_zoo.cli import main

    def never(*args, **kwargs):
        raise AssertionError("no detector may be built for a bad option")

    monkeypatch.setattr("cefl_zoo.faces.RetinaFaceDetector", never)
    video = write_video(tmp_path / "v.mp4", torch.zeros(4, 3, 32, 32, dtype=torch.uint8))
    assert main(["faces", str(video), str(tmp_path / "out"), option, value]) == 2
    assert f"{option} {value}: must be" in capsys.readouterr().err


def test_cli_folder_of_videos_with_a_stray_image_crops_the_videos(tmp_path, monkeypatch, capsys):
    from cefl_zoo.cli import main

    seen = []

    def fake_crops(video, out, cropper, name, **kwargs):
        seen.append((os.path.relpath(video, tmp_path), name))
        return os.path.join(out, name)

    monkeypatch.setattr("cefl_zoo.faces.RetinaFaceDetector", lambda **kwargs: ScriptedDetector({}))
    monkeypatch.setattr("cefl_zoo.faces.precompute_face_crops", fake_crops)
    mixed = tmp_path / "mixed"
    write_video(mixed / "a.mp4", torch.zeros(4, 3, 32, 32, dtype=torch.uint8))
    write_frame_folder(
        mixed, torch.zeros(1, 3, 8, 8, dtype=torch.uint8), ext="png", names=["cover.png"]
    )
    write_frame_folder(mixed / "crops" / "a", torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    (mixed / "crops" / "a" / "faces.json").write_text("{}")
    assert main(["faces", str(mixed), str(mixed / "crops"), "--no-progress"]) == 0
    assert seen == [(os.path.join("mixed", "a.mp4"), "a")]  # not the folder, not OUT's crops


@pytest.mark.parametrize("out", [".", "videos"])
def test_cli_out_at_or_above_the_input_folder_crops_its_videos(tmp_path, monkeypatch, capsys, out):
    from cefl_zoo.cli import main

    seen = []

    def fake_crops(video, out, cropper, name, **kwargs):
        seen.append(video)
        return os.path.join(out, name)

    monkeypatch.setattr("cefl_zoo.faces.RetinaFaceDetector", lambda **kwargs: ScriptedDetector({}))
    monkeypatch.setattr("cefl_zoo.faces.precompute_face_crops", fake_crops)
    monkeypatch.chdir(tmp_path)
    for name in ("a.mp4", "b.mp4"):
        write_video(tmp_path / "videos" / name, torch.zeros(4, 3, 32, 32, dtype=torch.uint8))
    write_frame_folder(tmp_path / "videos" / "frames", torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    crops = tmp_path / out / "a"  # the crops of an earlier run
    write_frame_folder(crops, torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    (crops / "faces.json").write_text("{}")
    assert main(["faces", "videos", out, "--no-progress"]) == 0
    want = ["a.mp4", "b.mp4", "frames"]
    assert seen == [os.path.join("videos", v) for v in want]  # crops of a not cropped again
    (tmp_path / "videos" / "a.mp4").unlink()
    (tmp_path / "videos" / "b.mp4").unlink()
    (tmp_path / "videos" / "frames" / "faces.json").write_text("{}")
    assert main(["faces", "videos", "videos", "--no-progress"]) == 2
    assert "holds only face crops" in capsys.readouterr().err


def test_crops_never_replace_a_folder_they_did_not_write(tmp_path):
    det = ScriptedDetector({i: [[16, 8, 48, 40, 0.9]] for i in range(8)})
    cropper = FaceCropper(det, size=8)
    source = tmp_path / "raw" / "train"  # a video stored as frames, named like a folder
    write_frame_folder(source, indexed_frames(8), ext="png")
    mine = tmp_path / "train"  # the user's own folder where the crops would go
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="no crops folder"):
        precompute_face_crops(source, tmp_path, cropper)
    assert (mine / "notes.txt").read_text() == "keep me"
    inner = tmp_path / "raw" / "raw"  # crops of raw/raw into tmp_path would replace raw/
    write_frame_folder(inner, indexed_frames(8), ext="png")
    with pytest.raises(ValueError, match="would replace the video"):
        precompute_face_crops(inner, tmp_path, cropper)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["raw", "train"]
    crops = precompute_face_crops(source, tmp_path / "crops", cropper)
    assert precompute_face_crops(source, tmp_path / "crops", cropper, overwrite=True) == crops


def test_no_face_hint_fits_predict_and_the_library():
    with pytest.raises(NoFaceError) as info:
        FaceCropper(ScriptedDetector({}), size=16)(indexed_frames(4), "clip.mp4")
    text = str(info.value)
    assert "without --faces" in text and "cefl-zoo faces --score-threshold" in text
    assert "lower the detector's score_threshold, or remove" not in text
