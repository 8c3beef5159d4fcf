"""Training configuration: the paper's recipe as defaults, overridable from files and flags.

:class:`TrainConfig` holds every knob of a run. Its defaults are the paper's Table 1
(Adam, learning rate 1e-4, weight decay 1e-4, cosine schedule with warm-up, batch 8,
120 epochs, 7 clips x 5 frames, the eq. 11 loss). A run resolves its configuration in
three layers, later ones winning:

1. the defaults below,
2. a config file (JSON, TOML, or YAML when PyYAML is installed),
3. command-line flags (``--lr 3e-4``, ``--amp bf16``, ``--no-progress``, ...).

The resolved configuration is written as ``config.json`` next to the checkpoints.

Example:
    >>> from cefl_zoo.train import TrainConfig
    >>> cfg = TrainConfig()
    >>> cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.epochs
    ('adam', 0.0001, 0.0001, 8, 120)
    >>> cfg.num_clips, cfg.frames_per_clip, cfg.loss
    (7, 5, 'bce')
    >>> cfg.replace(lr=3e-4, amp="bf16").lr
    0.0003
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RUN_CONTROL_FIELDS",
    "ConfigError",
    "DataSpec",
    "TrainConfig",
    "add_config_arguments",
    "config_differences",
    "config_from_args",
    "load_config_file",
    "parse_data_spec",
]


class ConfigError(ValueError):
    """A configuration value, file or data spec that cannot be used."""


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


_CHOICES = {
    "optimizer": ("adam", "adamw", "sgd"),
    "scheduler": ("cosine", "constant"),
    "loss": ("bce", "ce"),
    "amp": ("none", "bf16", "fp16"),
    "best_metric": ("war", "uar", "loss"),
}


@dataclass
class TrainConfig:
    """Everything that defines a training run (defaults: the paper's Table 1).

    Attributes:
        model: Registry name (``"ceflnet_resnet18"``, an ablation sibling such as
            ``"ceflnet_resnet18_sal"``, ``"arch.tag"`` with ``pretrained``), a local
            ``save_pretrained`` directory or ``"hf-hub:org/repo"``.
        model_kwargs: Extra constructor arguments, e.g. ``{"backbone": "resnet34"}``.
        pretrained: Load the registry weights named by ``model``.
        pretrained_backbone: Start the backbone from timm's ImageNet weights, as the
            paper does ("a pre-trained ResNet-18"). Off by default, as in timm's
            ``train.py``: the weights come from the Hugging Face Hub. A run of a model
            with a random backbone logs a warning; ignored with ``pretrained``.
        init_from: Start from the weights of a training checkpoint (``.pt``) or a
            ``save_pretrained`` directory. A head whose classes differ is replaced.
        data: Data spec ``"NAME:ROOT"`` for :func:`cefl_zoo.data.build_dataset`, e.g.
            ``"synthetic:DIR"``, ``"dfew:ROOT"``, ``"folder:DIR"``, ``"csv:FILE"``.
        fold: Fold / split set of datasets that have several (DFEW 1-5, MMI 1-10, ...).
        train_split: Split used for training; ``None`` for a dataset without splits
            (a class-per-folder ``folder:DIR``).
        val_split: Split evaluated after each epoch (``None``: no evaluation).
        data_kwargs: Extra arguments for ``build_dataset`` (both splits).
        classes: Output label order (canonical names). ``None`` takes the training
            dataset's classes. Every dataset class must be in it.
        num_clips: Clips per video, N (paper: 7).
        frames_per_clip: Frames per clip, K (paper: 5).
        img_size: Frame size in pixels; ``None`` uses the model's ``input_size``.
        epochs: Training epochs (paper: 120).
        batch_size: Videos per optimizer step *per process* (paper: 8).
        lr: Peak learning rate (paper: 1e-4).
        weight_decay: Weight decay (paper: 1e-4; L2 for Adam, decoupled for AdamW).
        optimizer: ``"adam"`` (paper), ``"adamw"`` or ``"sgd"``.
        momentum: SGD momentum.
        scheduler: ``"cosine"`` (paper: cosine annealing with warm-up) or ``"constant"``.
        warmup_epochs: Linear warm-up length in epochs (may be fractional). The paper
            uses warm-up without giving its length.
        warmup_start_factor: Warm-up starts at ``lr * warmup_start_factor``, in (0, 1].
        min_lr: Learning rate at the end of the cosine.
        loss: ``"bce"`` (paper eq. 11) or ``"ce"`` (softmax cross-entropy).
        label_smoothing: Target smoothing for either loss.
        grad_accum_steps: Micro-batches accumulated per optimizer step.
        clip_grad_norm: Clip the gradient norm to this value (``None`` or ``0``: off).
        freeze_backbone_epochs: Keep the backbone frozen (and its norm layers in eval
            mode) for this many epochs first.
        amp: Autocast: ``"none"``, ``"bf16"`` or ``"fp16"`` (CUDA only; with a scaler).
        gpu_decode: Decode the frames of a JPEG frame cache (``data="cache:DIR"``, see
            :func:`cefl_zoo.data.build_frame_cache`) on the GPU in one nvJPEG call per
            batch; loader workers only read bytes (CUDA only).
        channels_last: Use the channels-last memory format for the backbone.
        compile: Compile the model with ``torch.compile`` (opt-in).
        num_workers: DataLoader worker processes per process.
        pin_memory: Pinned host memory for faster host-to-GPU copies (CUDA only).
        persistent_workers: Keep the loader workers alive between epochs.
        prefetch_factor: Batches each worker prepares ahead.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        output_dir: Where checkpoints, ``config.json``, metrics and plots go.
        overwrite: Start a new run in an ``output_dir`` that already holds checkpoints
            (they, its ``metrics.json`` and ``history.json`` are removed when the new run
            starts). Without it such a run refuses to start, so a repeated
            command cannot silently destroy an earlier run; ``--resume`` continues it.
        seed: Seed of the model initialisation, the shuffling and the data sampling.
        deterministic: Ask PyTorch for deterministic algorithms.
        checkpoint_every_steps: Also checkpoint every this many optimizer steps
            (``0``: once per epoch only).
        keep_epoch_checkpoints: Keep ``epoch_XXX.pt`` for every epoch, not only
            ``last.pt`` and ``best.pt``.
        eval_every_epochs: Evaluate on ``val_split`` every this many epochs.
        best_metric: Metric that selects ``best.pt``: ``"war"``, ``"uar"`` or ``"loss"``.
        log_every_steps: Log a line every this many optimizer steps.
        progress: Show tqdm progress bars (rank 0 only).
        limit_train_steps: Stop each epoch after this many optimizer steps (smoke runs,
            benchmarks); ``None`` for full epochs.
        save_plots: Write the confusion matrix and training curves as PNG.
    """

    # -- model -----------------------------------------------------------------------
    model: str = _f("ceflnet_resnet18", "registry name, save_pretrained dir or hf-hub:org/repo")
    model_kwargs: dict = _f(  # noqa: RUF009 (_f returns a dataclass field)
        {}, 'JSON object of extra model arguments, e.g. \'{"backbone": "resnet34"}\''
    )
    pretrained: bool = _f(False, "load the registry weights named by --model")
    pretrained_backbone: bool = _f(
        False,
        "start the backbone from timm's ImageNet weights (the paper: a pre-trained "
        "ResNet-18); downloads them once through the Hugging Face Hub",
    )
    init_from: str | None = _f(None, "start from the weights of a checkpoint (.pt) or model dir")
    # -- data ------------------------------------------------------------------------
    data: str | None = _f(None, "data spec NAME:ROOT, e.g. synthetic:DIR, dfew:ROOT, folder:DIR")
    fold: int | None = _f(None, "fold of datasets with several (DFEW 1-5, MMI/BU-3DFE 1-10)")
    train_split: str | None = _f(
        "train", "split to train on ('none' for a dataset without splits, e.g. folder:DIR)"
    )
    val_split: str | None = _f("test", "split evaluated after each epoch ('none' to skip)")
    data_kwargs: dict = _f({}, "JSON object of extra build_dataset arguments")  # noqa: RUF009
    classes: list | None = _f(  # noqa: RUF009 (_f returns a dataclass field)
        None, "output label order, comma-separated canonical names"
    )
    num_clips: int = _f(7, "clips per video N (paper: 7)")
    frames_per_clip: int = _f(5, "frames per clip K (paper: 5)")
    img_size: int | None = _f(None, "frame size in pixels (default: the model's input size)")
    # -- optimisation ----------------------------------------------------------------
    epochs: int = _f(120, "training epochs (paper: 120)")
    batch_size: int = _f(8, "videos per step per process (paper: 8)")
    lr: float = _f(1e-4, "peak learning rate (paper: 1e-4)")
    weight_decay: float = _f(1e-4, "weight decay (paper: 1e-4)")
    optimizer: str = _f("adam", "optimizer (paper: adam)")
    momentum: float = _f(0.9, "SGD momentum (>= 0)")
    scheduler: str = _f("cosine", "learning-rate schedule (paper: cosine with warm-up)")
    warmup_epochs: float = _f(2.0, "linear warm-up length in epochs")
    warmup_start_factor: float = _f(0.01, "warm-up starts at lr * this factor, in (0, 1]")
    min_lr: float = _f(0.0, "learning rate at the end of the cosine")
    loss: str = _f("bce", "loss: bce (paper eq. 11) or ce")
    label_smoothing: float = _f(0.0, "label smoothing")
    grad_accum_steps: int = _f(1, "micro-batches per optimizer step")
    clip_grad_norm: float | None = _f(
        None, "clip the gradient norm to this value (> 0; 0 or none: no clipping)"
    )
    freeze_backbone_epochs: int = _f(0, "epochs to keep the backbone frozen first")
    # -- speed -----------------------------------------------------------------------
    amp: str = _f("none", "autocast dtype: none, bf16 or fp16 (fp16: CUDA only)")
    gpu_decode: bool = _f(
        False, "decode a JPEG frame cache (--data cache:DIR) on the GPU (CUDA only)"
    )
    channels_last: bool = _f(False, "channels-last memory format for the backbone")
    compile: bool = _f(False, "torch.compile the model")
    num_workers: int = _f(4, "DataLoader workers per process")
    pin_memory: bool = _f(True, "pinned host memory (CUDA only)")
    persistent_workers: bool = _f(True, "keep loader workers alive between epochs")
    prefetch_factor: int = _f(2, "batches prefetched per worker")
    device: str = _f("auto", "auto, cpu, cuda or cuda:N")
    # -- run -------------------------------------------------------------------------
    output_dir: str = _f("runs/ceflnet", "directory for checkpoints, config, metrics, plots")
    overwrite: bool = _f(
        False, "start a new run in an output dir that holds one (its checkpoints are replaced)"
    )
    seed: int = _f(0, "random seed")
    deterministic: bool = _f(False, "use deterministic algorithms")
    checkpoint_every_steps: int = _f(500, "also checkpoint every N optimizer steps (0: off)")
    keep_epoch_checkpoints: bool = _f(False, "keep a checkpoint file per epoch")
    eval_every_epochs: int = _f(1, "evaluate every N epochs")
    best_metric: str = _f("war", "metric selecting best.pt: war, uar or loss")
    log_every_steps: int = _f(50, "log every N optimizer steps")
    progress: bool = _f(True, "tqdm progress bars")
    limit_train_steps: int | None = _f(None, "cap optimizer steps per epoch (smoke runs)")
    save_plots: bool = _f(True, "write confusion matrix and training curves as PNG")

    def __post_init__(self) -> None:
        self.validate()

    # -- construction ------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`ConfigError` for values that cannot work."""
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
        positive = (
            "epochs",
            "batch_size",
            "num_clips",
            "frames_per_clip",
            "grad_accum_steps",
            "eval_every_epochs",
            "log_every_steps",
            "prefetch_factor",
        )
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                flag = "--" + f.name.replace("_", "-")
                off = " (0 or none: no clipping)" if f.name == "clip_grad_norm" else ""
                raise ConfigError(
                    f"{f.name} ({flag}) must be a finite number{off}, got {value}: nan and "
                    "inf are not accepted"
                )
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "lr",
            "weight_decay",
            "warmup_epochs",
            "min_lr",
            "label_smoothing",
            "num_workers",
            "checkpoint_every_steps",
            "freeze_backbone_epochs",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.momentum < 0:
            raise ConfigError(f"momentum (--momentum) must be >= 0, got {self.momentum}")
        if self.scheduler == "cosine" and self.lr > 0 and self.min_lr > self.lr:
            raise ConfigError(
                f"min_lr (--min-lr) must not exceed lr (--lr): the cosine falls from lr to "
                f"min_lr; got lr={self.lr}, min_lr={self.min_lr}"
            )
        if not 0.0 < self.warmup_start_factor <= 1.0:
            raise ConfigError(
                "warmup_start_factor (--warmup-start-factor) must lie in (0, 1]: the warm-up "
                f"starts at lr * this factor and rises to lr; got {self.warmup_start_factor}"
            )
        if self.clip_grad_norm is not None and not self.clip_grad_norm >= 0:
            raise ConfigError(
                "clip_grad_norm (--clip-grad-norm) must be > 0, or 0 / none for no clipping "
                f"(a negative norm would flip the gradients); got {self.clip_grad_norm}"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if self.img_size is not None and self.img_size < 8:
            raise ConfigError(
                f"img_size must be at least 8 pixels, got {self.img_size} (leave it unset "
                "for the model's own input size)"
            )
        if self.limit_train_steps is not None and self.limit_train_steps < 1:
            raise ConfigError(f"limit_train_steps must be >= 1, got {self.limit_train_steps}")
        if not isinstance(self.model_kwargs, dict) or not isinstance(self.data_kwargs, dict):
            raise ConfigError("model_kwargs and data_kwargs must be JSON objects (dicts)")
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ConfigError(f"classes has duplicates: {self.classes}")

    def replace(self, **changes: Any) -> TrainConfig:
        """Copy with some fields changed; unknown names raise :class:`ConfigError`."""
        return self.update(changes, source="TrainConfig.replace()")

    def update(self, changes: dict[str, Any], source: str = "dict") -> TrainConfig:
        """Copy with the fields in ``changes`` set (values coerced to the field types).

        Args:
            changes: Field names (dashes allowed) to values.
            source: Where the changes come from, for error messages.

        Raises:
            ConfigError: For unknown keys (with close matches) or invalid values.
        """
        changes = {k.replace("-", "_"): v for k, v in changes.items()}
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(_unknown_keys_message(unknown, source))
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in changes.items()})

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary of every field."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "dict") -> TrainConfig:
        """Defaults updated by a dictionary (e.g. a parsed config file or a saved
        ``config.json``); values are coerced to the field types.

        Raises:
            ConfigError: For unknown keys (with close matches) or invalid values.
        """
        return cls().update(data, source=source)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TrainConfig:
        """Defaults updated by a JSON / TOML / YAML file (see :func:`load_config_file`)."""
        return cls.from_dict(load_config_file(path), source=str(path))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the configuration as JSON (atomically); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
        return path

    @property
    def data_spec(self) -> DataSpec | None:
        """The parsed ``data`` spec."""
        return parse_data_spec(self.data) if self.data else None


#: Fields that control how a run is carried out, not what it computes (where it writes,
#: whether it may replace or resume a run, loader and logging settings, the device).
#: Resuming with other values is no change of the recipe, and :func:`config_differences`
#: ignores them.
RUN_CONTROL_FIELDS: frozenset[str] = frozenset(
    {
        "output_dir",
        "overwrite",
        "device",
        "num_workers",
        "pin_memory",
        "persistent_workers",
        "prefetch_factor",
        "progress",
        "log_every_steps",
        "checkpoint_every_steps",
        "keep_epoch_checkpoints",
        "save_plots",
    }
)


def config_differences(
    saved: dict[str, Any], current: TrainConfig, ignore: frozenset[str] = RUN_CONTROL_FIELDS
) -> dict[str, tuple[Any, Any]]:
    """The options that differ between a saved configuration and ``current``.

    Args:
        saved: A saved configuration (``config.json``, a checkpoint's ``config``); a key
            it lacks (written by an older version) counts as that field's default.
        current: This run's configuration.
        ignore: Fields left out of the comparison (default: :data:`RUN_CONTROL_FIELDS`).

    Returns:
        ``{field: (saved value, current value)}`` in field order; empty when they agree.

    Example:
        >>> config_differences(TrainConfig(lr=1e-3, output_dir="a").to_dict(),
        ...                    TrainConfig(lr=1e-4, output_dir="b"))
        {'lr': (0.001, 0.0001)}
    """
    defaults = TrainConfig().to_dict()
    now = current.to_dict()
    return {
        k: (saved.get(k, defaults[k]), v)
        for k, v in now.items()
        if k not in ignore and saved.get(k, defaults[k]) != v
    }


# -- data specs ------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``"NAME:ROOT"`` data spec.

    Attributes:
        name: Dataset adapter name (``"synthetic"``, ``"dfew"``, ``"folder"``, ...).
        root: Dataset root directory, or file for ``csv``.
    """

    name: str
    root: str

    def __str__(self) -> str:
        return f"{self.name}:{self.root}"


def parse_data_spec(spec: str) -> DataSpec:
    """Split ``"NAME:ROOT"`` into its parts.

    Windows drive letters (``C:\\data``) are not mistaken for a name: the name must be
    at least two characters.

    Example:
        >>> parse_data_spec("dfew:/data/DFEW")
        DataSpec(name='dfew', root='/data/DFEW')

    Raises:
        ConfigError: Without a ``NAME:`` prefix or a root.
    """
    name, sep, root = str(spec).partition(":")
    if not sep or len(name) < 2 or not root:
        raise ConfigError(
            f"data spec {spec!r} must look like NAME:ROOT, e.g. synthetic:/data/synth, "
            "dfew:/data/DFEW, folder:/data/my_videos or csv:/data/labels.csv"
        )
    return DataSpec(name.strip().lower(), root)


# -- files -----------------------------------------------------------------------------


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a config file into a dictionary.

    ``.json`` and ``.toml`` always work; ``.yaml`` / ``.yml`` need PyYAML. A TOML file
    may put the keys at the top level or under a ``[train]`` table.

    Raises:
        ConfigError: For a missing file, an unsupported suffix or a parse error (with
            the file name and the parser's message).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    suffix = path.suffix.lower()
    text = path.read_text()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ModuleNotFoundError as err:
                raise ConfigError(
                    f"config file {path} is YAML but PyYAML is not installed; "
                    "pip install pyyaml, or use a .json or .toml file"
                ) from err
            data = yaml.safe_load(text) or {}
        else:
            raise ConfigError(f"config file {path}: use .json, .toml or .yaml, not {suffix!r}")
    except ConfigError:
        raise
    except Exception as err:  # parser errors of three libraries
        raise ConfigError(f"could not parse config file {path}: {err}") from err
    if isinstance(data, dict) and set(data) == {"train"} and isinstance(data["train"], dict):
        data = data["train"]
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option names to values")
    return data


# -- value coercion --------------------------------------------------------------------

_HINTS: dict[str, Any] | None = None


def _hints() -> dict[str, Any]:
    global _HINTS
    if _HINTS is None:
        _HINTS = typing.get_type_hints(TrainConfig)
    return _HINTS


def _base_type(name: str) -> tuple[type, bool]:
    hint = _hints()[name]
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0]
    return (typing.get_origin(hint) or hint), optional


def _coerce(name: str, value: Any) -> Any:
    """Convert ``value`` (maybe a string from the command line) to the field's type."""
    typ, optional = _base_type(name)
    if value is None or (
        optional and isinstance(value, str) and value.lower() in ("none", "null", "")
    ):
        if not optional:
            raise ConfigError(f"{name} cannot be None")
        return None
    try:
        if typ is bool:
            if isinstance(value, str):
                low = value.lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(f"not a boolean: {value!r}")
            return bool(value)
        if typ is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(f"not an integer: {value!r}")
            return int(value)
        if typ is float:
            return float(value)
        if typ is dict:
            if isinstance(value, str):
                value = json.loads(value)
            if not isinstance(value, dict):
                raise ValueError("expected a JSON object")
            return dict(value)
        if typ is list:
            if isinstance(value, str):
                value = json.loads(value) if value.lstrip().startswith("[") else value.split(",")
            return [str(v).strip() for v in value]
        if typ is str:
            return str(value)
    except (ValueError, TypeError, OverflowError, json.JSONDecodeError) as err:
        raise ConfigError(f"bad value for {name}: {value!r} ({err})") from err
    return value


def _unknown_keys_message(unknown: set[str], source: str) -> str:
    import difflib

    names = [f.name for f in dataclasses.fields(TrainConfig)]
    parts = []
    for key in sorted(unknown):
        close = difflib.get_close_matches(key, names, n=1)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"unknown training option(s) in {source}: {', '.join(parts)}"


# -- command line ----------------------------------------------------------------------


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` and one flag per :class:`TrainConfig` field to ``parser``.

    Flags are spelled with dashes (``--batch-size``); booleans get ``--x / --no-x``;
    dicts take JSON; ``classes`` takes a comma-separated list. Flags not given keep
    the config file's or the default value (see :func:`config_from_args`).
    """
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="JSON/TOML/YAML file of options; flags given on the command line win",
    )
    group = parser.add_argument_group("training options (defaults: the paper's Table 1)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        typ, _ = _base_type(f.name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f.metadata.get("help", "")
        if "(default:" not in help_text:
            help_text = f"{help_text} (default: {default})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if typ is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
            continue
        if f.name in _CHOICES:
            kwargs["choices"] = _CHOICES[f.name]
        kwargs["metavar"] = {int: "INT", float: "FLOAT", dict: "JSON", list: "A,B,..."}.get(
            typ, "STR"
        )
        if f.name in _CHOICES:
            kwargs.pop("metavar")
        group.add_argument(flag, **kwargs)


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """Resolve defaults < ``--config`` file < flags into a :class:`TrainConfig`.

    Args:
        args: Parsed namespace of a parser prepared with :func:`add_config_arguments`.
        base: Starting configuration instead of the defaults.
    """
    cfg = base or TrainConfig()
    config_file = getattr(args, "config", None)
    if config_file:
        cfg = cfg.update(load_config_file(config_file), source=str(config_file))
    flags = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if hasattr(args, f.name)
    }
    return cfg.update(flags, source="the command line") if flags else cfg
