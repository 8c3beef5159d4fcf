"""``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` for every zoo model.

The folder layout is that of ``huggingface_hub.PyTorchModelHubMixin``
(``model.safetensors`` + ``config.json`` + ``README.md``), but the mixin is our own:
``config.json`` must carry the registry architecture and the
:class:`~cefl_zoo.registry.PretrainedCfg` (labels, preprocessing, provenance, sha256),
loading is strict and checks the architecture and checksum, and files are written
atomically. ``huggingface_hub``'s mixin derives the config from ``__init__`` arguments
alone and loads with ``strict=False`` by default, which would hide exactly the errors
this module reports.

Example:
    >>> import tempfile, torch
    >>> from cefl_zoo import CEFLNet, create_model
    >>> model = create_model("ceflnet_tiny").eval()
    >>> folder = model.save_pretrained(tempfile.mkdtemp())
    >>> sorted(p.name for p in folder.iterdir())
    ['README.md', 'config.json', 'model.safetensors']
    >>> again = CEFLNet.from_pretrained(folder)
    >>> x = torch.randn(1, 7, 5, 3, 32, 32)
    >>> torch.equal(model(x), again(x))
    True
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch

from ._version import __version__
from .registry import PretrainedCfg

if TYPE_CHECKING:
    from .models.base import VideoClassifier

__all__ = [
    "HubMixin",
    "atomic_write",
    "check_artifacts",
    "check_folder",
    "model_config",
    "save_pretrained",
    "upload_folder",
]

T = TypeVar("T", bound="HubMixin")


def _publish_tmp(tmp: str, path: Path) -> None:
    """Give a temporary file the permissions of a normal new file, then move it in place.

    ``mkstemp`` creates files readable by their owner only; shipped weights and shared
    caches need the usual ``0o666 & ~umask``.
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write a file so that readers see the old content or the new one, never a part.

    The data go to a temporary file in the same directory, which then replaces ``path``
    (:func:`os.replace` is atomic on one file system).
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        _publish_tmp(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _atomic_save_safetensors(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]
) -> None:
    from safetensors.torch import save_file

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        _sort_safetensors_metadata(tmp)
        _publish_tmp(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sort_safetensors_metadata(path: str | os.PathLike[str]) -> None:
    """Write the ``__metadata__`` of a safetensors file in sorted key order, in place.

    safetensors keeps the metadata in a hash map, so its keys come out in a different
    order in every process: the same weights would get another file, and another
    sha256, each time they are saved. The header keeps its length (the same keys and
    values, reordered), so nothing else in the file moves.
    """
    import struct

    with open(path, "r+b") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        raw = fh.read(n)
        header = json.loads(raw)
        meta = header.get("__metadata__")
        if not isinstance(meta, dict) or len(meta) < 2:
            return
        header["__metadata__"] = dict(sorted(meta.items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > n or len(text) != len(raw.rstrip(b" ")):
            return  # not the layout this expects: leave the file as it is
        fh.seek(8)
        fh.write(text.ljust(n, b" "))


def _state_for_safetensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict as contiguous CPU tensors, with shared storage un-shared."""
    seen: set[tuple[int, int]] = set()
    out: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu").contiguous()
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        if (
            ident in seen
            or tensor.untyped_storage().nbytes() != tensor.numel() * tensor.element_size()
        ):
            tensor = tensor.clone()
        seen.add(ident)
        out[key] = tensor
    return out


def model_config(
    model: VideoClassifier, pretrained_cfg: PretrainedCfg | None = None
) -> dict[str, Any]:
    """The ``config.json`` content of a model (without the weights' sha256).

    Keys: ``architecture``, ``model_class``, the constructor arguments
    (``model.init_kwargs``), ``pretrained_cfg`` and ``cefl_zoo_version``.

    Raises:
        ValueError: For a model whose constructor arguments are not JSON-serialisable.
    """
    from .hub import META_KEYS

    config = dict(model.config)
    clash = sorted(set(config) & (META_KEYS - {"architecture"}))
    if clash:
        raise ValueError(f"constructor arguments {clash} clash with config.json's own keys")
    try:
        json.dumps(config)
    except TypeError as err:
        raise ValueError(
            f"the constructor arguments of this {type(model).__name__} cannot be written to "
            f"config.json ({err}): {config!r}"
        ) from err
    cfg = pretrained_cfg or model.pretrained_cfg
    config["model_class"] = type(model).__name__
    config["pretrained_cfg"] = cfg.replace(architecture=model.architecture or "").to_dict()
    config["cefl_zoo_version"] = __version__
    return config


def save_pretrained(
    model: VideoClassifier,
    save_directory: str | os.PathLike[str],
    *,
    pretrained_cfg: PretrainedCfg | None = None,
    training: Mapping[str, Any] | None = None,
    model_card: bool = True,
    model_card_kwargs: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model.safetensors``, ``config.json`` and ``README.md`` into a folder.

    Args:
        model: The model.
        save_directory: Created if missing; existing files of the same names are
            replaced atomically.
        pretrained_cfg: Labels, preprocessing and provenance to record (dataset, fold,
            metrics, train_command, license); defaults to ``model.pretrained_cfg``. The
            sha256 of the written weights is filled in, and the location fields
            (``hf_hub_id``, ``hf_hub_revision``, ``file``) are cleared: they belong to
            where the folder is published, not to the folder.
        training: Extra provenance for ``config.json`` and the card (``seed``,
            ``command``, ``epochs``, ...).
        model_card: Write ``README.md``.
        model_card_kwargs: Passed to :func:`cefl_zoo.model_card.render_model_card`.

    Returns:
        The folder.

    Raises:
        ValueError: For a model built around a backbone module (``config["backbone"]``
            is ``None``): the folder could not be loaded back. Save
            ``model.state_dict()`` yourself in that case.
    """
    from .hub import CONFIG_NAME, MODEL_CARD_NAME, WEIGHTS_NAME, sha256sum
    from .model_card import render_model_card

    if model.config.get("backbone", "") is None:
        raise ValueError(
            f"this {type(model).__name__} was built around a backbone module, which config.json "
            "cannot describe, so the saved folder could not be loaded back. Build the model from "
            "a timm backbone name, or save model.state_dict() with safetensors yourself and load "
            "it with cefl_zoo.hub.load_weights after rebuilding the model."
        )
    folder = Path(save_directory)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = (pretrained_cfg or model.pretrained_cfg).replace(
        hf_hub_id=None, hf_hub_revision=None, file=None, status="available", sha256=None
    )
    config = model_config(model, cfg)
    weights = folder / WEIGHTS_NAME
    _atomic_save_safetensors(
        _state_for_safetensors(model),
        weights,
        metadata={
            "format": "pt",
            "architecture": str(model.architecture),
            "cefl_zoo_version": __version__,
        },
    )
    config["pretrained_cfg"]["sha256"] = sha256sum(weights)
    if training:
        config["training"] = dict(training)
    atomic_write(folder / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=False) + "\n")
    if model_card:
        atomic_write(
            folder / MODEL_CARD_NAME, render_model_card(config, **dict(model_card_kwargs or {}))
        )
    return folder


def check_folder(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Check that a folder is publishable; return its ``config.json``.

    A publishable folder holds ``config.json``, ``model.safetensors`` whose sha256 is
    the one recorded in the config, and ``README.md``. Exported extras
    (``model.onnx``, ``model.onnx.data``, ``model.pt2``) must be recorded in the config's
    ``artifacts`` with their sha256: one that is not (left over from an earlier export of
    other weights) or that changed is refused.

    Raises:
        cefl_zoo.hub.PretrainedWeightsError: Subclasses naming the file and the fix.
    """
    from .hub import (
        MODEL_CARD_NAME,
        WEIGHTS_NAME,
        WeightsNotFoundError,
        WeightsSource,
        read_config,
        read_safetensors,
        resolve_file,
        verify_sha256,
    )

    source = WeightsSource.parse(Path(folder))
    config = read_config(source)
    weights = resolve_file(source, WEIGHTS_NAME)
    recorded = (config.get("pretrained_cfg") or {}).get("sha256")
    if not recorded:
        raise WeightsNotFoundError(
            f"config.json of {source} records no sha256 for {WEIGHTS_NAME}. Fix: write the folder "
            "with model.save_pretrained(dir) or `cefl-zoo export`."
        )
    verify_sha256(weights, recorded, source=source, pinned_by="its config.json")
    read_safetensors(weights, source=source)
    resolve_file(source, MODEL_CARD_NAME)
    check_artifacts(folder, config)
    return config


def check_artifacts(folder: str | os.PathLike[str], config: Mapping[str, Any]) -> list[str]:
    """Verify the exported extras of a folder against ``config["artifacts"]``.

    Returns:
        The recorded extra files, all present with their recorded sha256.

    Raises:
        cefl_zoo.hub.ConfigMismatchError: For an extra file (``model.onnx``,
            ``model.onnx.data``, ``model.pt2``) the config does not record: it was not
            exported with these weights.
        cefl_zoo.hub.WeightsNotFoundError: For a recorded extra that is missing.
        cefl_zoo.hub.ChecksumMismatchError: For a recorded extra whose sha256 changed.
    """
    from .hub import (
        ARTIFACT_NAMES,
        ARTIFACTS_KEY,
        ConfigMismatchError,
        CorruptWeightsError,
        WeightsSource,
        resolve_file,
        verify_sha256,
    )

    folder = Path(folder)
    source = WeightsSource.parse(folder)
    artifacts = config.get(ARTIFACTS_KEY) or {}
    if not isinstance(artifacts, Mapping) or not all(
        k in ARTIFACT_NAMES and isinstance(v, str) for k, v in artifacts.items()
    ):
        raise CorruptWeightsError(
            f"config.json of {source}: {ARTIFACTS_KEY!r} must map exported file names "
            f"({', '.join(ARTIFACT_NAMES)}) to their sha256, got {str(artifacts)[:80]!r}. "
            "Fix: re-export the folder with `cefl-zoo export`."
        )
    stale = sorted(
        name for name in ARTIFACT_NAMES if (folder / name).exists() and name not in artifacts
    )
    if stale:
        one = len(stale) == 1
        it, does = ("it", "does") if one else ("they", "do")
        raise ConfigMismatchError(
            f"{', '.join(stale)} in {source} {'is' if one else 'are'} not recorded in its "
            f"config.json: left over from an earlier export (of other weights, or one that "
            f"failed), so {it} {does} not match model.safetensors. Fix: delete "
            f"{'it' if one else 'them'}, or export "
            "again with --onnx / --torch-export (which records the sha256 of what it writes)."
        )
    for name, digest in sorted(artifacts.items()):
        path = resolve_file(source, name)
        verify_sha256(path, digest, source=source, pinned_by="its config.json (artifacts)")
    return sorted(artifacts)


def _is_generated_card(card: str, config: Mapping[str, Any]) -> bool:
    """Whether ``card`` is the card :func:`render_model_card` writes for ``config``, for
    any repository (or none) in its usage line: not edited by hand."""
    import re

    from .model_card import render_model_card

    usage = re.compile(r'^model = cefl_zoo\.create_model\("[^"\n]*"\)\.eval\(\)$', re.MULTILINE)
    placeholder = 'model = cefl_zoo.create_model("<repo>").eval()'
    return usage.sub(placeholder, card) == usage.sub(placeholder, render_model_card(config))


def upload_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    branch: str | None = None,
) -> Any:
    """Upload a checked weights folder to the Hugging Face Hub.

    Creates the repository (``exist_ok=True``) and the branch ``revision`` if needed,
    then uploads ``config.json``, ``model.safetensors``, ``README.md`` and the extras
    recorded in ``config.json`` (``model.onnx``, ``model.pt2``) in one commit. Extras of
    those names that the repository holds from an earlier push and this folder does not
    have are deleted in the same commit, so the repository never pairs new weights with
    an old exported program.

    The folder is not modified. A generated model card (not edited by hand) is uploaded
    with this repository named in its usage snippet; a hand-edited card is uploaded as
    it is.

    Args:
        folder: Written by ``save_pretrained`` or ``cefl-zoo export``.
        repo_id: ``"org/name"``.
        revision: Branch to commit to (default: the main branch).
        private: Create the repository as private.
        token: Hugging Face token (default: the logged-in one).
        commit_message: Commit message.
        create_pr: Open a pull request instead of committing directly.
        branch: ``huggingface_hub``'s name for ``revision``.

    Returns:
        ``huggingface_hub.CommitInfo``: its ``oid`` is the commit to pin as
        ``hf_hub_revision``.
    """
    import shutil

    from huggingface_hub import HfApi

    from .hub import ARTIFACT_NAMES, ARTIFACTS_KEY, CONFIG_NAME, MODEL_CARD_NAME, WEIGHTS_NAME
    from .model_card import render_model_card

    revision = _branch(revision, branch)
    config = check_folder(folder)  # also verifies the recorded extras
    folder = Path(folder)
    extras = sorted(config.get(ARTIFACTS_KEY) or {})
    files = [CONFIG_NAME, WEIGHTS_NAME, MODEL_CARD_NAME, *extras]
    card = (folder / MODEL_CARD_NAME).read_text(encoding="utf-8")
    if _is_generated_card(card, config):
        card = render_model_card(config, repo_id=repo_id)
    name = config.get("architecture") or config.get("model_class")
    tag = (config.get("pretrained_cfg") or {}).get("tag")
    api = HfApi(token=token, library_name="cefl-zoo", library_version=__version__)
    # The commit is made from a staging folder of links to the checked files plus the
    # repo-specific card, so the user's folder stays byte-identical even if the push fails.
    with tempfile.TemporaryDirectory(prefix="cefl-zoo-upload-") as tmp:
        staging = Path(tmp)
        for file in files:
            if file == MODEL_CARD_NAME:
                continue
            target = (folder / file).resolve()
            try:
                os.symlink(target, staging / file)
            except OSError:  # no symlinks here (some Windows set-ups): copy
                shutil.copy2(target, staging / file)
        (staging / MODEL_CARD_NAME).write_text(card, encoding="utf-8")
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=str(staging),
            repo_type="model",
            revision=revision,
            commit_message=commit_message
            or f"Upload {name}{'.' + tag if tag else ''} (cefl-zoo {__version__})",
            create_pr=create_pr,
            allow_patterns=files,
            delete_patterns=[a for a in ARTIFACT_NAMES if a not in files],
        )


def _branch(revision: str | None, branch: str | None) -> str | None:
    """``revision=`` (ours) or ``branch=`` (``huggingface_hub``'s spelling), not two."""
    if branch is not None and revision is not None and branch != revision:
        raise ValueError(
            f"two branches given: revision={revision!r} and branch={branch!r}; give one"
        )
    return revision if revision is not None else branch


class HubMixin:
    """Adds ``save_pretrained``, ``from_pretrained`` and ``push_to_hub`` to a model.

    Mixed into :class:`~cefl_zoo.models.base.VideoClassifier`, so every registry
    model has them. Same method names and folder layout as
    ``huggingface_hub.PyTorchModelHubMixin``.
    """

    def save_pretrained(
        self,
        save_directory: str | os.PathLike[str],
        *,
        pretrained_cfg: PretrainedCfg | None = None,
        training: Mapping[str, Any] | None = None,
        model_card: bool = True,
        model_card_kwargs: Mapping[str, Any] | None = None,
        push_to_hub: bool = False,
        repo_id: str | None = None,
        **push_to_hub_kwargs: Any,
    ) -> Path:
        """Write ``model.safetensors`` + ``config.json`` + ``README.md`` (see
        :func:`cefl_zoo.hub_mixin.save_pretrained`); optionally push the folder.

        With ``push_to_hub=True`` the card's usage line names ``repo_id`` (unless
        ``model_card_kwargs`` gives another ``repo_id``).

        Returns:
            The folder.
        """
        if push_to_hub and not repo_id:  # before anything is written
            raise ValueError("push_to_hub=True needs repo_id='org/name'")
        if push_to_hub:  # the card names the repository it is uploaded to
            model_card_kwargs = {"repo_id": repo_id, **dict(model_card_kwargs or {})}
        folder = save_pretrained(
            self,  # type: ignore[arg-type]
            save_directory,
            pretrained_cfg=pretrained_cfg,
            training=training,
            model_card=model_card,
            model_card_kwargs=model_card_kwargs,
        )
        if push_to_hub:
            upload_folder(folder, repo_id, **push_to_hub_kwargs)
        return folder

    @classmethod
    def from_pretrained(  # noqa: PYI019 (typing.Self needs Python 3.11)
        cls: type[T],
        pretrained_model_name_or_path: str | os.PathLike[str],
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        force_download: bool = False,
        token: str | bool | None = None,
        local_files_only: bool = False,
        strict: bool = True,
        map_location: str | torch.device = "cpu",
        **model_kwargs: Any,
    ) -> T:
        """Build the model a Hub repo or local folder describes and load its weights.

        Args:
            pretrained_model_name_or_path: ``"org/repo"``, ``"hf-hub:org/repo[@rev]"``
                (or timm's ``"hf_hub:org/repo"``), or a directory with ``config.json`` +
                ``model.safetensors`` (a path, or ``"local-dir:PATH"``).
            revision: Hub branch, tag or (for reproducibility) 40-hex commit.
            cache_dir: Hugging Face cache directory (default ``HF_HUB_CACHE``).
            force_download: Download again even if cached.
            token: Hugging Face token.
            local_files_only: Use only the cache.
            strict: Refuse weights that do not fit the model exactly (default).
            map_location: Device to move the model to.
            **model_kwargs: Constructor arguments replacing the config's; another
                ``num_classes`` keeps everything but the classifier (logged). A name the
                model does not take raises :class:`TypeError` with close matches.

        Returns:
            The model in evaluation mode (``huggingface_hub`` convention), with
            ``pretrained_cfg`` (labels, preprocessing, provenance) from the folder.

        Raises:
            cefl_zoo.hub.ConfigMismatchError: The folder holds another model class
                (e.g. ``CEFLNet.from_pretrained`` on frame-average weights).
            cefl_zoo.hub.PretrainedWeightsError: Subclasses for missing files, offline
                mode, checksum mismatches and corrupt files.
        """
        from . import hub

        model = hub.from_pretrained(
            pretrained_model_name_or_path,
            cls,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            token=token,
            local_files_only=local_files_only,
            strict=strict,
            **model_kwargs,
        )
        return model.to(map_location).eval()  # type: ignore[return-value]

    def push_to_hub(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        private: bool | None = None,
        token: str | bool | None = None,
        commit_message: str | None = None,
        create_pr: bool = False,
        pretrained_cfg: PretrainedCfg | None = None,
        training: Mapping[str, Any] | None = None,
        branch: str | None = None,
    ) -> Any:
        """Save the model to a temporary folder and upload it (see :func:`upload_folder`).

        ``branch=`` (``huggingface_hub``'s spelling) is accepted for ``revision=``.

        Returns:
            ``huggingface_hub.CommitInfo`` of the upload.
        """
        revision = _branch(revision, branch)
        with tempfile.TemporaryDirectory(prefix="cefl-zoo-push-") as tmp:
            folder = save_pretrained(
                self,  # type: ignore[arg-type]
                tmp,
                pretrained_cfg=pretrained_cfg,
                training=training,
                model_card_kwargs={"repo_id": repo_id},
            )
            return upload_folder(
                folder,
                repo_id,
                revision=revision,
                private=private,
                token=token,
                commit_message=commit_message,
                create_pr=create_pr,
            )
