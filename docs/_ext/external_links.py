"""Sphinx extension: link the names of other projects (``torch.Tensor``, ``pathlib.Path``,
``numpy.ndarray``, ``huggingface_hub.hf_hub_download``) to their documentation, offline.

intersphinx would do this from the projects' ``objects.inv`` files, but the docs must build
without network access. The names the API uses are few, so this module knows where their
pages are: the Python standard library by its URL scheme (any module in
``sys.stdlib_module_names``), PyTorch, NumPy and the Hugging Face Hub from a table.
With ``nitpicky = True`` a name found neither in the docs nor here is a warning, so a
type that would render as dead text fails a ``-W`` build until it is added to the table.
"""

from __future__ import annotations

import sys
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx

__all__ = ["external_url", "setup"]

PYTHON = "https://docs.python.org/3/library/"
TORCH = "https://docs.pytorch.org/docs/stable/"
NUMPY = "https://numpy.org/doc/stable/reference/"
HF_HUB = "https://huggingface.co/docs/huggingface_hub/main/en/package_reference/"

#: Short names that annotations carry (``from pathlib import Path``) to their full name.
ALIASES = {"Path": "pathlib.Path", "np.ndarray": "numpy.ndarray", "Tensor": "torch.Tensor"}

#: Where PyTorch documents an object, by its public name.
TORCH_PAGES = {
    "torch.Tensor": "tensors.html#torch.Tensor",
    "torch.device": "tensor_attributes.html#torch.device",
    "torch.dtype": "tensor_attributes.html#torch.dtype",
    "torch.Generator": "generated/torch.Generator.html",
    "torch.nn.Module": "generated/torch.nn.Module.html",
    "torch.optim.Optimizer": "optim.html#torch.optim.Optimizer",
    "torch.optim.lr_scheduler.LambdaLR": "generated/torch.optim.lr_scheduler.LambdaLR.html",
    "torch.distributed.ProcessGroup": "distributed.html",
}
#: Where PyTorch's classes live (what autodoc writes) to where they are documented.
TORCH_CANONICAL = {
    "torch._C.Generator": "torch.Generator",
    "torch.nn.modules.module.Module": "torch.nn.Module",
    "torch.optim.optimizer.Optimizer": "torch.optim.Optimizer",
}
TORCH_DATA = "torch.utils.data."  # one page: data.html#torch.utils.data.NAME

NUMPY_PAGES = {
    "numpy.ndarray": "generated/numpy.ndarray.html",
    "numpy.dtype": "generated/numpy.dtype.html",
    "numpy.random.Generator": "random/generator.html#numpy.random.Generator",
}

HF_PAGES = {
    "huggingface_hub.hf_hub_download": "file_download#huggingface_hub.hf_hub_download",
    "huggingface_hub.snapshot_download": "file_download#huggingface_hub.snapshot_download",
    "huggingface_hub.HfApi": "hf_api#huggingface_hub.HfApi",
    "huggingface_hub.ModelHubMixin": "mixins#huggingface_hub.ModelHubMixin",
}


def external_url(target: str) -> str | None:
    """The documentation URL of ``target``, a dotted name of another project, or ``None``.

    Example:
        >>> external_url("collections.abc.Sequence")
        'https://docs.python.org/3/library/collections.abc.html#collections.abc.Sequence'
        >>> external_url("torch.utils.data.dataloader.DataLoader")
        'https://docs.pytorch.org/docs/stable/data.html#torch.utils.data.DataLoader'
        >>> external_url("cefl_zoo.CEFLNet") is None
        True
    """
    target = ALIASES.get(target, target)
    top = target.split(".", 1)[0]
    if top == "torch":
        target = TORCH_CANONICAL.get(target, target)
        if target.startswith(TORCH_DATA):  # anchors: torch.utils.data.NAME, but for one
            name = target.rsplit(".", 1)[-1]
            anchor = "distributed.DistributedSampler" if name == "DistributedSampler" else name
            return f"{TORCH}data.html#{TORCH_DATA}{anchor}"
        page = TORCH_PAGES.get(target)
        return TORCH + page if page else None
    if top == "numpy":
        page = NUMPY_PAGES.get(target)
        return NUMPY + page if page else None
    if top == "huggingface_hub":
        page = HF_PAGES.get(target)
        return HF_HUB + page if page else None
    if top in sys.stdlib_module_names and "." in target and not top.startswith("_"):
        module = _stdlib_module(target)
        # (page names are lower case: xml.etree.ElementTree is xml.etree.elementtree.html)
        return f"{PYTHON}{module.lower()}.html#{target}" if module else None
    return None


def _stdlib_module(target: str) -> str | None:
    """The longest importable standard-library module that ``target`` starts with."""
    import importlib

    parts = target.split(".")
    for n in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:n])
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        return name
    return None


def _missing_reference(app: Sphinx, env: Any, node: Any, contnode: nodes.Node) -> nodes.Node | None:
    if node.get("refdomain") != "py":
        return None
    url = external_url(node.get("reftarget", ""))
    if url is None:
        return None
    ref = nodes.reference("", "", internal=False, refuri=url, reftitle=node["reftarget"])
    ref += contnode
    return ref


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the resolver (after intersphinx and cefl_docs, which know better)."""
    app.connect("missing-reference", _missing_reference, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
