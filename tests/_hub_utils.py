"""Helpers for the hub, hubconf, weights-table and wheel tests."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import huggingface_hub
import torch

import cefl_zoo

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Tiny shapes that keep every registry architecture fast on CPU.
SIZE = 32
N_CLIPS = 2
N_FRAMES = 2


def tiny_model(arch: str = "ceflnet_tiny", **kwargs) -> torch.nn.Module:
    """A registry architecture with timm's 0.2 M-parameter ``test_convnext`` backbone."""
    kwargs.setdefault("backbone", "test_convnext")
    return cefl_zoo.create_model(arch, **kwargs).eval()


def video(batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A random ``(B, N, K, 3, H, W)`` batch at the tiny test size."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, N_CLIPS, N_FRAMES, 3, SIZE, SIZE, generator=gen)


def build_hf_cache(
    cache_dir: Path, repo_id: str, folder: Path, revision: str = "a" * 40, ref: str | None = "main"
) -> Path:
    """Put the files of ``folder`` into a Hugging Face cache, as ``hf_hub_download`` would.

    Layout: ``models--ORG--NAME/snapshots/<revision>/FILE`` plus ``refs/<ref>``
    holding the revision. Returns the snapshot directory.
    """
    repo_dir = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in Path(folder).iterdir():
        if path.is_file():
            shutil.copy2(path, snapshot / path.name)
    if ref:
        (repo_dir / "refs").mkdir(exist_ok=True)
        (repo_dir / "refs" / ref).write_text(revision)
    return snapshot


def checkout_files() -> list[str]:
    """The files a clean checkout holds: tracked plus untracked-but-not-ignored.

    Read-only git query; untracked files count because the lead commits them later.
    Outside a git work tree (e.g. an unpacked sdist) every file but build and cache
    output is taken.
    """
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        skip = {
            ".git",
            "__pycache__",
            ".pytest_cache",
            ".ruff_cache",
            "build",
            "dist",
            "runs",
            ".venv",
        }
        return [
            p.relative_to(REPO_ROOT).as_posix()
            for p in REPO_ROOT.rglob("*")
            if p.is_file()
            and not skip & set(p.relative_to(REPO_ROOT).parts)
            and not any(part.endswith(".egg-info") for part in p.parts)
        ]
    return [f for f in out.split("\0") if f and (REPO_ROOT / f).is_file()]


def copy_checkout(dest: Path) -> Path:
    """Copy :func:`checkout_files` into ``dest`` (a clean checkout without .git)."""
    for rel in checkout_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, target)
    return dest


def run_result_script(script: Path, args: list[str], *, cwd: Path, env: dict, timeout: int) -> dict:
    """Run ``script`` in a fresh interpreter; return the JSON it printed after ``RESULT ``."""
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


class Commit(str):
    """What ``HfApi.upload_folder`` returns (a ``CommitInfo``), as far as push reads it."""

    oid = "f" * 40
    commit_url = "https://huggingface.co/org/tiny/commit/" + "f" * 40


def mock_hub(fail: BaseException | None = None):
    """Patch ``HfApi`` at the network boundary and record what would be uploaded.

    Returns ``(sent, patches)``: ``sent`` gets ``repo_id``, ``kwargs`` and ``files``
    (name -> bytes of the uploaded folder); ``patches`` are the create_repo (an autospec
    mock, raising ``fail`` when given), create_branch and upload_folder patches.
    """
    sent: dict = {}

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        folder = Path(folder_path)
        sent.update(
            repo_id=repo_id,
            kwargs=kwargs,
            files={p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()},
        )
        return Commit("commit")

    return sent, [
        mock.patch.object(huggingface_hub.HfApi, "create_repo", autospec=True, side_effect=fail),
        mock.patch.object(huggingface_hub.HfApi, "create_branch", autospec=True),
        mock.patch.object(huggingface_hub.HfApi, "upload_folder", upload_folder),
    ]


def fake_program(model: torch.nn.Module, path: str | Path) -> Path:
    """A fast stand-in for torch.export / ONNX: a file derived from the weights."""
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    Path(path).write_bytes(b"program of " + digest.hexdigest().encode())
    return Path(path)


def use_fake_exporters(monkeypatch):
    """Make ``cefl-zoo export`` write :func:`fake_program` files; returns the export module.

    The fakes need neither onnx nor onnxscript, so the check for them passes too (the
    tests run without the ``export`` extra)."""
    import cefl_zoo.commands.export as export_mod

    monkeypatch.setattr(export_mod, "export_torch_program", fake_program)
    monkeypatch.setattr(export_mod, "export_onnx", fake_program)
    monkeypatch.setattr(export_mod, "_check_onnx_installed", lambda: None)
    return export_mod


def two_saved_models(tmp_path: Path) -> tuple[Path, Path]:
    """Two tiny 3-class models of different weights, saved as folders ``src1``, ``src2``."""
    torch.manual_seed(0)
    one = tiny_model(num_classes=3).save_pretrained(tmp_path / "src1")
    torch.manual_seed(1)
    two = tiny_model(num_classes=3).save_pretrained(tmp_path / "src2")
    return one, two


def train_toy_run(run_dir: Path, *, seed: int, epochs: int = 1, **overrides) -> Path:
    """A run of the real trainer on 4 toy videos (2 classes, 2 x 2 frames of 32 px), so
    tests get its checkpoint and results formats; ``overrides`` go to ``TrainConfig``."""
    from cefl_zoo.train import TrainConfig, Trainer

    class Videos(torch.utils.data.Dataset):
        classes = ["happiness", "sadness"]

        def __len__(self):
            return 4

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return {"video": torch.randn(2, 2, 3, 32, 32, generator=g) + i % 2, "label": i % 2}

    cfg = TrainConfig(
        model="ceflnet_tiny",
        epochs=epochs,
        batch_size=2,
        num_workers=0,
        data="synthetic:unused",
        output_dir=str(run_dir),
        progress=False,
        save_plots=False,
        num_clips=2,
        frames_per_clip=2,
        img_size=32,
        seed=seed,
        **overrides,
    )
    Trainer(cfg, train_dataset=Videos(), val_dataset=Videos()).fit()
    return run_dir
