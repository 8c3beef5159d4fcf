"""``torch.hub`` entry points of cefl-zoo.

>>> import torch
>>> model = torch.hub.load("cefl-zoo/cefl-zoo", "ceflnet_synthetic")   # doctest: +SKIP
>>> model = torch.hub.load("/path/to/cefl-zoo", "ceflnet_tiny", source="local", pretrained=False)  # doctest: +SKIP

Entry points (each takes ``pretrained`` and ``**kwargs``, which go to
:func:`cefl_zoo.create_model`, e.g. ``num_classes=3`` or ``backbone="resnet34"``):

* ``ceflnet_dfew``, ``ceflnet_afew``, ``ceflnet_mmi``, ``ceflnet_bu3dfe``: the paper's
  CEFLNet (ResNet-18) for each dataset, with its labels in the dataset's order. The
  name promises trained weights, so ``pretrained`` defaults to ``True``; while those
  weights are not published (the datasets are licence-gated) this raises
  ``cefl_zoo.hub.WeightsNotTrainedError`` with the commands that train and publish
  them. ``pretrained=False`` gives the architecture with random weights.
* ``ceflnet_synthetic``: a small CEFLNet trained on the built-in synthetic data whose
  weights ship inside the package (no download); ``pretrained`` defaults to ``True``.
* Every registered architecture (``ceflnet_resnet18``, ``ceflnet_tiny``,
  ``frameavg_resnet18``, ...), timm style: ``pretrained`` defaults to ``False``.

List them with ``torch.hub.list("cefl-zoo/cefl-zoo")``, or, for a local checkout, with
``[n for n in dir(hubconf) if callable(getattr(hubconf, n)) and not n.startswith("_")]``
after importing this file (what ``torch.hub.list`` does; it reads GitHub repositories
only).
"""

dependencies = ["torch", "torchvision", "timm", "huggingface_hub", "safetensors", "numpy"]

from cefl_zoo import create_model as _create_model
from cefl_zoo import list_models as _list_models

#: Dataset entry point -> registered weight set.
_WEIGHT_ENTRIES = {
    "ceflnet_dfew": (
        "ceflnet_resnet18.dfew",
        "the paper's CEFLNet (ResNet-18) for DFEW's 7 classes",
    ),
    "ceflnet_afew": (
        "ceflnet_resnet18.afew",
        "the paper's CEFLNet (ResNet-18) for AFEW 8.0's 7 classes",
    ),
    "ceflnet_mmi": ("ceflnet_resnet18.mmi", "the paper's CEFLNet (ResNet-18) for MMI's 6 classes"),
    "ceflnet_bu3dfe": (
        "ceflnet_resnet18.bu3dfe",
        "the paper's CEFLNet (ResNet-18) for BU-3DFE's 6 classes",
    ),
    "ceflnet_synthetic": (
        "ceflnet_tiny.synthetic",
        "a small CEFLNet trained on cefl-zoo's synthetic data; its weights ship with the package",
    ),
}


def _weights_entry(entry_name, weights, summary):
    def entry(pretrained=True, **kwargs):
        return _create_model(weights, pretrained=pretrained, **kwargs)

    entry.__name__ = entry.__qualname__ = entry_name
    entry.__doc__ = (
        f"{summary[0].upper()}{summary[1:]} (weights ``{weights}``).\n\n"
        "Args:\n"
        "    pretrained: Load the weights (default). Raises a clear error, with the commands\n"
        "        that train and publish them, while they are not available.\n"
        "    **kwargs: Passed to ``cefl_zoo.create_model`` (e.g. ``num_classes``).\n"
    )
    return entry


def _architecture_entry(name):
    def entry(pretrained=False, **kwargs):
        return _create_model(name, pretrained=pretrained, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (
        f"The ``{name}`` architecture (``cefl_zoo.create_model({name!r}, ...)``).\n\n"
        "Args:\n"
        "    pretrained: Load its default weight set (most architectures have none yet).\n"
        "    **kwargs: Passed to ``cefl_zoo.create_model`` (e.g. ``num_classes``, ``backbone``).\n"
    )
    return entry


for _entry_name, (_weights, _summary) in _WEIGHT_ENTRIES.items():
    globals()[_entry_name] = _weights_entry(_entry_name, _weights, _summary)
for _name in _list_models():
    globals()[_name] = _architecture_entry(_name)
del _entry_name, _weights, _summary, _name
