"""``cefl-zoo export SOURCE OUT_DIR``: write a publishable weights folder.

``SOURCE`` is a training run directory (``best.pt`` / ``last.pt`` written by
:class:`~cefl_zoo.train.Trainer`), one checkpoint file, or a ``save_pretrained``
folder. ``OUT_DIR`` receives ``model.safetensors``, ``config.json`` (architecture,
constructor arguments, labels, preprocessing, provenance, sha256) and the model card
``README.md`` with the metrics of the exported checkpoint's epoch (from the run's
``metrics.json`` or ``history.json``, or ``--eval-json``), and optionally ``model.onnx``
(``--onnx``) and ``model.pt2`` (``--torch-export``), whose sha256 ``config.json``
records; an earlier export's ``model.onnx`` / ``model.pt2`` that this export does not
write again is removed. ``OUT_DIR`` must not be a training run directory, and a failed
export leaves it as it was. ``cefl-zoo push OUT_DIR REPO_ID`` then publishes it.

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
        "out_dir",
        help="folder to write (created; files of the same names are replaced); not a run directory",
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
        "(default: the exported epoch's metrics in the run's metrics.json or history.json)",
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


def _read_metrics_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ExportError(
            f"cannot read metrics file {path}: {err}. Fix: pass --eval-json FILE"
        ) from err


def _is_run_metrics(data: Any) -> bool:
    """Whether ``data`` is a trainer's ``metrics.json`` (``{"best": ..., "last": ...}``)."""
    return isinstance(data, dict) and ("best" in data or "last" in data)


def _scalar_metrics(
    metrics: Mapping[str, Any], path: Path, label_names: tuple[str, ...] | None
) -> dict[str, float]:
    """The numbers of one metrics mapping, nested ones as ``"clip_locating.pred_class"``."""
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


def metrics_from_json(
    path: str | Path, label_names: tuple[str, ...] | None = None, prefer: str = "best"
) -> dict[str, float]:
    """Scalar metrics of an evaluation JSON.

    Accepts the trainer's ``metrics.json`` (``{"best": {...}, "last": {...}}``; the
    entry named by ``prefer`` wins; ``null`` entries, as a run without a validation
    split writes, give no metrics), an evaluation result (``{"metrics": {...}}``) or a
    flat mapping. Nested mappings of numbers (``clip_locating``) become
    ``"clip_locating.pred_class"``. :func:`~cefl_zoo.commands.export.export` picks the
    entry by the epoch of the exported checkpoint instead.

    Raises:
        ExportError: For an unreadable file, no metrics, or metrics computed over
            another class order than ``label_names``.
    """
    path = Path(path)
    data = _read_metrics_file(path)
    metrics = data
    if _is_run_metrics(data):
        other = "last" if prefer == "best" else "best"
        metrics = data.get(prefer) or data.get(other)
        if metrics is None:  # trained without validation: nothing was measured
            return {}
    elif isinstance(data, dict) and isinstance(data.get("metrics"), dict):
        metrics = data["metrics"]
    if not isinstance(metrics, dict):
        raise ExportError(
            f"metrics file {path} holds no metrics (expected an object with 'war', 'uar', ...)"
        )
    return _scalar_metrics(metrics, path, label_names)


def _history_metrics(history: Path, epoch: int) -> dict[str, Any] | None:
    """The validation metrics ``history.json`` records for ``epoch`` (``None``: none)."""
    try:
        records = json.loads(history.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for record in records if isinstance(records, list) else []:
        if isinstance(record, dict) and record.get("epoch") == epoch:
            metrics = {k[4:]: v for k, v in record.items() if k.startswith("val_")}
            if "clip_locating" in metrics:  # the trainer's history keeps the gt_class score
                metrics["clip_locating"] = {"gt_class": metrics["clip_locating"]}
            return metrics if any(v is not None for v in metrics.values()) else None
    return None


def _checkpoint_metrics(
    path: Path,
    label_names: tuple[str, ...] | None,
    epoch: int | None,
    history: Path | None,
) -> tuple[dict[str, float] | None, str]:
    """The metrics of the checkpoint of ``epoch`` that ``path`` records.

    A trainer's ``metrics.json`` gives its ``"last"`` entry when ``epoch`` is the run's
    last (evaluated) epoch, ``"best"`` when it is ``best_epoch``, else ``history``'s
    validation metrics of ``epoch``: never another epoch's (``metrics.json`` is not
    rewritten by a run that was stopped, and ``epoch_XXX.pt`` is neither entry's).

    Returns:
        ``(metrics, why)``: ``metrics`` is ``None`` when nothing records that epoch's
        (``why`` says so), ``{}`` when the run measured nothing (no validation split).
    """
    data = _read_metrics_file(path)
    if not _is_run_metrics(data) or epoch is None:  # an evaluation result: as given
        return metrics_from_json(path, label_names), ""
    if epoch == data.get("epochs"):
        entry = data.get("last")
    elif epoch == data.get("best_epoch"):
        entry = data.get("best")
    else:
        entry = _history_metrics(history, epoch) if history is not None else None
        if entry is None:
            return None, (
                f"the checkpoint is epoch {epoch}, but {path} holds the metrics of epochs "
                f"{data.get('best_epoch')} (best) and {data.get('epochs')} (last)"
                + (f" and {history} no validation of epoch {epoch}" if history else "")
            )
    if entry is None:
        return {}, f"{path} records no validation metrics (the run had no validation split)"
    return _scalar_metrics(entry, path, label_names), ""


def _is_run_metrics_file(path: str | Path) -> bool:
    """Whether ``path`` is a trainer's ``metrics.json`` (not an evaluation result)."""
    return _is_run_metrics(_read_metrics_file(Path(path)))


def _checkpoints_in(folder: Path) -> list[str]:
    """The training checkpoints (``best.pt``, ``last.pt``, ``epoch_XXX.pt``) in ``folder``."""
    names = [n for n in ("best.pt", "last.pt") if (folder / n).is_file()]
    return names + sorted(p.name for p in folder.glob("epoch_*.pt") if p.is_file())


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
            checkpoints = _checkpoints_in(path)
            if checkpoints:
                raise ExportError(
                    f"{path} holds both a saved model ({CONFIG_NAME} + {WEIGHTS_NAME}) and "
                    f"training checkpoints ({', '.join(checkpoints)}), so which weights to "
                    "export is ambiguous (an export was written into the run directory, "
                    f"replacing the run's {CONFIG_NAME}). Fix: pass the checkpoint file, e.g. "
                    f"{path / checkpoints[0]}, or move the saved model to a folder of its own."
                )
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
        # > 0: written in the middle of an epoch, after the last evaluation
        "step_in_epoch": ckpt.get("step_in_epoch") or None,
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


def _check_onnx_installed() -> None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(
            f"--onnx needs {' and '.join(missing)}: pip install 'cefl-zoo[export]' "
            "(onnx, onnxscript, onnxruntime)"
        )


def export_onnx(model: VideoClassifier, path: str | Path) -> Path:
    """Write ``model`` as ONNX (input ``video`` ``(B, N, K, 3, H, W)``, output ``logits``).

    The batch axis is dynamic; N, K, H and W are those of ``model.pretrained_cfg``.

    Raises:
        ExportError: When ``onnx`` / ``onnxscript`` are not installed.
    """
    import torch

    _check_onnx_installed()
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
def _refuse_run_dir(out: Path) -> None:
    import os

    out = Path(os.path.realpath(out))  # (RUN/sub/.. is RUN)
    checkpoints = _checkpoints_in(out) if out.is_dir() else []
    if checkpoints:
        raise ExportError(
            f"OUT_DIR {out} holds training checkpoints ({', '.join(checkpoints)}): it is a "
            "training run directory, and the export would replace the run's config.json and "
            "README.md. Fix: pass another OUT_DIR, e.g. export/" + (out.resolve().name or "weights")
        )


def _select_metrics(
    eval_json: str | Path | None,
    cfg: PretrainedCfg,
    training: Mapping[str, Any],
    run_dir: Path | None,
) -> dict[str, float]:
    """The metrics of the exported weights (see ``_checkpoint_metrics``)."""
    import logging

    explicit = eval_json is not None
    history = run_dir / "history.json" if run_dir is not None else None
    history = history if history is not None and history.is_file() else None
    epoch = training.get("epochs_trained")
    if not explicit and run_dir is not None and (run_dir / "metrics.json").is_file():
        eval_json = run_dir / "metrics.json"
    if eval_json is None and history is None:
        return dict(cfg.metrics)
    if training.get("step_in_epoch") and not (explicit and not _is_run_metrics_file(eval_json)):
        metrics, why = (
            None,
            (
                f"the checkpoint was written in the middle of epoch {(epoch or 0) + 1} (step "
                f"{training['step_in_epoch']}), after the run's last evaluation"
            ),
        )
    elif eval_json is None:  # a stopped run that wrote no metrics.json: its history
        metrics = _history_metrics(history, epoch) if epoch is not None else None
        metrics = _scalar_metrics(metrics, history, cfg.label_names) if metrics else None
        why = f"{history} holds no validation of epoch {epoch}"
    else:
        metrics, why = _checkpoint_metrics(Path(eval_json), cfg.label_names, epoch, history)
    if metrics is None and explicit:
        raise ExportError(
            f"--eval-json {eval_json}: {why}, so none of its metrics are those of the exported "
            "weights. Fix: evaluate the checkpoint (cefl-zoo eval ... --output FILE) and pass "
            "--eval-json FILE."
        )
    if not metrics:
        logging.getLogger(__name__).warning(
            "recording no metrics with the exported weights: %s. To record some, evaluate the "
            "checkpoint (cefl-zoo eval ... --output FILE) and pass --eval-json FILE",
            why or f"{eval_json} holds none",
        )
    return metrics or {}


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

    The metrics recorded are those of the exported checkpoint's epoch: a run's
    ``metrics.json`` entry of that epoch (``"last"`` or ``"best"``), else that epoch's
    validation metrics in ``history.json``, else none (logged; also for a checkpoint
    written in the middle of an epoch). Everything is written into a hidden temporary
    folder inside ``out_dir`` first and moved in at the end, so a failed export leaves
    ``out_dir`` as it was.

    Returns:
        ``out_dir``.

    Raises:
        ExportError: For an ``out_dir`` that is a training run directory, a missing
            ``--onnx`` dependency, an ``--eval-json`` that holds no metrics of the
            exported epoch, or a failed ONNX / ``torch.export`` export.
    """
    import shutil
    import tempfile

    from ..hub_mixin import save_pretrained
    from ..train.config import parse_data_spec

    out = Path(out_dir)
    _refuse_run_dir(out)
    if onnx:  # before anything is written
        _check_onnx_installed()
    model, training, run_dir = load_source(source, checkpoint)
    cfg = model.pretrained_cfg
    metrics = _select_metrics(eval_json, cfg, training, run_dir)
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
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    # The staging folder lies inside out_dir: the same file system (out_dir may be a mount
    # point or a link to one) and writable wherever out_dir is.
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    try:
        save_pretrained(model, staging, pretrained_cfg=cfg, training=training or None)
        try:
            write_artifacts(model, staging, onnx=onnx, torch_export=torch_export)
        except ExportError as err:
            raise ExportError(f"{err} Nothing was written to {out}.") from err
        _move_into(staging, out)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _move_into(staging: Path, out: Path) -> None:
    """Replace ``out``'s files by those of ``staging``; drop ``out``'s stale extras.

    Other files of ``out`` (the user's) are kept. ``config.json`` goes last, and the
    stale extras are removed after it: until then ``out`` keeps its earlier export's.
    """
    import logging
    import os

    from ..hub import ARTIFACT_NAMES, CONFIG_NAME

    stale = [n for n in ARTIFACT_NAMES if not (staging / n).exists()]
    names = sorted(p.name for p in staging.iterdir() if p.name != CONFIG_NAME)
    for name in [*names, CONFIG_NAME]:
        os.replace(staging / name, out / name)
    for name in stale:
        path = out / name
        if path.is_file() or path.is_symlink():
            path.unlink()
            logging.getLogger(__name__).warning(
                "removed %s: exported from the weights %s held before", name, out
            )


#: What each extra format is called in messages, with its option and files.
_FORMATS = {
    "onnx": ("the ONNX model", "--onnx", ("model.onnx", "model.onnx.data")),
    "torch_export": ("the torch.export program", "--torch-export", ("model.pt2",)),
}


def write_artifacts(
    model: VideoClassifier, out: Path, *, onnx: bool = False, torch_export: bool = False
) -> dict[str, str]:
    """Write the extra formats of an exported folder and record them in ``config.json``.

    Extras of the known names (``model.onnx``, ``model.onnx.data``, ``model.pt2``) that
    this export does not write are deleted: they were exported from the folder's earlier
    weights. The sha256 of each extra written goes to ``config.json``'s ``artifacts``,
    which ``cefl-zoo push`` checks (other files in the folder are left alone). When one
    format fails, its partial files are removed and the extras written before it stay
    recorded, so the folder remains consistent.

    Returns:
        ``{file name: sha256}`` of the extras written.

    Raises:
        ExportError: Naming the format that failed to export.
    """
    import logging

    from ..hub import ARTIFACT_NAMES, ARTIFACTS_KEY, CONFIG_NAME, sha256sum
    from ..hub_mixin import atomic_write

    logger = logging.getLogger(__name__)
    exporters = {"onnx": export_onnx, "torch_export": export_torch_program}
    wanted = [key for key, on in (("onnx", onnx), ("torch_export", torch_export)) if on]
    writing = {name for key in wanted for name in _FORMATS[key][2]}
    for name in ARTIFACT_NAMES:  # stale: from the weights this folder held before
        path = out / name
        if path.exists() or path.is_symlink():
            path.unlink()
            if name not in writing:
                logger.warning("removed %s: exported from the weights %s held before", name, out)
    try:
        for key in wanted:
            label, option, files = _FORMATS[key]
            try:
                exporters[key](model, out / files[0])
            except ExportError:
                raise
            except Exception as err:
                for name in files:  # partial output of the failed format
                    (out / name).unlink(missing_ok=True)
                raise ExportError(
                    f"exporting {label} ({option}) of {model.architecture or type(model).__name__} "
                    f"failed: {type(err).__name__}: {' '.join(str(err).split())[:300]}. Fix: "
                    f"export without {option}, or report the failure."
                ) from err
    finally:  # record what was written, also when a later format failed
        artifacts = {n: sha256sum(out / n) for n in ARTIFACT_NAMES if (out / n).is_file()}
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
    else:
        print("  metrics none recorded")
    print(f"publish with: cefl-zoo push {out} <org>/<repo>")
    return 0
