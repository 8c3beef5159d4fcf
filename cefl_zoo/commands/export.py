"""``cefl-zoo export SOURCE OUT_DIR``: write a publishable weights folder.

``SOURCE`` is a training run directory (``best.pt`` / ``last.pt`` written by
:class:`~cefl_zoo.train.Trainer`), one checkpoint file, or a ``save_pretrained``
folder. ``OUT_DIR`` receives ``model.safetensors``, ``config.json`` (architecture,
constructor arguments, labels, preprocessing, provenance, sha256) and the model card
``README.md`` with the metrics of the run's ``metrics.json`` (or ``--eval-json``), and
optionally ``model.onnx`` (``--onnx``) and ``model.pt2`` (``--torch-export``), whose
sha256 ``config.json`` records; an earlier export's ``model.onnx`` / ``model.pt2`` that
this export does not write again is removed. ``cefl-zoo push OUT_DIR REPO_ID`` then
publishes it.

Example:
    >>> import tempfile, cefl_zoo
    >>> from cefl_zoo.commands.export import export
    >>> src = cefl_zoo.create_model("ceflnet_tiny").save_pretrained(tempfile.mkdtemp())
    >>> out = export(src, tempfile.mkdtemp(), license="mit")
    >>> sorted(p.name for p in out.iterdir())
    ['README.md', 'config.json', 'model.safetensors']
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..models.base import VideoClassifier
    from ..registry import PretrainedCfg

__all__ = [
    "HELP",
    "NAME",
    "ExportError",
    "add_arguments",
    "export",
    "export_onnx",
    "export_torch_program",
    "load_source",
    "metrics_from_json",
    "run",
    "train_command_from_config",
    "write_artifacts",
]

#: The sub-command name (``cefl-zoo export``).
NAME = "export"
#: One-line help of the sub-command.
HELP = "write a publishable weights folder (safetensors + config + model card) from a run"

#: Metric entries not copied into the weights' metrics (tables, counts, chance levels).
_SKIP_METRICS = frozenset(
    {
        "per_class",
        "per_class_recall",
        "support",
        "confusion_matrix",
        "class_names",
        "num_videos",
        "chance",
    }
)


class ExportError(RuntimeError):
    """The source cannot be exported; the message says why and what to do."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``cefl-zoo export`` to ``parser``."""
    parser.add_argument(
        "source",
        help="training run directory (best.pt / last.pt), a checkpoint .pt file, or a "
        "save_pretrained folder",
    )
    parser.add_argument(
        "out_dir", help="folder to write (created; files of the same names are replaced)"
    )
    parser.add_argument(
        "--checkpoint",
        choices=("best", "last"),
        default="best",
        help="which checkpoint of a run directory to export (default: best, falling back to last)",
    )
    parser.add_argument(
        "--eval-json",
        default=None,
        metavar="FILE",
        help="metrics to record: the trainer's metrics.json or an evaluation JSON "
        "(default: metrics.json of the run directory when present)",
    )
    parser.add_argument(
        "--tag", default=None, help="weight tag, e.g. 'dfew' (default: the dataset name)"
    )
    parser.add_argument(
        "--license",
        default=None,
        help="licence of the weights (default: the registered weight set's, if any)",
    )
    parser.add_argument(
        "--onnx", action="store_true", help="also write model.onnx (needs onnx, onnxscript)"
    )
    parser.add_argument(
        "--torch-export", action="store_true", help="also write model.pt2 (torch.export)"
    )


# -- reading sources --------------------------------------------------------------------------
def train_command_from_config(config: Mapping[str, Any]) -> str:
    """The ``cefl-zoo train`` command line that reproduces a run's configuration.

    Only options that differ from the trainer's defaults are written.

    Example:
        >>> train_command_from_config({"model": "ceflnet_tiny", "data": "synthetic:d", "seed": 3})
        'cefl-zoo train --model ceflnet_tiny --data synthetic:d --seed 3'
    """
    from ..train.config import TrainConfig

    defaults = TrainConfig().to_dict()
    parts = ["cefl-zoo", "train"]
    first = ("model", "data", "fold")
    for key in [*first, *sorted(k for k in config if k not in first)]:
        if key not in config or key not in defaults:
            continue
        value = config[key]
        if value == defaults[key] and key not in ("model", "seed"):
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + key.replace("_", "-"))
        elif value is None:
            parts += [flag, "none"]
        elif isinstance(value, dict):
            parts += [flag, json.dumps(value, separators=(",", ":"))]
        elif isinstance(value, list):
            parts += [flag, ",".join(map(str, value))]
        else:
            parts += [flag, str(value)]
    if "seed" not in config:
        parts += ["--seed", str(defaults["seed"])]
    return shlex.join(parts)


def metrics_from_json(
    path: str | Path, label_names: tuple[str, ...] | None = None, prefer: str = "best"
) -> dict[str, float]:
    """Scalar metrics of an evaluation JSON.

    Accepts the trainer's ``metrics.json`` (``{"best": {...}, "last": {...}}``; the
    entry named by ``prefer`` wins, i.e. the one of the exported checkpoint), an
    evaluation result (``{"metrics": {...}}``) or a flat mapping. Nested
    mappings of numbers (``clip_locating``) become ``"clip_locating.pred_class"``.

    Raises:
        ExportError: For an unreadable file, no metrics, or metrics computed over
            another class order than ``label_names``.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ExportError(
            f"cannot read metrics file {path}: {err}. Fix: pass --eval-json FILE"
        ) from err
    metrics = data
    if isinstance(data, dict) and ("best" in data or "last" in data):
        other = "last" if prefer == "best" else "best"
        metrics = data.get(prefer) or data.get(other)
    elif isinstance(data, dict) and isinstance(data.get("metrics"), dict):
        metrics = data["metrics"]
    if not isinstance(metrics, dict):
        raise ExportError(
            f"metrics file {path} holds no metrics (expected an object with 'war', 'uar', ...)"
        )
    names = metrics.get("class_names")
    if label_names is not None and names is not None and tuple(names) != tuple(label_names):
        raise ExportError(
            f"metrics file {path} was computed over classes {list(names)}, but the weights "
            f"predict {list(label_names)}: the metrics belong to other weights. Fix: pass the "
            "--eval-json of this run."
        )
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key in _SKIP_METRICS:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
        elif isinstance(value, dict):
            for sub, v in value.items():
                if (
                    sub not in _SKIP_METRICS
                    and isinstance(v, (int, float))
                    and not isinstance(v, bool)
                ):
                    out[f"{key}.{sub}"] = float(v)
    return out


def _run_dir_checkpoint(run_dir: Path, which: str) -> Path:
    order = ("best.pt", "last.pt") if which == "best" else ("last.pt",)
    for name in order:
        if (run_dir / name).is_file():
            return run_dir / name
    raise ExportError(
        f"{run_dir} holds neither a save_pretrained folder (config.json with model_class + "
        f"model.safetensors) nor a training checkpoint ({' or '.join(order)}). Fix: pass the "
        "run directory given to `cefl-zoo train --output-dir`, or a checkpoint file."
    )


def load_source(
    source: str | Path, which: str = "best"
) -> tuple[VideoClassifier, dict[str, Any], Path | None]:
    """Load the model to export.

    Args:
        source: Run directory, checkpoint file or ``save_pretrained`` folder.
        which: ``"best"`` or ``"last"`` checkpoint of a run directory.

    Returns:
        ``(model, training, run_dir)``: the model with its ``pretrained_cfg`` (labels
        and preprocessing of the run), the provenance to record (``seed``,
        ``command``, ...), and the run directory (``None`` for a saved folder).
    """
    from ..hub import CONFIG_NAME, WEIGHTS_NAME, from_pretrained, load_state_dict_into
    from ..registry import PretrainedCfg, create_model

    path = Path(source)
    if path.is_dir() and (path / WEIGHTS_NAME).is_file() and (path / CONFIG_NAME).is_file():
        config = json.loads((path / CONFIG_NAME).read_text(encoding="utf-8"))
        if isinstance(config, dict) and config.get("model_class"):
            model = from_pretrained(path)
            return model, dict(config.get("training") or {}), None
    if path.is_dir():
        ckpt_path = _run_dir_checkpoint(path, which)
    elif path.is_file():
        ckpt_path = path
    else:
        raise ExportError(
            f"{path} does not exist. Fix: pass a run directory, checkpoint or saved folder."
        )
    from ..train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(ckpt_path)
    arch = ckpt.get("architecture")
    model_config = dict(ckpt.get("model_config") or {})
    model_config.pop("architecture", None)
    if not arch:
        raise ExportError(
            f"checkpoint {ckpt_path} records no registry architecture, so the exported folder could "
            "not be loaded back by name. Fix: train a registry model (cefl-zoo train --model NAME)."
        )
    if model_config.get("backbone", "") is None:
        raise ExportError(
            f"checkpoint {ckpt_path} comes from a model built around a backbone module, which "
            "config.json cannot describe. Fix: train with a timm backbone name."
        )
    model = create_model(arch, pretrained=False, **model_config)
    load_state_dict_into(model, ckpt["model"], source=f"checkpoint {ckpt_path}")
    saved_cfg = ckpt.get("pretrained_cfg")
    cfg = PretrainedCfg.from_dict(saved_cfg) if saved_cfg else model.pretrained_cfg
    if ckpt.get("label_names"):
        cfg = cfg.replace(label_names=tuple(ckpt["label_names"]))
    model.pretrained_cfg = cfg.replace(architecture=arch)
    train_cfg = dict(ckpt.get("config") or {})
    training: dict[str, Any] = {
        "command": train_command_from_config(train_cfg) if train_cfg else None,
        "seed": train_cfg.get("seed"),
        "checkpoint": ckpt_path.name,
        "epochs_trained": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "best_epoch": (ckpt.get("best") or {}).get("epoch"),
        "data": train_cfg.get("data"),
        "fold": train_cfg.get("fold"),
        "val_split": train_cfg.get("val_split"),
        "torch_version": ckpt.get("torch_version"),
        "trained_with_cefl_zoo": ckpt.get("cefl_zoo_version"),
    }
    training = {k: v for k, v in training.items() if v is not None}
    return model, training, ckpt_path.parent


def _registered(arch: str, tag: str | None) -> PretrainedCfg | None:
    from ..registry import UnknownModelError, get_pretrained_cfg

    if not tag:
        return None
    try:
        return get_pretrained_cfg(f"{arch}.{tag}")
    except UnknownModelError:
        return None


# -- extra formats ----------------------------------------------------------------------------
def _example_input(model: VideoClassifier) -> Any:
    import torch

    cfg = model.pretrained_cfg
    c, h, w = cfg.input_size
    # Batch 2: an example batch of 1 would be specialised to a constant by torch.export.
    return torch.randn(2, cfg.num_clips, cfg.frames_per_clip, c, h, w)


def export_onnx(model: VideoClassifier, path: str | Path) -> Path:
    """Write ``model`` as ONNX (input ``video`` ``(B, N, K, 3, H, W)``, output ``logits``).

    The batch axis is dynamic; N, K, H and W are those of ``model.pretrained_cfg``.

    Raises:
        ExportError: When ``onnx`` / ``onnxscript`` are not installed.
    """
    import importlib.util

    import torch

    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(
            f"--onnx needs {' and '.join(missing)}: pip install 'cefl-zoo[export]' "
            "(onnx, onnxscript, onnxruntime)"
        )
    path = Path(path)
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.onnx.export(
        model,
        (_example_input(model),),
        str(path),
        input_names=["video"],
        output_names=["logits"],
        dynamic_shapes=({0: batch},),
        external_data=False,
        dynamo=True,
    )
    return path


def export_torch_program(model: VideoClassifier, path: str | Path) -> Path:
    """Write ``model`` as a ``torch.export`` program (``torch.export.load`` reads it).

    The batch axis is dynamic; N, K, H and W are those of ``model.pretrained_cfg``.
    """
    import torch

    path = Path(path)
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(
        model.eval(), (_example_input(model),), dynamic_shapes=({0: batch},)
    )
    torch.export.save(program, str(path))
    return path


# -- the command ------------------------------------------------------------------------------
def export(
    source: str | Path,
    out_dir: str | Path,
    *,
    checkpoint: str = "best",
    eval_json: str | Path | None = None,
    tag: str | None = None,
    license: str | None = None,
    onnx: bool = False,
    torch_export: bool = False,
) -> Path:
    """Write the publishable folder of a run or saved model (see module docs).

    Returns:
        ``out_dir``.
    """
    from ..hub_mixin import save_pretrained
    from ..train.config import parse_data_spec

    model, training, run_dir = load_source(source, checkpoint)
    cfg = model.pretrained_cfg
    if eval_json is None and run_dir is not None and (run_dir / "metrics.json").is_file():
        eval_json = run_dir / "metrics.json"
    # The metrics of the exported weights: a run's last.pt gets metrics.json's "last".
    prefer = "last" if str(training.get("checkpoint", "")).startswith("last") else "best"
    metrics = (
        metrics_from_json(eval_json, cfg.label_names, prefer=prefer)
        if eval_json is not None
        else dict(cfg.metrics)
    )
    dataset = cfg.dataset
    if training.get("data"):
        dataset = parse_data_spec(training["data"]).name
    tag = tag or cfg.tag or dataset or ""
    registered = _registered(model.architecture or "", tag)
    license = license or cfg.license or (registered.license if registered else None)
    if run_dir is not None:  # say what the run trained and evaluated on
        split = (
            f"evaluated on the {training['val_split']!r} split" if training.get("val_split") else ""
        )
        fold = (
            ", ".join(
                filter(
                    None,
                    [f"fold {training['fold']}" if training.get("fold") is not None else "", split],
                )
            )
            or cfg.fold
        )
    else:
        fold = cfg.fold or (registered.fold if registered else None)
    cfg = cfg.replace(
        architecture=model.architecture or "",
        tag=tag,
        dataset=dataset,
        fold=fold,
        metrics=metrics,
        train_command=training.get("command") or cfg.train_command,
        license=license,
        notes=(
            f"exported from {Path(source).name}" + (f"; {cfg.notes}" if cfg.notes else "")
            if run_dir is not None
            else cfg.notes
        ),
    )
    out = save_pretrained(model, out_dir, pretrained_cfg=cfg, training=training or None)
    write_artifacts(model, out, onnx=onnx, torch_export=torch_export)
    return out


def write_artifacts(
    model: VideoClassifier, out: Path, *, onnx: bool = False, torch_export: bool = False
) -> dict[str, str]:
    """Write the extra formats of an exported folder and record them in ``config.json``.

    Extras of the known names (``model.onnx``, ``model.onnx.data``, ``model.pt2``) that
    this export does not write are deleted: they were exported from the folder's earlier
    weights. The sha256 of each extra written goes to ``config.json``'s ``artifacts``,
    which ``cefl-zoo push`` checks (other files in the folder are left alone).

    Returns:
        ``{file name: sha256}`` of the extras written.
    """
    import logging

    from ..hub import ARTIFACT_NAMES, ARTIFACTS_KEY, CONFIG_NAME, sha256sum
    from ..hub_mixin import atomic_write

    logger = logging.getLogger(__name__)
    writing = set()
    if onnx:
        writing |= {"model.onnx", "model.onnx.data"}
    if torch_export:
        writing.add("model.pt2")
    for name in ARTIFACT_NAMES:  # stale: from the weights this folder held before
        path = out / name
        if path.exists() or path.is_symlink():
            path.unlink()
            if name not in writing:
                logger.warning("removed %s: exported from the weights %s held before", name, out)
    if onnx:
        export_onnx(model, out / "model.onnx")
    if torch_export:
        export_torch_program(model, out / "model.pt2")
    artifacts = {name: sha256sum(out / name) for name in ARTIFACT_NAMES if (out / name).is_file()}
    config_path = out / CONFIG_NAME
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.pop(ARTIFACTS_KEY, None)
    if artifacts:
        config[ARTIFACTS_KEY] = artifacts
    atomic_write(config_path, json.dumps(config, indent=2, sort_keys=False) + "\n")
    return artifacts


def run(args: argparse.Namespace) -> int:
    """Run ``cefl-zoo export`` with parsed ``args``; returns the exit code."""
    from ..hub import PretrainedWeightsError
    from ..train.checkpoint import CheckpointError
    from ._common import EXIT_USAGE, error, one_line

    if not Path(args.source).exists():  # an input path that does not exist: usage (2)
        return error(
            NAME,
            f"{args.source} does not exist. Fix: pass a run directory, checkpoint or saved folder.",
            EXIT_USAGE,
        )
    try:
        out = export(
            args.source,
            args.out_dir,
            checkpoint=args.checkpoint,
            eval_json=args.eval_json,
            tag=args.tag,
            license=args.license,
            onnx=args.onnx,
            torch_export=args.torch_export,
        )
    except (ExportError, PretrainedWeightsError, CheckpointError) as err:
        return error(NAME, err, 1)
    except OSError as err:  # OUT_DIR is a file or under one, no permission, disk full
        return error(NAME, f"cannot export {args.source} to {args.out_dir}: {one_line(err)}", 1)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    cfg = config["pretrained_cfg"]
    print(
        f"wrote {out}: {', '.join(sorted(p.name for p in out.iterdir() if not p.name.startswith('.')))}"
    )
    name = f"{config['architecture']}.{cfg['tag']}" if cfg.get("tag") else config["architecture"]
    labels = cfg.get("label_names")
    shown = ", ".join(labels) if labels else "not recorded (class_0, class_1, ...)"
    print(f"  {name}  labels {shown}")
    print(f"  sha256 {cfg['sha256']}")
    if cfg["metrics"]:
        print("  metrics " + ", ".join(f"{k} {v:.4g}" for k, v in cfg["metrics"].items()))
    print(f"publish with: cefl-zoo push {out} <org>/<repo>")
    return 0
