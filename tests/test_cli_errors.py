"""Bad input on the command line: one line on stderr naming what was wrong, a non-zero exit
code, no traceback; and results that were made are kept when a later output fails."""

from __future__ import annotations

import json
import sys
from unittest import mock

import pytest
import torch

import cefl_zoo
from cefl_zoo.cli import build_parser, main


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """Seven 32 px synthetic videos (all in the train split)."""
    from cefl_zoo.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("synth")
    write_synthetic_dataset(root, num_videos=7, size=32, seed=0, progress=False)
    return root


@pytest.fixture(scope="module")
def video(synth):
    return str(synth / "videos" / "00000.mp4")


def _one_error_line(err: str, command: str) -> str:
    """The ``cefl-zoo COMMAND: error:`` line of ``err``; fails on a traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"cefl-zoo {command}: error: ")]
    assert len(lines) == 1, err
    return lines[0]


# -- 1. eval / train: a model that cannot be built --------------------------------------------
@pytest.mark.parametrize(
    "model, message",
    [
        (["cefl_tiny"], "unknown model 'cefl_tiny'. Close matches: ceflnet_tiny"),
        (
            ["ceflnet_resnet18.dfew", "--pretrained"],
            "cannot load model 'ceflnet_resnet18.dfew': pretrained weights",
        ),
        (["SYNTH"], "cannot load model '{synth}': config.json is missing"),
    ],
)
def test_eval_model_errors_are_one_line(synth, model, message, capsys):
    model = [m.replace("SYNTH", str(synth)) for m in model]
    rc = main(
        [
            "eval",
            "--model",
            *model,
            "--data",
            f"synthetic:{synth}",
            "--split",
            "train",
            "--no-progress",
            "--num-workers",
            "0",
        ]
    )
    line = _one_error_line(capsys.readouterr().err, "eval")
    assert rc == 2 and message.format(synth=synth) in line, line


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "cefl_tiny"], "unknown model 'cefl_tiny'"),
        (
            ["--model", "ceflnet_tiny", "--model-kwargs", '{"backbone": "resnet81"}'],
            "cannot build model 'ceflnet_tiny': unknown timm backbone 'resnet81'",
        ),
        (
            ["--model", "ceflnet_tiny", "--model-kwargs", '{"foo": 1}'],
            "cannot build model 'ceflnet_tiny': ",
        ),
        (
            ["--model", "ceflnet_tiny", "--init-from", "nothere"],
            "cannot load --init-from 'nothere': unknown model 'nothere'",
        ),
    ],
)
def test_train_model_errors_are_one_line(synth, tmp_path, extra, message, capsys):
    rc = main(
        [
            "train",
            *extra,
            "--data",
            f"synthetic:{synth}",
            "--output-dir",
            str(tmp_path / "run"),
            "--no-progress",
            "--num-workers",
            "0",
            "--device",
            "cpu",
        ]
    )
    line = _one_error_line(capsys.readouterr().err, "train")
    assert rc == 2 and message in line, line


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", ["train", "eval"])
def test_cuda_without_a_gpu_is_one_line(synth, tmp_path, command, capsys):
    args = {
        "train": ["train", "--model", "ceflnet_tiny", "--output-dir", str(tmp_path / "r")],
        "eval": ["eval", "--model", "ceflnet_tiny.synthetic"],
    }[command]
    rc = main([*args, "--data", f"synthetic:{synth}", "--device", "cuda", "--no-progress"])
    line = _one_error_line(capsys.readouterr().err, command)
    assert rc == 2 and "CUDA is not available" in line and "cannot load model" not in line


# -- 6. eval of "arch.tag" evaluates the tag's weights --------------------------------------
def test_eval_of_a_weight_tag_loads_its_weights(synth, tmp_path, capsys):
    out = tmp_path / "eval.json"
    rc = main(
        [
            "eval",
            "--model",
            "ceflnet_tiny.synthetic",
            "--data",
            f"synthetic:{synth}",
            "--split",
            "train",
            "--no-progress",
            "--num-workers",
            "0",
            "--device",
            "cpu",
            "--output",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    # the shipped weights know the synthetic videos; random weights score ~1/7
    assert json.loads(out.read_text())["metrics"]["war"] >= 0.7


def test_eval_of_a_bare_architecture_warns_about_random_weights(synth, capsys):
    rc = main(
        [
            "eval",
            "--model",
            "ceflnet_tiny",
            "--data",
            f"synthetic:{synth}",
            "--split",
            "train",
            "--no-progress",
            "--num-workers",
            "0",
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0 and "warning: evaluating ceflnet_tiny with RANDOM weights" in err, err
    help_text = _help("eval")
    assert "arch.tag" in help_text and "implied" in help_text


def _help(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[command].format_help()


# -- 2. push / export -------------------------------------------------------------------------
def _client_connect_error() -> type[BaseException]:
    """The connection-error class of huggingface_hub's HTTP client (httpx's, or requests')."""
    from huggingface_hub.errors import HfHubHTTPError

    base = next(b for b in HfHubHTTPError.__mro__[1:] if b.__name__ == "HTTPError")
    module = sys.modules[base.__module__.split(".")[0]]
    return getattr(module, "ConnectError", None) or module.ConnectionError


def test_push_offline_is_one_line_on_stderr(tmp_path, capsys):
    import huggingface_hub

    folder = cefl_zoo.create_model("ceflnet_tiny").save_pretrained(tmp_path / "m")
    error = _client_connect_error()("[Errno -2] Name or service not known")
    with mock.patch.object(huggingface_hub.HfApi, "create_repo", side_effect=error):
        rc = main(["push", str(folder), "org/repo"])
    captured = capsys.readouterr()
    line = _one_error_line(captured.err, "push")
    assert rc == 1 and "Name or service not known" in line and "HF_ENDPOINT" in line, line
    assert captured.out == ""


def test_push_and_export_errors_go_to_stderr(tmp_path, capsys):
    assert main(["push", str(tmp_path), "org/repo"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "config.json" in _one_error_line(captured.err, "push")
    assert main(["push", str(tmp_path / "nope"), "org/repo"]) == 2  # no such input
    assert "does not exist" in _one_error_line(capsys.readouterr().err, "push")
    assert main(["export", str(tmp_path / "nope"), str(tmp_path / "x")]) == 2  # no such input
    captured = capsys.readouterr()
    assert captured.out == "" and "does not exist" in _one_error_line(captured.err, "export")
    blocker = tmp_path / "file"
    blocker.write_text("")
    model = cefl_zoo.create_model("ceflnet_tiny").save_pretrained(tmp_path / "m")
    assert main(["export", str(model), str(blocker / "out")]) == 1
    assert "cannot export" in _one_error_line(capsys.readouterr().err, "export")


# -- 3, 4, 5. predict outputs and options -----------------------------------------------------
def test_predict_plot_failure_keeps_the_prediction(video, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc = main(
        [
            "predict",
            video,
            "--plot",
            str(blocker / "x"),
            "--json",
            "-",
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 1
    [result] = json.loads(captured.out)["results"]
    assert "error" not in result and result["label"]
    assert "--plot: cannot create the folder" in captured.err and "Traceback" not in captured.err
    assert "1 of 1 video predicted" in captured.err


def test_predict_plot_write_failure_keeps_table_and_json(video, tmp_path, capsys, monkeypatch):
    from cefl_zoo.predict import Prediction

    def broken(self, path, all_classes=True):
        raise RuntimeError("matplotlib exploded")

    monkeypatch.setattr(Prediction, "plot", broken)
    out = tmp_path / "r.json"
    rc = main(
        [
            "predict",
            video,
            "--plot",
            str(tmp_path / "plots"),
            "--json",
            str(out),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 1 and "00000.mp4" in captured.out and "FAILED" not in captured.out
    assert "error" not in json.loads(out.read_text())["results"][0]
    assert "cannot write its plot" in captured.err and "matplotlib exploded" in captured.err


def test_predict_json_into_a_folder_is_one_line(video, tmp_path, capsys):
    rc = main(["predict", video, "--json", str(tmp_path), "--device", "cpu", "--no-progress"])
    line = _one_error_line(capsys.readouterr().err, "predict")
    assert rc == 2 and "--json" in line and "is a folder" in line


def test_predict_json_write_failure_still_prints_the_table(video, tmp_path, capsys, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dump", disk_full)
    out = tmp_path / "r.json"
    rc = main(["predict", video, "--json", str(out), "-q", "--device", "cpu", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 1 and "00000.mp4" in captured.out, captured  # -q, but nowhere else to go
    assert f"cannot write the results to {out}: [Errno 28] No space left" in captured.err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--faces", "mtcnn"], "--faces mtcnn: unknown face detector; use one of: retinaface"),
        (["--device", "tpu9"], "--device tpu9:"),
        pytest.param(
            ["--device", "cuda"],
            "CUDA is not available",
            marks=pytest.mark.skipif(
                torch.cuda.is_available(), reason="needs a machine without CUDA"
            ),
        ),
    ],
)
def test_predict_option_errors_do_not_blame_the_model(video, extra, message, capsys):
    rc = main(["predict", video, "--no-progress", *extra])
    line = _one_error_line(capsys.readouterr().err, "predict")
    assert rc == 2 and message in line and "cannot load model" not in line, line


# -- 7. benchmark ---------------------------------------------------------------------------
def test_benchmark_names_failed_videos_and_fails_when_all_do(video, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    with open(video, "rb") as fh:
        broken.write_bytes(fh.read()[:500])
    rc = main(["benchmark", str(broken), "--device", "cpu", "--warmup", "0"])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert any(line.startswith("error: ") and "broken.mp4" in line for line in err.splitlines())
    assert "every video failed" in _one_error_line(err, "benchmark")
    rc = main(
        [
            "benchmark",
            str(broken),
            video,
            "--device",
            "cpu",
            "--warmup",
            "0",
            "--mode",
            "sequential",
        ]
    )
    err = capsys.readouterr().err
    # some videos failed: measured on the others, exit 1 as predict does
    assert rc == 1 and "broken.mp4" in err and "cefl-zoo benchmark: error" not in err
    assert "1 of 2 videos failed; measured on the others" in err


# -- 8. synth -------------------------------------------------------------------------------
@pytest.mark.parametrize("sub", ["", "x"])
def test_synth_into_a_file_is_one_line(tmp_path, sub, capsys):
    target = tmp_path / "file"
    target.write_text("")
    rc = main(
        [
            "synth",
            str(target / sub) if sub else str(target),
            "--videos",
            "1",
            "--size",
            "32",
            "--quiet",
        ]
    )
    line = _one_error_line(capsys.readouterr().err, "synth")
    assert rc == 2 and str(target) in line


# -- 9. the model fails inside the predictor ------------------------------------------------
def _failing_forward(self, x):
    raise AssertionError(f"Input height ({x.shape[-2]}) doesn't match model (64).")


def test_model_forward_error_is_one_line_per_video(video, capsys, monkeypatch):
    from cefl_zoo.models.ceflnet import CEFLNet

    monkeypatch.setattr(CEFLNet, "forward_explain", _failing_forward)
    for extra in ([], ["--window", "30"]):
        rc = main(["predict", video, "--device", "cpu", "--no-progress", *extra])
        err = capsys.readouterr().err
        assert rc == 1 and "Traceback" not in err, err
        [line] = [e for e in err.splitlines() if e.startswith("error: ")]
        assert "00000.mp4" in line and "model ceflnet_tiny.synthetic failed" in line, line
        assert "Input height (32) doesn't match model (64)" in line and "32x32 px" in line, line


def test_predict_many_reports_forward_errors_per_video(monkeypatch):
    from cefl_zoo.predict import ModelForwardError, Predictor
    from cefl_zoo.predict.predictor import ModelForwardError as direct

    assert ModelForwardError is direct
    model = cefl_zoo.create_model("ceflnet_tiny", num_classes=3)
    monkeypatch.setattr(type(model), "forward_explain", _failing_forward)
    predictor = Predictor(model, device="cpu")
    frames = torch.zeros(40, 3, 48, 48, dtype=torch.uint8)
    results = predictor.predict_many([frames, frames])
    assert [r.ok for r in results] == [False, False]
    assert results[0].error_type == "ModelForwardError"
    with pytest.raises(ModelForwardError, match="failed on its input"):
        predictor.predict(frames)


# -- 10. wording ----------------------------------------------------------------------------
def test_singular_counts_and_help_defaults(video, capsys):
    rc = main(["predict", video, "--device", "cpu", "--no-progress", "--window", "200"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "1 window," in captured.out and "1 segment" in captured.out
    assert "1 of 1 video predicted" in captured.err
    for command in ("train", "kfold"):
        text = " ".join(_help(command).split())
        assert "(default: the model's input size)" in text
        assert "(default: the model's input size) (default: None)" not in text


def test_a_transform_that_cannot_work_is_one_line_not_a_skipped_video(synth, tmp_path, capsys):
    rc = main(
        [
            "train",
            "--model",
            "ceflnet_tiny",
            "--data",
            f"synthetic:{synth}",
            "--data-kwargs",
            '{"transform_kwargs": {"input_size": -1}}',
            "--val-split",
            "none",
            "--output-dir",
            str(tmp_path / "run"),
            "--no-progress",
            "--num-workers",
            "0",
        ]
    )
    err = capsys.readouterr().err
    line = _one_error_line(err, "train")
    assert rc == 2, line
    assert "the transform failed" in line and "not a problem of the video file" in line, line
    assert "skipping unreadable" not in err


def test_eval_split_none_reads_a_dataset_without_splits(synth, tmp_path, capsys):
    import shutil

    folder = tmp_path / "folder"
    for label in ("happiness", "sadness"):
        (folder / label).mkdir(parents=True)
        shutil.copy(synth / "videos" / "00000.mp4", folder / label / "a.mp4")
    rc = main(
        [
            "eval",
            "--model",
            "ceflnet_tiny.synthetic",
            "--data",
            f"folder:{folder}",
            "--split",
            "none",
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "videos 2" in captured.out


# -- on_error="raise": a corrupt video stops train / eval / kfold with one line -----------
@pytest.fixture(scope="module")
def corrupt(tmp_path_factory):
    """Four 32 px synthetic videos (train split); 00001.mp4 is not a video."""
    from cefl_zoo.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("corrupt")
    write_synthetic_dataset(root, num_videos=4, size=32, seed=0, progress=False)
    (root / "videos" / "00001.mp4").write_bytes(b"\x00garbage, not a video" * 40)
    return root


_TINY = ["--model", "ceflnet_tiny", "--img-size", "32", "--num-clips", "2"]
_TINY += ["--frames-per-clip", "2", "--batch-size", "4", "--no-progress"]


@pytest.mark.parametrize(
    "command, workers",
    [("train", "0"), ("train", "1"), ("eval", "1"), ("kfold", "0")],
)
def test_fail_on_a_corrupt_video_is_one_line(corrupt, tmp_path, capsys, command, workers):
    raise_mode = ["--data-kwargs", '{"on_error": "raise"}', "--num-workers", workers]
    args = [command, *_TINY, "--data", f"synthetic:{corrupt}", *raise_mode]
    if command == "eval":
        args += ["--split", "train"]
    else:
        args += ["--epochs", "1", "--val-split", "none", "--output-dir", str(tmp_path / "o")]
    if command == "kfold":
        args += ["--folds", "none"]
    code = main(args)
    line = _one_error_line(capsys.readouterr().err, command)
    assert code == 2
    message = line.split(": error: ", 1)[1]  # names the file first, not a worker traceback
    assert message.startswith(f"{corrupt / 'videos' / '00001.mp4'}: not a readable video")


@pytest.mark.parametrize("argv", [["--help"], ["models"]])
def test_a_closed_stdout_pipe_ends_quietly(argv):
    # `cefl-zoo ... | head`: the reader is gone before the output is written.
    import os
    import subprocess

    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "cefl_zoo", *argv],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    # --help: argparse's own exit 0 where it ignores the failed write (Python 3.11+);
    # on 3.10 the BrokenPipeError reaches the CLI, which reports it as 141.
    help_status = 0 if sys.version_info >= (3, 11) else 141
    assert proc.returncode == (141 if argv == ["models"] else help_status)


def test_a_broken_pipe_that_is_not_stdout_is_not_swallowed(monkeypatch, capsys):
    from cefl_zoo.commands import models

    def broken(args):
        raise BrokenPipeError("a socket of the command's own")

    monkeypatch.setattr(models, "run", broken)
    with pytest.raises(BrokenPipeError, match="socket"):
        main(["models"])
    print("stdout still works")
    assert "stdout still works" in capsys.readouterr().out
