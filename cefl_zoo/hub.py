"""Load weights from the Hugging Face Hub or a local directory, verified and strict.

A set of weights is a folder in the layout of ``huggingface_hub.PyTorchModelHubMixin``:

* ``model.safetensors`` - the state dict;
* ``config.json`` - the architecture, its constructor arguments and the
  :class:`~cefl_zoo.registry.PretrainedCfg` (labels, preprocessing, provenance, sha256);
* ``README.md`` - the model card (see :mod:`cefl_zoo.model_card`).

The folder can be a Hugging Face Hub repository (``"org/repo"``, ``"hf-hub:org/repo@rev"``,
timm's ``"hf_hub:org/repo"``) or a local directory (a path, or timm's ``"local-dir:PATH"``);
both go through the same code. Hub files are fetched with
:func:`huggingface_hub.hf_hub_download`, so the user's cache (``HF_HUB_CACHE``), token,
mirror (``HF_ENDPOINT``) and ``HF_HUB_OFFLINE`` behave as everywhere else. Every weights
file is checked against a sha256 (pinned in the registry, or recorded in ``config.json``
when the folder was saved) and loaded strictly; each failure raises a
:class:`PretrainedWeightsError` subclass whose message names the source, the file and
the fix.

Example:
    >>> import tempfile, torch, cefl_zoo
    >>> model = cefl_zoo.create_model("ceflnet_tiny", num_classes=3).eval()
    >>> folder = model.save_pretrained(tempfile.mkdtemp())
    >>> again = cefl_zoo.create_model(str(folder)).eval()
    >>> x = torch.randn(1, 7, 5, 3, 32, 32)
    >>> torch.equal(model(x), again(x))
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ._version import __version__
from .registry import PretrainedCfg, apply_cfg_overlay, check_cfg_overlay, is_model

if TYPE_CHECKING:
    from .models.base import VideoClassifier

__all__ = [
    "ARTIFACTS_KEY",
    "ARTIFACT_NAMES",
    "CONFIG_NAME",
    "LIBRARY_NAME",
    "MODEL_CARD_NAME",
    "WEIGHTS_NAME",
    "ChecksumMismatchError",
    "ConfigMismatchError",
    "CorruptWeightsError",
    "PretrainedWeightsError",
    "WeightsNotFoundError",
    "WeightsNotTrainedError",
    "WeightsSource",
    "build_from_config",
    "from_pretrained",
    "hub_hint",
    "is_reference",
    "load_model",
    "load_pretrained",
    "load_state_dict_into",
    "load_weights",
    "read_config",
    "read_safetensors",
    "resolve_file",
    "sha256sum",
    "split_reference",
    "verify_sha256",
]

_logger = logging.getLogger(__name__)

#: Weights file of a folder (``huggingface_hub.constants.SAFETENSORS_SINGLE_FILE``).
WEIGHTS_NAME = "model.safetensors"
#: Architecture, constructor arguments and :class:`~cefl_zoo.registry.PretrainedCfg`.
CONFIG_NAME = "config.json"
#: The model card.
MODEL_CARD_NAME = "README.md"
#: How downloads identify themselves to the Hub (with ``library_version``).
LIBRARY_NAME = "cefl-zoo"

#: Optional files ``cefl-zoo export`` writes next to the weights (``--onnx``,
#: ``--torch-export``). ``config.json`` records the sha256 of those it wrote under
#: :data:`ARTIFACTS_KEY`; ``check_folder`` and ``push`` refuse any that is not recorded.
ARTIFACT_NAMES = ("model.onnx", "model.onnx.data", "model.pt2")
#: The ``config.json`` key of the exported extra files (``{file name: sha256}``).
ARTIFACTS_KEY = "artifacts"

#: ``config.json`` keys that are not constructor arguments.
META_KEYS = frozenset(
    {
        "architecture",
        "model_class",
        "pretrained_cfg",
        "training",
        "cefl_zoo_version",
        ARTIFACTS_KEY,
    }
)

_HEX40 = re.compile(r"^[0-9a-f]{40}$")


# -- errors ------------------------------------------------------------------------------
class PretrainedWeightsError(RuntimeError):
    """Weights could not be found, verified or loaded; the message says what to do."""


class WeightsNotTrainedError(PretrainedWeightsError):
    """The weight set is registered, but nobody has trained and published it yet."""


class WeightsNotFoundError(PretrainedWeightsError):
    """A repository, revision, directory or file does not exist or cannot be reached."""


class ChecksumMismatchError(PretrainedWeightsError):
    """A weights file does not have the sha256 it was published with."""


class CorruptWeightsError(PretrainedWeightsError):
    """A weights or config file cannot be parsed (truncated, empty, wrong format)."""


class ConfigMismatchError(PretrainedWeightsError):
    """``config.json`` or the weights describe another model than the one asked for."""


# -- where weights live --------------------------------------------------------------------
@dataclass(frozen=True)
class WeightsSource:
    """A weights folder: a Hugging Face Hub repository or a local directory.

    Attributes:
        location: ``"org/repo"`` for the Hub, a directory path otherwise.
        is_local: Whether ``location`` is a local directory.
        revision: Hub revision (branch, tag or 40-hex commit); ``None`` for the default
            branch. Always ``None`` for a local directory.
    """

    location: str
    is_local: bool
    revision: str | None = None

    @classmethod
    def parse(
        cls, name_or_path: str | os.PathLike[str], revision: str | None = None
    ) -> WeightsSource:
        """Interpret ``"hf-hub:org/repo[@rev]"``, ``"org/repo"`` or a directory path.

        timm's spellings work too: ``"hf_hub:org/repo"`` for the Hub and
        ``"local-dir:PATH"`` for a directory.

        Args:
            name_or_path: What the user passed.
            revision: Hub revision; must agree with an ``@rev`` suffix if both are given.

        Raises:
            WeightsNotFoundError: For a path-like name whose directory does not exist, or
                a malformed Hub repo id.
            ValueError: For an empty name or two different revisions.
        """
        if isinstance(name_or_path, os.PathLike):
            return cls._local(Path(name_or_path), revision)
        name = str(name_or_path).strip()
        if not name:
            raise ValueError("expected a Hugging Face repo id ('org/repo') or a directory, got ''")
        kind, rest = split_reference(name)
        if kind == "local":
            if not rest:
                raise WeightsNotFoundError(
                    f"{name!r} names no directory. Fix: write local-dir:PATH, where PATH is a "
                    f"folder holding {CONFIG_NAME} + {WEIGHTS_NAME}."
                )
            return cls._local(Path(rest), revision)
        explicit_hub = kind == "hub"
        if not explicit_hub and os.path.isdir(name):
            return cls._local(Path(name), revision)
        repo = rest if explicit_hub else name
        repo, _, suffix = repo.partition("@")
        if suffix and revision and suffix != revision:
            raise ValueError(
                f"two revisions given for {name!r}: {suffix!r} in the name and "
                f"revision={revision!r}; give one"
            )
        looks_like_path = (
            repo.startswith((".", "/", "~"))
            or repo.count("/") > 1
            or os.sep in repo.replace("/", "")
        )
        if not explicit_hub and (looks_like_path or repo.count("/") != 1):
            registered = (
                f" For the registered weights use create_model({name!r}, pretrained=True)."
                if is_model(name)
                else ""
            )
            raise WeightsNotFoundError(
                f"{name!r} is neither an existing directory nor a Hugging Face repo id "
                "('org/repo'). Fix: check the path (it must be a folder holding "
                f"{CONFIG_NAME} + {WEIGHTS_NAME}), or write 'hf-hub:org/repo' for the Hub."
                f"{registered}"
            )
        _check_repo_id(repo, name)
        return cls(location=repo, is_local=False, revision=suffix or revision or None)

    @classmethod
    def _local(cls, path: Path, revision: str | None) -> WeightsSource:
        if revision:
            raise ValueError(
                f"revision={revision!r} has no meaning for local directory {str(path)!r}"
            )
        path = path.expanduser()
        if not path.is_dir():
            what = "is a file, not a directory" if path.exists() else "does not exist"
            raise WeightsNotFoundError(
                f"local weights directory {str(path)!r} {what}. Fix: pass the folder that "
                f"holds {CONFIG_NAME} + {WEIGHTS_NAME} (written by model.save_pretrained(dir) "
                "or `cefl-zoo export`)."
            )
        return cls(location=str(path), is_local=True)

    @property
    def name(self) -> str:
        """The name ``create_model`` takes (``"hf-hub:org/repo[@rev]"`` or the directory)."""
        if self.is_local:
            return self.location
        return f"hf-hub:{self.location}" + (f"@{self.revision}" if self.revision else "")

    def __str__(self) -> str:
        if self.is_local:
            return f"local directory {self.location!r}"
        rev = f" at revision {self.revision!r}" if self.revision else ""
        return f"Hugging Face repo {self.location!r}{rev}"


#: Prefixes of a Hub repository (ours, open_clip's, and timm's spelling).
HUB_PREFIXES = ("hf-hub:", "hf_hub:")
#: Prefix of a local directory (timm's spelling); a plain path works as well.
LOCAL_PREFIX = "local-dir:"
_BARE_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")  # no ./x, ../x


def split_reference(name: str) -> tuple[str | None, str]:
    """Split an explicit weights reference into ``(kind, rest)``.

    ``kind`` is ``"hub"`` for ``hf-hub:`` / ``hf_hub:``, ``"local"`` for ``local-dir:``,
    ``None`` for a name without a prefix (returned unchanged).

    Example:
        >>> split_reference("hf_hub:org/repo@v1"), split_reference("local-dir:/w")
        (('hub', 'org/repo@v1'), ('local', '/w'))
        >>> split_reference("ceflnet_tiny")
        (None, 'ceflnet_tiny')
    """
    for prefix in HUB_PREFIXES:
        if name.startswith(prefix):
            return "hub", name[len(prefix) :].strip()
    if name.startswith(LOCAL_PREFIX):
        return "local", name[len(LOCAL_PREFIX) :].strip()
    return None, name


def is_reference(name: str | os.PathLike[str]) -> bool:
    """Whether ``name`` explicitly names a weights folder: ``hf-hub:`` / ``hf_hub:`` /
    ``local-dir:`` prefix, a path object, or an existing directory that is not a
    registry name.

    Example:
        >>> is_reference("hf_hub:org/repo"), is_reference("ceflnet_tiny")
        (True, False)
    """
    if isinstance(name, os.PathLike):
        return True
    name = str(name)
    if split_reference(name)[0] is not None:
        return True
    return not is_model(name) and os.path.isdir(name)


def hub_hint(name: str) -> str:
    """For a name that looks like a bare ``org/repo`` (and is no folder), the advice to
    write ``hf-hub:org/repo``; ``""`` otherwise.

    Example:
        >>> hub_hint("org/tiny")
        " Did you mean the Hugging Face repo 'hf-hub:org/tiny'? Write it with the hf-hub: prefix."
        >>> hub_hint("ceflnet_tiny"), hub_hint("./runs/model")
        ('', '')
    """
    name = str(name).strip()
    if split_reference(name)[0] is not None or os.path.exists(name):
        return ""
    if not _BARE_REPO_ID.match(name):
        return ""
    return f" Did you mean the Hugging Face repo 'hf-hub:{name}'? Write it with the hf-hub: prefix."


def _check_repo_id(repo: str, name: str) -> None:
    """Refuse a malformed Hub repo id (``hf-hub:``, ``hf-hub:org/repo/sub``) up front."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        if not repo:
            raise HFValidationError("the repo id is empty")
        validate_repo_id(repo)
    except HFValidationError as err:
        raise WeightsNotFoundError(
            f"{name!r} does not name a valid Hugging Face repo: {' '.join(str(err).split())} "
            "Fix: write hf-hub:org/repo or hf-hub:org/repo@revision (a branch, tag or commit); "
            f"a sub-folder of a repo is not supported, download it and pass the local directory."
        ) from err


def _offline() -> bool:
    import huggingface_hub
    from huggingface_hub import constants

    is_offline = getattr(huggingface_hub, "is_offline_mode", None)  # (newer releases)
    return bool(is_offline() if is_offline is not None else constants.HF_HUB_OFFLINE)


def resolve_file(
    source: WeightsSource,
    filename: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    force_download: bool = False,
    token: str | bool | None = None,
    local_files_only: bool = False,
) -> Path:
    """Return a local path to ``filename`` of ``source``, downloading it if needed.

    Hub files go through :func:`huggingface_hub.hf_hub_download` with the pinned
    revision and ``library_name="cefl-zoo"``.

    Args:
        source: Where the folder lives.
        filename: File inside the folder, e.g. ``"model.safetensors"``.
        cache_dir: Hugging Face cache; defaults to ``HF_HUB_CACHE``.
        force_download: Download again even if cached.
        token: Hugging Face token (defaults to the logged-in one).
        local_files_only: Use only the cache.

    Raises:
        WeightsNotFoundError: Offline with an empty cache, unknown repo, revision or file.
    """
    if source.is_local:
        path = Path(source.location) / filename
        if not path.is_file():
            present = sorted(p.name for p in Path(source.location).iterdir())
            raise WeightsNotFoundError(
                f"{filename} is missing from {source} (it holds: {', '.join(present) or 'nothing'}). "
                f"Fix: save the folder with model.save_pretrained({source.location!r}) or "
                "`cefl-zoo export RUN_DIR OUT_DIR`, which write config.json, model.safetensors "
                "and README.md together."
            )
        return path

    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    repo, rev = source.location, source.revision
    rev_flag = f" --revision {rev}" if rev else ""
    try:
        return Path(
            huggingface_hub.hf_hub_download(
                repo,
                filename,
                revision=rev,
                cache_dir=cache_dir,
                force_download=force_download,
                token=token,
                local_files_only=local_files_only,
                library_name=LIBRARY_NAME,
                library_version=__version__,
            )
        )
    except LocalEntryNotFoundError as err:
        cache = str(cache_dir or constants.HF_HUB_CACHE)
        if _offline():
            why = "HF_HUB_OFFLINE=1 is set"
        elif local_files_only:
            why = "local_files_only=True"
        else:
            why = "the Hub could not be reached"
        fixes = [
            (
                f"on a machine with network access run `hf download {repo} {filename}{rev_flag}` "
                "with the same HF_HUB_CACHE (or copy that cache here)"
            )
        ]
        if _offline():
            fixes.append("unset HF_HUB_OFFLINE")
        elif local_files_only:
            fixes.append("pass local_files_only=False")
        else:
            fixes.append("check the network and HF_ENDPOINT")
        fixes.append(f"pass a local directory holding {CONFIG_NAME} + {WEIGHTS_NAME}")
        raise WeightsNotFoundError(
            f"cannot get {filename} of {source}: {why} and the file is not in the Hugging Face "
            f"cache {cache!r}. Fix: {', or '.join(fixes)}."
        ) from err
    except GatedRepoError as err:
        raise WeightsNotFoundError(
            f"{source} is gated: cannot get {filename}. Fix: accept its conditions on "
            f"https://huggingface.co/{repo} and log in (`hf auth login` or HF_TOKEN)."
        ) from err
    except RepositoryNotFoundError as err:
        raise WeightsNotFoundError(
            f"{source} does not exist or is private: cannot get {filename}. Fix: check the repo "
            "id; for a private repo log in (`hf auth login`) or pass token=..."
        ) from err
    except RevisionNotFoundError as err:
        raise WeightsNotFoundError(
            f"revision {rev!r} does not exist in Hugging Face repo {repo!r}: cannot get "
            f"{filename}. Fix: use a branch, tag or commit listed on https://huggingface.co/{repo}."
        ) from err
    except EntryNotFoundError as err:
        raise WeightsNotFoundError(
            f"{source} has no file {filename}. Fix: check the file name, or publish the folder "
            f"with `cefl-zoo push OUT_DIR {repo}`."
        ) from err
    except OSError as err:  # HTTP and connection errors
        raise WeightsNotFoundError(
            f"cannot download {filename} from {source}: {type(err).__name__}: {err}. Fix: check "
            "the network, HF_ENDPOINT and your token, or pass a local directory."
        ) from err
    except ValueError as err:  # force_download=True offline or unreachable; a bad repo id
        text = " ".join(str(err).split()) or type(err).__name__
        cause = err.__cause__ or err.__context__
        if cause is not None:
            text += f" ({type(cause).__name__}: {' '.join(str(cause).split())})"
        if force_download:
            if _offline():
                fix = "unset HF_HUB_OFFLINE, or drop force_download=True to use the cached copy"
            else:
                fix = (
                    "check the network, HF_ENDPOINT and your token, or drop force_download=True "
                    "to use the cached copy"
                )
            raise WeightsNotFoundError(
                f"cannot download {filename} from {source} with force_download=True: {text}. "
                f"Fix: {fix}."
            ) from err
        raise WeightsNotFoundError(
            f"cannot get {filename} of {source}: {text}. Fix: write the repo as "
            "hf-hub:org/repo[@revision], or pass a local directory."
        ) from err


def _commit_of(path: Path) -> str | None:
    """The 40-hex commit of a file in a Hugging Face cache snapshot, if it is one."""
    parent = path.parent.name
    return parent if _HEX40.match(parent) and path.parent.parent.name == "snapshots" else None


# -- verification ----------------------------------------------------------------------------
def sha256sum(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"
        >>> _ = p.write_bytes(b"abc")
        >>> sha256sum(p)[:16]
        'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(
    path: str | os.PathLike[str], expected: str, *, source: Any, pinned_by: str
) -> None:
    """Raise :class:`ChecksumMismatchError` unless ``path`` hashes to ``expected``.

    Args:
        path: The local file.
        expected: Hex sha256 it must have.
        source: Where it came from (for the message).
        pinned_by: Where ``expected`` was recorded (for the message).
    """
    actual = sha256sum(path)
    if actual != expected.lower():
        fix = (
            "delete it and load again with force_download=True"
            if isinstance(source, WeightsSource) and not source.is_local
            else "restore the file, or re-save the folder with save_pretrained / `cefl-zoo export`"
        )
        raise ChecksumMismatchError(
            f"{Path(path).name} from {source} has sha256 {actual}, but {pinned_by} expects "
            f"{expected}: the file is corrupt, truncated or was replaced ({path}). Fix: {fix}."
        )


def read_config(
    source: WeightsSource,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    force_download: bool = False,
    token: str | bool | None = None,
    local_files_only: bool = False,
) -> dict[str, Any]:
    """Read and check ``config.json`` of a weights folder.

    Returns:
        The parsed configuration: ``architecture``, ``model_class``, constructor
        arguments, ``pretrained_cfg`` and (optionally) ``training``.

    Raises:
        WeightsNotFoundError: When the file cannot be found or fetched.
        CorruptWeightsError: When it is not a JSON object with ``model_class``.
    """
    path = resolve_file(
        source,
        CONFIG_NAME,
        cache_dir=cache_dir,
        force_download=force_download,
        token=token,
        local_files_only=local_files_only,
    )
    fix = "Fix: re-save the folder with model.save_pretrained(dir) or `cefl-zoo export`."
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptWeightsError(
            f"{CONFIG_NAME} of {source} is not valid JSON ({err}). {fix}"
        ) from err
    if not isinstance(config, dict) or not config.get("model_class"):
        raise CorruptWeightsError(
            f"{CONFIG_NAME} of {source} is not a cefl-zoo config: it needs a JSON object with "
            f"'model_class' (and 'architecture'), got {str(config)[:80]!r}. {fix}"
        )
    if not isinstance(config.get("pretrained_cfg", {}), dict):
        raise CorruptWeightsError(
            f"{CONFIG_NAME} of {source}: 'pretrained_cfg' must be an object. {fix}"
        )
    if _commit_of(path):
        config["_commit"] = _commit_of(path)
    return config


def read_safetensors(path: str | os.PathLike[str], *, source: Any) -> dict[str, torch.Tensor]:
    """Read a safetensors file onto the CPU.

    Raises:
        CorruptWeightsError: For a truncated, empty or non-safetensors file (e.g. a git-lfs
            pointer).
    """
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # safetensors raises its own error types and OSError
        raise CorruptWeightsError(
            f"{Path(path).name} from {source} is not a readable safetensors file "
            f"({type(err).__name__}: {err}); it is truncated, empty, or not weights at all "
            f"(e.g. a git-lfs pointer) ({path}). Fix: download it again with force_download=True "
            "(Hub) or re-save the folder with save_pretrained / `cefl-zoo export`."
        ) from err


# -- loading into a model ------------------------------------------------------------------
def _classifier_prefix(model: torch.nn.Module) -> str | None:
    try:
        clf = model.get_classifier()  # type: ignore[operator]
    except (AttributeError, NotImplementedError):
        return None
    for name, module in model.named_modules():
        if module is clf:
            return name
    return None


def _config_differences(config: Mapping[str, Any] | None, model: torch.nn.Module) -> str:
    if not config:
        return ""
    init = getattr(model, "init_kwargs", {})
    diffs = [
        f"{k}: weights {config[k]!r} vs model {init[k]!r}"
        for k in sorted(init)
        if k in config and k not in META_KEYS and config[k] != init[k] and k != "num_classes"
    ]
    return (
        f" The model's constructor arguments differ from {CONFIG_NAME}: {'; '.join(diffs)}."
        if diffs
        else ""
    )


def _preview(keys: list[str], n: int = 4) -> str:
    more = f", ... ({len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_state_dict_into(
    model: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    source: Any = "state dict",
    config: Mapping[str, Any] | None = None,
    strict: bool = True,
) -> list[str]:
    """Load a state dict strictly, dropping the classifier when the class count differs.

    When ``config["num_classes"]`` differs from ``model.num_classes`` (timm behaviour),
    the weights of ``model.get_classifier()`` are skipped with a logged warning and the
    model keeps its freshly initialised classifier; everything else must still match.

    Args:
        model: The model to fill (its parameters are overwritten in place).
        state_dict: Tensors by name.
        source: Where the weights came from (for messages).
        config: The weights' ``config.json``, used for the class count and for the hint
            that lists constructor arguments that differ.
        strict: Refuse missing, unexpected or mis-shaped keys. With ``False``, load what
            fits and log a warning that lists the rest.

    Returns:
        Names of the model's parameters and buffers left untouched (the dropped
        classifier, or what did not fit with ``strict=False``).

    Raises:
        ConfigMismatchError: When ``strict`` and the weights do not fit the model.
    """
    state = dict(state_dict)
    own = model.state_dict()
    skipped: list[str] = []
    ckpt_classes = (config or {}).get("num_classes")
    model_classes = getattr(model, "num_classes", None)
    prefix = _classifier_prefix(model)
    if ckpt_classes is not None and model_classes is not None and ckpt_classes != model_classes:
        if prefix is None:
            raise ConfigMismatchError(
                f"weights from {source} have {ckpt_classes} classes, the model {model_classes}, "
                f"and {type(model).__name__} does not say which module is its classifier "
                "(get_classifier). Fix: build the model with the weights' num_classes."
            )
        dropped = [k for k in state if k.startswith(prefix + ".")]
        for key in dropped:
            del state[key]
        skipped = [k for k in own if k.startswith(prefix + ".")]
        _logger.warning(
            "%s: the weights have %d classes, the model %d: keeping a new, untrained "
            "classifier (%s.*) and loading everything else",
            source,
            ckpt_classes,
            model_classes,
            prefix,
        )
    missing = [k for k in own if k not in state and k not in skipped]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_preview(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_preview(unexpected)})")
        if mismatched:
            shapes = [
                f"{k}: weights {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                for k in mismatched
            ]
            parts.append(f"{len(mismatched)} with another shape ({_preview(shapes, 2)})")
        arch = getattr(model, "architecture", None) or type(model).__name__
        message = (
            f"weights from {source} do not fit {arch}: {'; '.join(parts)}."
            f"{_config_differences(config, model)}"
        )
        if strict:
            raise ConfigMismatchError(
                f"{message} Fix: build the model with the constructor arguments in "
                f"{CONFIG_NAME} (create_model(<folder or hf-hub:repo>) does that), or pass "
                "strict=False to load only what fits."
            )
        for key in unexpected + mismatched:
            del state[key]
        _logger.warning("%s Loading the %d tensors that fit.", message, len(state))
        skipped += missing + mismatched
    # Every remaining key is known to fit; missing ones (dropped classifier, strict=False)
    # keep their current values.
    model.load_state_dict(state, strict=False)
    return skipped


def load_weights(
    model: VideoClassifier,
    repo_or_dir: str | os.PathLike[str] | WeightsSource,
    *,
    revision: str | None = None,
    sha256: str | None = None,
    expected_architecture: str | None = None,
    strict: bool = True,
    filename: str = WEIGHTS_NAME,
    cache_dir: str | os.PathLike[str] | None = None,
    force_download: bool = False,
    token: str | bool | None = None,
    local_files_only: bool = False,
) -> dict[str, Any]:
    """Load a weights folder into an existing model, verified and strict.

    This is the one code path behind ``pretrained=True``, :func:`from_pretrained` and
    ``create_model("hf-hub:...")``. Use it directly for a model built around a backbone
    module, which ``config.json`` cannot describe.

    Args:
        model: The model to fill.
        repo_or_dir: Hub repo id, ``"hf-hub:org/repo[@rev]"`` or a local directory.
        revision: Hub revision to pin (a 40-hex commit for reproducibility).
        sha256: Expected sha256 of ``model.safetensors``; defaults to the one recorded
            in ``config.json``.
        expected_architecture: Refuse a folder whose ``config.json`` names another
            architecture (defaults to ``model.architecture``).
        strict: See :func:`load_state_dict_into`.
        filename: Weights file inside the folder.
        cache_dir: Hugging Face cache directory.
        force_download: Download again even if cached.
        token: Hugging Face token.
        local_files_only: Use only the cache.

    Returns:
        The folder's ``config.json`` content.

    Raises:
        PretrainedWeightsError: Subclasses for each failure (see module docs).
    """
    source = (
        repo_or_dir
        if isinstance(repo_or_dir, WeightsSource)
        else WeightsSource.parse(repo_or_dir, revision)
    )
    hub = {
        "cache_dir": cache_dir,
        "force_download": force_download,
        "token": token,
        "local_files_only": local_files_only,
    }
    config = read_config(source, **hub)
    expected = expected_architecture or getattr(model, "architecture", None)
    found = config.get("architecture")
    if expected and found != expected:
        raise ConfigMismatchError(
            f"{CONFIG_NAME} of {source} describes architecture {found!r}, not {expected!r}. "
            f"Fix: point at the weights of {expected!r}, or load this folder as what it is "
            f"with create_model({source.name!r})."
        )
    _load_weights_file(
        model, source, config, sha256=sha256, strict=strict, filename=filename, **hub
    )
    return config


def _load_weights_file(
    model: torch.nn.Module,
    source: WeightsSource,
    config: Mapping[str, Any],
    *,
    sha256: str | None,
    strict: bool,
    filename: str = WEIGHTS_NAME,
    **hub: Any,
) -> None:
    """Fetch, verify and load the weights file of a folder whose config is read."""
    if not source.is_local and config.get("_commit"):
        # Pin the weights to the commit config.json came from: both files of one snapshot.
        source = WeightsSource(source.location, False, config["_commit"])
    path = resolve_file(source, filename, **hub)
    recorded = (config.get("pretrained_cfg") or {}).get("sha256")
    if sha256:
        verify_sha256(path, sha256, source=source, pinned_by="the caller (the cefl_zoo registry)")
    elif recorded:
        verify_sha256(path, recorded, source=source, pinned_by=f"its {CONFIG_NAME}")
    state = read_safetensors(path, source=source)
    where = f"{filename} of {source}"
    load_state_dict_into(model, state, source=where, config=config, strict=strict)
    _logger.info("loaded %s", where)


def _registered_source(cfg: PretrainedCfg) -> WeightsSource:
    if cfg.file:
        path = Path(cfg.file)
        if not path.is_absolute():
            path = Path(__file__).resolve().parent / path
        return WeightsSource.parse(path)
    if cfg.hf_hub_id:
        return WeightsSource(location=cfg.hf_hub_id, is_local=False, revision=cfg.hf_hub_revision)
    raise WeightsNotFoundError(
        f"weight set {cfg.name!r} names no location (neither file nor hf_hub_id). Fix: register "
        "it with hf_hub_id + hf_hub_revision + sha256, or with file=<folder>."
    )


def load_pretrained(model: VideoClassifier, cfg: PretrainedCfg | None, **hub_kwargs: Any) -> None:
    """Load the registered weight set ``cfg`` into ``model`` (``pretrained=True``).

    The registry pins the location (a Hub repo at a 40-hex revision, or a directory
    inside the package) and the sha256 of ``model.safetensors``.

    Args:
        model: Built by the registry with the caller's arguments.
        cfg: The weight set.
        **hub_kwargs: ``cache_dir``, ``force_download``, ``token``, ``local_files_only``.

    Raises:
        WeightsNotTrainedError: The weight set is registered but not trained yet; the
            message gives the commands that train and publish it.
        PretrainedWeightsError: Subclasses for download and verification failures.
    """
    if cfg is None or not cfg.tag:
        raise WeightsNotFoundError(
            f"no weight set is registered for {getattr(model, 'architecture', None)!r}. "
            "Fix: pretrained=False, or a name from cefl_zoo.list_pretrained()."
        )
    if cfg.status != "available":
        from .models.weights import not_trained_message

        raise WeightsNotTrainedError(not_trained_message(cfg))
    source = _registered_source(cfg)
    load_weights(
        model,
        source,
        sha256=cfg.sha256,
        expected_architecture=cfg.architecture,
        filename=cfg.hf_hub_filename or WEIGHTS_NAME,
        **hub_kwargs,
    )


# -- building a model from a folder ----------------------------------------------------------
def _model_classes() -> dict[str, type]:
    from .models.base import VideoClassifier

    found: dict[str, type] = {}
    stack: list[type] = [VideoClassifier]
    while stack:
        klass = stack.pop()
        found.setdefault(klass.__name__, klass)
        stack.extend(klass.__subclasses__())
    return found


def _init_parameters(klass: type) -> set[str] | None:
    """Keyword arguments ``klass(...)`` takes; ``None`` when it takes ``**kwargs``."""
    import inspect

    try:
        params = inspect.signature(klass).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in params if p.kind in kinds}


def check_keywords(klass: type, names: Iterable[str], what: str) -> None:
    """Raise a :class:`TypeError` for keywords ``klass(...)`` does not take, naming each
    and its close matches (``num_class``: did you mean ``num_classes``?).

    Args:
        klass: The class to be built.
        names: The keyword arguments to be passed.
        what: How the message names the model, e.g. ``"ceflnet_tiny (CEFLNet)"``.
    """
    accepted = _init_parameters(klass)
    if accepted is None:  # it takes **kwargs
        return
    typos = [k for k in names if k not in accepted]
    if typos:
        raise TypeError(
            f"unknown argument{'s' if len(typos) > 1 else ''} {', '.join(map(repr, typos))} "
            f"for {what}{_close_matches(typos, accepted)}. {klass.__name__} takes: "
            f"{', '.join(sorted(accepted))}."
        )


def _close_matches(names: list[str], candidates: set[str]) -> str:
    import difflib

    hints = []
    for name in names:
        close = difflib.get_close_matches(name, sorted(candidates), n=3, cutoff=0.6)
        if close:
            hints.append(f"{name!r}: did you mean {' or '.join(map(repr, close))}?")
    return f" ({'; '.join(hints)})" if hints else ""


def build_from_config(
    config: Mapping[str, Any],
    cls: type | None = None,
    *,
    source: Any = "config",
    **overrides: Any,
) -> VideoClassifier:
    """Build an untrained model from a ``config.json`` dictionary.

    Args:
        config: Parsed ``config.json``.
        cls: Class the caller asked for (``CEFLNet.from_pretrained``); the config's
            ``model_class`` must be it or a subclass.
        source: Where the config came from (for messages).
        **overrides: Constructor arguments that replace the config's (``num_classes``,
            ``drop_rate``, ...); timm's ``drop_path_rate`` / ``drop_block_rate`` go to
            the backbone (``backbone_kwargs``).

    Raises:
        TypeError: For an override the model class does not take (a typo); the message
            lists close matches.
        ConfigMismatchError: For another model class or an unusable configuration
            (including constructor arguments in ``config.json`` this version lacks).
    """
    arch = config.get("architecture")
    class_name = config.get("model_class")
    classes = _model_classes()
    klass = classes.get(class_name)
    if klass is None:
        raise ConfigMismatchError(
            f"{CONFIG_NAME} of {source} names model class {class_name!r}, which this version of "
            f"cefl-zoo ({__version__}) does not have (known: {', '.join(sorted(classes))}). "
            "Fix: upgrade cefl-zoo, or import the module that defines the class first."
        )
    if cls is not None and not issubclass(klass, cls):
        raise ConfigMismatchError(
            f"{CONFIG_NAME} of {source} describes a {class_name} ({arch}), not a {cls.__name__}. "
            f"Fix: call {class_name}.from_pretrained(...), or create_model({getattr(source, 'name', source)!r})."
        )
    saved_args = {k: v for k, v in config.items() if k not in META_KEYS and not k.startswith("_")}
    overrides = dict(overrides)
    from .models.base import BACKBONE_RATE_KWARGS

    rates = {k: overrides.pop(k) for k in BACKBONE_RATE_KWARGS if k in overrides}
    if rates:  # timm's drop_path_rate / drop_block_rate: the backbone's, as in create_model
        overrides["backbone_kwargs"] = {
            **(saved_args.get("backbone_kwargs") or {}),
            **rates,
            **(overrides.get("backbone_kwargs") or {}),
        }
    check_keywords(klass, overrides, f"{class_name} ({arch}) loaded from {source}")
    accepted = _init_parameters(klass)
    if accepted is not None:
        foreign = [k for k in saved_args if k not in accepted]
        if foreign:
            raise ConfigMismatchError(
                f"{CONFIG_NAME} of {source} has constructor argument"
                f"{'s' if len(foreign) > 1 else ''} {', '.join(map(repr, foreign))} that "
                f"{class_name} of this cefl-zoo version ({__version__}) does not take. Fix: the "
                "config was written by another cefl-zoo version; upgrade cefl-zoo (or re-save "
                "the folder with this version)."
            )
    args = {**saved_args, **overrides}
    if args.get("backbone", "") is None:
        raise ConfigMismatchError(
            f"{CONFIG_NAME} of {source} has backbone=null: the weights come from a model built "
            "around a backbone module, which a config file cannot describe. Fix: build the model "
            f"yourself ({class_name}(backbone=<your module>, ...)) and fill it with "
            "cefl_zoo.hub.load_weights(model, <folder>)."
        )
    try:
        if arch and is_model(arch):
            from .registry import create_model

            model = create_model(arch, pretrained=False, **args)
        else:
            model = klass(**args)
            model.architecture = arch
    except TypeError as err:
        if overrides:
            fix = (
                f"check the arguments you passed ({', '.join(sorted(overrides))}) against "
                f"{CONFIG_NAME}; if they are right, the config may come from another cefl-zoo "
                f"version (this is {__version__})"
            )
        else:
            fix = (
                f"the config was written by another cefl-zoo version (this is {__version__}); "
                "upgrade cefl-zoo"
            )
        raise ConfigMismatchError(
            f"cannot build {class_name} from {CONFIG_NAME} of {source}: {err}. Fix: {fix}."
        ) from err
    if not isinstance(model, klass):
        raise ConfigMismatchError(
            f"{CONFIG_NAME} of {source} says architecture {arch!r} is a {class_name}, but the "
            f"registry builds a {type(model).__name__}. Fix: re-save the folder with this version."
        )
    return model  # type: ignore[return-value]


def _attach_cfg(model: VideoClassifier, config: Mapping[str, Any], source: WeightsSource) -> None:
    saved = dict(config.get("pretrained_cfg") or {})
    cfg = PretrainedCfg.from_dict(saved).replace(
        architecture=config.get("architecture") or "", status="available"
    )
    if source.is_local:
        cfg = cfg.replace(
            file=str(Path(source.location).resolve()), hf_hub_id=None, hf_hub_revision=None
        )
    else:
        revision = config.get("_commit") or source.revision
        cfg = cfg.replace(hf_hub_id=source.location, hf_hub_revision=revision, file=None)
    if cfg.input_size[0] != model.in_chans:
        cfg = cfg.replace(input_size=(model.in_chans, *cfg.input_size[1:]))
    saved_classes = config.get("num_classes")
    if (isinstance(saved_classes, int) and saved_classes != model.num_classes) or (
        cfg.label_names is not None and len(cfg.label_names) != model.num_classes
    ):
        # Another num_classes than the weights': the new classifier's outputs have no
        # names, and the scores, tag and train command of the saved weights are not its.
        cfg = cfg.derived(f"new {model.num_classes}-class head on the weights of {source}").replace(
            label_names=None
        )
    model.pretrained_cfg = cfg


def from_pretrained(
    pretrained_model_name_or_path: str | os.PathLike[str],
    cls: type | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    force_download: bool = False,
    token: str | bool | None = None,
    local_files_only: bool = False,
    strict: bool = True,
    **model_kwargs: Any,
) -> VideoClassifier:
    """Build the model a weights folder describes and load its weights.

    Args:
        pretrained_model_name_or_path: ``"org/repo"``, ``"hf-hub:org/repo[@rev]"`` or a
            local directory.
        cls: Required model class (see :func:`build_from_config`).
        revision: Hub revision; pin a 40-hex commit for reproducible results.
        cache_dir: Hugging Face cache directory.
        force_download: Download again even if cached.
        token: Hugging Face token.
        local_files_only: Use only the cache.
        strict: See :func:`load_state_dict_into`.
        **model_kwargs: Constructor arguments replacing the config's; a different
            ``num_classes`` keeps everything but the classifier (and its
            ``pretrained_cfg`` keeps the folder's preprocessing but not its scores).
            timm's options mean what they mean in ``create_model``:
            ``drop_path_rate`` / ``drop_block_rate`` (the backbone's),
            ``pretrained_cfg_overlay`` (fields to change in the ``pretrained_cfg``) and
            ``checkpoint_path`` (a state dict loaded after the folder's weights).

    Returns:
        The model (training mode, CPU) with ``pretrained_cfg`` from ``config.json``.
    """
    source = WeightsSource.parse(pretrained_model_name_or_path, revision)
    hub = {
        "cache_dir": cache_dir,
        "force_download": force_download,
        "token": token,
        "local_files_only": local_files_only,
    }
    timm_options = _pop_timm_options(model_kwargs)
    config = read_config(source, **hub)
    model = build_from_config(config, cls, source=source, **model_kwargs)
    _load_weights_file(model, source, config, sha256=None, strict=strict, **hub)
    _attach_cfg(model, config, source)
    _apply_timm_options(model, *timm_options)
    return model


def _pop_timm_options(kwargs: dict[str, Any]) -> tuple[Mapping[str, Any] | None, Any]:
    """Take timm's ``pretrained_cfg_overlay`` (checked) and ``checkpoint_path`` out of the
    constructor arguments of a folder or hub model."""
    overlay = kwargs.pop("pretrained_cfg_overlay", None)
    check_cfg_overlay(overlay)
    return overlay, kwargs.pop("checkpoint_path", None)


def _apply_timm_options(
    model: VideoClassifier, overlay: Mapping[str, Any] | None, checkpoint_path: Any
) -> None:
    """Change the model's ``pretrained_cfg`` by ``overlay``, then load ``checkpoint_path``."""
    if overlay:
        cfg = model.pretrained_cfg
        model.pretrained_cfg = apply_cfg_overlay(cfg, overlay, cfg.architecture) or cfg
    if checkpoint_path is not None:
        from .models.base import load_checkpoint_file

        load_checkpoint_file(model, checkpoint_path)


def load_model(
    model_name: str | os.PathLike[str], pretrained: bool = True, **kwargs: Any
) -> VideoClassifier:
    """``create_model`` for ``"hf-hub:org/repo[@rev]"`` names and local directories.

    Args:
        model_name: The name (``hf_hub:`` works too) or directory (a path, or
            ``"local-dir:PATH"``).
        pretrained: Load the weights (open_clip behaviour for hub names); ``False``
            builds the architecture of ``config.json`` with fresh weights.
        **kwargs: Constructor overrides and timm's options (as in
            :func:`from_pretrained`), plus the hub options ``revision``,
            ``cache_dir``, ``force_download``, ``token``, ``local_files_only`` and
            ``strict``.
    """
    hub_keys = ("revision", "cache_dir", "force_download", "token", "local_files_only", "strict")
    hub = {k: kwargs.pop(k) for k in hub_keys if k in kwargs}
    if pretrained:
        return from_pretrained(model_name, **hub, **kwargs)
    hub.pop("strict", None)  # nothing to load
    timm_options = _pop_timm_options(kwargs)
    source = WeightsSource.parse(model_name, hub.pop("revision", None))
    model = build_from_config(read_config(source, **hub), source=source, **kwargs)
    _apply_timm_options(model, *timm_options)
    return model
