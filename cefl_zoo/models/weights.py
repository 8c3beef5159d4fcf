"""The table of registered weight sets (timm's ``default_cfgs``, torchvision's weights meta).

Each weight set is a :class:`~cefl_zoo.registry.PretrainedCfg` named
``"<architecture>.<tag>"`` that carries where the weights live (Hugging Face repo,
pinned 40-hex revision, file, sha256), the label names in output order, the
preprocessing they were trained with (clips, frames, size, mean, std), the dataset and
fold, the metrics they reached, the command that produced them, and their licence.

* ``ceflnet_resnet18.dfew`` / ``.afew`` / ``.mmi`` / ``.bu3dfe`` - the paper's model on
  its four datasets. These datasets are licence-gated and were not available where
  cefl-zoo was built, so the weights are ``status="not-trained"``: ``pretrained=True``
  raises :class:`~cefl_zoo.hub.WeightsNotTrainedError` with the commands that train
  and publish them (:func:`publish_steps`). Nothing points at a file that does not
  exist: ``hf_hub_revision`` and ``sha256`` stay ``None`` until someone publishes.
* ``ceflnet_tiny.synthetic`` - a small CEFLNet trained on the built-in synthetic data
  whose files ship inside the package (``cefl_zoo/weights/ceflnet_tiny.synthetic/``).
  Its status is derived from those files: ``"available"`` exactly when
  ``model.safetensors`` is present and has the sha256 recorded in its ``config.json``.

To publish a dataset weight set: run :func:`publish_steps`' commands, then fill
``hf_hub_revision`` (the commit ``cefl-zoo push`` prints), ``sha256``, ``metrics``
and ``status="available"`` in :data:`DATASET_WEIGHTS` below.

Example:
    >>> from cefl_zoo import list_pretrained
    >>> [(c.name, c.status) for c in list_pretrained("ceflnet_resnet18.*")][:2]
    [('ceflnet_resnet18.afew', 'not-trained'), ('ceflnet_resnet18.bu3dfe', 'not-trained')]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..labels import DATASET_CLASSES
from ..registry import PretrainedCfg, get_pretrained_cfg, list_pretrained, register_pretrained_cfgs

__all__ = [
    "DATASET_WEIGHTS",
    "EXPORT_COMMAND",
    "HF_ORG",
    "PACKAGE_WEIGHTS_DIR",
    "PUSH_COMMAND",
    "REQUIRED_FIELDS",
    "SYNTHETIC_WEIGHTS",
    "SYNTH_COMMAND",
    "TRAIN_COMMAND",
    "not_trained_message",
    "packaged_cfg",
    "publish_steps",
    "weights_table",
]

#: Hugging Face organisation the project publishes weights under.
HF_ORG = "cefl-zoo"

# The commands that produce and publish a weight set, kept in this one place. Fields:
# {arch}, {name} ("arch.tag"), {data} (the trainer's --data value), {flags} (the
# dataset's split and start options), {run_dir}, {out_dir}, {repo_id}.
#: Writes the built-in synthetic data the shipped weight set trains on.
SYNTH_COMMAND = "cefl-zoo synth data/synthetic --videos 560 --seed 0"
#: Trains a weight set (the project's trainer, ``cefl-zoo train``).
TRAIN_COMMAND = "cefl-zoo train --model {arch} --data {data}{flags} --seed 0 --output-dir {run_dir}"
#: Writes the publishable folder (weights, config, model card with the eval metrics). The
#: last epoch's weights: the paper's protocols have no validation split, so the best
#: epoch would be chosen on the test split the card then reports.
EXPORT_COMMAND = "cefl-zoo export {run_dir} {out_dir} --checkpoint last"
#: Uploads it; prints the commit to pin as ``hf_hub_revision`` and the sha256.
PUSH_COMMAND = "cefl-zoo push {out_dir} {repo_id}"

#: Package-relative directory of the weights that ship inside the wheel.
PACKAGE_WEIGHTS_DIR = "weights"

#: Fields every registered weight set must fill (``tests/test_weights_table.py``).
REQUIRED_FIELDS = (
    "architecture",
    "tag",
    "label_names",
    "num_clips",
    "frames_per_clip",
    "input_size",
    "mean",
    "std",
    "interpolation",
    "dataset",
    "fold",
    "train_command",
    "license",
    "status",
)

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class _Recipe:
    """How one dataset's weight set is produced and what the paper reports for it."""

    dataset: str
    display: str
    data_arg: str
    fold: str
    flags: str  # the trainer's split options, and the ImageNet backbone the paper starts from
    paper: str


_RECIPES = (
    _Recipe(
        "dfew",
        "DFEW",
        "dfew:/path/to/DFEW",
        "fold 1 of 5 (EmoLabel_DataSplit set_1)",
        " --fold 1 --pretrained-backbone",
        "paper: 65.35 % accuracy, mean of the 5 folds (Table 5)",
    ),
    _Recipe(
        "afew",
        "AFEW 8.0",
        "afew:/path/to/AFEW",
        "Train -> Val (test labels are not public)",
        " --val-split val --pretrained-backbone",
        "paper: 53.98 % accuracy on Val (Table 4)",
    ),
    _Recipe(
        "mmi",
        "MMI",
        "mmi:/path/to/MMI",
        "fold 1 of 10, subject-independent",
        " --fold 1 --pretrained-backbone",
        "paper: 91.00 % accuracy, mean of 10 folds (Table 3)",
    ),
    _Recipe(
        "bu3dfe",
        "BU-3DFE",
        "bu3dfe:/path/to/BU-3DFE",
        "fold 1 of 10, subject-independent",
        " --fold 1 --pretrained-backbone",
        "paper: 85.33 % accuracy, mean of 10 folds (Table 2)",
    ),
)


def _commands(
    arch: str, tag: str, data: str, flags: str, out_dir: str, repo_id: str
) -> dict[str, str]:
    name = f"{arch}.{tag}"
    fields = {
        "arch": arch,
        "name": name,
        "data": data,
        "flags": flags,
        "run_dir": f"runs/{name}",
        "out_dir": out_dir,
        "repo_id": repo_id,
    }
    return {
        "train": TRAIN_COMMAND.format(**fields),
        "export": EXPORT_COMMAND.format(**fields),
        "push": PUSH_COMMAND.format(**fields),
    }


def _dataset_cfg(arch: str, recipe: _Recipe) -> PretrainedCfg:
    base = get_pretrained_cfg(arch)
    assert base is not None
    repo_id = f"{HF_ORG}/{arch}.{recipe.dataset}"
    cmds = _commands(
        arch,
        recipe.dataset,
        recipe.data_arg,
        recipe.flags,
        f"export/{arch}.{recipe.dataset}",
        repo_id,
    )
    return base.replace(
        tag=recipe.dataset,
        hf_hub_id=repo_id,
        hf_hub_revision=None,  # pinned when published
        sha256=None,  # pinned when published
        label_names=DATASET_CLASSES[recipe.dataset],
        num_clips=7,
        frames_per_clip=5,
        input_size=(3, 224, 224),
        dataset=recipe.dataset,
        fold=recipe.fold,
        metrics={},
        train_command=cmds["train"],
        license=f"research-only (inherits the {recipe.display} licence agreement)",
        status="not-trained",
        notes=(
            f"{recipe.display} is licence-gated and was not available where cefl-zoo was built; "
            f"train and publish with the commands in the error message ({recipe.paper})."
        ),
    )


#: The paper's model on its four datasets, ``"ceflnet_resnet18.<dataset>"``.
DATASET_WEIGHTS: tuple[PretrainedCfg, ...] = tuple(
    _dataset_cfg("ceflnet_resnet18", r) for r in _RECIPES
)


def packaged_cfg(base: PretrainedCfg, directory: str | Path) -> PretrainedCfg:
    """Derive a packaged weight set's configuration from its folder.

    Args:
        base: The registered identity: architecture, tag, dataset, labels, licence,
            and the preprocessing to assume while no weights exist.
        directory: The folder (absolute, or relative to the ``cefl_zoo`` package).

    Returns:
        ``base`` with ``status="available"``, ``file`` set and the preprocessing,
        labels, metrics, command and sha256 of the folder's ``config.json`` when
        ``model.safetensors`` is present and matches the recorded sha256;
        otherwise ``base`` with ``status="not-trained"``, ``file=None`` and a note
        that says what is missing.
    """
    from ..hub import CONFIG_NAME, WEIGHTS_NAME, sha256sum

    rel = Path(directory)
    folder = rel if rel.is_absolute() else _PACKAGE_ROOT / rel
    weights, config_path = folder / WEIGHTS_NAME, folder / CONFIG_NAME
    shown = f"cefl_zoo/{rel.as_posix()}" if not rel.is_absolute() else str(folder)
    missing = [p.name for p in (weights, config_path) if not p.is_file()]
    if missing:
        return base.replace(
            status="not-trained",
            file=None,
            notes=f"not trained yet: {' and '.join(missing)} missing from {shown}",
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        saved = dict(config["pretrained_cfg"])
        recorded = saved["sha256"]
    except (ValueError, KeyError, TypeError) as err:
        return base.replace(
            status="not-trained",
            file=None,
            notes=f"{shown}/{CONFIG_NAME} is not a cefl-zoo config ({err!r}); re-export the folder",
        )
    actual = sha256sum(weights)
    if actual != recorded:
        return base.replace(
            status="not-trained",
            file=None,
            notes=(
                f"{shown}/{WEIGHTS_NAME} has sha256 {actual}, but its {CONFIG_NAME} records "
                f"{recorded}: the file is corrupt or was replaced (a git-lfs pointer?); re-export"
            ),
        )
    fromfile = PretrainedCfg.from_dict(saved)
    return base.replace(
        file=str(rel) if not rel.is_absolute() else str(folder),
        sha256=actual,
        label_names=fromfile.label_names or base.label_names,
        num_clips=fromfile.num_clips,
        frames_per_clip=fromfile.frames_per_clip,
        input_size=fromfile.input_size,
        mean=fromfile.mean,
        std=fromfile.std,
        interpolation=fromfile.interpolation,
        fold=fromfile.fold or base.fold,
        metrics=dict(fromfile.metrics),
        train_command=fromfile.train_command or base.train_command,
        status="available",
        notes=base.notes,
    )


#: The command that trained the shipped ``ceflnet_tiny.synthetic`` weights (as their
#: ``config.json`` records it; a test keeps the two equal). It is what the error message
#: gives when the shipped file is missing or broken.
SYNTHETIC_TRAIN_COMMAND = (
    "cefl-zoo train --model ceflnet_tiny --data synthetic:data/synthetic --batch-size 16 "
    "--epochs 30 --frames-per-clip 2 --img-size 32 --lr 0.003 --num-workers 0 --optimizer adamw "
    "--output-dir runs/ceflnet_tiny.synthetic --no-progress --seed 0 --warmup-epochs 1.0"
)


def _synthetic_base() -> PretrainedCfg:
    arch, tag = "ceflnet_tiny", "synthetic"
    base = get_pretrained_cfg(arch)
    assert base is not None
    return base.replace(
        tag=tag,
        label_names=DATASET_CLASSES["synthetic"],
        dataset="synthetic",
        fold="built-in synthetic validation split",
        frames_per_clip=2,  # the recipe's --frames-per-clip 2 --img-size 32
        input_size=(3, 32, 32),
        train_command=SYNTHETIC_TRAIN_COMMAND,
        license="mit",
        notes="ships inside the cefl-zoo package; trained on the built-in synthetic data (CPU demo model)",
    )


#: The weight set that ships inside the wheel.
SYNTHETIC_WEIGHTS: PretrainedCfg = packaged_cfg(
    _synthetic_base(), f"{PACKAGE_WEIGHTS_DIR}/ceflnet_tiny.synthetic"
)

register_pretrained_cfgs([*DATASET_WEIGHTS, SYNTHETIC_WEIGHTS])


def publish_steps(cfg: PretrainedCfg) -> list[str]:
    """The shell commands that train, export and publish a weight set.

    Example:
        >>> from cefl_zoo import get_pretrained_cfg
        >>> publish_steps(get_pretrained_cfg("ceflnet_resnet18.dfew"))[0]
        'cefl-zoo train --model ceflnet_resnet18 --data dfew:/path/to/DFEW --fold 1 --pretrained-backbone --seed 0 --output-dir runs/ceflnet_resnet18.dfew'
    """
    recipe = next((r for r in _RECIPES if r.dataset == cfg.dataset), None)
    if cfg.hf_hub_id is None:  # packaged: export into the package
        cmds = _commands(
            cfg.architecture,
            cfg.tag,
            cfg.dataset or cfg.tag,
            "",
            f"cefl_zoo/{PACKAGE_WEIGHTS_DIR}/{cfg.name}",
            "",
        )
        prepare = [SYNTH_COMMAND] if cfg.dataset == "synthetic" else []
        return [*prepare, cfg.train_command or cmds["train"], cmds["export"]]
    data = recipe.data_arg if recipe else f"{cfg.dataset}:/path/to/{cfg.dataset}"
    flags = recipe.flags if recipe else ""
    cmds = _commands(cfg.architecture, cfg.tag, data, flags, f"export/{cfg.name}", cfg.hf_hub_id)
    return [cfg.train_command or cmds["train"], cmds["export"], cmds["push"]]


def not_trained_message(cfg: PretrainedCfg) -> str:
    """Error text for ``pretrained=True`` on a weight set that is not available."""
    steps = "\n".join(f"  {i}. {cmd}" for i, cmd in enumerate(publish_steps(cfg), 1))
    if cfg.hf_hub_id:
        recipe = next((r for r in _RECIPES if r.dataset == cfg.dataset), None)
        what = (
            f"{recipe.display if recipe else cfg.dataset} is licence-gated and was not available where cefl-zoo was built, "
            "so nobody has trained and published these weights yet"
        )
        then = (
            f"then pin the commit and sha256 that `cefl-zoo push` prints in "
            f"cefl_zoo/models/weights.py (hf_hub_revision, sha256, metrics, status='available'), "
            f"or load your folder directly: create_model('hf-hub:{cfg.hf_hub_id}@<commit>')."
        )
    else:
        what = f"this installation does not contain them ({cfg.notes})"
        folder = f"cefl_zoo/{PACKAGE_WEIGHTS_DIR}/{cfg.name}"
        then = (
            f"then reinstall cefl-zoo, or load the exported folder directly: "
            f"create_model('{folder}')."
        )
    return (
        f"pretrained weights {cfg.name!r} are not available: {what}. Nothing was loaded (no "
        f"random weights were returned). To produce them where the data is:\n{steps}\n{then} "
        f"Meanwhile create_model({cfg.name!r}, pretrained=False) builds the architecture with "
        f"these {len(cfg.label_names or ())} labels and random weights."
    )


def _metric_text(cfg: PretrainedCfg) -> str:
    if cfg.metrics:
        return ", ".join(f"{k} {v:.4g}" for k, v in sorted(cfg.metrics.items()))
    return "-"


def weights_table(filter: str = "") -> str:
    """A Markdown table of every registered weight set, generated from the registry.

    For the README and docs, so the model table cannot drift from the metadata.

    Example:
        >>> print(weights_table("ceflnet_resnet18.dfew").splitlines()[0])
        | weights | dataset: split | classes | status | metrics | licence |
    """
    rows = [
        "| weights | dataset: split | classes | status | metrics | licence |",
        "|---|---|---|---|---|---|",
    ]
    for cfg in list_pretrained(filter):
        classes = len(cfg.label_names) if cfg.label_names else "-"
        rows.append(
            f"| `{cfg.name}` | {cfg.dataset}: {cfg.fold} | {classes} | {cfg.status} | "
            f"{_metric_text(cfg)} | {cfg.license} |"
        )
    return "\n".join(rows)
