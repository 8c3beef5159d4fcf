"""torch.hub entry points, loaded with ``torch.hub.load(dir, name, source="local")`` from a
clean copy of the checkout, in a fresh interpreter."""

from __future__ import annotations

import importlib.util
import inspect
import os
import textwrap

import pytest
from _hub_utils import REPO_ROOT, copy_checkout, run_result_script

import cefl_zoo
from cefl_zoo.labels import DATASET_CLASSES

DATASET_ENTRIES = {
    "ceflnet_dfew": "dfew",
    "ceflnet_afew": "afew",
    "ceflnet_mmi": "mmi",
    "ceflnet_bu3dfe": "bu3dfe",
}
SHIPPED_ENTRY = "ceflnet_synthetic"

# Runs inside the copy: lists the entry points by importing hubconf.py (torch.hub.list
# reads GitHub only), then calls torch.hub.load for each, with and without weights.
_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, sys
    import torch

    repo = sys.argv[1]
    sys.path.insert(0, repo)  # what torch.hub.load(source="local") does
    spec = importlib.util.spec_from_file_location("hubconf", repo + "/hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    import cefl_zoo

    entries = sorted(n for n in dir(hubconf) if not n.startswith("_") and callable(getattr(hubconf, n)))
    out = {"cefl_zoo_file": cefl_zoo.__file__, "entries": entries,
           "dependencies": hubconf.dependencies, "models": {},
           "help": hubconf.ceflnet_dfew.__doc__}
    x = torch.randn(1, 2, 2, 3, 32, 32)

    def describe(model):
        model.eval()
        with torch.no_grad():
            logits = model(x)
        return {"class": type(model).__name__, "arch": model.architecture,
                "labels": list(model.label_names), "shape": list(logits.shape),
                "status": model.pretrained_cfg.status}

    for name in entries:
        rec = out["models"][name] = {}
        # pretrained=False must always work (tiny backbone keeps it fast).
        model = torch.hub.load(repo, name, source="local", pretrained=False, backbone="test_convnext")
        rec["random"] = describe(model)
        if name not in sys.argv[2].split(","):
            continue  # architecture entries default to pretrained=False (test_entry_point_signatures)
        try:  # the entry's default: load the weights
            model = torch.hub.load(repo, name, source="local", backbone="test_convnext")
            rec["default"] = describe(model)
        except Exception as err:
            rec["default_error"] = [type(err).__name__, str(err)]
    print("RESULT " + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def hub_result(tmp_path_factory):
    repo = copy_checkout(tmp_path_factory.mktemp("checkout"))
    script = tmp_path_factory.mktemp("script") / "load_all.py"
    script.write_text(_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    entries = ",".join([*DATASET_ENTRIES, SHIPPED_ENTRY])
    return repo, run_result_script(script, [str(repo), entries], cwd=repo, env=env, timeout=600)


def test_package_comes_from_the_clean_copy(hub_result):
    repo, result = hub_result
    assert os.path.realpath(result["cefl_zoo_file"]).startswith(os.path.realpath(repo) + os.sep)


def test_every_entry_point_is_listed_and_dependencies_are_named(hub_result):
    _, result = hub_result
    expected = set(cefl_zoo.list_models()) | set(DATASET_ENTRIES) | {SHIPPED_ENTRY}
    assert result["entries"] == sorted(expected)
    assert {"torch", "timm", "huggingface_hub", "safetensors"} <= set(result["dependencies"])
    assert "DFEW" in result["help"] and "pretrained" in result["help"]


@pytest.mark.parametrize("name", cefl_zoo.list_models())
def test_architecture_entries_build_untrained_models(hub_result, name):
    rec = hub_result[1]["models"][name]
    assert rec["random"]["arch"] == name and rec["random"]["shape"] == [1, 7]
    assert rec["random"]["status"] == "none" and rec["random"]["labels"][0] == "class_0"


@pytest.mark.parametrize("name,dataset", sorted(DATASET_ENTRIES.items()))
def test_dataset_entries_carry_labels_and_refuse_missing_weights(hub_result, name, dataset):
    rec = hub_result[1]["models"][name]
    labels = list(DATASET_CLASSES[dataset])
    assert rec["random"]["arch"] == "ceflnet_resnet18" and rec["random"]["labels"] == labels
    assert rec["random"]["shape"] == [1, len(labels)]
    cfg = cefl_zoo.get_pretrained_cfg(f"ceflnet_resnet18.{dataset}")
    if cfg.status == "available":
        assert rec["default"]["labels"] == labels and rec["default"]["status"] == "available"
    else:  # pretrained defaults to True: an honest error, never random weights
        kind, message = rec["default_error"]
        assert kind == "WeightsNotTrainedError"
        assert f"--data {dataset}:" in message and "cefl-zoo push" in message


def test_shipped_entry_loads_the_packaged_weights(hub_result):
    rec = hub_result[1]["models"][SHIPPED_ENTRY]
    assert rec["random"]["arch"] == "ceflnet_tiny"
    assert rec["random"]["labels"] == list(DATASET_CLASSES["synthetic"])
    cfg = cefl_zoo.get_pretrained_cfg("ceflnet_tiny.synthetic")
    if cfg.status == "available":
        assert rec["default"]["status"] == "available" and rec["default"]["shape"] == [1, 7]
    else:
        kind, message = rec["default_error"]
        assert (
            kind == "WeightsNotTrainedError"
            and "cefl_zoo/weights/ceflnet_tiny.synthetic" in message
        )


def test_entry_point_signatures():
    spec = importlib.util.spec_from_file_location("hubconf_sig", REPO_ROOT / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    for name in [*DATASET_ENTRIES, SHIPPED_ENTRY, *cefl_zoo.list_models()]:
        params = inspect.signature(getattr(hubconf, name)).parameters
        assert "pretrained" in params and any(p.kind is p.VAR_KEYWORD for p in params.values())
        default = params["pretrained"].default
        assert default is (name in DATASET_ENTRIES or name == SHIPPED_ENTRY), name
        assert getattr(hubconf, name).__doc__


def test_docstring_recipe_lists_only_the_entry_points():
    import re

    spec = importlib.util.spec_from_file_location("hubconf_doc", REPO_ROOT / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    recipe = re.search(r"``(\[n for n in dir\(hubconf\)[^`]*\])``", hubconf.__doc__)[1]
    names = eval(recipe, {"hubconf": hubconf})  # our own docstring
    assert "dependencies" not in names and all(callable(getattr(hubconf, n)) for n in names)
    assert {*DATASET_ENTRIES, SHIPPED_ENTRY, *cefl_zoo.list_models()} <= set(names)
