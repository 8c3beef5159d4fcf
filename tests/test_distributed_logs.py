"""torchrun + gloo on CPU: what every rank must leave in rank 0's ``train.log``.

Each rank reads its own share of the videos, so a video skipped as unreadable is only
ever seen by one rank (in one of its loader workers). ``train.log`` must name it
whichever rank skipped it, marked with that rank, while rank 0's ordinary log lines
stay written once.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return env


def _first_video_of_rank_1(data: Path, seed: int = 0) -> Path:
    """The file of the training video rank 1 of 2 reads first in epoch 0, which rank 0
    never reads (the sampler pads rank 1's share with rank 0's first video, not the
    other way round)."""
    from cefl_zoo.data import build_dataset
    from cefl_zoo.train.distributed import ResumableDistributedSampler

    train = build_dataset("synthetic", data, split="train")
    shares = []
    for rank in range(2):
        sampler = ResumableDistributedSampler(
            train, num_replicas=2, rank=rank, shuffle=True, seed=seed
        )
        sampler.set_epoch(0)
        shares.append(list(sampler))
    assert shares[1][0] not in shares[0]
    return Path(train.items[shares[1][0]].path)


def test_videos_skipped_on_any_rank_are_in_train_log(tmp_path):
    from cefl_zoo.data.synthetic import write_synthetic_dataset

    data = tmp_path / "synth"
    write_synthetic_dataset(
        data, num_videos=10, seed=0, size=32, min_frames=12, max_frames=16, progress=False
    )
    rows = list(csv.DictReader((data / "labels.csv").open()))
    assert sum(r["split"] == "train" for r in rows) == 7  # 2 steps of 2 x 2 videos
    broken = _first_video_of_rank_1(data)
    broken.write_bytes(b"not a video")  # unreadable: the worker of rank 1 skips it
    out = tmp_path / "run"
    run = subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--standalone"),
            *("--nproc_per_node", "2", "-m", "cefl_zoo.cli", "train"),
            *("--model", "ceflnet_tiny", "--data", f"synthetic:{data}", "--val-split", "none"),
            *("--epochs", "1", "--batch-size", "2", "--num-clips", "2"),
            *("--frames-per-clip", "2", "--img-size", "32", "--num-workers", "1"),
            *("--output-dir", str(out), "--no-progress", "--no-save-plots"),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    log = (out / "train.log").read_text()
    named = [line for line in log.splitlines() if str(broken) in line]
    assert len(named) == 1, log
    assert "WARNING [rank 1] RuntimeWarning: skipping unreadable item" in named[0], log
    # rank 0's ordinary lines once, none of the other rank's
    assert log.count("training ceflnet_tiny") == 1 and log.count("epoch 1/1") == 1, log
