"""``cefl-zoo push OUT_DIR REPO_ID``: publish an exported weights folder on the Hub.

The folder is checked first (``config.json``, ``model.safetensors`` with the sha256
recorded in the config, ``README.md``, and the sha256 of any exported ``model.onnx`` /
``model.pt2``), then uploaded in one commit with
``huggingface_hub`` (``HfApi.create_repo`` + ``upload_folder``), which uses the
logged-in token (``hf auth login`` / ``HF_TOKEN``) and ``HF_ENDPOINT``. The command
prints the commit to pin and the registry fields to paste into
``cefl_zoo/models/weights.py``. The folder itself is not modified: the model card is
uploaded with the repository named in its usage line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

__all__ = ["HELP", "NAME", "add_arguments", "registry_snippet", "run"]

#: The sub-command name (``cefl-zoo push``).
NAME = "push"
#: One-line help of the sub-command.
HELP = "upload an exported weights folder to the Hugging Face Hub"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``cefl-zoo push`` to ``parser``."""
    parser.add_argument("folder", help="folder written by `cefl-zoo export` or save_pretrained")
    parser.add_argument(
        "repo_id", help="Hugging Face repository, e.g. cefl-zoo/ceflnet_resnet18.dfew"
    )
    parser.add_argument(
        "--revision",
        "--branch",
        dest="revision",
        default=None,
        help="branch to commit to (created if missing)",
    )
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument(
        "--token", default=None, help="Hugging Face token (default: the logged-in one)"
    )
    parser.add_argument("--commit-message", default=None, help="commit message")
    parser.add_argument(
        "--create-pr", action="store_true", help="open a pull request instead of committing"
    )


def registry_snippet(config: dict, repo_id: str, commit: str | None) -> str:
    """The fields that make a pushed folder a pinned registry weight set.

    Raises:
        ValueError: For weights without a tag (``pretrained_cfg["tag"]``): a registry
            weight set is named ``ARCH.TAG``.

    Example:
        >>> cfg = {"architecture": "a", "pretrained_cfg": {"tag": "t", "sha256": "ab", "metrics": {}}}
        >>> print(registry_snippet(cfg, "org/a.t", "c" * 40).splitlines()[0])
        a.t: hf_hub_id='org/a.t',
    """
    cfg = config.get("pretrained_cfg") or {}
    if not cfg.get("tag"):
        raise ValueError(
            f"{config.get('architecture')} weights without a tag have no registry name (ARCH.TAG)"
        )
    name = f"{config.get('architecture')}.{cfg.get('tag')}"
    return (
        f"{name}: hf_hub_id={repo_id!r},\n"
        f"    hf_hub_revision={commit!r},\n"
        f"    sha256={cfg.get('sha256')!r},\n"
        f"    metrics={cfg.get('metrics') or {}!r},\n"
        "    status='available'"
    )


def hub_errors() -> tuple[type[BaseException], ...]:
    """What talking to the Hub raises when the network, the login or the repository is wrong.

    ``OSError`` (connection refused, timeouts, ``HF_HUB_OFFLINE``; ``requests`` errors),
    ``huggingface_hub``'s ``HfHubHTTPError`` (401, 403, 404, ...) and the root error class
    of its HTTP client, which its connection errors derive from without being ``OSError``
    (``httpx.HTTPError`` - ``ConnectError``, ``ReadTimeout`` - in huggingface_hub >= 1.0).
    """
    found: list[type[BaseException]] = [OSError]
    try:
        from huggingface_hub.errors import HfHubHTTPError
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return tuple(found)
    found.append(HfHubHTTPError)
    for base in HfHubHTTPError.__mro__[1:]:  # the HTTP client's HTTPError
        if base.__name__ == "HTTPError":
            found.append(base)
    for module, name in (("httpx", "HTTPError"), ("requests", "RequestException")):
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def run(args: argparse.Namespace) -> int:
    """Run ``cefl-zoo push`` with parsed ``args``; returns the exit code."""
    from ..hub import PretrainedWeightsError
    from ..hub_mixin import check_folder, upload_folder
    from ._common import EXIT_USAGE, error, one_line

    try:
        config = check_folder(args.folder)
    except PretrainedWeightsError as err:  # a folder that does not exist is usage (2)
        return error(NAME, err, 1 if os.path.exists(args.folder) else EXIT_USAGE)
    try:
        info = upload_folder(
            args.folder,
            args.repo_id,
            revision=args.revision,
            private=args.private or None,
            token=args.token,
            commit_message=args.commit_message,
            create_pr=args.create_pr,
        )
    except hub_errors() as err:
        return error(
            NAME,
            f"uploading {args.folder} to {args.repo_id} failed: {type(err).__name__}: "
            f"{one_line(err).rstrip('.')}. Fix: check the network and HF_ENDPOINT, unset HF_HUB_OFFLINE, "
            "and log in (`hf auth login` or HF_TOKEN) with write access to the repository.",
            1,
        )
    except ValueError as err:  # huggingface_hub's HFValidationError: a malformed repo id
        return error(NAME, f"cannot upload to {args.repo_id!r}: {one_line(err)}", 1)
    commit = getattr(info, "oid", None)
    print(f"pushed {args.folder} to {getattr(info, 'commit_url', args.repo_id)}")
    if (config.get("pretrained_cfg") or {}).get("tag"):
        print(f"pin it with revision {commit}; registry fields for cefl_zoo/models/weights.py:")
        print(registry_snippet(config, args.repo_id, commit))
    else:
        print(
            f"pin it with revision {commit}. To register it in cefl_zoo/models/weights.py, the "
            f"weights need a tag (registry names are {config.get('architecture')}.TAG): "
            "export again with `cefl-zoo export SOURCE OUT_DIR --tag NAME` and push that folder."
        )
    print(f"load it with: cefl_zoo.create_model('hf-hub:{args.repo_id}@{commit}')")
    print(
        json.dumps(
            {
                "repo_id": args.repo_id,
                "revision": commit,
                "sha256": config["pretrained_cfg"]["sha256"],
            }
        )
    )
    return 0
