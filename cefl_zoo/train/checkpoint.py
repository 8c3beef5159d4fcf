"""Training checkpoints: atomic writes, full training state, clear mismatch errors.

A checkpoint holds everything a resumed run needs to continue exactly where it
stopped: the model, optimizer, scheduler and gradient-scaler states, the epoch and the
optimizer steps already taken in it, the random-number-generator states of every
process, the history and the resolved training configuration.

Writes are atomic: the file is written under a temporary name in the same directory,
flushed to disk and moved over the old one with :func:`os.replace`, so a process killed
in the middle of a write leaves the previous checkpoint intact.

Example:
    >>> import os, tempfile, torch
    >>> from cefl_zoo.train.checkpoint import atomic_save, load_checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "last.pt")
    >>> atomic_save({"format": "cefl-zoo-checkpoint", "epoch": 3}, path)
    >>> load_checkpoint(path)["epoch"]
    3
"""

from __future__ import annotations

import os
import random
import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "CheckpointMismatchError",
    "atomic_save",
    "capture_rng_state",
    "check_compatible",
    "find_resume_checkpoint",
    "load_checkpoint",
    "load_model_weights",
    "model_from_checkpoint",
    "model_state_dict",
    "remove_stale_temp_files",
    "restore_rng_state",
    "unwrap_model",
]

#: Value of the ``"format"`` key of every training checkpoint.
CHECKPOINT_FORMAT = "cefl-zoo-checkpoint"
_TMP_MARK = ".tmp-"


class CheckpointError(RuntimeError):
    """A checkpoint file that is missing, unreadable or not a cefl-zoo checkpoint."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint that belongs to a different model than the one it is loaded into."""


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically (temporary file + fsync + ``os.replace``).

    Args:
        obj: What to save.
        path: Destination; its directory is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover - directories cannot be fsynced on some systems
        pass


#: ``.NAME.tmp-PID[-HEX][.SUFFIX]``: the temporary files of this package's atomic writes.
_TMP_NAME = re.compile(r"^\..+\.tmp-(?P<pid>\d+)(?:-[0-9a-f]+)?(?:\.[A-Za-z0-9]+)?$")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # nothing of ours is being written while we clean up
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:  # pragma: no cover - platforms without signal 0
        return True
    return True


def remove_stale_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Delete temporary files left by writes that were killed; returns what was removed.

    Only plain files named like this package's atomic writes (``.NAME.tmp-PID...``)
    whose writing process is gone are removed; folders (e.g. a frame cache being built)
    and the files of live processes are left alone.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = []
    for p in directory.iterdir():
        m = _TMP_NAME.match(p.name)
        if m is None or p.is_symlink() or not p.is_file():
            continue
        if _process_alive(int(m.group("pid"))):
            continue
        p.unlink(missing_ok=True)
        stale.append(p)
    return stale


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a training checkpoint written by :class:`~cefl_zoo.train.Trainer`.

    Args:
        path: The ``.pt`` file.
        map_location: Passed to ``torch.load``.

    Raises:
        CheckpointError: For a missing, truncated or foreign file (with the path).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"could not read checkpoint {path} ({type(err).__name__}: {err}); the file is "
            "truncated or not a PyTorch checkpoint. Use an older checkpoint of the run "
            "(last.pt, best.pt, epoch_*.pt)."
        ) from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a cefl-zoo training checkpoint (no format={CHECKPOINT_FORMAT!r} "
            "key). For a save_pretrained directory or a bare state dict, use "
            "cefl_zoo.create_model(DIR) or model.load_state_dict(...) instead."
        )
    return ckpt


# -- random number generators ----------------------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """The states of Python's, NumPy's and PyTorch's (CPU and CUDA) generators.

    Stored in types that ``torch.load(weights_only=True)`` accepts.
    """
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npd = state["numpy"]
    np.random.set_state(
        (
            npd["name"],
            npd["keys"].numpy().astype(np.uint32),
            npd["pos"],
            npd["has_gauss"],
            npd["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])


# -- model weights ---------------------------------------------------------------------


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare model inside ``DistributedDataParallel`` and ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        else:
            return model


def model_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict of the unwrapped model, on the CPU (no ``module.``/``_orig_mod.`` prefixes)."""
    return {k: v.detach().cpu() for k, v in unwrap_model(model).state_dict().items()}


def _describe(arch: str | None, cfg: dict[str, Any] | None) -> str:
    arch = arch or "an unnamed architecture"
    if cfg and cfg.get("backbone"):
        return f"{arch} (backbone {cfg['backbone']}, {cfg.get('num_classes', '?')} classes)"
    return arch


def check_compatible(
    ckpt: dict[str, Any],
    model: nn.Module,
    path: str | os.PathLike = "checkpoint",
    allow_new_head: bool = False,
) -> None:
    """Raise :class:`CheckpointMismatchError` unless ``ckpt`` fits ``model``.

    Compares the architecture names and the constructor arguments that shape the
    weights (backbone, clip size, head, ...). With ``allow_new_head`` the number of
    classes may differ.
    """
    model = unwrap_model(model)
    want_arch = getattr(model, "architecture", None)
    want_cfg = dict(getattr(model, "init_kwargs", {}) or {})
    have_arch = ckpt.get("architecture")
    have_cfg = dict(ckpt.get("model_config") or {})
    have_cfg.pop("architecture", None)
    keys = sorted((set(want_cfg) | set(have_cfg)) - ({"num_classes"} if allow_new_head else set()))
    differing = [k for k in keys if want_cfg.get(k) != have_cfg.get(k)]
    if (have_arch and want_arch and have_arch != want_arch) or differing:
        detail = ", ".join(
            f"{k}: checkpoint {have_cfg.get(k)!r} vs model {want_cfg.get(k)!r}" for k in differing
        )
        raise CheckpointMismatchError(
            f"checkpoint {path} was trained with model {_describe(have_arch, have_cfg)}, but the "
            f"model here is {_describe(want_arch, want_cfg)}"
            + (f" ({detail})" if detail else "")
            + f". Pass --model {have_arch} (and the same --model-kwargs) to resume it, or use "
            "--init-from to start a new run from its weights."
        )


def load_model_weights(
    model: nn.Module, state: dict[str, torch.Tensor], strict: bool = True
) -> None:
    """Load a state dict into the unwrapped model, naming what does not fit.

    Raises:
        CheckpointMismatchError: For missing / unexpected keys or shape mismatches.
    """
    target = unwrap_model(model)
    own = target.state_dict()
    shape_errors = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape
    ]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if shape_errors or (strict and (missing or unexpected)):
        parts = []
        if shape_errors:
            parts.append("shape mismatches: " + "; ".join(shape_errors[:5]))
        if strict and missing:
            parts.append(
                f"missing keys: {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "")
            )
        if strict and unexpected:
            parts.append(
                f"unexpected keys: {', '.join(unexpected[:5])}"
                + (" ..." if len(unexpected) > 5 else "")
            )
        raise CheckpointMismatchError(
            f"weights do not fit model {getattr(target, 'architecture', type(target).__name__)}: "
            + " | ".join(parts)
        )
    target.load_state_dict(state, strict=strict)


def find_resume_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The checkpoint ``--resume auto`` continues from: ``last.pt`` in ``output_dir``."""
    path = Path(output_dir) / "last.pt"
    return path if path.is_file() else None


def model_from_checkpoint(
    ckpt: dict[str, Any] | str | os.PathLike, map_location: Any = "cpu"
) -> nn.Module:
    """Rebuild the model a training checkpoint was trained with and load its weights.

    The architecture and constructor arguments come from the checkpoint, and so do the
    class names and preprocessing (``model.pretrained_cfg``). No backbone weights are
    downloaded.

    Args:
        ckpt: A checkpoint dict or path.
        map_location: Passed to ``torch.load`` for a path.

    Returns:
        The model, in eval mode, on the CPU.

    Raises:
        CheckpointError: For a checkpoint without architecture information.
    """
    from ..registry import PretrainedCfg, create_model

    path = ckpt if not isinstance(ckpt, dict) else "checkpoint"
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt, map_location=map_location)
    arch = ckpt.get("architecture")
    if not arch:
        raise CheckpointError(
            f"{path} does not name its architecture; rebuild the model yourself and "
            "load ckpt['model'] into it"
        )
    kwargs = {k: v for k, v in (ckpt.get("model_config") or {}).items() if k != "architecture"}
    if kwargs.get("backbone", "") is None:
        raise CheckpointError(
            f"{path} was trained around a custom backbone module; rebuild the model "
            "yourself and load ckpt['model'] into it"
        )
    kwargs.pop("pretrained_backbone", None)
    model = create_model(arch, **kwargs)
    load_model_weights(model, ckpt["model"])
    if ckpt.get("pretrained_cfg") and hasattr(model, "pretrained_cfg"):
        model.pretrained_cfg = PretrainedCfg.from_dict(ckpt["pretrained_cfg"])
    return model.eval()
