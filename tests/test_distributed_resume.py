"""torchrun + gloo on CPU: a stopped and resumed run logs what a run never stopped does.

Two processes train ToyVideos (24 videos, 2 per process: 6 steps an epoch, a
``steps.jsonl`` line every 3 steps) and stop after step 4, between two lines. Resumed in
two processes, or in one with the same global batch, the line of step 6 must average the
loss of steps 4 to 6 over both processes' videos and count the epoch's videos, as the
uninterrupted run's does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys

sys.path.insert(0, {tests!r})
import torch
from _train_utils import ToyVideos, toy_config

from cefl_zoo.train import Trainer

torch.set_num_threads(1)
out, stop, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "resume"
cfg = toy_config(
    out, epochs=2, batch_size=2, log_every_steps=3, checkpoint_every_steps=0,
    model_kwargs={{"drop_rate": 0.0}},
)
trainer = Trainer(cfg, train_dataset=ToyVideos(24))
if stop:  # every rank stops after step `stop`, as they do on a SIGTERM
    trainer._should_stop = lambda: trainer.global_step == stop
summary = trainer.fit(resume="auto" if resume else None)
trainer.close()
print(summary["status"])  # (torchrun takes an exit code 143 for a failure)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return env


def _torchrun(script: Path, out: Path, stop: int = 0, resume: bool = False) -> str:
    """Train in ``out`` on 2 processes; returns the run's status."""
    run = subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--standalone"),
            *("--nproc_per_node", "2", str(script), str(out), str(stop)),
            "resume" if resume else "new",
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    statuses = re.findall("completed|interrupted", run.stdout)  # (the 2 lines may mix)
    assert len(statuses) == 2 and len(set(statuses)) == 1, run.stdout + run.stderr
    return statuses[0]


def _steps(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]


def test_a_resumed_distributed_run_logs_the_steps_of_an_uninterrupted_one(tmp_path):
    from _train_utils import ToyVideos, toy_config

    from cefl_zoo.train import Trainer

    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(tests=str(ROOT / "tests")))
    reference, stopped, in_one = tmp_path / "reference", tmp_path / "stopped", tmp_path / "one"
    assert _torchrun(script, reference) == "completed"
    assert _torchrun(script, stopped, stop=4) == "interrupted"
    shutil.copytree(stopped, in_one)
    assert _torchrun(script, stopped, resume=True) == "completed"
    # ... and resumed in one process (batch 4): rank 0 carries both processes' window
    cfg = toy_config(
        in_one, epochs=2, log_every_steps=3, checkpoint_every_steps=0, model_kwargs={"drop_rate": 0}
    )
    trainer = Trainer(cfg, train_dataset=ToyVideos(24))
    assert trainer.fit(resume="auto")["status"] == "completed"
    trainer.close()
    a = _steps(reference)
    for run, rel in ((stopped, 1e-6), (in_one, 1e-3)):
        b = _steps(run)
        assert [s["step"] for s in b] == [s["step"] for s in a] == [3, 6, 9, 12]
        assert [s["loss"] for s in b] == pytest.approx([s["loss"] for s in a], rel=rel), run.name
        assert [s["videos"] for s in b] == [s["videos"] for s in a] == [12, 24, 12, 24]
        assert [set(s) for s in b] == [set(s) for s in a]  # (no "loss_steps")
