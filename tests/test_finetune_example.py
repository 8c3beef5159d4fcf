"""examples/finetune.py end to end on a tiny folder of labelled videos (a new class count)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "finetune.py"


def _video_folder(tmp_path: Path) -> Path:
    """``videos/<Class>/<video>.mp4`` for 3 of the 7 synthetic classes, 4 videos each."""
    from cefl_zoo.data.synthetic import write_synthetic_dataset

    synth = tmp_path / "synth"
    write_synthetic_dataset(
        synth, num_videos=28, seed=1, size=32, min_frames=24, max_frames=32, progress=False
    )
    root = tmp_path / "videos"
    keep = {"happiness": "Happy", "sadness": "Sad", "surprise": "Surprised"}
    with open(synth / "labels.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["label"] in keep:
                folder = root / keep[row["label"]]
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copy(synth / row["path"], folder / Path(row["path"]).name)
    return root


def _finetune(tmp_path: Path, *extra: str, launcher: tuple[str, ...] = ()):
    args = ["--model", "ceflnet_tiny", "--epochs", "2", "--batch-size", "4", "--num-clips", "7"]
    args += ["--frames-per-clip", "2", "--img-size", "32", "--num-workers", "0"]
    args += ["--val-fraction", "0.25", "--output", str(tmp_path / "run"), *extra]
    return subprocess.run(
        [sys.executable, *launcher, str(EXAMPLE), str(tmp_path / "videos"), *args],
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )


def test_finetune_example_on_a_video_folder(tmp_path):
    _video_folder(tmp_path)
    out = tmp_path / "run"
    proc = _finetune(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 classes ('happiness', 'sadness', 'surprise'): 9 train / 3 val videos" in proc.stdout
    assert "WAR" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())["last"]
    assert metrics["num_videos"] == 3 and metrics["class_names"] == [
        "happiness",
        "sadness",
        "surprise",
    ]
    # the saved folder loads through the public API with the new 3-class head and labels
    import cefl_zoo

    model = cefl_zoo.create_model(str(out / "model"))
    assert model.num_classes == 3
    assert model.label_names == ("happiness", "sadness", "surprise")
    assert (model.pretrained_cfg.num_clips, model.pretrained_cfg.frames_per_clip) == (7, 2)
    assert model.pretrained_cfg.input_size[-1] == 32


def test_finetune_example_reruns_into_the_same_folder(tmp_path):
    from cefl_zoo.train import load_checkpoint

    _video_folder(tmp_path)
    out = tmp_path / "run"
    first = _finetune(tmp_path, "--epochs", "1")
    assert first.returncode == 0, first.stdout + first.stderr
    first_weights = load_checkpoint(out / "last.pt")["model"]
    # again without a flag: a usage error naming the script's own flags, no traceback
    again = _finetune(tmp_path, "--epochs", "1")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "--resume" in again.stderr and "--overwrite" in again.stderr
    # --resume continues the (finished) run: nothing is trained again
    resumed = _finetune(tmp_path, "--epochs", "1", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "WAR" in resumed.stdout and load_checkpoint(out / "last.pt")["global_step"] == 3
    # --overwrite under torchrun: a new run; rank 0 alone prints and saves the model
    ddp = _finetune(
        tmp_path,
        *("--epochs", "1", "--batch-size", "2", "--overwrite"),
        launcher=("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
    )
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    assert ddp.stdout.count("3 classes (") == 1 and ddp.stdout.count("saved ") == 1
    assert ddp.stdout.count("WAR") == 1, ddp.stdout
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["world_size"] == 2 and ckpt["global_step"] == 3  # 9 videos / (2 x 2) per step
    # --seed makes the run repeatable (the new head is drawn after seeding), and 2 x 2
    # videos per step reach the weights of 1 x 4 (the sampler's padding left out)
    for key, value in first_weights.items():
        torch.testing.assert_close(ckpt["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_finetune_example_reports_ordinary_mistakes_as_usage_errors(tmp_path):
    cases = [
        (["--val-fraction", "1.0"], "--val-fraction must lie in [0, 1), got 1.0"),
        (["--model", "nosuch_model"], "unknown model 'nosuch_model'"),
    ]
    (tmp_path / "videos").mkdir()
    for extra, message in cases:
        proc = _finetune(tmp_path, *extra)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path / "nothere"), "--model", "ceflnet_tiny"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2 and "nothere: dataset folder does not exist" in proc.stderr
