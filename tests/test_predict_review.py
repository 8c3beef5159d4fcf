"""Review findings on predict: face-less timeline windows, outputs that overwrite inputs,
poisoned batches, NaN outputs, frame-folder fps, the --window word rule, long videos."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch
from _predict_utils import BrightnessModel, LazyReader, baseline_brightness_model, flash_frames
from _video_utils import write_frame_folder, write_video

import cefl_zoo
from cefl_zoo.cli import main
from cefl_zoo.faces import NoFaceError
from cefl_zoo.predict import PredictionFailure, Predictor, Timeline
from cefl_zoo.predict.predictor import ModelForwardError
from cefl_zoo.video.io import TensorVideoReader


def _strict_json(text: str):
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


class BrightFaces:
    """A face detector that sees a face in bright frames only (the person leaves when the
    video goes dark)."""

    def detect(self, frames: torch.Tensor) -> list[torch.Tensor]:
        face = torch.tensor([[4.0, 4.0, 20.0, 20.0, 0.9]])
        return [face if float(f.float().mean()) > 100 else torch.zeros(0, 5) for f in frames]


def _predictor(**kwargs) -> Predictor:
    return Predictor(BrightnessModel(), device="cpu", num_workers=0, **kwargs)


# -- 1: a window without a face ---------------------------------------------------------
def test_timeline_with_faces_leaves_face_less_windows_unscored(tmp_path):
    frames = flash_frames(400, (0, 199), size=24)  # a face in the first 200 frames only
    reader = TensorVideoReader(frames, fps=25, path="leaves.mp4")
    tl = _predictor(face_detector=BrightFaces()).predict_timeline(
        reader, window=50, stride=50, batch_size=3
    )
    assert len(tl) == 8
    assert tl.scored.tolist() == [True] * 4 + [False] * 4
    assert tl.labels == ["bright"] * 4 + [None] * 4 and tl.label == "bright"
    assert torch.isnan(tl.probs[4:]).all() and torch.isfinite(tl.mean_probs).all()
    assert [(s["first_frame"], s["last_frame"]) for s in tl.segments()] == [(0, 199)]
    data = _strict_json(tl.to_json())
    assert data["windows"][5]["probabilities"] is None and data["windows"][5]["label"] is None
    assert data["windows"][5]["emotion_rich_clip"] is None
    assert data["windows"][0]["emotion_rich_clip"]["first_frame"] >= 0
    back = Timeline.from_dict(data)
    assert back.scored.tolist() == tl.scored.tolist() and back.to_dict() == data
    assert "4 windows without a face" in tl.summary()
    assert tl.plot(tmp_path / "t.png").stat().st_size > 0


def test_timeline_with_no_face_in_any_window_names_the_video():
    reader = TensorVideoReader(flash_frames(200, None, size=24), fps=25, path="empty_room.mp4")
    with pytest.raises(
        NoFaceError, match=r"empty_room\.mp4: no face found in any of the 4 windows"
    ):
        _predictor(face_detector=BrightFaces()).predict_timeline(reader, window=50, stride=50)


# -- 3: float64 input, and a batch with one bad video -----------------------------------
def test_float64_sampled_input_is_predicted_with_its_batch():
    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=3)
    predictor = Predictor(model, device="cpu", num_workers=0)
    good = torch.rand(7, 5, 3, 32, 32)
    results = predictor.predict_many([good, good.double()])
    assert [r.ok for r in results] == [True, True]
    assert torch.allclose(results[0].probs, results[1].probs, atol=1e-5)


class PickyModel(BrightnessModel):
    """Fails on any batch that holds a video with negative values."""

    def forward_explain(self, x):
        if bool((x.flatten(1).mean(1) < 0).any()):
            raise RuntimeError("negative input")
        return super().forward_explain(x)


def test_a_batch_that_fails_is_retried_video_by_video():
    predictor = Predictor(PickyModel(), device="cpu", num_workers=0, batch_size=8)
    good = torch.rand(7, 5, 3, 16, 16)
    results = predictor.predict_many([good, -good, good])
    assert [r.ok for r in results] == [True, False, True]
    assert "negative input" in results[1].error
    with pytest.raises(ModelForwardError, match="negative input"):
        predictor.predict_many([good, -good], on_error="raise")


class HungryModel(BrightnessModel):
    """Runs out of memory on every forward pass, counting them."""

    def forward_explain(self, x):
        self.calls.append(tuple(x.shape))
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_in_a_batch_is_raised_at_once_not_retried():
    model = HungryModel()
    predictor = Predictor(model, device="cpu", num_workers=0, batch_size=4)
    good = torch.rand(7, 5, 3, 16, 16)
    with pytest.raises(torch.OutOfMemoryError, match="out of memory"):
        predictor.predict_many([good] * 8)
    assert len(model.calls) == 1  # not once per video after the batch


# -- 4: NaN outputs -----------------------------------------------------------------------
def _nan_model() -> BrightnessModel:
    model = BrightnessModel()
    model.scale.data.fill_(float("nan"))
    return model


def test_nan_outputs_are_failures_not_predictions():
    predictor = Predictor(_nan_model(), device="cpu", num_workers=0)
    frames = flash_frames(105, (50, 60), size=16)
    with pytest.raises(ModelForwardError, match="outputs are not finite"):
        predictor.predict(frames)
    result = predictor.predict_many([frames, frames])[1]
    assert isinstance(result, PredictionFailure) and result.error_type == "ModelForwardError"
    assert "<tensor>: the model's outputs are not finite: logits" in result.error
    with pytest.raises(ModelForwardError, match=r"window 0 \(frames 0-49\).*not finite"):
        predictor.predict_timeline(frames, window=50, stride=50)


def test_cli_json_stays_strict_with_a_nan_model(tmp_path, capsys):
    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=3)
    model.pretrained_cfg = model.pretrained_cfg.replace(input_size=(3, 32, 32))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    folder = model.save_pretrained(tmp_path / "nan_model")
    video = write_video(tmp_path / "v.mp4", flash_frames(40, None, size=32))
    out = tmp_path / "r.json"
    args = ["predict", str(video), "--model", str(folder), "--json", str(out), "--no-progress"]
    rc = main([*args, "--plot", str(tmp_path / "plots"), "--device", "cpu"])
    assert rc == 1
    entry = _strict_json(out.read_text())["results"][0]
    assert entry["ok"] is False and "not finite" in entry["error"]
    assert "not finite" in capsys.readouterr().err


# -- 9, 11, 12, 14 ------------------------------------------------------------------------
def test_timeline_of_a_sampled_tensor_asks_for_the_whole_video():
    with pytest.raises(ValueError, match=r"a timeline needs the frames of the whole video"):
        _predictor().predict_timeline(torch.zeros(7, 5, 3, 16, 16, dtype=torch.uint8))


def test_predictor_fps_applies_to_frame_folders(tmp_path):
    folder = write_frame_folder(tmp_path / "clip", flash_frames(60, None, size=16), ext="png")
    predictor = _predictor(fps=30)
    assert predictor.predict(folder).fps == 30.0
    assert predictor.predict(folder, fps=10).fps == 10.0
    assert predictor.predict_timeline(folder, window="1s").window == 30


def test_baseline_timeline_windows_write_null_and_old_json_reads_back():
    tl = Predictor(baseline_brightness_model(), device="cpu", num_workers=0).predict_timeline(
        flash_frames(200, size=16), fps=25
    )
    data = tl.to_dict()
    assert all(w["emotion_rich_clip"] is None for w in data["windows"])
    for w in data["windows"]:  # JSON written before the key was emitted
        del w["emotion_rich_clip"]
    assert Timeline.from_dict(data).rich_clip_frames is None


def test_a_very_long_video_gets_a_timeline_hint(caplog):
    reader = LazyReader(3000, 25.0, lambda t: 100)
    with caplog.at_level(logging.WARNING, logger="cefl_zoo.predict.predictor"):
        _predictor().predict(reader)
        _predictor().predict(LazyReader(105, 25.0, lambda t: 100))
    hints = [r.getMessage() for r in caplog.records]
    assert len(hints) == 1 and "3000 frames" in hints[0] and "--window" in hints[0]


# -- 2, 5, 10, 13: the command line -------------------------------------------------------
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=3)
    model.pretrained_cfg = model.pretrained_cfg.replace(input_size=(3, 32, 32))
    return str(model.save_pretrained(tmp_path_factory.mktemp("model") / "tiny"))


def _predict(model_dir: str, *args: str) -> int:
    return main(["predict", *args, "--model", model_dir, "--no-progress", "--device", "cpu"])


def test_json_onto_an_input_is_refused_before_predicting(model_dir, tmp_path, capsys):
    video = write_video(tmp_path / "victim.mp4", flash_frames(40, None, size=32))
    frames = write_frame_folder(tmp_path / "frames", flash_frames(20, None, size=32), ext="png")
    data = video.read_bytes()
    assert _predict(model_dir, str(video), "--json", str(video)) == 2
    err = capsys.readouterr().err
    assert f"--json {video}: is the input" in err and "predicted with" not in err
    assert video.read_bytes() == data
    assert _predict(model_dir, str(frames), "--json", str(frames / "r.json")) == 2
    assert "lies in the input frame folder" in capsys.readouterr().err
    assert not (frames / "r.json").exists()


def test_plot_into_an_input_folder_is_refused(model_dir, tmp_path, capsys):
    root = tmp_path / "dfew"
    for name in ("00001", "00002"):
        write_frame_folder(root / name, flash_frames(20, None, size=32), ext="png")
    for plot in (root, root / "plots", root / "00001"):
        assert _predict(model_dir, str(root), "--plot", str(plot)) == 2
        assert "--plot" in capsys.readouterr().err
    assert sorted(os.listdir(root)) == ["00001", "00002"]
    assert _predict(model_dir, str(root), "--plot", str(tmp_path / "plots")) == 0


def test_plot_into_a_hidden_folder_of_an_input_folder_is_allowed(model_dir, tmp_path, capsys):
    root = tmp_path / "dfew"
    for name in ("00001", "00002"):
        write_frame_folder(root / name, flash_frames(20, None, size=32), ext="png")
    assert _predict(model_dir, str(root), "--plot", str(root / ".plots"), "-q") == 0
    assert sorted(os.listdir(root / ".plots")) == ["00001.png", "00002.png"]
    assert _predict(model_dir, str(root), "--json", "-") == 0  # the plots are not videos
    data = json.loads(capsys.readouterr().out)
    assert [os.path.basename(r["source"]) for r in data["results"]] == ["00001", "00002"]


def test_window_word_that_is_a_valid_value_is_the_value_even_where_that_path_exists(
    model_dir, tmp_path, monkeypatch, capsys
):
    import argparse

    from cefl_zoo.commands import predict

    write_video(tmp_path / "clip.mp4", flash_frames(100, None, size=32), fps=25)
    (tmp_path / "2s").write_text("notes")  # a stray file named like a length
    (tmp_path / "retinaface").mkdir()
    monkeypatch.chdir(tmp_path)
    assert _predict(model_dir, "--window", "2s", "clip.mp4", "--json", "-") == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in data["results"]] == ["clip.mp4"]
    assert data["results"][0]["window"]["frames"] == 50  # 2 s, not 105 frames
    parser = argparse.ArgumentParser()
    predict.add_arguments(parser)
    argv = ["--faces", "retinaface", "clip.mp4", "--window", "clip.mp4"]
    assert predict.prepare_argv(parser, argv) == [*argv[:3], "--window=105", "clip.mp4"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_json_where_no_file_can_be_created_is_a_usage_error(model_dir, tmp_path, capsys):
    video = write_video(tmp_path / "v.mp4", flash_frames(40, None, size=32))
    assert _predict(model_dir, str(video), "--json", "/proc/nope/x.json") == 2
    err = capsys.readouterr().err
    assert "--json: cannot write /proc/nope/x.json" in err and "predicted with" not in err


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="needs /dev/fd")
def test_json_into_a_pipe_is_written(model_dir, tmp_path):
    video = write_video(tmp_path / "v.mp4", flash_frames(40, None, size=32))
    read, write = os.pipe()  # as the shell's --json >(wc -c) gives /dev/fd/63
    try:
        assert _predict(model_dir, str(video), "--json", f"/dev/fd/{write}", "-q") == 0
    finally:
        os.close(write)
    with os.fdopen(read) as fh:
        assert _strict_json(fh.read())["results"][0]["ok"] is True


def test_json_onto_an_existing_file_where_no_new_file_can_be_created(
    model_dir, tmp_path, monkeypatch, capsys
):
    import tempfile

    def refuse(*args, dir=None, **kwargs):  # a folder the user may not add files to
        raise PermissionError(13, "Permission denied", os.path.join(dir, "tmpx1y2z3"))

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    video = write_video(tmp_path / "v.mp4", flash_frames(40, None, size=32))
    results = tmp_path / "results.json"
    results.write_text("{}")
    assert _predict(model_dir, str(video), "--json", str(results), "-q") == 0
    assert _strict_json(results.read_text())["results"][0]["ok"] is True
    assert _predict(model_dir, str(video), "--json", str(tmp_path / "new.json")) == 2
    err = capsys.readouterr().err
    assert "no file can be created in" in err and "Permission denied" in err
    assert "tmpx1y2z3" not in err


def test_json_to_dev_stdout_is_the_json_alone(model_dir, tmp_path):
    import subprocess
    import sys

    video = write_video(tmp_path / "v.mp4", flash_frames(40, None, size=32))
    argv = [sys.executable, "-m", "cefl_zoo", "predict", str(video), "--model", str(model_dir)]
    out = subprocess.run(
        [*argv, "--json", "/dev/stdout", "--no-progress"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert _strict_json(out)["results"][0]["ok"] is True  # no table after it


def test_out_of_memory_on_the_cli_is_one_line(model_dir, tmp_path, monkeypatch, capsys):
    from cefl_zoo.predict import Predictor

    def oom(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Predictor, "predict_many", oom)
    monkeypatch.setattr(Predictor, "predict_timeline", oom)
    video = write_video(tmp_path / "v.mp4", flash_frames(40, None, size=32))
    for extra in ([], ["--window", "20"]):
        assert _predict(model_dir, str(video), *extra) == 1
        (line,) = [x for x in capsys.readouterr().err.splitlines() if "error" in x]  # one line
        assert "out of memory on cpu" in line and line.endswith("pass a smaller --batch-size")
