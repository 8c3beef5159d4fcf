"""``cefl-zoo predict``: table, JSON, plots, folders, timelines, per-file errors, exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from _predict_utils import flash_frames
from _video_utils import write_audio_only, write_frame_folder, write_video

import cefl_zoo
from cefl_zoo.cli import main
from cefl_zoo.predict import DEFAULT_MODEL, expand_inputs


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=3)
    model.pretrained_cfg = model.pretrained_cfg.replace(
        label_names=("anger", "happiness", "neutral"), input_size=(3, 32, 32)
    )
    return str(model.save_pretrained(tmp_path_factory.mktemp("model") / "tiny"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """root/a.mp4, root/sub/10.mp4, root/sub/2.mp4, root/frames/ (PNG frames), hidden and
    non-video files that must be ignored."""
    root = tmp_path_factory.mktemp("tree")
    write_video(root / "a.mp4", flash_frames(60, (30, 35), size=32))
    (root / "sub").mkdir()
    write_video(root / "sub" / "10.mp4", flash_frames(90, None, size=32))
    write_video(root / "sub" / "2.mp4", flash_frames(70, (10, 20), size=32))
    write_frame_folder(root / "frames", flash_frames(40, None, size=32), ext="png")
    (root / "notes.txt").write_text("not a video")
    (root / ".hidden").mkdir()
    write_video(root / ".hidden" / "x.mp4", flash_frames(30, None, size=32))
    return root


def test_expand_inputs_finds_videos_and_frame_folders(tree, tmp_path):
    found = expand_inputs([tree, tree / "a.mp4", tmp_path / "missing.mp4"])
    rel = [str(p).replace(str(tree) + "/", "") for p in found]
    assert rel == ["a.mp4", "frames", "sub/2.mp4", "sub/10.mp4", str(tmp_path / "missing.mp4")]


def test_a_folder_of_videos_with_a_stray_image_is_a_folder_of_videos(tmp_path):
    # cover.png beside the videos used to make the whole folder one 1-frame "video"
    root = tmp_path / "mixed"
    write_video(root / "1.mp4", flash_frames(20, None, size=32))
    write_video(root / "2.mp4", flash_frames(20, None, size=32))
    write_frame_folder(root, flash_frames(1, None, size=32), ext="png", names=["cover.png"])
    write_frame_folder(root / "clip", flash_frames(12, None, size=32), ext="jpg")
    assert [Path(p).name for p in expand_inputs([root])] == ["1.mp4", "2.mp4", "clip"]
    assert expand_inputs([root / "clip"]) == [str(root / "clip")]


def test_table_json_and_plots(tree, model_dir, tmp_path, capsys):
    out_json = tmp_path / "res" / "out.json"
    rc = main(
        [
            "predict",
            str(tree),
            "--model",
            model_dir,
            "--json",
            str(out_json),
            "--plot",
            str(tmp_path / "plots"),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert lines[0].split() == ["file", "label", "p", "emotion-rich", "clip"]
    rows = lines[2:]
    assert len(rows) == 4
    for row, name in zip(rows, ["a.mp4", "frames", "2.mp4", "10.mp4"]):
        assert name in row
        assert re.search(
            r"(anger|happiness|neutral)\s+[01]\.\d\d\s+clip \d \(\d+\.\d\d-\d+\.\d\d s\)", row
        ), row
    assert "4 of 4 videos predicted" in captured.err
    data = json.loads(out_json.read_text())
    assert data["model"] == model_dir and data["device"] == "cpu" and data["mode"] == "clips"
    assert [r["source"].rsplit("/", 1)[-1] for r in data["results"]] == [
        "a.mp4",
        "frames",
        "2.mp4",
        "10.mp4",
    ]
    first = data["results"][0]
    assert set(first["probabilities"]) == {"anger", "happiness", "neutral"}
    assert first["video"]["num_frames"] == 60 and len(first["clips"]) == 7
    assert first["emotion_rich_clip"]["start_s"] < first["emotion_rich_clip"]["end_s"]
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["10.png", "2.png", "a.png", "frames.png"]


def test_json_to_stdout_has_no_table(tree, model_dir, capsys):
    rc = main(
        [
            "predict",
            str(tree / "a.mp4"),
            "--model",
            model_dir,
            "--json",
            "-",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    data = json.loads(out)
    assert len(data["results"]) == 1 and data["results"][0]["label"] in (
        "anger",
        "happiness",
        "neutral",
    )


def test_failures_are_one_line_each_and_exit_1(tree, model_dir, tmp_path, capsys):
    audio = write_audio_only(tmp_path / "speech.m4a")
    one = write_video(tmp_path / "one.mp4", flash_frames(1, None, size=32))
    image = tmp_path / "still.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes((tree / "a.mp4").read_bytes()[:500])
    args = [
        str(tree / "a.mp4"),
        str(audio),
        str(one),
        str(image),
        str(broken),
        str(tree / "sub" / "2.mp4"),
    ]
    rc = main(
        [
            "predict",
            *args,
            "--model",
            model_dir,
            "--device",
            "cpu",
            "--no-progress",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 1
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 4
    for path, pattern in [
        ("speech.m4a", "no video stream"),
        ("one.mp4", "only 1 frame"),
        ("still.png", "still image"),
        ("broken.mp4", "truncated|corrupt|not a readable video"),
    ]:
        line = next(e for e in errors if path in e)
        assert re.search(pattern, line), line
    assert "2 of 6 videos predicted" in captured.err and "4 failed" in captured.err
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [("error" in r) for r in results] == [False, True, True, True, True, False]
    assert [r["ok"] for r in results] == [True, False, False, False, False, True]
    table = captured.out.splitlines()
    assert sum("FAILED" in line for line in table) == 4
    # a path that does not exist is a usage error: nothing is predicted
    rc = main(
        [
            "predict",
            *args,
            str(tmp_path / "nope.mp4"),
            "--model",
            model_dir,
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    missing = tmp_path / "nope.mp4"
    assert f"cefl-zoo predict: error: 1 input does not exist: {missing}" in captured.err


def test_min_frames_option_rescues_a_short_video(model_dir, tmp_path, capsys):
    one = write_video(tmp_path / "one.mp4", flash_frames(1, None, size=32))
    rc = main(
        [
            "predict",
            str(one),
            "--model",
            model_dir,
            "--device",
            "cpu",
            "--no-progress",
            "--min-frames",
            "1",
        ]
    )
    assert rc == 0, capsys.readouterr().err


def test_window_mode_writes_timeline_json_and_png(model_dir, tmp_path, capsys):
    video = write_video(tmp_path / "long.mp4", flash_frames(400, (200, 260), size=32), fps=25)
    rc = main(
        [
            "predict",
            str(video),
            "--model",
            model_dir,
            "--device",
            "cpu",
            "--no-progress",
            "--window",
            "4.2s",
            "--stride",
            "2s",
            "--json",
            str(tmp_path / "t.json"),
            "--plot",
            str(tmp_path / "plots"),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["mode"] == "timeline"
    [tl] = data["results"]
    assert tl["window"] == {"frames": 105, "stride": 50}
    assert [w["first_frame"] for w in tl["windows"]] == [0, 50, 100, 150, 200, 250, 295]
    assert tl["windows"][-1]["last_frame"] == 399
    assert (tmp_path / "plots" / "long.png").stat().st_size > 0
    assert "7 windows" in captured.out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--stride", "10"], "--stride only applies with --window"),
        (["--window", "abc"], "--window: cannot read 'abc'"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--model", "ceflnet_tinyy"], "unknown model"),
    ],
)
def test_usage_errors_exit_2(tree, extra, message, capsys):
    rc = main(["predict", str(tree / "a.mp4"), "--device", "cpu", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err


def test_argparse_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["predict"])
    assert exc.value.code == 2


def test_default_model_is_the_shipped_synthetic_weights(tree, capsys):
    available = [c for c in cefl_zoo.list_pretrained(DEFAULT_MODEL) if c.status == "available"]
    rc = main(["predict", str(tree / "a.mp4"), "--device", "cpu", "--no-progress", "--json", "-"])
    captured = capsys.readouterr()
    if available:
        assert rc == 0, captured.err
        result = json.loads(captured.out)["results"][0]
        assert result["label"] in cefl_zoo.DATASET_CLASSES["synthetic"]
        assert json.loads(captured.out)["model"] == DEFAULT_MODEL
    else:  # before the weights ship: a clear usage error, never random weights
        assert rc == 2 and "--model" in captured.err and DEFAULT_MODEL in captured.err


def test_faces_without_detector_package_is_a_usage_error(tree, model_dir, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_retinaface(name, *args, **kwargs):
        if name.split(".")[0] in ("retinaface", "onnxruntime"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_retinaface)
    rc = main(
        [
            "predict",
            str(tree / "a.mp4"),
            "--model",
            model_dir,
            "--device",
            "cpu",
            "--faces",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "cefl-zoo[faces]" in err, err


def test_benchmark_command_reports_throughput_and_shares(tree, model_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(
        [
            "benchmark",
            str(tree / "a.mp4"),
            str(tree / "sub"),
            "--model",
            model_dir,
            "--device",
            "cpu",
            "--warmup",
            "1",
            "--workers",
            "2",
            "--json",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "videos/s" in text and "sequential" in text and "pipelined" in text
    report = json.loads(out.read_text())
    assert report["videos"] == 3 and report["frames_per_video"] == 35
    seq, pipe = report["modes"]["sequential"], report["modes"]["pipelined"]
    assert seq["num_workers"] == 0 and pipe["num_workers"] == 2
    for mode in (seq, pipe):
        assert mode["videos_ok"] == 3 and mode["videos_failed"] == 0
        assert mode["videos_per_s"] == pytest.approx(3 / mode["wall_s"])
        assert sum(mode["shares"].values()) == pytest.approx(1.0)
        assert mode["stages_s"]["decode"] > 0 and mode["stages_s"]["model"] > 0
        assert mode["stages_s"]["faces"] == 0  # no face detection asked for
    # without threads the stages run one after the other: they cannot exceed the wall time
    assert sum(seq["stages_s"].values()) <= seq["wall_s"] * 1.01
