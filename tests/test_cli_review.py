"""CLI review fixes: timeline plots, synth/benchmark validation, --model files, option
parsing, plot names, help and JSON schema, exit codes."""

from __future__ import annotations

import csv
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import cefl_zoo
from cefl_zoo.cli import build_parser, main
from cefl_zoo.predict import Timeline, window_starts
from cefl_zoo.predict import plot as plot_module

DOCS = Path(__file__).resolve().parent.parent / "docs"
TINY = ["--size", "32", "--min-frames", "20", "--max-frames", "24", "--quiet"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """Three 32 px synthetic videos of 30-40 frames (25 fps)."""
    from cefl_zoo.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("synth")
    write_synthetic_dataset(
        root, num_videos=3, size=32, min_frames=30, max_frames=40, seed=0, progress=False
    )
    return root


@pytest.fixture(scope="module")
def video(synth):
    return str(synth / "videos" / "00000.mp4")


def _error_line(err: str, command: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"cefl-zoo {command}: error: ")]
    assert len(lines) == 1, err
    return lines[0]


def _help(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return " ".join(sub.choices[command].format_help().split())


def _timeline_figure(tl, tmp_path, monkeypatch):
    captured = {}
    save = plot_module._save

    def keep(fig, path):
        captured["fig"] = fig
        return save(fig, path)

    monkeypatch.setattr(plot_module, "_save", keep)
    tl.plot(tmp_path / "t.png")
    return captured["fig"]


# -- 1. the heat map at the true window times ----------------------------------------------
def test_timeline_heat_map_cells_sit_at_the_window_times(tmp_path, monkeypatch):
    starts = window_starts(715, 105, 75)  # uneven: the last window ends on the last frame
    assert starts[-2:] == [600, 610]
    probs = torch.zeros(len(starts), 2)
    probs[:, 1] = 1
    probs[5] = torch.tensor([1.0, 0.0])
    tl = Timeline(
        "x.mp4",
        ("a", "b"),
        starts=starts,
        ends=[s + 104 for s in starts],
        probs=probs,
        fps=25.0,
        num_frames=715,
        window=105,
        stride=75,
    )
    fig = _timeline_figure(tl, tmp_path, monkeypatch)
    bottom = fig.axes[1]
    [mesh] = bottom.collections
    edges = np.asarray(mesh.get_coordinates())[0, :, 0]  # x of the cell corners, (W + 1,)
    times = tl.times.numpy()
    assert len(edges) == len(starts) + 1
    assert edges[0] == 0 and edges[-1] == pytest.approx(715 / 25)  # clipped to the video
    assert edges[1:-1].tolist() == pytest.approx(((times[:-1] + times[1:]) / 2).tolist())
    assert all(edges[w] < times[w] < edges[w + 1] for w in range(len(starts)))
    # the odd window's column is the one whose cell holds its centre (17.1 s)
    values = np.asarray(mesh.get_array()).reshape(2, len(starts))
    column = int(((edges[:-1] <= times[5]) & (times[5] < edges[1:])).nonzero()[0][0])
    assert column == 5 and values[0, column] == 1 and values[0].sum() == 1
    # the top panel's points share the axis
    assert bottom.get_xlim() == pytest.approx((0, 715 / 25))


def test_timeline_edges_of_one_window_and_without_fps():
    from cefl_zoo.predict.plot import timeline_edges

    one = Timeline("s.mp4", ("a",), starts=[0], ends=[62], probs=[[1.0]], fps=25.0, num_frames=63)
    assert timeline_edges(one).tolist() == pytest.approx([0, 63 / 25])
    frames = Timeline(
        "f", ("a",), starts=[0, 10], ends=[19, 29], probs=[[1.0], [1.0]], num_frames=30
    )
    assert timeline_edges(frames).tolist() == [0, 15, 30]  # in frames


# -- 6. the legend is not on the data -------------------------------------------------------
def test_timeline_legend_sits_outside_the_axes(tmp_path, monkeypatch):
    names = tuple(f"class{i}" for i in range(11))
    probs = torch.full((20, 11), 0.05)
    probs[torch.arange(20), torch.arange(20) % 11] = 0.12  # uncertain: points near the bottom
    starts = list(range(0, 200, 10))
    tl = Timeline(
        "v.mp4",
        names,
        starts=starts,
        ends=[s + 49 for s in starts],
        probs=probs,
        fps=25.0,
        num_frames=250,
    )
    fig = _timeline_figure(tl, tmp_path, monkeypatch)
    top = fig.axes[0]
    legend = top.get_legend()
    assert legend is not None and len(legend.get_texts()) == 11
    renderer = fig.canvas.get_renderer()
    box, axes = legend.get_window_extent(renderer), top.get_window_extent(renderer)
    assert box.x0 >= axes.x1  # right of the axes, so it cannot cover points or the line


# -- 11. the window length recorded is the one used -----------------------------------------
def test_timeline_records_the_window_length_used(video, tmp_path, capsys):
    short = Timeline(
        "s.mp4",
        ("a",),
        starts=[0],
        ends=[62],
        probs=[[1.0]],
        fps=25.0,
        num_frames=63,
        window=105,
        stride=75,
    )
    assert short.window == 63 and short.to_dict()["window"]["frames"] == 63
    out = tmp_path / "t.json"
    rc = main(
        [
            "predict",
            video,
            "--window",
            "4.2s",
            "--json",
            str(out),
            "--device",
            "cpu",
            "--no-progress",
            "-q",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    [result] = json.loads(out.read_text())["results"]
    assert result["window"]["frames"] == result["video"]["num_frames"] < 105
    assert result["windows"][0]["last_frame"] == result["video"]["num_frames"] - 1


# -- 2 / 11. synth and benchmark options are checked first ------------------------------------
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--size", "33"], "--size 33: frame size 33 px: must be an even number"),
        (["--size", "0"], "--size 0: frame size 0 px"),
        (["--size", "8"], "at least 16"),
        (["--fps", "0"], "--fps must be a frame rate > 0, got 0"),
        (["--fps", "-2"], "--fps must be a frame rate > 0"),
        (["--min-frames", "50", "--max-frames", "40"], "need 1 <= --min-frames <= --max-frames"),
        (["--test-fraction", "1"], "--test-fraction must be in [0, 1)"),
        (["--workers", "-1"], "--workers must be >= 0"),
    ],
)
def test_synth_bad_options_are_one_line_and_create_nothing(tmp_path, extra, message, capsys):
    out = tmp_path / "out"
    rc = main(["synth", str(out), "--videos", "2", "--quiet", *extra])
    line = _error_line(capsys.readouterr().err, "synth")
    assert rc == 2 and message in line, line
    assert not out.exists()  # no empty videos/ folder left behind


def test_write_synthetic_dataset_checks_before_writing(tmp_path):
    from cefl_zoo.data import write_synthetic_dataset

    for kwargs, match in [
        ({"size": 31}, "even"),
        ({"fps": 0}, "fps"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"min_frames": 9, "max_frames": 3}, "min_frames"),
    ]:
        with pytest.raises(ValueError, match=match):
            write_synthetic_dataset(tmp_path / "x", num_videos=2, progress=False, **kwargs)
        assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--size", "65"], "--size 65: frame size 65 px: must be an even number"),
        (["--size", "0"], "--size 0"),
        (["--workers", "-1"], "--workers must be >= 0, got -1"),
        (["--warmup", "-3"], "--warmup must be >= 0, got -3"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
    ],
)
def test_benchmark_bad_options_are_usage_errors(extra, message, capsys):
    rc = main(["benchmark", "--videos", "1", "--device", "cpu", *extra])
    line = _error_line(capsys.readouterr().err, "benchmark")
    assert rc == 2 and message in line, line


# -- 3. synth --fps: labels.csv says the rate the videos have ---------------------------------
@pytest.mark.parametrize("fps", ["12.5", "29.97", "25"])
def test_synth_fps_in_labels_is_the_video_frame_rate(tmp_path, fps, capsys):
    from cefl_zoo.video import open_video

    out = tmp_path / "s"
    assert main(["synth", str(out), "--videos", "2", "--fps", fps, *TINY]) == 0
    with open(out / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        assert float(row["fps"]) == float(fps)
        with open_video(out / row["path"]) as reader:
            info = reader.info
        assert info.fps == pytest.approx(float(fps), abs=1e-9)
        assert info.num_frames == int(row["num_frames"])
        assert info.duration == pytest.approx(int(row["num_frames"]) / float(fps), abs=1e-3)


def test_synthetic_frame_rate_and_tensor_dataset_agree():
    from fractions import Fraction

    from cefl_zoo.data import SyntheticTensorDataset
    from cefl_zoo.data.synthetic import synthetic_frame_rate

    assert synthetic_frame_rate(30000 / 1001) == Fraction(30000, 1001)
    ds = SyntheticTensorDataset(num_videos=7, split=None, fps=12.5)
    assert ds.spec(0).fps == 12.5
    with pytest.raises(ValueError, match="fps"):
        synthetic_frame_rate(float("nan"))


# -- 5. synth --overwrite leaves no stale videos ----------------------------------------------
def test_synth_overwrite_removes_the_earlier_datasets_videos(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["synth", str(out), "--videos", "5", *TINY]) == 0
    (out / "videos" / "mine.mp4").write_bytes(b"not ours")
    (out / "videos" / ".00009.mp4.tmp").write_bytes(b"interrupted")
    assert main(["synth", str(out), "--videos", "2", *TINY]) == 2  # no --overwrite
    assert main(["synth", str(out), "--videos", "2", "--overwrite", *TINY]) == 0
    with open(out / "labels.csv", newline="") as fh:
        listed = sorted(row["path"] for row in csv.DictReader(fh))
    assert listed == ["videos/00000.mp4", "videos/00001.mp4"]
    left = sorted(p.name for p in (out / "videos").iterdir())
    assert left == ["00000.mp4", "00001.mp4", "mine.mp4"]  # a file it does not own stays


# -- 4. --model given a file --------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A training run folder with a best.pt and a save_pretrained folder of the same model."""
    from cefl_zoo.train import TrainConfig
    from cefl_zoo.train.checkpoint import CHECKPOINT_FORMAT

    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=3)
    model.pretrained_cfg = model.pretrained_cfg.replace(
        label_names=("anger", "happiness", "neutral"), input_size=(3, 32, 32)
    )
    root = tmp_path_factory.mktemp("run")
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "architecture": model.architecture,
            "model_config": dict(model.config),
            "pretrained_cfg": model.pretrained_cfg.to_dict(),
            "model": model.state_dict(),
        },
        root / "best.pt",
    )
    model.save_pretrained(root / "model")
    TrainConfig(model="ceflnet_tiny").save(root / "config.json")  # as the Trainer writes it
    (root / "notes.txt").write_text("not a model")
    return root


@pytest.mark.parametrize("which", ["best.pt", ".", "model/model.safetensors"])
def test_predict_model_checkpoint_run_folder_or_weights_file(run_dir, video, which, capsys):
    out = "-"
    rc = main(
        [
            "predict",
            video,
            "--model",
            str(run_dir / which),
            "--json",
            out,
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    [result] = json.loads(captured.out)["results"]
    assert result["label"] in ("anger", "happiness", "neutral")


def test_predict_model_other_file_is_a_clear_error(run_dir, video, capsys):
    path = run_dir / "notes.txt"
    rc = main(["predict", video, "--model", str(path), "--device", "cpu", "--no-progress"])
    line = _error_line(capsys.readouterr().err, "predict")
    assert rc == 2 and f"{path} is a file, not a model" in line, line
    assert "does not exist" not in line and "cefl-zoo export" in line
    assert "unknown model" not in line


# -- 7. --faces / --window do not swallow the video ---------------------------------------
@pytest.mark.parametrize(
    "argv, window, faces, videos",
    [
        (["--window", "4.2s", "video.mp4"], "4.2s", None, ["video.mp4"]),
        (["--window=4.2s", "video.mp4"], "4.2s", None, ["video.mp4"]),
        (["--window", "video.mp4"], "105", None, ["video.mp4"]),
        (["--wind", "video.mp4"], "105", None, ["video.mp4"]),  # an abbreviation
        (["video.mp4", "--window"], "105", None, ["video.mp4"]),
        (["--faces", "video.mp4"], None, "retinaface", ["video.mp4"]),
        (["--faces", "retinaface", "video.mp4"], None, "retinaface", ["video.mp4"]),
        (["--faces", "mtcnn", "video.mp4"], None, "mtcnn", ["video.mp4"]),  # reported later
        (["--faces", "--window", "a.mkv", "b.mp4"], "105", "retinaface", ["a.mkv", "b.mp4"]),
        (["--", "--faces.mp4"], None, None, ["--faces.mp4"]),
        (["--faces", "not/there/"], None, "retinaface", ["not/there/"]),  # a folder
    ],
)
def test_optional_values_do_not_swallow_the_video(argv, window, faces, videos):
    args = build_parser().parse_args(["predict", *argv])
    assert (args.window, args.faces, args.videos) == (window, faces, videos)


def test_existing_path_after_faces_is_a_video(video):
    args = build_parser().parse_args(["predict", "--faces", video])
    assert args.faces == "retinaface" and args.videos == [video]
    args = build_parser().parse_args(["benchmark", "--faces", video])
    assert args.faces == "retinaface" and args.videos == [video]


def test_predict_window_before_the_video_runs(video, capsys):
    rc = main(["predict", "--window", "4.2s", video, "--device", "cpu", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "1 window," in captured.out


# -- 8. one video extension list ------------------------------------------------------------
def test_folders_expand_with_the_datasets_video_extensions(tmp_path):
    from cefl_zoo.data import generic
    from cefl_zoo.predict import VIDEO_EXTENSIONS, expand_inputs

    assert VIDEO_EXTENSIONS is generic.VIDEO_EXTENSIONS
    for name in ("a.m2ts", "b.ts", "c.MTS", "d.ogv", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    found = [Path(p).name for p in expand_inputs([tmp_path])]
    assert found == ["a.m2ts", "b.ts", "c.MTS", "d.ogv"]


# -- 9. plot names never collide ------------------------------------------------------------
def test_plot_names_are_distinct_and_deterministic(synth, tmp_path, capsys):
    videos = synth / "videos"
    (tmp_path / "dup" / "a").mkdir(parents=True)
    (tmp_path / "dup" / "b").mkdir()
    for src, dst in [("00000", "a/x.mp4"), ("00001", "b/x.mp4"), ("00002", "x-2.mp4")]:
        (tmp_path / "dup" / dst).write_bytes((videos / f"{src}.mp4").read_bytes())
    plots = tmp_path / "plots"
    rc = main(
        [
            "predict",
            str(tmp_path / "dup"),
            "--plot",
            str(plots),
            "--device",
            "cpu",
            "--no-progress",
            "-q",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in plots.iterdir()) == ["x-2.png", "x-3.png", "x.png"]

    from cefl_zoo.commands.predict import _plot_paths

    class R:
        ok = True

        def __init__(self, source):
            self.source = source

    results = [R(str(tmp_path / "dup" / p)) for p in ("a/x.mp4", "b/x.mp4", "x-2.mp4")]
    first = _plot_paths(results, "out")
    assert first == _plot_paths(results, "out")
    assert [Path(first[i]).name for i in range(3)] == ["x.png", "x-3.png", "x-2.png"]


# -- 10. help, JSON schema ----------------------------------------------------------------------
def test_help_shows_defaults_and_exit_codes():
    predict, bench, synth = _help("predict"), _help("benchmark"), _help("synth")
    assert "per forward pass (default: 8)" in predict
    assert "frames_per_clip)" in predict and "(default: one clip's frames" in predict
    assert "(default: auto)" in predict
    for text in (
        "--batch-size BATCH_SIZE videos per forward pass",
        "--amp {auto,bf16,fp16,none} mixed precision",
        "sequential: decode",
        "(default: both)",
        "(default: 32)",
        "(default: 224)",
    ):
        assert text in bench, text
    for text in (
        "(default: 0.25)",
        "(default: 60)",
        "(default: 140)",
        "(default: 25.0)",
        "(default: 280)",
        "ceil(test_fraction x n)",
        "7 of 14 in all",
    ):
        assert text in synth, text
    for text in (predict, bench, synth, _help("faces")):
        assert "(default: None)" not in text and "(default: False)" not in text
        assert "exit status: 0 everything done 1 some inputs failed" in text
        assert "2 bad usage or input" in text
    top = " ".join(build_parser().format_help().split())
    assert "exit status:" in top and "2 bad usage or input" in top
    assert "schema_version" in predict


def test_json_envelope_has_a_schema_version_and_ok_keys(video, tmp_path, capsys):
    missing_frames = tmp_path / "short.mp4"
    missing_frames.write_bytes(b"not a video")
    rc = main(
        ["predict", video, str(missing_frames), "--json", "-", "--device", "cpu", "--no-progress"]
    )
    captured = capsys.readouterr()
    assert rc == 1
    data = json.loads(captured.out)
    assert data["schema_version"] == 1
    assert list(data) == ["schema_version", "model", "device", "mode", "results"]
    good, bad = data["results"]
    assert good["ok"] is True and "label" in good
    assert set(bad) == {"source", "ok", "error", "error_type"} and bad["ok"] is False
    guide = (DOCS / "guides" / "predict.rst").read_text()
    for key in (
        '"schema_version": 1',
        "``error_type``",
        "``emotion_rich_clip``",
        "``mean_probabilities``",
        '``"ok": false``',
    ):
        assert key in guide, key


# -- 11. more validation --------------------------------------------------------------------
@pytest.mark.parametrize("fps", ["-5", "0", "nan"])
def test_predict_fps_must_be_positive(video, fps, capsys):
    rc = main(["predict", video, "--fps", fps, "--device", "cpu", "--no-progress"])
    line = _error_line(capsys.readouterr().err, "predict")
    assert rc == 2 and "--fps must be a frame rate > 0" in line, line


def test_too_short_window_messages_name_window_and_video_frames(video, capsys):
    rc = main(["predict", video, "--window", "1", "--device", "cpu", "--no-progress"])
    line = _error_line(capsys.readouterr().err, "predict")
    assert rc == 2 and "--window 1: a window of 1 frame is shorter than the 2 frames" in line
    assert "--min-frames 1" in line and "ClipSampler" not in line
    rc = main(["predict", video, "--window", "0.04s", "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err
    [line] = [e for e in err.splitlines() if e.startswith("error: ")]
    assert rc == 1 and "--window 0.04s is 1 frame of this video" in line, line
    frames = cefl_zoo.open_video(video).info.num_frames
    assert f"(the video has {frames} frames at 25 fps)" in line and "ClipSampler" not in line
    assert (
        main(
            [
                "predict",
                video,
                "--window",
                "1",
                "--min-frames",
                "1",
                "--device",
                "cpu",
                "--no-progress",
                "-q",
            ]
        )
        == 0
    )


def test_predict_guide_commands_use_weights_that_exist():
    for line in (DOCS / "guides" / "predict.rst").read_text().splitlines():
        line = line.strip()
        if not line.startswith("$ cefl-zoo predict"):
            continue
        argv = shlex.split(line[2:], comments=True)
        if "--model" not in argv:
            continue
        name = argv[argv.index("--model") + 1]
        arch = name.split(".")[0]
        if cefl_zoo.is_model(arch):
            status = {c.name: c.status for c in cefl_zoo.list_pretrained()}
            assert status.get(name) == "available", line


def test_synthetic_tensor_dataset_docstring_names_the_video_of_an_item():
    from cefl_zoo.data import SyntheticTensorDataset

    doc = " ".join(SyntheticTensorDataset.__doc__.split())
    assert 'item.meta["index"]' in doc and 'item 5 of ``split="train"`` may be video 7' in doc
    ds = SyntheticTensorDataset(num_videos=14, seed=0, split="train")
    indices = [item.meta["index"] for item in ds.items]
    assert indices != list(range(len(indices)))  # with a split, item i is not video i


# -- 12. exit codes, startup ----------------------------------------------------------------
def test_missing_inputs_and_empty_folders_are_usage_errors(video, tmp_path, capsys):
    missing = tmp_path / "missing.mp4"
    rc = main(["predict", video, str(missing), "--device", "cpu", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert f"1 input does not exist: {missing}" in _error_line(captured.err, "predict")
    (tmp_path / "empty").mkdir()
    rc = main(["predict", str(tmp_path / "empty"), "--device", "cpu", "--no-progress"])
    line = _error_line(capsys.readouterr().err, "predict")
    assert rc == 2 and "holds no video files" in line
    rc = main(["benchmark", str(missing), "--device", "cpu"])
    assert rc == 2 and "does not exist" in _error_line(capsys.readouterr().err, "benchmark")
    rc = main(["faces", str(missing), str(tmp_path / "out")])
    line = _error_line(capsys.readouterr().err, "faces")
    assert rc == 2 and f"1 input does not exist: {missing}" in line


def test_version_is_printed_without_building_the_parser(capsys, monkeypatch):
    from cefl_zoo import cli

    monkeypatch.setattr(cli, "build_parser", lambda: pytest.fail("parser built"))
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"cefl-zoo {cefl_zoo.__version__}"


def test_command_modules_import_nothing_heavy_of_their_own():
    """Building every command's parser (``cefl-zoo --help``) loads no torch, numpy, timm,
    plotting, video, face or progress-bar libraries: they are imported inside ``run``."""
    code = (
        "import json, sys, cefl_zoo; before = set(sys.modules); import cefl_zoo.cli as c; "
        "c.build_parser(); print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    new = set(json.loads(out))
    heavy = {"matplotlib", "av", "cv2", "PIL", "onnxruntime", "retinaface", "tqdm", "pandas"}
    heavy |= {"torch", "torchvision", "timm", "numpy", "safetensors", "huggingface_hub"}
    assert not {m.split(".")[0] for m in new} & heavy, sorted(new)
    mine = {"cefl_zoo.predict", "cefl_zoo.faces", "cefl_zoo.video", "cefl_zoo.data"}
    assert not {m for m in new if any(m == p or m.startswith(p + ".") for p in mine)}, sorted(new)
