"""torchrun + DistributedDataParallel on CPU (gloo): 2 processes match 1 process.

Same global batch (2 processes x 2 videos vs 1 process x 4 videos), same seed: the
per-step training loss and the final weights agree within float tolerance, the
evaluation counts every one of an odd number of validation videos exactly once
(DistributedSampler pads the last rank's share with repeats), and only rank 0 writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(SCRIPT),
            str(two),
            "--batch-size",
            "2",
            *COMMON,
        ],
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
