"""torchrun + DistributedDataParallel on CPU (gloo): 2 processes match 1 process.

Same global batch (2 processes x 2 videos vs 1 process x 4 videos), same seed: the
per-step training loss and the final weights agree within float tolerance, the
evaluation counts every one of an odd number of validation videos exactly once
(DistributedSampler pads the last rank's share with repeats), and only rank 0 writes.
The training statistics leave those repeats out too, and a SIGTERM to one process stops
every process at the end of the current optimizer step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cefl_zoo.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "_train_utils.py"
COMMON = ["--videos", "48", "--val-videos", "11", "--epochs", "2"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    one = tmp_path_factory.mktemp("one_process")
    two = tmp_path_factory.mktemp("two_processes")
    single = subprocess.run(
        [sys.executable, str(SCRIPT), str(one), "--batch-size", "4", *COMMON],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stdout + single.stderr
    multi = subprocess.run(
        _torchrun(two, "--batch-size", "2", *COMMON),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert multi.returncode == 0, multi.stdout + multi.stderr
    return one, two


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "steps.jsonl").read_text().splitlines()]


def test_two_processes_match_one_process_loss(runs):
    one, two = runs
    a, b = _losses(one), _losses(two)
    assert len(a) == len(b) == 24  # 48 videos / global batch 4 x 2 epochs
    assert a[-1] < 0.5 * a[0], "the runs must actually learn for the comparison to mean anything"
    torch.testing.assert_close(torch.tensor(b), torch.tensor(a), rtol=1e-3, atol=1e-4)
    wa, wb = load_checkpoint(one / "last.pt")["model"], load_checkpoint(two / "last.pt")["model"]
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=1e-3, atol=1e-4, msg=key)
    ha = json.loads((one / "history.json").read_text())
    hb = json.loads((two / "history.json").read_text())
    assert [h["train_loss"] for h in hb] == pytest.approx([h["train_loss"] for h in ha], rel=1e-3)


def test_distributed_eval_counts_each_video_once(runs):
    one, two = runs
    ma = json.loads((one / "metrics.json").read_text())["last"]
    mb = json.loads((two / "metrics.json").read_text())["last"]
    assert mb["num_videos"] == ma["num_videos"] == 11
    assert sum(mb["support"]) == 11 and sum(map(sum, mb["confusion_matrix"])) == 11
    assert mb["confusion_matrix"] == ma["confusion_matrix"]
    assert mb["clip_locating"]["num_videos"] == 11


def test_only_rank_zero_writes(runs):
    _, two = runs
    log = (two / "train.log").read_text()
    assert log.count("training ceflnet_tiny") == 1
    assert "x2 |" in log  # two processes
    ckpt = load_checkpoint(two / "last.pt")
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    assert sorted(p.name for p in two.iterdir() if p.name.startswith(".")) == []


def _torchrun(out: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(SCRIPT),
        str(out),
        *args,
    ]


def test_sigterm_to_one_rank_stops_every_rank_within_a_step(tmp_path):
    # Only rank 1 gets the signal; logging and step checkpoints are off (the defaults
    # are 50 / 500 steps), so only the per-step agreement can stop rank 0 in time.
    out, pids = tmp_path / "run", tmp_path / "pids"
    proc = subprocess.Popen(
        _torchrun(
            out,
            *("--videos", "200", "--batch-size", "2", "--epochs", "1", "--delay", "0.1"),
            *("--log-every", "1000", "--checkpoint-every", "0", "--pid-dir", str(pids)),
        ),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 120
        log = out / "train.log"
        while not (
            (pids / "rank1.pid").is_file()
            and log.is_file()
            and "training ceflnet_tiny" in log.read_text()
        ):
            assert proc.poll() is None, proc.stdout.read()
            assert time.time() < deadline, "training did not start"
            time.sleep(0.05)
        time.sleep(1.0)  # a few steps of the 50 (>= 0.2 s each)
        os.kill(int((pids / "rank1.pid").read_text()), signal.SIGTERM)
        sent = time.time()
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert time.time() - sent < 20, output
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 0 and 0 < ckpt["step_in_epoch"] < 50, (ckpt["step_in_epoch"], output)
    assert ckpt["world_size"] == 2 and ckpt["global_step"] == ckpt["step_in_epoch"]
    assert "stop requested: saved" in log.read_text()


def test_training_statistics_leave_out_the_sampler_padding(tmp_path):
    # 9 videos on 2 ranks: DistributedSampler pads rank 1's share with a 10th (a repeat).
    # The epoch statistics must be those of the 9 videos, as in one process.
    from _train_utils import ToyVideos, toy_config

    from cefl_zoo.train import train

    two = tmp_path / "two"
    multi = subprocess.run(
        _torchrun(two, "--videos", "9", "--batch-size", "2", "--epochs", "1"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert multi.returncode == 0, multi.stdout + multi.stderr
    one = toy_config(tmp_path / "one", epochs=1, batch_size=4, model_kwargs={"drop_rate": 0.0})
    train(one, train_dataset=ToyVideos(9))
    steps = [json.loads(line) for line in (two / "steps.jsonl").read_text().splitlines()]
    assert [s["videos"] for s in steps] == [4, 8, 9]
    ha = json.loads((tmp_path / "one" / "history.json").read_text())[0]
    hb = json.loads((two / "history.json").read_text())[0]
    assert round(hb["train_acc"] * 9, 6) == round(ha["train_acc"] * 9, 6)
    assert hb["train_loss"] == pytest.approx(ha["train_loss"], rel=1e-3)
    # the last step's loss: one video on rank 0, only padding on rank 1
    last_one = json.loads((tmp_path / "one" / "steps.jsonl").read_text().splitlines()[-1])
    assert steps[-1]["loss"] == pytest.approx(last_one["loss"], rel=1e-3)
    # ... and the repeat is left out of the gradient as well: the same weights
    wa = load_checkpoint(tmp_path / "one" / "last.pt")["model"]
    wb = load_checkpoint(two / "last.pt")["model"]
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=1e-4, atol=1e-5, msg=key)
