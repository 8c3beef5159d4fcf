"""The Predictor: inputs, the explained result, batching, precision, bad input, apex clips."""

from __future__ import annotations

import json
import re

import pytest
import torch
from _predict_utils import BrightnessModel, SpyReader, flash_frames
from _video_utils import write_audio_only, write_frame_folder, write_video

import cefl_zoo
from cefl_zoo.predict import Prediction, PredictionFailure, Predictor
from cefl_zoo.video import ClipSampler

FPS = 25


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Small mp4s with a bright flash at known frames, plus broken inputs."""
    root = tmp_path_factory.mktemp("videos")
    out = {}
    # 105 frames: clip n covers frames [15 + 10n, 29 + 10n]; the flash sits in clip 4 only
    # (frames 58..63 are in clip 4 = [55, 69] and clip 3 = [45, 59] overlaps 58, 59 only).
    out["flash"] = write_video(root / "flash.mp4", flash_frames(105, (58, 66), size=32), fps=FPS)
    out["flash_late"] = write_video(
        root / "late.mp4", flash_frames(140, (100, 108), size=32), fps=FPS
    )
    out["dark"] = write_video(root / "dark.mp4", flash_frames(80, None, size=32), fps=FPS)
    out["one_frame"] = write_video(root / "one.mp4", flash_frames(1, None, size=32), fps=FPS)
    data = out["flash"].read_bytes()
    out["truncated"] = root / "truncated.mp4"
    out["truncated"].write_bytes(data[: len(data) // 3])
    mkv = write_video(root / "full.mkv", flash_frames(105, (58, 66), size=32), fps=FPS).read_bytes()
    out["truncated_mkv"] = root / "cut.mkv"  # header intact, the frames stop early
    out["truncated_mkv"].write_bytes(mkv[: len(mkv) // 2])
    out["garbage"] = root / "garbage.mp4"
    out["garbage"].write_bytes(b"\x00\x01not a video at all" * 50)
    out["audio"] = write_audio_only(root / "audio.m4a")
    from PIL import Image

    out["image"] = root / "face.jpg"
    Image.new("RGB", (64, 64), (200, 150, 120)).save(out["image"])
    out["folder"] = write_frame_folder(
        root / "frames", flash_frames(105, (58, 66), size=32), ext="png"
    )
    out["missing"] = root / "missing.mp4"
    return out


@pytest.fixture()
def predictor():
    return Predictor(BrightnessModel(), device="cpu", num_workers=0)


def test_seconds_of_a_variable_frame_rate_video_come_from_its_timestamps(tmp_path, predictor):
    # 50 frames at 10 fps, then 100 at 50 fps: frame / fps (25 on average) is wrong by
    # seconds; every reported time must be the video's own.
    from fractions import Fraction

    from cefl_zoo.video import open_video

    pts = [100 * i for i in range(50)] + [5000 + 20 * i for i in range(100)]
    path = write_video(
        tmp_path / "vfr.mkv",
        flash_frames(150, (60, 70), size=32),
        pts=pts,
        time_base=Fraction(1, 1000),
    )
    with open_video(path) as video:
        times, duration = video.frame_times(), video.info.duration
    p = predictor.predict(path)
    assert p.duration == pytest.approx(duration, abs=1e-4) and duration > 6.9
    for n in range(7):
        first, last = p.clip_frames(n)
        end = float(times[last + 1]) if last + 1 < 150 else duration
        assert p.clip_seconds(n) == pytest.approx((float(times[first]), end), abs=1e-4)
    again = Prediction.from_dict(json.loads(p.to_json()))
    assert [again.clip_seconds(n) for n in range(7)] == [p.clip_seconds(n) for n in range(7)]
    assert again.duration == p.duration
    timeline = predictor.predict_timeline(path, window=105, stride=15)
    last = timeline.to_dict()["windows"][-1]
    assert last["end_s"] == pytest.approx(duration, abs=1e-4)
    assert last["start_s"] == pytest.approx(float(times[last["first_frame"]]), abs=1e-4)
    segs = timeline.segments()
    assert segs[0]["start_s"] == 0.0 and segs[-1]["end_s"] == pytest.approx(duration, abs=1e-4)
    from cefl_zoo.predict import Timeline

    assert Timeline.from_dict(timeline.to_dict()).to_dict() == timeline.to_dict()


# -- one video, explained ---------------------------------------------------------------
def test_predict_video_file_reports_the_flash_clip(videos, predictor):
    p = predictor.predict(videos["flash"])
    assert isinstance(p, Prediction) and p.ok
    assert p.label == "bright" or p.label == "dark"
    assert set(p.probabilities) == {"dark", "bright"}
    assert abs(sum(p.probabilities.values()) - 1) < 1e-5
    # clip scores: (C, N), each class's scores sum to 1 over the clips
    assert p.clip_scores.shape == (2, 7)
    assert torch.allclose(p.clip_scores.sum(1), torch.ones(2), atol=1e-5)
    # the sampled frames are the paper's evaluation sampling of a 105-frame video
    assert p.frame_indices.tolist() == ClipSampler()(105).tolist()
    assert p.frame_weights.shape == (7, 5)
    assert p.num_frames == 105 and p.fps == FPS
    # the flash (frames 58..66) is where the "bright" intensity peaks: clip 4
    bright = p.clip_scores[p.label_names.index("bright")]
    assert int(bright.argmax()) == 4
    if p.label == "bright":
        assert p.rich_clip == 4
    assert p.clip_frames(4) == (55, 69)
    assert p.clip_seconds(4) == (55 / FPS, 70 / FPS)


def test_emotion_rich_clip_in_frames_and_seconds(videos, predictor):
    # A mostly bright video: "bright" wins and its richest clip holds the flash.
    p = predictor.predict(flash_frames(140, (100, 108), base=140, bright=250, size=32), fps=20)
    assert p.label == "bright"
    rich = p.rich_clip
    first, last = p.rich_clip_frames
    assert first <= 104 <= last
    assert p.rich_clip_seconds == (first / 20, (last + 1) / 20)
    assert rich == int(p.intensity.argmax())
    d = p.to_dict()
    assert d["emotion_rich_clip"]["index"] == rich
    assert d["emotion_rich_clip"]["first_frame"] == first
    assert d["emotion_rich_clip"]["start_s"] == pytest.approx(first / 20)
    assert d["clips"][rich]["frames"] == p.frame_indices[rich].tolist()
    assert f"emotion-rich clip {rich} [frames {first}-{last}]" in p.summary()


def test_to_json_round_trip(videos, predictor, tmp_path):
    p = predictor.predict(videos["flash"])
    text = p.to_json(tmp_path / "out" / "p.json")
    data = json.loads(text)
    assert json.loads((tmp_path / "out" / "p.json").read_text()) == data
    assert data["source"] == str(videos["flash"])
    assert data["label"] == p.label and data["model"] == "brightness_test.unit"
    assert data["video"] == {"num_frames": 105, "fps": 25.0, "duration": 4.2}
    assert len(data["clips"]) == 7
    clip = data["clips"][2]
    assert set(clip) == {
        "index",
        "first_frame",
        "last_frame",
        "start_s",
        "end_s",
        "frames",
        "frame_weights",
        "intensity",
    }
    assert set(clip["intensity"]) == {"dark", "bright"}
    again = Prediction.from_dict(data)
    assert again.label == p.label and again.rich_clip == p.rich_clip
    assert torch.allclose(again.clip_scores, p.clip_scores, atol=1e-5)
    assert again.frame_indices.tolist() == p.frame_indices.tolist()
    assert again.rich_clip_seconds == p.rich_clip_seconds


def test_plot_writes_fig6_png(videos, predictor, tmp_path):
    from PIL import Image

    p = predictor.predict(videos["flash"])
    assert p.thumbnails.shape == (7, 3, 32, 32) and p.thumbnails.dtype == torch.uint8
    # the thumbnail of clip 4 shows the flash, the others the dark background
    means = p.thumbnails.float().mean(dim=(1, 2, 3))
    assert int(means.argmax()) == 4 and means[4] > means[0] + 100
    for all_classes in (True, False):
        path = p.plot(tmp_path / f"fig-{all_classes}.png", all_classes=all_classes)
        with Image.open(path) as img:
            assert img.format == "PNG" and img.width > 400
    # the heat map and weights rows make the full figure taller
    with Image.open(tmp_path / "fig-True.png") as a, Image.open(tmp_path / "fig-False.png") as b:
        assert a.height > b.height


# -- input layouts ----------------------------------------------------------------------
def test_tensor_frames_and_file_agree(videos, predictor):
    from cefl_zoo.video import open_video

    with open_video(videos["flash"]) as r:
        frames = r.read_all()
    a = predictor.predict(videos["flash"])
    b = predictor.predict(frames, fps=FPS)
    assert b.source == "<tensor>"
    assert torch.allclose(a.probs, b.probs, atol=1e-6)
    assert b.frame_indices.tolist() == a.frame_indices.tolist()
    assert b.rich_clip_seconds == a.rich_clip_seconds


def test_sampled_uint8_and_float_inputs(videos, predictor):
    from cefl_zoo.video import open_video

    with open_video(videos["flash"]) as r:
        idx = ClipSampler()(105)
        sampled = r.read(idx.reshape(-1)).reshape(7, 5, 3, 32, 32)
    a = predictor.predict(videos["flash"])
    b = predictor.predict(sampled)  # uint8 (N, K, 3, H, W): preprocessed here
    assert torch.allclose(a.probs, b.probs, atol=1e-6)
    assert b.frame_indices is None and b.rich_clip_seconds is None and b.rich_clip == a.rich_clip
    c = predictor.predict(predictor.transform(sampled))  # float: already preprocessed
    assert torch.allclose(a.probs, c.probs, atol=1e-6) and c.thumbnails is None


def test_video_reader_input_is_not_closed(predictor):
    reader = SpyReader(flash_frames(105, (58, 66), size=16))
    p = predictor.predict(reader)
    assert p.source == "spy.mp4" and p.rich_clip is not None
    assert len(reader.calls) == 1 and sorted(set(reader.calls[0])) == sorted(
        set(ClipSampler()(105).reshape(-1).tolist())
    )
    predictor.predict(reader)  # still usable


def test_frame_folder_input_uses_given_fps(videos, predictor):
    p = predictor.predict(videos["folder"], fps=10)
    q = predictor.predict(videos["flash"])
    assert p.num_frames == 105 and p.fps == 10
    assert p.clip_seconds(4) == (5.5, 7.0)
    assert int(p.intensity.argmax()) == int(q.intensity.argmax())


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (torch.zeros(10, 3, 16, 16), TypeError, "uint8"),
        (torch.zeros(10, 16, 16, 3, dtype=torch.uint8), ValueError, "channels-last"),
        (torch.zeros(2, 7, 5, 3, 16, 16, dtype=torch.uint8), ValueError, "6-D"),
        (torch.zeros(7, 5, 16, 16, 3, dtype=torch.uint8), ValueError, r"\(N, K, 3, H, W\)"),
        (torch.zeros(7, 5, 3, 16, 16, dtype=torch.int32), TypeError, "uint8 frames or float"),
        (12345, TypeError, "video path"),
    ],
)
def test_bad_tensor_inputs(predictor, bad, error, match):
    with pytest.raises(error, match=match):
        predictor.predict(bad)


# -- many videos: batching, threads, failures -------------------------------------------
def test_predict_many_batches_in_order_and_matches_predict(videos):
    model = BrightnessModel()
    pred = Predictor(model, device="cpu", batch_size=3, num_workers=2)
    inputs = [
        videos["flash"],
        videos["dark"],
        videos["flash_late"],
        videos["missing"],
        videos["flash"],
        videos["dark"],
        videos["flash_late"],
        videos["folder"],
    ]
    results = pred.predict_many(inputs)
    assert [r.source for r in results] == [str(p) for p in inputs]
    assert [r.ok for r in results] == [True, True, True, False, True, True, True, True]
    # 7 good videos in batches of 3: forward passes of 3, 3 and 1 videos
    assert [c[0] for c in model.calls] == [3, 3, 1]
    single = Predictor(BrightnessModel(), device="cpu", num_workers=0)
    for inp, r in zip(inputs, results):
        if r.ok:
            s = single.predict(inp)
            assert torch.allclose(r.probs, s.probs, atol=1e-6)
            assert (
                r.rich_clip == s.rich_clip and r.frame_indices.tolist() == s.frame_indices.tolist()
            )
    assert pred.timings.videos == 7 and pred.timings.frames == 7 * 35
    assert pred.timings.decode > 0 and pred.timings.model > 0


def test_predict_many_groups_different_shapes(predictor):
    a = torch.zeros(7, 5, 3, 16, 16)
    b = torch.zeros(3, 2, 3, 16, 16)
    results = predictor.predict_many([a, b, a])
    assert all(r.ok for r in results)
    assert [r.num_clips for r in results] == [7, 3, 7]


def test_bad_inputs_each_fail_alone_with_one_line(videos):
    pred = Predictor(BrightnessModel(), device="cpu", num_workers=2)
    names = [
        "missing",
        "truncated",
        "truncated_mkv",
        "garbage",
        "one_frame",
        "audio",
        "image",
        "flash",
    ]
    results = pred.predict_many([videos[n] for n in names])
    by_name = dict(zip(names, results))
    assert by_name["flash"].ok
    expected = {
        "missing": "does not exist",
        "truncated": "truncated|corrupt|not a readable video",
        "truncated_mkv": "truncated: the header declares 4.20 s but the frames stop",
        "garbage": "not a readable video",
        "one_frame": "only 1 frame.*min_frames=1",
        "audio": "no video stream",
        "image": "still image",
    }
    for name, pattern in expected.items():
        r = by_name[name]
        assert isinstance(r, PredictionFailure) and not r.ok, name
        assert "\n" not in r.error, name
        assert r.error.startswith(str(videos[name])), (name, r.error)
        assert re.search(pattern, r.error), (name, r.error)
        assert r.to_dict()["error"] == r.error


def test_predict_raises_and_on_error_raise(videos, predictor):
    from cefl_zoo.video import VideoReadError

    with pytest.raises(VideoReadError, match="does not exist"):
        predictor.predict(videos["missing"])
    with pytest.raises(ValueError, match="min_frames=1"):
        predictor.predict(videos["one_frame"])
    with pytest.raises(VideoReadError, match="no video stream"):
        predictor.predict_many([videos["flash"], videos["audio"]], on_error="raise")


def test_min_frames_accepts_a_one_frame_video(videos):
    pred = Predictor(BrightnessModel(), device="cpu", num_workers=0, min_frames=1)
    p = pred.predict(videos["one_frame"])
    assert p.frame_indices.unique().tolist() == [0] and p.num_frames == 1


def test_empty_folder_is_reported(tmp_path, predictor):
    (tmp_path / "empty").mkdir()
    [r] = predictor.predict_many([tmp_path / "empty"])
    assert not r.ok and "empty" in r.error and str(tmp_path / "empty") in r.error


# -- models -------------------------------------------------------------------------------
def test_baseline_without_clip_scores_still_predicts(videos, tmp_path):
    model = cefl_zoo.create_model("frameavg_resnet18", backbone="test_convnext", num_classes=3)
    model.pretrained_cfg = model.pretrained_cfg.replace(input_size=(3, 32, 32))
    p = Predictor(model, device="cpu", num_workers=0).predict(videos["flash"])
    assert p.clip_scores is None and p.rich_clip is None and p.frame_weights is None
    assert p.intensity is None and p.rich_clip_seconds is None
    assert len(p.probabilities) == 3
    d = p.to_dict()
    assert d["emotion_rich_clip"] is None and d["clips"][0]["frames"] == [16, 19, 22, 25, 28]
    assert p.plot(tmp_path / "baseline.png").exists()
    assert Prediction.from_dict(d).rich_clip is None


def test_ceflnet_tiny_end_to_end(videos):
    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=4)
    pred = Predictor(model, device="cpu", num_workers=0)
    p = pred.predict(videos["flash"])
    assert p.clip_scores.shape == (4, 7) and p.frame_weights.shape == (7, 5)
    assert ((p.frame_weights > 0) & (p.frame_weights < 1)).all()
    assert p.label_names == ("class_0", "class_1", "class_2", "class_3")
    # the same result as running the model by hand on the same sampled frames
    from cefl_zoo.video import open_video

    with open_video(videos["flash"]) as r:
        frames = r.read(p.frame_indices.reshape(-1)).reshape(7, 5, 3, 32, 32)
    with torch.no_grad():
        out = model.eval().forward_explain(pred.transform(frames).unsqueeze(0))
    assert torch.allclose(out.logits.softmax(-1)[0], p.probs, atol=1e-5)
    assert int(out.emotion_rich_clip[0]) == p.rich_clip


def test_model_by_name_and_folder(tmp_path, videos):
    # an architecture without trained weights: random weights, said loudly
    with pytest.warns(UserWarning, match="RANDOM weights"):
        pred = Predictor("ceflnet_resnet18_sal", device="cpu", num_workers=0)
    assert pred.model_name == "ceflnet_resnet18_sal"
    with pytest.raises(cefl_zoo.UnknownModelError, match="ceflnet_tiny"):
        Predictor("ceflnet_tinny", device="cpu")
    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=3)
    model.pretrained_cfg = model.pretrained_cfg.replace(label_names=("anger", "joy", "calm"))
    folder = model.save_pretrained(tmp_path / "saved")
    pred = Predictor(str(folder), device="cpu", num_workers=0)
    p = pred.predict(videos["flash"])
    assert p.label_names == ("anger", "joy", "calm") and p.model == str(folder)


# -- devices and precision ----------------------------------------------------------------
def test_amp_resolution_and_bf16_on_cpu(videos):
    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=3)
    fp32 = Predictor(model, device="cpu", num_workers=0)
    assert fp32.amp == "none"  # auto on CPU: float32
    bf16 = Predictor(model, device="cpu", num_workers=0, amp="bf16")
    a, b = fp32.predict(videos["flash"]), bf16.predict(videos["flash"])
    assert b.probs.dtype == torch.float32
    assert torch.allclose(a.probs, b.probs, atol=0.05)
    assert Predictor(model, device="cpu", amp="fp16").amp == "none"  # fp16 autocast: CUDA only
    with pytest.raises(ValueError, match="amp must be"):
        Predictor(model, device="cpu", amp="half")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without a GPU")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(RuntimeError, match="CUDA is not available.*--device cpu"):
        Predictor(BrightnessModel(), device="cuda")


@pytest.mark.cuda
def test_cuda_bf16_autocast(videos):
    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=3)
    cpu = Predictor(model, device="cpu", num_workers=0).predict(videos["flash"])
    gpu_pred = Predictor(model, device="cuda", num_workers=0)
    assert gpu_pred.amp == ("bf16" if torch.cuda.is_bf16_supported() else "none")
    gpu = gpu_pred.predict(videos["flash"])
    assert torch.allclose(cpu.probs, gpu.probs, atol=0.05)


def test_autocast_failure_falls_back_to_float32(predictor):
    model = BrightnessModel()
    original = model.forward_explain

    def picky(x):
        if torch.is_autocast_enabled("cpu"):
            raise RuntimeError("op not implemented for BFloat16")
        return original(x)

    model.forward_explain = picky
    pred = Predictor(model, device="cpu", num_workers=0, amp="bf16")
    with pytest.warns(UserWarning, match="falling back to float32"):
        p = pred.predict(flash_frames(60, size=16))
    assert pred.amp == "none" and p.ok


def test_repr_and_num_threads():
    before = torch.get_num_threads()
    try:
        pred = Predictor(BrightnessModel(), device="cpu", num_threads=1)
        assert torch.get_num_threads() == 1
        assert "brightness_test.unit" in repr(pred) and "faces=None" in repr(pred)
    finally:
        torch.set_num_threads(before)


# -- face detection -----------------------------------------------------------------------
def test_face_detector_none_uses_frames_as_they_are(predictor):
    assert predictor.face_cropper is None


def test_custom_face_cropper_is_applied(videos):
    seen = []

    class HalfCropper:
        def __call__(self, frames, path):
            seen.append((tuple(frames.shape), path))
            h = frames.shape[-1] // 2
            return frames[..., :h, :h].contiguous()

    pred = Predictor(BrightnessModel(), device="cpu", num_workers=0, face_detector=HalfCropper())
    p = pred.predict(videos["flash"])
    assert seen == [((35, 3, 32, 32), str(videos["flash"]))]
    assert p.thumbnails.shape[-2:] == (16, 16)
    assert pred.timings.faces > 0


def _astronaut_frames(num_frames: int, size: int = 160) -> torch.Tensor:
    """A real face (scikit-image's astronaut photo, public domain), jittering slightly."""
    import torch.nn.functional as F
    from skimage import data

    img = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float()
    img = F.interpolate(img, size=(size, size), mode="bilinear", antialias=True)[0]
    img = img.round().clamp(0, 255).to(torch.uint8)
    return torch.stack(
        [torch.roll(img, shifts=(t % 4, t % 3), dims=(1, 2)) for t in range(num_frames)]
    )


def test_retinaface_crops_the_face_and_reports_videos_without_one(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("retinaface")
    pytest.importorskip("skimage")
    import torch.nn.functional as F

    from cefl_zoo.faces import FaceCropper

    face = write_video(tmp_path / "astronaut.mp4", _astronaut_frames(60), fps=FPS)
    g = torch.Generator().manual_seed(0)
    noise = write_video(
        tmp_path / "noise.mp4",
        torch.randint(0, 256, (60, 3, 160, 160), dtype=torch.uint8, generator=g),
        fps=FPS,
    )
    pred = Predictor(
        BrightnessModel(size=32), device="cpu", num_workers=0, face_detector="retinaface"
    )
    assert isinstance(pred.face_cropper, FaceCropper) and pred.face_cropper.size == 32
    ok, failed = pred.predict_many([face, noise])
    assert ok.ok and ok.thumbnails.shape == (7, 3, 32, 32)
    # the thumbnails are the face: closer to the detected face region than to the frame
    frames = _astronaut_frames(60)
    x1, y1, x2, y2 = pred.face_cropper.track(frames[:5]).crop_boxes[0].round().int().tolist()
    region = frames[0, :, max(y1, 0) : y2, max(x1, 0) : x2][None].float()
    region = F.interpolate(region, size=(32, 32), mode="bilinear", antialias=True)[0]
    whole = F.interpolate(frames[0][None].float(), size=(32, 32), mode="bilinear", antialias=True)[
        0
    ]
    thumb = ok.thumbnails[0].float()
    assert (thumb - region).abs().mean() < 0.5 * (thumb - whole).abs().mean()
    assert pred.timings.faces > 0
    assert not failed.ok and failed.error_type == "NoFaceError"
    assert failed.error.startswith(str(noise)) and "no face" in failed.error
    assert "\n" not in failed.error


def test_face_detector_objects_and_errors(videos):
    from cefl_zoo.faces import FaceCropper, NoFaceError

    class Nobody:
        def detect(self, frames):
            return [torch.zeros(0, 5) for _ in range(len(frames))]

    pred = Predictor(BrightnessModel(), device="cpu", num_workers=0, face_detector=Nobody())
    assert isinstance(pred.face_cropper, FaceCropper)
    with pytest.raises(NoFaceError, match="flash.mp4.*no face"):
        pred.predict(videos["flash"])
    with pytest.raises(ValueError, match="unknown face detector 'mtcnn'"):
        Predictor(BrightnessModel(), device="cpu", face_detector="mtcnn")
    with pytest.raises(TypeError, match="face_detector must be"):
        Predictor(BrightnessModel(), device="cpu", face_detector=42)


def test_retinaface_without_the_extra_is_a_clear_import_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def blocked(name, *args, **kwargs):
        if name.split(".")[0] in ("retinaface", "onnxruntime"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", blocked)
    with pytest.raises(ImportError, match=r"cefl-zoo\[faces\]"):
        Predictor(BrightnessModel(), device="cpu", face_detector="retinaface")


# -- the emotion-rich clip of a trained model on videos with a known apex -----------------
def test_emotion_rich_clip_finds_the_apex_of_synthetic_videos(tmp_path):
    """Paper Table 7's metric on synthetic videos the weights never saw (another seed)."""
    import csv

    from cefl_zoo.data.synthetic import write_synthetic_dataset
    from cefl_zoo.predict import DEFAULT_MODEL
    from cefl_zoo.video import apex_clip_index

    labels_csv = write_synthetic_dataset(
        tmp_path / "synth", num_videos=21, seed=1234, progress=False
    )
    with open(labels_csv) as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"] != "neutral"]  # neutral: no apex
    pred = Predictor(DEFAULT_MODEL, device="cpu", batch_size=6)
    results = pred.predict_many([tmp_path / "synth" / r["path"] for r in rows])
    assert all(r.ok for r in results)
    hits = correct = 0
    for row, p in zip(rows, results):
        apex = int(row["apex_frame"])
        truth = apex_clip_index(p.clip_windows, apex)
        hits += p.rich_clip == truth
        correct += p.label == row["label"]
        first, last = p.rich_clip_frames
        if p.rich_clip == truth and first <= apex <= last:
            # the reported seconds hold the apex too
            assert p.rich_clip_seconds[0] <= apex / p.fps < p.rich_clip_seconds[1]
    n = len(rows)
    # chance is 1/7 (14 %); the paper reports 45-68 % on real data (Table 7)
    assert hits / n >= 0.5, f"apex clip found in {hits} of {n} videos"
    assert correct / n >= 0.5, f"label right in {correct} of {n} videos"
