"""Checkpoints: atomic writes survive a kill, and a killed run resumes to identical weights.

The runs are real subprocesses (``tests/_train_utils.py``) stopped with real signals:
ceflnet_tiny at 32 px, 2 clips x 2 frames, 2 epochs of 12 steps, head dropout on (so the
restored RNG state matters) and per-epoch random samples (so the restored epoch does).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from cefl_zoo.train.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    atomic_save,
    load_checkpoint,
    model_from_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "_train_utils.py"
ARGS = ["--dropout", "0.1", "--epochs", "2", "--videos", "48", "--batch-size", "4"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return env


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(out), *ARGS, *extra],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(out), *ARGS, *extra],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for_step(proc: subprocess.Popen, out: Path, step: int, timeout: float = 120) -> None:
    steps = out / "steps.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"run ended before step {step}:\n{proc.stdout.read()}")
        if steps.is_file() and len(steps.read_text().splitlines()) >= step:
            return
        time.sleep(0.01)
    raise AssertionError(f"no step {step} within {timeout} s")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """Final weights of an uninterrupted run."""
    out = tmp_path_factory.mktemp("reference")
    done = _run(out)
    assert done.returncode == 0, done.stdout + done.stderr
    return load_checkpoint(out / "last.pt")["model"]


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.mark.parametrize(
    "sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["SIGKILL", "SIGTERM", "SIGINT"]
)
def test_killed_run_resumes_to_identical_weights(tmp_path, reference, sig):
    out = tmp_path / "run"
    proc = _start(out, "--delay", "0.03")  # ~0.12 s per step: the signal lands mid-epoch
    _wait_for_step(proc, out, 5)  # checkpoints are written every 2 steps
    proc.send_signal(sig)
    output = proc.communicate(timeout=120)[0]
    ckpt = load_checkpoint(out / "last.pt")
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:  # SIGTERM / Ctrl-C: finish the step, checkpoint it, return "interrupted" (143 here)
        assert proc.returncode == 143, output
        log_text = (out / "train.log").read_text()
        assert "stop requested" in log_text
        assert ("Ctrl-C: finishing the current step" in log_text) == (sig == signal.SIGINT)
    assert ckpt["epoch"] == 0 and 0 < ckpt["step_in_epoch"] < 12, "the signal must land mid-epoch"
    assert ckpt["global_step"] >= 4
    resumed = _run(out, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    final = load_checkpoint(out / "last.pt")
    assert final["epoch"] == 2 and final["global_step"] == 24
    _assert_same_weights(final["model"], reference)
    # the per-step log of the resumed run has every step exactly once
    steps = [
        int(line.split('"step": ')[1].split(",")[0])
        for line in (out / "steps.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(1, 25))


def test_kill_during_checkpoint_write_keeps_previous(tmp_path):
    """SIGKILL in the middle of writing a checkpoint: the previous one stays loadable."""
    path = tmp_path / "last.pt"
    script = textwrap.dedent(
        f"""
        import os, signal, torch
        from cefl_zoo.train import checkpoint as ck
        first = {{"format": ck.CHECKPOINT_FORMAT, "epoch": 1, "w": torch.ones(1000)}}
        ck.atomic_save(first, {str(path)!r})
        real_save = torch.save
        def dying_save(obj, fh):
            fh.write(b"PK\\x03\\x04 half a checkpoint")
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        ck.torch.save = dying_save
        second = {{"format": ck.CHECKPOINT_FORMAT, "epoch": 2, "w": torch.zeros(1000)}}
        ck.atomic_save(second, {str(path)!r})
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], env=_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 1 and torch.equal(ckpt["w"], torch.ones(1000))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.pt"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".last.pt.tmp-")
    from cefl_zoo.train.checkpoint import remove_stale_temp_files

    assert [p.name for p in remove_stale_temp_files(tmp_path)] == leftovers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_atomic_save_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    atomic_save({"format": "cefl-zoo-checkpoint", "epoch": 1}, path)

    def failing(obj, fh):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("cefl_zoo.train.checkpoint.torch.save", failing)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"format": "cefl-zoo-checkpoint", "epoch": 2}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_truncated_and_foreign_checkpoints_are_named(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(bad)
    foreign = tmp_path / "weights.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, foreign)
    with pytest.raises(CheckpointError, match="not a cefl-zoo training checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_resume_into_other_architecture_names_both(tmp_path):
    from _train_utils import ToyVideos, toy_config

    from cefl_zoo.train import Trainer

    out = tmp_path / "run"
    Trainer(toy_config(out, epochs=1), train_dataset=ToyVideos(8)).fit()
    other = toy_config(
        out, epochs=2, model="ceflnet_resnet18_sal", model_kwargs={"backbone": "test_convnext"}
    )
    with pytest.raises(CheckpointMismatchError) as err:
        Trainer(other, train_dataset=ToyVideos(8)).fit(resume="auto")
    assert "ceflnet_tiny" in str(err.value) and "ceflnet_resnet18_sal" in str(err.value)
    # the checkpoint rebuilds its own model, with class names and preprocessing
    model = model_from_checkpoint(out / "last.pt")
    assert model.architecture == "ceflnet_tiny"
    assert model.label_names == ("happiness", "sadness", "anger")
    assert (model.pretrained_cfg.num_clips, model.pretrained_cfg.frames_per_clip) == (2, 2)
    assert model.pretrained_cfg.input_size[-1] == 32
