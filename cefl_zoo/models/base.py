"""What every video classifier in the zoo shares.

A video batch is a float tensor ``(B, N, K, C, H, W)``: B videos, N clips per video,
K frames per clip, C channels (3), H x W pixels. Models fold the frames into the batch
for the 2-D backbone, ``(B*N*K, C, H, W) -> (B*N*K, d)``, and then model time.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import torch
from torch import nn

from ..hub_mixin import HubMixin
from ..registry import (
    PretrainedCfg,
    UnknownModelError,
    apply_cfg_overlay,
    check_cfg_overlay,
    default_pretrained_cfg,
    get_pretrained_cfg,
)
from .backbones import backbone_data_config, backbone_feature_dim, create_backbone

__all__ = [
    "EXPECTED_SHAPE",
    "ExplainOutput",
    "VideoClassifier",
    "build_model",
    "check_video_input",
]

#: The input layout every model takes.
EXPECTED_SHAPE = "(B, N, K, 3, H, W)"


class ExplainOutput(NamedTuple):
    """Everything a model can say about one batch, for explanations.

    Fields a model does not have are ``None`` (e.g. ``clip_scores`` of the frame-average
    baseline).

    Attributes:
        logits: Class logits, ``(B, C)``.
        clip_scores: Emotion-intensity score of every clip for every class, ``(B, C, N)``;
            sums to 1 over the N clips (paper eq. 5).
        emotion_rich_clip: Index of the emotion-rich clip for the predicted class,
            ``(B,)`` (paper eq. 6).
        frame_weights: Local-global relation weight of every frame, ``(B, N, K)``, in
            ``(0, 1)`` (paper eq. 2); all 1 for a model without the relation (the
            ``ceflnet_resnet18_sal`` ablation), see ``model.has_frame_weights``.
        clip_features: Clip-level features ``V^f``, ``(B, N, d_out)`` (paper eq. 4).
    """

    logits: torch.Tensor
    clip_scores: torch.Tensor | None = None
    emotion_rich_clip: torch.Tensor | None = None
    frame_weights: torch.Tensor | None = None
    clip_features: torch.Tensor | None = None


def check_video_input(x: Any, in_chans: int = 3) -> None:
    """Raise a clear error unless ``x`` is a float video batch ``(B, N, K, C, H, W)``.

    Args:
        x: The candidate input.
        in_chans: Expected channel count C (3 for RGB).

    Raises:
        TypeError: If ``x`` is not a tensor or not floating point.
        ValueError: For a wrong rank, channel count, or an empty N or K axis.

    Example:
        >>> import torch
        >>> check_video_input(torch.zeros(2, 7, 5, 3, 32, 32))
        >>> check_video_input(torch.zeros(7, 5, 3, 32, 32))
        Traceback (most recent call last):
        ...
        ValueError: expected a video batch of shape (B, N, K, 3, H, W), got a 5-D tensor of shape (7, 5, 3, 32, 32); a single video (N, K, 3, H, W) needs a batch axis: x.unsqueeze(0)
    """
    expected = EXPECTED_SHAPE.replace("3", str(in_chans))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of shape {expected}, got {type(x).__name__}")
    shape = tuple(x.shape)
    if x.ndim != 6:
        hint = ""
        if x.ndim == 5:
            hint = "; a single video (N, K, 3, H, W) needs a batch axis: x.unsqueeze(0)"
        elif x.ndim == 4:
            hint = (
                "; a (T, 3, H, W) frame stack must be sampled into N clips of K frames first "
                "(see cefl_zoo.transforms_for(model))"
            )
        raise ValueError(
            f"expected a video batch of shape {expected}, got a {x.ndim}-D tensor of shape "
            f"{shape}{hint}"
        )
    if shape[3] != in_chans:
        hint = ""
        if shape[-1] == in_chans:
            hint = "; channels-last frames (..., H, W, C) need x.permute(0, 1, 2, 5, 3, 4)"
        raise ValueError(
            f"expected a video batch of shape {expected} with {in_chans} channels on axis 3, "
            f"got shape {shape}{hint}"
        )
    if shape[1] == 0 or shape[2] == 0:
        raise ValueError(
            f"expected a video batch of shape {expected} with at least one clip (N) and one "
            f"frame per clip (K), got N={shape[1]}, K={shape[2]} in shape {shape}"
        )
    if not torch.is_floating_point(x):
        raise TypeError(
            f"expected a floating-point video batch of shape {expected}, got dtype {x.dtype}; "
            "convert uint8 frames with x.float() / 255 and normalise them "
            "(cefl_zoo.transforms_for(model) does both)"
        )


def _prefixed(matcher: Any) -> Any:
    """A timm group-matcher value (regex, or list of ``(regex, ordinal)``) for the
    backbone's parameters inside a video model (names prefixed ``backbone.``)."""
    if isinstance(matcher, str):
        return r"^backbone\.(?:" + matcher.removeprefix("^") + ")"
    return [(_prefixed(regex), *rest) for regex, *rest in matcher]


def _regexes(matcher: Any) -> list[str]:
    return [matcher] if isinstance(matcher, str) else [regex for regex, *_ in matcher]


def adapt_channels(cfg: PretrainedCfg, in_chans: int) -> PretrainedCfg:
    """``cfg`` for frames of ``in_chans`` channels: input size, and mean / std per channel.

    Three-channel statistics become their average on every channel (grey frames get the
    mean brightness statistics), as they must for ``Normalize`` to keep the channel count.
    """
    changes: dict[str, Any] = {}
    if cfg.input_size[0] != in_chans:
        changes["input_size"] = (in_chans, *cfg.input_size[1:])
    for key in ("mean", "std"):
        values = tuple(getattr(cfg, key))
        if len(values) != in_chans:
            changes[key] = (sum(values) / len(values),) * in_chans
    return cfg.replace(**changes) if changes else cfg


def _check_num_classes(num_classes: int) -> None:
    if int(num_classes) < 1:
        raise ValueError(
            f"num_classes must be >= 1, got {num_classes}. The video models have no headless "
            "mode (timm's num_classes=0); for features use model.forward_features(x), or "
            "model.forward_head(features, pre_logits=True) for what the classifier sees"
        )


class VideoClassifier(HubMixin, nn.Module):
    """Base class: a 2-D backbone applied to every frame, then a temporal model and head.

    Subclasses implement :meth:`forward_features`, :meth:`forward_head`,
    :meth:`get_classifier` and :meth:`reset_classifier`, and may override
    :meth:`forward_explain`.

    Args:
        backbone: ``timm.create_model`` name or a module with ``num_features``.
        num_classes: Number of output classes C.
        in_chans: Channels per frame.
        pretrained_backbone: Load the backbone's ImageNet weights through timm.
        backbone_kwargs: Extra arguments for ``timm.create_model``.

    Attributes:
        backbone: The frame feature extractor.
        num_features: Frame feature size d: the width of the backbone's features (unlike
            timm, not of :meth:`forward_features`, whose shape depends on the model).
        head_hidden_size: Width of the last axis of ``forward_head(x, pre_logits=True)``
            (what the classifier sees), as in timm.
        num_classes: Number of classes C.
        pretrained_cfg: The :class:`~cefl_zoo.registry.PretrainedCfg` that describes the
            preprocessing and class names of this model.
        architecture: Registry name, set by :func:`build_model` (``None`` for a model
            built directly).
    """

    def __init__(
        self,
        backbone: str | nn.Module = "resnet18",
        num_classes: int = 7,
        in_chans: int = 3,
        pretrained_backbone: bool = False,
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        _check_num_classes(num_classes)
        self.backbone = create_backbone(
            backbone, pretrained=pretrained_backbone, in_chans=in_chans, **(backbone_kwargs or {})
        )
        self.num_features: int = backbone_feature_dim(self.backbone)
        self.num_classes = int(num_classes)
        self.in_chans = int(in_chans)
        self.architecture: str | None = None
        self.init_kwargs: dict[str, Any] = {
            "backbone": backbone if isinstance(backbone, str) else None,
            "num_classes": self.num_classes,
            "in_chans": self.in_chans,
            "backbone_kwargs": dict(backbone_kwargs or {}),
        }
        data_cfg = backbone_data_config(self.backbone)
        self.pretrained_cfg = adapt_channels(
            PretrainedCfg(
                input_size=(in_chans, *data_cfg["input_size"][1:]),
                mean=data_cfg["mean"],
                std=data_cfg["std"],
                interpolation=data_cfg["interpolation"],
            ),
            in_chans,
        )
        #: Width of what ``forward_head(..., pre_logits=True)`` returns on its last axis
        #: (timm's ``head_hidden_size``); subclasses set theirs.
        self.head_hidden_size: int = self.num_features

    # -- shared plumbing -------------------------------------------------------------
    #: Whether :meth:`forward_explain` weights frames (paper eq. 2) rather than giving
    #: ``frame_weights=None`` or all ones.
    has_frame_weights: bool = False

    @property
    def default_cfg(self) -> PretrainedCfg:
        """``pretrained_cfg`` under its older timm name (timm keeps both)."""
        return self.pretrained_cfg

    @default_cfg.setter
    def default_cfg(self, cfg: PretrainedCfg) -> None:
        self.pretrained_cfg = cfg

    @property
    def label_names(self) -> tuple[str, ...]:
        """Class names in output order (``class_0``, ... when the weights name none)."""
        names = self.pretrained_cfg.label_names
        if names is not None and len(names) == self.num_classes:
            return tuple(names)
        return tuple(f"class_{i}" for i in range(self.num_classes))

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error unless ``x`` is a float ``(B, N, K, C, H, W)`` batch."""
        check_video_input(x, self.in_chans)

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Run the backbone on every frame.

        Args:
            x: Video batch ``(B, N, K, C, H, W)``.

        Returns:
            Frame features ``(B, N, K, d)``.
        """
        self.check_input(x)
        b, n, k = x.shape[:3]
        feats = self.backbone(x.flatten(0, 2))
        if feats.ndim != 2:
            raise ValueError(
                f"backbone {type(self.backbone).__name__} returned features of shape "
                f"{tuple(feats.shape)} for {b * n * k} frames; it must return pooled (M, d) "
                "features (timm: num_classes=0 with a global pool, so do not pass "
                "global_pool='' in backbone_kwargs)"
            )
        return feats.reshape(b, n, k, feats.shape[-1])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Features before the classification head (shape depends on the model)."""
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Map :meth:`forward_features` output to logits ``(B, C)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify a video batch.

        Args:
            x: ``(B, N, K, C, H, W)`` float frames, normalised.

        Returns:
            Logits ``(B, C)``.
        """
        return self.forward_head(self.forward_features(x))

    def forward_explain(self, x: torch.Tensor) -> ExplainOutput:
        """Logits plus whatever the model can say about clips and frames."""
        return ExplainOutput(logits=self.forward(x))

    def get_classifier(self) -> nn.Module:
        """The module holding the class-specific parameters."""
        raise NotImplementedError

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the class-specific layers with fresh ones for ``num_classes`` classes.

        The new head's outputs have no class names yet (:attr:`label_names` gives
        ``class_0``, ...), even for as many classes as before; name them with
        ``model.pretrained_cfg = model.pretrained_cfg.replace(label_names=(...))`` (the
        trainer does this for the classes of its data).

        Args:
            num_classes: New number of classes C.
            global_pool: timm's second argument. The pooling over frames and clips is
                part of each architecture, so only ``None`` is accepted.
        """
        raise NotImplementedError

    def _set_num_classes(
        self, num_classes: int, global_pool: str | None = None, new_head: bool = True
    ) -> None:
        if global_pool is not None:
            raise ValueError(
                f"{type(self).__name__} pools frames and clips as its architecture defines; "
                f"reset_classifier takes no global_pool (got {global_pool!r}), pass None"
            )
        _check_num_classes(num_classes)
        self.num_classes = int(num_classes)
        self.init_kwargs["num_classes"] = self.num_classes
        cfg = self.pretrained_cfg
        names = cfg.label_names
        if new_head or (names is not None and len(names) != self.num_classes):
            # A fresh head's outputs are no classes yet: drop the names of the old one,
            # and the tag and scores of the weights it replaces.
            if cfg.has_provenance:
                cfg = cfg.derived(f"new {self.num_classes}-class head on {cfg.name} weights")
            self.pretrained_cfg = cfg.replace(label_names=None)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """Parameter groups from input to output, as timm's layer-wise lr decay reads them.

        The backbone's own groups (its ``group_matcher``, prefixed ``backbone.``; one
        group for a backbone without it), then its parameters those leave out (e.g. a
        final norm), then everything after the backbone (clip encoder, head), last.

        Example:
            >>> import cefl_zoo
            >>> sorted(cefl_zoo.create_model("ceflnet_tiny").group_matcher())
            ['backbone_rest', 'blocks', 'head', 'stem']
        """
        import re

        inner = getattr(self.backbone, "group_matcher", None)
        groups = inner(coarse=coarse) if callable(inner) else {}
        out: dict[str, Any] = {key: _prefixed(value) for key, value in groups.items()}
        patterns = [re.compile(r) for value in out.values() for r in _regexes(value)]
        rest = [
            f"backbone.{name}"
            for name, _ in self.backbone.named_parameters()
            if not any(pat.match(f"backbone.{name}") for pat in patterns)
        ]
        if rest:
            alternatives = "|".join(re.escape(n) for n in rest)
            out["backbone_rest"] = [(rf"^(?:{alternatives})$", (10**8,))]
        out["head"] = [(r"^(?!backbone\.)", (10**9,))]
        return out

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Trade compute for memory in the backbone (timm's gradient checkpointing)."""
        if hasattr(self.backbone, "set_grad_checkpointing"):
            self.backbone.set_grad_checkpointing(enable)
        else:
            raise RuntimeError(
                f"backbone {type(self.backbone).__name__} does not support gradient checkpointing"
            )

    @property
    def config(self) -> dict[str, Any]:
        """The JSON-serialisable description of the model (``architecture`` plus the
        constructor arguments)."""
        return {"architecture": self.architecture, **self.init_kwargs}


def build_model(
    model_cls: type[VideoClassifier],
    variant: str,
    pretrained: bool = False,
    pretrained_cfg: PretrainedCfg | None = None,
    default_args: dict[str, Any] | None = None,
    **kwargs: Any,
) -> VideoClassifier:
    """Build a registered architecture (timm's ``build_model_with_cfg``).

    Args:
        model_cls: The model class.
        variant: Registry name of the architecture.
        pretrained: Load the weights described by ``pretrained_cfg``.
        pretrained_cfg: Weight configuration; defaults to the architecture's default.
        default_args: The architecture's constructor arguments (e.g. its backbone);
            ``kwargs`` override them.
        **kwargs: The caller's constructor arguments. ``num_classes`` defaults to the
            number of class names of the weight set (the tag's; with ``pretrained`` and
            a bare name, the default set's), else 7. timm's ``pretrained_cfg_overlay``
            changes fields of the resulting ``pretrained_cfg``.

    Returns:
        The model, with ``architecture`` and ``pretrained_cfg`` set.

    Raises:
        RuntimeError: ``pretrained=True`` for an architecture without weights.
    """
    hub_kwargs = {k: kwargs.pop(k) for k in HUB_KWARGS if k in kwargs}
    checkpoint_path = kwargs.pop("checkpoint_path", None)
    backbone_rates = {k: kwargs.pop(k) for k in BACKBONE_RATE_KWARGS if k in kwargs}
    overlay = kwargs.pop("pretrained_cfg_overlay", None)
    check_cfg_overlay(overlay)
    cfg = pretrained_cfg
    if cfg is None:
        try:
            cfg = get_pretrained_cfg(variant)
        except UnknownModelError:
            cfg = None
    elsewhere = bool({"file", "hf_hub_id"} & set(overlay or {}))
    if pretrained and (cfg is None or not cfg.tag) and not elsewhere:
        # A bare architecture with pretrained=True means its default weight set (timm);
        # weights from a file or repo of the caller's are not that set (its classes,
        # dataset and notes would not describe them).
        cfg = default_pretrained_cfg(variant) or cfg
    # The overlay changes the weight set settled on; its fields win over all derived here.
    final = apply_cfg_overlay(cfg, overlay, variant)
    if pretrained and (final is None or not final.tag):
        raise RuntimeError(
            f"no pretrained weights are registered for {variant!r}. Use pretrained=False "
            "for a random model, or pretrained_backbone=True for a random head on an "
            "ImageNet backbone; cefl_zoo.list_pretrained() lists the weight sets there are."
        )
    args = {**(default_args or {}), **kwargs}
    if backbone_rates:  # timm's drop_path_rate / drop_block_rate: the backbone's
        args["backbone_kwargs"] = {**backbone_rates, **(args.get("backbone_kwargs") or {})}
    if args.get("num_classes") is None:
        args["num_classes"] = len(final.label_names) if final and final.label_names else 7
    from ..hub import check_keywords

    check_keywords(model_cls, args, f"{variant} ({model_cls.__name__})")
    model = model_cls(**args)
    model.architecture = variant
    if cfg is not None:
        model.pretrained_cfg = adapt_channels(
            _model_cfg(
                model,
                cfg,
                variant,
                kwargs,
                default_args,
                overlay,
                has_weights=pretrained or checkpoint_path is not None,
            ),
            model.in_chans,
        )
    else:
        model.pretrained_cfg = model.pretrained_cfg.replace(architecture=variant)
    model._set_num_classes(model.num_classes, new_head=False)  # drops names that do not fit
    if pretrained:
        from ..hub import load_pretrained

        load_pretrained(model, final, **hub_kwargs)  # (without pretrained: unused, as in timm)
    if checkpoint_path is not None:
        load_checkpoint_file(model, checkpoint_path)
    return model


def _model_cfg(
    model: VideoClassifier,
    cfg: PretrainedCfg,
    variant: str,
    kwargs: dict[str, Any],
    default_args: dict[str, Any] | None,
    overlay: dict[str, Any] | None,
    has_weights: bool,
) -> PretrainedCfg:
    """The ``pretrained_cfg`` a built model carries.

    Random weights (no ``pretrained``, no ``checkpoint_path``) keep the classes and
    preprocessing of a named weight set but none of what names or measures those
    weights (tag, scores, location): a saved copy must not claim them. A swapped
    backbone, or backbone options that change its input size, bring the backbone's
    preprocessing. The caller's ``pretrained_cfg`` / ``pretrained_cfg_overlay`` fields
    come last and win.
    """
    resolved = cfg.replace(architecture=variant)
    if not has_weights and resolved.has_provenance:
        resolved = resolved.derived(
            f"random weights, with the classes and preprocessing of {cfg.name}"
        )
    swapped_backbone = "backbone" in kwargs and kwargs["backbone"] != (default_args or {}).get(
        "backbone"
    )
    resized = bool(set(kwargs.get("backbone_kwargs") or {}) & set(PREPROCESSING_BACKBONE_KWARGS))
    if (swapped_backbone or resized) and not resolved.tag:
        # The user swapped or resized the backbone: follow its preprocessing.
        backbone = model.init_kwargs.get("backbone")
        name = backbone if isinstance(backbone, str) else type(model.backbone).__name__
        resolved = resolved.replace(
            input_size=model.pretrained_cfg.input_size,
            mean=model.pretrained_cfg.mean,
            std=model.pretrained_cfg.std,
            interpolation=model.pretrained_cfg.interpolation,
            notes=f"untrained architecture; {name} backbone",
        )
    return apply_cfg_overlay(resolved, overlay, variant) or resolved


#: ``create_model`` options that go to the weights download (``pretrained=True``).
HUB_KWARGS = ("cache_dir", "token", "force_download", "local_files_only")
#: timm's stochastic-depth options, passed on to the backbone.
BACKBONE_RATE_KWARGS = ("drop_path_rate", "drop_block_rate")
#: ``backbone_kwargs`` that change what the backbone expects as input (its frame size,
#: its preprocessing), so the model follows the backbone's preprocessing.
PREPROCESSING_BACKBONE_KWARGS = ("img_size", "pretrained_cfg", "pretrained_cfg_overlay")


def load_checkpoint_file(model: nn.Module, path: str | os.PathLike) -> None:
    """Load a state dict file into ``model`` (timm's ``checkpoint_path``).

    Args:
        model: The model.
        path: ``.safetensors``, or a ``torch.save`` file holding a state dict, a dict
            with a ``"state_dict"`` or ``"model"`` entry (a cefl-zoo training
            checkpoint), keys optionally prefixed ``module.`` (DDP).

    Raises:
        FileNotFoundError: When ``path`` does not exist.
        RuntimeError: When the keys or shapes do not fit the model (from
            ``load_state_dict``, naming the file).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint_path {path!r} does not exist (no such file)")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state: Any = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict):
            for key in ("state_dict", "model", "state_dict_ema"):
                if isinstance(state.get(key), dict):
                    state = state[key]
                    break
    if not isinstance(state, dict):
        raise RuntimeError(  # noqa: TRY004 (a bad file, not a bad argument)
            f"{path}: holds no state dict ({type(state).__name__})"
        )
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise RuntimeError(f"{path}: does not fit {type(model).__name__}: {err}") from None
