"""Model registry in timm's style.

Architectures register an entry function with :func:`register_model`; weight sets
register a :class:`PretrainedCfg` under ``"<architecture>.<tag>"`` with
:func:`register_pretrained_cfgs`. :func:`create_model` resolves a name, builds the model
and (with ``pretrained=True``) loads the weights through :mod:`cefl_zoo.hub`.

Example:
    >>> import cefl_zoo
    >>> "ceflnet_resnet18" in cefl_zoo.list_models("ceflnet*")
    True
    >>> model = cefl_zoo.create_model("ceflnet_tiny", num_classes=5)
    >>> model.num_classes
    5
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

__all__ = [
    "PretrainedCfg",
    "UnknownModelError",
    "create_model",
    "default_pretrained_cfg",
    "get_pretrained_cfg",
    "is_model",
    "list_models",
    "list_pretrained",
    "model_entrypoint",
    "register_model",
    "register_pretrained_cfgs",
    "split_model_name",
]


@dataclass(frozen=True)
class PretrainedCfg:
    """Everything that travels with one set of weights (timm's ``PretrainedCfg`` idea).

    It says where the weights live, how to feed the model (the preprocessing it was
    trained with), which class names its outputs mean, and where the weights came from.
    An architecture without trained weights still has one (``tag=""``): it carries the
    preprocessing defaults of its backbone.

    Attributes:
        architecture: Registry name of the architecture, e.g. ``"ceflnet_resnet18"``.
        tag: Weight tag, e.g. ``"dfew"``; ``""`` for the untrained default.
        hf_hub_id: Hugging Face Hub repository holding ``model.safetensors`` and
            ``config.json``.
        hf_hub_revision: Pinned revision (a 40-hex commit) of ``hf_hub_id``.
        hf_hub_filename: Weights file inside the repository.
        sha256: Hex sha256 of the weights file; downloads are verified against it.
        file: Local directory with the weights, relative to the ``cefl_zoo`` package
            (for weights that ship inside the wheel), or an absolute path.
        label_names: Class names in output order (canonical names, see
            :mod:`cefl_zoo.labels`).
        num_clips: Clips per video, N (paper: 7).
        frames_per_clip: Frames per clip, K (paper: 5).
        input_size: ``(channels, height, width)`` of each frame.
        mean: Per-channel mean used to normalise frames.
        std: Per-channel standard deviation used to normalise frames.
        interpolation: Resize interpolation (``"bilinear"`` or ``"bicubic"``).
        crop_pct: Evaluation centre-crop fraction, as in timm: the shorter side is resized
            to ``size / crop_pct``, then ``size`` is cropped. 1.0 (the default) resizes
            the whole face crop, so timm's ``resolve_model_data_config`` and
            :func:`~cefl_zoo.transforms_for` agree.
        dataset: Dataset the weights were trained on.
        fold: Split or fold of that dataset.
        metrics: Metrics the weights reached (e.g. ``{"war": 0.65, "uar": 0.56}``).
        train_command: The command that produced the weights.
        license: Licence of the weights.
        status: ``"available"`` when the weights can be loaded, ``"not-trained"`` when
            nobody has trained and published them yet, ``"none"`` for an architecture's
            untrained default.
        notes: Free text shown by :func:`list_pretrained`.
    """

    architecture: str = ""
    tag: str = ""
    hf_hub_id: str | None = None
    hf_hub_revision: str | None = None
    hf_hub_filename: str = "model.safetensors"
    sha256: str | None = None
    file: str | None = None
    label_names: tuple[str, ...] | None = None
    num_clips: int = 7
    frames_per_clip: int = 5
    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    dataset: str | None = None
    fold: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    train_command: str | None = None
    license: str | None = None
    status: str = "none"
    notes: str = ""

    @property
    def name(self) -> str:
        """``"architecture.tag"``, or just the architecture for the untrained default."""
        return f"{self.architecture}.{self.tag}" if self.tag else self.architecture

    @property
    def has_weights(self) -> bool:
        """Whether weights exist for this configuration (``status == "available"``)."""
        return self.status == "available"

    def replace(self, **changes: Any) -> PretrainedCfg:
        """Return a copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def derived(self, notes: str) -> PretrainedCfg:
        """The config of weights made from these ones (a new head, fine-tuning).

        The preprocessing, clip layout, class names and licence stay; what named and
        measured the original weights goes: tag, Hub location, file, sha256, dataset,
        fold, metrics and train command (``status`` becomes ``"none"``). So a fine-tuned
        or re-headed model never carries the scores of the weights it started from.

        Example:
            >>> cfg = PretrainedCfg("ceflnet_tiny", "synthetic", metrics={"war": 0.99})
            >>> new = cfg.derived("new 3-class head on ceflnet_tiny.synthetic")
            >>> new.name, new.metrics, new.notes
            ('ceflnet_tiny', {}, 'new 3-class head on ceflnet_tiny.synthetic')
        """
        return self.replace(
            tag="",
            hf_hub_id=None,
            hf_hub_revision=None,
            file=None,
            sha256=None,
            dataset=None,
            fold=None,
            metrics={},
            train_command=None,
            status="none",
            notes=notes,
        )

    @property
    def has_provenance(self) -> bool:
        """Whether this config names or measures particular weights (a tag, a dataset,
        metrics or a train command)."""
        return bool(self.tag or self.dataset or self.metrics or self.train_command)

    def __getitem__(self, key: str) -> Any:
        """``cfg["mean"]``: read a field the way timm's dict ``pretrained_cfg`` is read."""
        if not isinstance(key, str) or key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """``cfg.get("input_size")``, as on timm's dict ``pretrained_cfg``.

        So timm's own helpers read it, e.g.
        ``timm.data.resolve_model_data_config(model)`` gives the frame preprocessing.
        """
        try:
            return self[key]
        except KeyError:
            return default

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary of all fields (tuples become lists)."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PretrainedCfg:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        for key in ("label_names", "input_size", "mean", "std"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


class UnknownModelError(ValueError):
    """Raised for a model or weight name that is not in the registry."""


_model_entrypoints: dict[str, Callable[..., nn.Module]] = {}
_model_to_module: dict[str, str] = {}
# architecture -> {tag -> cfg}; the first tag registered is the default one.
_pretrained_cfgs: dict[str, dict[str, PretrainedCfg]] = {}


def _load_builtin_models() -> None:
    """Make sure :mod:`cefl_zoo.models` is imported: it registers the built-in models.

    ``import cefl_zoo`` loads nothing heavy (so the command line starts fast); every
    function here that reads or extends the registry calls this first, so the
    built-in models are there whichever module was imported first. No flag of our own:
    ``import_module`` of a loaded module is a dictionary lookup (under a microsecond),
    its module lock makes another thread wait until the registration is complete, and
    inside the import (the models registering themselves) it returns the partly loaded
    module at once.
    """
    importlib.import_module("cefl_zoo.models")


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator that adds a model entry function to the registry.

    The function's name becomes the architecture name. It must accept
    ``pretrained: bool`` and ``**kwargs`` and return an ``nn.Module``.

    Example:
        >>> import cefl_zoo
        >>> from cefl_zoo import CEFLNet, register_model
        >>> @register_model
        ... def my_ceflnet(pretrained=False, **kwargs):
        ...     return cefl_zoo.models.build_model(
        ...         CEFLNet, "my_ceflnet", pretrained, backbone="test_convnext", **kwargs)
        >>> cefl_zoo.create_model("my_ceflnet", num_classes=3).num_classes
        3
    """
    _load_builtin_models()
    name = fn.__name__
    if name in _model_entrypoints and _model_to_module.get(name) != fn.__module__:
        raise ValueError(f"model {name!r} is already registered by {_model_to_module[name]}")
    _model_entrypoints[name] = fn
    _model_to_module[name] = fn.__module__
    module = sys.modules.get(fn.__module__)
    if module is not None and hasattr(module, "__all__") and name not in module.__all__:
        module.__all__.append(name)
    return fn


def register_pretrained_cfgs(cfgs: Iterable[PretrainedCfg]) -> None:
    """Register weight configurations; the first one of an architecture is its default.

    Args:
        cfgs: Configurations whose ``architecture`` and ``tag`` fields name them.
    """
    _load_builtin_models()
    for cfg in cfgs:
        if not cfg.architecture:
            raise ValueError("a PretrainedCfg needs its architecture field set")
        _pretrained_cfgs.setdefault(cfg.architecture, {})[cfg.tag] = cfg


def split_model_name(name: str) -> tuple[str, str | None]:
    """Split ``"arch.tag"`` into ``("arch", "tag")``; a bare name gives ``(name, None)``."""
    arch, _, tag = name.partition(".")
    return arch, (tag or None)


def _unknown(name: str, candidates: Iterable[str], what: str) -> UnknownModelError:
    candidates = sorted(candidates)
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    if close:
        hint = f" Close matches: {', '.join(close)}."
    else:
        hint = f" Available: {', '.join(candidates)}." if len(candidates) <= 20 else ""
    return UnknownModelError(f"unknown {what} {name!r}.{hint} See cefl_zoo.list_models().")


def is_model(name: str) -> bool:
    """Whether ``name`` (optionally ``"arch.tag"``) is a registered architecture."""
    _load_builtin_models()
    return split_model_name(name)[0] in _model_entrypoints


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    """Return the registered entry function of an architecture.

    Raises:
        UnknownModelError: For an unknown name; the message lists close matches.
    """
    _load_builtin_models()
    arch = split_model_name(name)[0]
    if arch not in _model_entrypoints:
        raise _unknown(arch, _model_entrypoints, "model")
    return _model_entrypoints[arch]


def get_pretrained_cfg(name: str) -> PretrainedCfg | None:
    """Return the configuration of ``"arch"`` (its default tag) or ``"arch.tag"``.

    Returns ``None`` for an architecture without registered weight configurations.

    Raises:
        UnknownModelError: For an unknown architecture or tag.
    """
    arch, tag = split_model_name(name)
    model_entrypoint(arch)  # raises for an unknown architecture
    tags = _pretrained_cfgs.get(arch, {})
    if tag is None:
        return next(iter(tags.values()), None)
    if tag not in tags:
        raise _unknown(name, [f"{arch}.{t}" for t in tags if t], "weights")
    return tags[tag]


def default_pretrained_cfg(name: str) -> PretrainedCfg | None:
    """The weight set ``create_model(arch, pretrained=True)`` loads (timm's default tag).

    The first registered weight set of the architecture that can be loaded, else its
    first registered one (whose loading then says how to produce it); ``None`` when it
    has none. A name with a tag returns that tag's configuration.

    Example:
        >>> from cefl_zoo.registry import default_pretrained_cfg
        >>> default_pretrained_cfg("ceflnet_tiny").name
        'ceflnet_tiny.synthetic'
    """
    arch, tag = split_model_name(name)
    if tag is not None:
        return get_pretrained_cfg(name)
    model_entrypoint(arch)  # raises for an unknown architecture
    tagged = [cfg for t, cfg in _pretrained_cfgs.get(arch, {}).items() if t]
    return next((c for c in tagged if c.has_weights), tagged[0] if tagged else None)


def list_models(
    filter: str | Iterable[str] = "",
    module: str | Iterable[str] = "",
    pretrained: bool = False,
    exclude_filters: str | Iterable[str] = "",
    name_matches_cfg: bool = False,
    include_tags: bool | None = None,
) -> list[str]:
    """List registered architectures, optionally filtered like ``timm.list_models``.

    Args:
        filter: fnmatch pattern(s), e.g. ``"ceflnet*"``; empty for all. With tags
            listed, a pattern without a ``.`` also matches every tag of the names it
            matches (``"ceflnet_tiny"`` lists ``ceflnet_tiny.synthetic``), as in timm.
        module: Only architectures defined in these modules, by the last part of the
            module name (``"ceflnet"``, ``"baselines"``).
        pretrained: Only weight sets that are available to load.
        exclude_filters: fnmatch pattern(s) to drop.
        name_matches_cfg: timm's option; every cefl-zoo architecture has a
            configuration, so it changes nothing.
        include_tags: List ``"arch.tag"`` names of weight sets instead of bare
            architectures; defaults to ``pretrained``. ``pretrained=True,
            include_tags=False`` lists the architectures that have weights.

    Returns:
        Sorted names.

    Example:
        >>> from cefl_zoo import list_models
        >>> list_models("*lstm*")
        ['cnnlstm_resnet18']
        >>> list_models("ceflnet_tiny", pretrained=True)
        ['ceflnet_tiny.synthetic']
    """
    del name_matches_cfg
    _load_builtin_models()
    if include_tags is None:
        include_tags = pretrained
    modules = [module] if isinstance(module, str) else list(module)
    modules = [m for m in modules if m]
    archs = [
        a
        for a in _model_entrypoints
        if not modules or _model_to_module.get(a, "").rsplit(".", 1)[-1] in modules
    ]
    if include_tags:
        names = [
            cfg.name
            for arch in archs
            for cfg in _pretrained_cfgs.get(arch, {}).values()
            if cfg.tag and (cfg.has_weights or not pretrained)
        ]
    else:
        names = [a for a in archs if not pretrained or _has_available_weights(a)]
    includes = [filter] if isinstance(filter, str) else list(filter)
    includes = [f for f in includes if f]
    if include_tags:  # timm: "resnet18" matches "resnet18.a1_in1k"
        includes = [f if "." in f else f"{f}.*" for f in includes] + includes
    if includes:
        names = [n for n in names if any(fnmatch.fnmatch(n, f) for f in includes)]
    excludes = [exclude_filters] if isinstance(exclude_filters, str) else list(exclude_filters)
    excludes = [f for f in excludes if f]
    if excludes:
        names = [n for n in names if not any(fnmatch.fnmatch(n, f) for f in excludes)]
    return sorted(names)


def _has_available_weights(arch: str) -> bool:
    return any(c.tag and c.has_weights for c in _pretrained_cfgs.get(arch, {}).values())


def list_pretrained(filter: str = "", include_unavailable: bool = True) -> list[PretrainedCfg]:
    """List the registered weight sets with their status.

    Args:
        filter: fnmatch pattern on ``"arch.tag"`` names; empty for all. A pattern
            without a ``.`` also matches every tag of the names it matches
            (``"ceflnet_tiny"`` lists ``ceflnet_tiny.synthetic``), as in
            :func:`list_models`.
        include_unavailable: Also list weight sets that are registered but not trained
            yet (``status == "not-trained"``), as torchvision lists its weights.

    Returns:
        The configurations, sorted by name. ``cfg.status`` says whether each can be
        loaded; ``cfg.train_command`` says how to produce the missing ones.

    Example:
        >>> from cefl_zoo import list_pretrained
        >>> all(cfg.tag for cfg in list_pretrained())
        True
    """
    _load_builtin_models()
    cfgs = [
        cfg
        for tags in _pretrained_cfgs.values()
        for cfg in tags.values()
        if cfg.tag and (include_unavailable or cfg.has_weights)
    ]
    if filter:
        patterns = [filter] if "." in filter else [filter, f"{filter}.*"]
        cfgs = [c for c in cfgs if any(fnmatch.fnmatch(c.name, p) for p in patterns)]
    return sorted(cfgs, key=lambda c: c.name)


def create_model(
    model_name: str | os.PathLike,
    pretrained: bool = False,
    num_classes: int | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Create a model by name, timm style.

    Args:
        model_name: A registered architecture (``"ceflnet_resnet18"``), an architecture
            with a weight tag (``"ceflnet_resnet18.dfew"``), ``"hf-hub:org/repo"`` or a
            local directory holding ``config.json`` + ``model.safetensors``; like
            open_clip, these two name a set of weights and always load it.
        pretrained: Load the weights named by the tag (or the architecture's default
            tag). Raises a clear error where no weights exist. Without it, a tagged name
            gives random weights with the tag's classes and preprocessing, and a
            ``pretrained_cfg`` without the tag, scores or location of those weights.
        num_classes: Number of output classes. Defaults to the number of classes of the
            weight set the name has (its tag's; with ``pretrained=True`` and a bare name,
            the default set's), else 7. Loading weights into a model with
            another number of classes keeps everything but the classifier.
        **kwargs: Passed to the model constructor (e.g. ``backbone="resnet34"``,
            ``eian_kernel_size=3``, ``pretrained_backbone=True``), except timm's own
            options, which mean what they mean in ``timm.create_model``:

            * ``pretrained_cfg``: a weight tag (``"synthetic"``), a
              :class:`PretrainedCfg` or a dict of its fields;
            * ``pretrained_cfg_overlay``: fields to change in it (e.g. ``{"file":
              "/path/to/folder"}``);
            * ``checkpoint_path``: a state dict file (``.safetensors``, ``.pth``) or a
              cefl-zoo training checkpoint to load after building;
            * ``drop_path_rate``, ``drop_block_rate``: go to the backbone
              (``backbone_kwargs``);
            * ``cache_dir``, ``token``, ``force_download``, ``local_files_only``: Hub
              options for the download of ``pretrained=True`` weights.

    Returns:
        The model, in training mode, on the CPU.

    Raises:
        UnknownModelError: For an unknown name (the message lists close matches).

    Example:
        >>> from cefl_zoo import create_model
        >>> model = create_model("ceflnet_tiny", num_classes=7)
        >>> type(model).__name__
        'CEFLNet'
    """
    model_name = os.fspath(model_name)  # save_pretrained() returns a Path
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if _is_hub_reference(model_name):
        from . import hub

        return hub.load_model(model_name, **kwargs)
    if _looks_like_path(model_name) and not is_model(model_name):
        from .hub import hub_hint

        raise FileNotFoundError(
            f"no model folder {model_name!r} ({os.path.abspath(model_name)}"
            " does not exist). A folder must be one written by save_pretrained() "
            "(config.json + model.safetensors); a registry name looks like "
            "'ceflnet_resnet18' or 'ceflnet_tiny.synthetic' (see cefl_zoo.list_models())."
            + hub_hint(model_name)
        )
    arch, _tag = split_model_name(model_name)
    entry = model_entrypoint(arch)
    cfg = _resolve_cfg_argument(arch, get_pretrained_cfg(model_name), kwargs)
    return entry(pretrained=pretrained, pretrained_cfg=cfg, **kwargs)


def _create_on_meta(model_name: str, **kwargs: Any) -> nn.Module:
    """:func:`create_model` on the ``meta`` device: shapes and config, no memory.

    A backbone whose construction reads the values of tensors it makes (timm before
    1.0.21 turns ``torch.linspace`` into ConvNeXt's drop-path rates with ``.tolist()``)
    cannot be built on ``meta``; such a model is built on the CPU instead, with a real
    (random) copy of its weights.
    """
    import torch

    try:
        with torch.device("meta"):
            return create_model(model_name, **kwargs)
    except (NotImplementedError, RuntimeError) as err:
        if "meta" not in str(err):
            raise
    with torch.device("cpu"):
        return create_model(model_name, **kwargs)


def _resolve_cfg_argument(
    arch: str, cfg: PretrainedCfg | None, kwargs: dict[str, Any]
) -> PretrainedCfg | None:
    """Resolve timm's ``pretrained_cfg`` (popped from kwargs) to the cfg it names.

    A tag or a :class:`PretrainedCfg` replaces ``cfg``. A dict of fields joins
    ``pretrained_cfg_overlay`` in ``kwargs``: :func:`~cefl_zoo.models.base.build_model`
    applies both last, to the weight set it settles on (with ``pretrained=True`` and
    a bare name, the default one), so explicit fields win over everything it derives.
    """
    given = kwargs.pop("pretrained_cfg", None)
    if isinstance(given, str):  # a tag, as in timm
        cfg = get_pretrained_cfg(f"{arch}.{given}" if given else arch)
    elif isinstance(given, PretrainedCfg):
        cfg = given
    elif isinstance(given, dict):
        kwargs["pretrained_cfg_overlay"] = {**given, **(kwargs.get("pretrained_cfg_overlay") or {})}
    elif given is not None:
        raise TypeError(
            f"pretrained_cfg must be a weight tag, a PretrainedCfg or a dict, got "
            f"{type(given).__name__}"
        )
    check_cfg_overlay(kwargs.get("pretrained_cfg_overlay"))
    return cfg


def check_cfg_overlay(overlay: Mapping[str, Any] | None) -> None:
    """Raise a :class:`TypeError` for ``pretrained_cfg_overlay`` keys that are no
    :class:`PretrainedCfg` field."""
    if overlay is not None and not isinstance(overlay, Mapping):
        raise TypeError(
            f"pretrained_cfg_overlay must be a dict of PretrainedCfg fields, got "
            f"{type(overlay).__name__}"
        )
    unknown = sorted(set(overlay or {}) - set(PretrainedCfg.__dataclass_fields__))
    if unknown:
        raise TypeError(
            f"pretrained_cfg_overlay: unknown field(s) {', '.join(unknown)}; PretrainedCfg "
            f"has {', '.join(PretrainedCfg.__dataclass_fields__)}"
        )


def apply_cfg_overlay(
    cfg: PretrainedCfg | None, overlay: Mapping[str, Any] | None, arch: str
) -> PretrainedCfg | None:
    """``cfg`` with the fields of timm's ``pretrained_cfg_overlay`` changed.

    Weights from somewhere else (``file`` or ``hf_hub_id`` in the overlay) are those
    weights: loadable whatever the registered set's status, unverified unless a
    ``sha256`` comes along, and without the scores and train command of the registered
    set (unless the overlay gives them). The tag stays (``"custom"`` when there was
    none), as in timm, with the registered classes and preprocessing.
    """
    check_cfg_overlay(overlay)
    if not overlay:
        return cfg
    base = cfg.to_dict() if cfg is not None else {"architecture": arch}
    new = PretrainedCfg.from_dict({**base, **overlay})
    if {"file", "hf_hub_id"} & set(overlay):
        new = new.replace(
            status=overlay.get("status", "available"),
            sha256=overlay.get("sha256"),
            # one location: a file replaces the registered repo, a repo the file
            file=overlay.get("file"),
            hf_hub_id=overlay.get("hf_hub_id"),
            hf_hub_revision=overlay.get("hf_hub_revision"),
            metrics=dict(overlay.get("metrics") or {}),
            train_command=overlay.get("train_command"),
            tag=new.tag or "custom",
        )
    return new


def _looks_like_path(name: str) -> bool:
    """A name that can only mean a folder: it has a path separator or starts with . or ~."""
    return any(sep in name for sep in ("/", "\\", os.sep)) or name.startswith((".", "~"))


def _is_hub_reference(name: str) -> bool:
    """``hf-hub:`` / ``hf_hub:`` / ``local-dir:`` names and existing weight folders."""
    from .hub import is_reference

    return is_reference(name)
