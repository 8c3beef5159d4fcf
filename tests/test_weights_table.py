"""Every registered weight set carries its metadata, and its status tells the truth."""

from __future__ import annotations

import json
import re

import pytest
import torch
from _hub_utils import tiny_model, video

import cefl_zoo
from cefl_zoo import registry
from cefl_zoo.hub import WeightsNotTrainedError, sha256sum
from cefl_zoo.labels import DATASET_CLASSES
from cefl_zoo.models import weights

ALL = cefl_zoo.list_pretrained()
AVAILABLE = [c for c in ALL if c.status == "available"]
NOT_TRAINED = [c for c in ALL if c.status == "not-trained"]


def test_the_paper_datasets_and_the_shipped_model_are_registered():
    names = {c.name for c in ALL}
    assert {
        "ceflnet_resnet18.dfew",
        "ceflnet_resnet18.afew",
        "ceflnet_resnet18.mmi",
        "ceflnet_resnet18.bu3dfe",
        "ceflnet_tiny.synthetic",
    } <= names
    classes = {c.dataset: len(c.label_names) for c in ALL if c.architecture == "ceflnet_resnet18"}
    assert classes == {"dfew": 7, "afew": 7, "mmi": 6, "bu3dfe": 6}
    # The demo weights ship inside the package: they must be present and verified.
    assert cefl_zoo.get_pretrained_cfg("ceflnet_tiny.synthetic").status == "available"
    assert cefl_zoo.get_pretrained_cfg("ceflnet_resnet18.dfew").label_names == (
        "happiness",
        "sadness",
        "neutral",
        "anger",
        "surprise",
        "disgust",
        "fear",
    )


@pytest.mark.parametrize("cfg", ALL, ids=lambda c: c.name)
def test_every_weight_set_carries_the_required_metadata(cfg):
    for field in weights.REQUIRED_FIELDS:
        value = getattr(cfg, field)
        assert value not in (None, "", (), {}), f"{cfg.name}: {field} is empty"
    assert cfg.status in ("available", "not-trained")
    assert cfg.label_names == DATASET_CLASSES[cfg.dataset], (
        f"{cfg.name}: labels not in {cfg.dataset} order"
    )
    assert len(cfg.mean) == len(cfg.std) == cfg.input_size[0] == 3
    assert (
        cfg.num_clips >= 1
        and cfg.frames_per_clip >= 1
        and cfg.interpolation in ("bilinear", "bicubic")
    )
    assert cfg.train_command.startswith(f"cefl-zoo train --model {cfg.architecture} ")
    assert "--seed" in cfg.train_command
    if cfg.status == "available":
        assert re.fullmatch(r"[0-9a-f]{64}", cfg.sha256), f"{cfg.name}: sha256 not pinned"
        assert cfg.file or (
            cfg.hf_hub_id and re.fullmatch(r"[0-9a-f]{40}", cfg.hf_hub_revision or "")
        ), f"{cfg.name}: needs a packaged file or a Hub repo with a pinned 40-hex revision"
        assert cfg.metrics, f"{cfg.name}: available weights must say what they reached"
    else:
        # Nothing may point at weights that do not exist.
        assert cfg.sha256 is None and cfg.hf_hub_revision is None and cfg.file is None


@pytest.mark.parametrize(
    "cfg",
    AVAILABLE,
    ids=lambda c: c.name if c else "none",
)
def test_available_weight_sets_really_load_and_predict(cfg):
    model = cefl_zoo.create_model(cfg.name, pretrained=True).eval()
    assert model.label_names == cfg.label_names
    c, h, w = cfg.input_size
    x = torch.randn(2, cfg.num_clips, cfg.frames_per_clip, c, h, w)
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (2, len(cfg.label_names)) and torch.isfinite(logits).all()
    random = cefl_zoo.create_model(cfg.name, pretrained=False).eval()
    with torch.no_grad():
        assert not torch.equal(random(x), logits)  # the weights were really loaded


@pytest.mark.parametrize("cfg", NOT_TRAINED, ids=lambda c: c.name)
def test_not_trained_weight_sets_refuse_and_say_how_to_make_them(cfg):
    with pytest.raises(WeightsNotTrainedError) as err:
        cefl_zoo.create_model(cfg.name, pretrained=True, backbone="test_convnext")
    text = str(err.value)
    assert f"{cfg.name!r} are not available" in text and "no random weights were returned" in text
    for step in weights.publish_steps(cfg):
        assert step in text
    assert "pretrained=False" in text
    model = cefl_zoo.create_model(cfg.name, pretrained=False, backbone="test_convnext")
    assert model.label_names == cfg.label_names and model.num_classes == len(cfg.label_names)


def test_dataset_weight_sets_are_published_with_train_export_push():
    steps = weights.publish_steps(cefl_zoo.get_pretrained_cfg("ceflnet_resnet18.mmi"))
    assert steps == [
        (
            "cefl-zoo train --model ceflnet_resnet18 --data mmi:/path/to/MMI --fold 1 "
            "--pretrained-backbone --seed 0 --output-dir runs/ceflnet_resnet18.mmi"
        ),
        "cefl-zoo export runs/ceflnet_resnet18.mmi export/ceflnet_resnet18.mmi --checkpoint last",
        "cefl-zoo push export/ceflnet_resnet18.mmi cefl-zoo/ceflnet_resnet18.mmi",
    ]


@pytest.mark.parametrize("name", [c.name for c in NOT_TRAINED])
def test_the_published_train_command_is_the_papers_recipe_and_parses(name):
    import argparse
    import shlex

    from cefl_zoo.commands import train as train_command
    from cefl_zoo.train.config import config_from_args

    cfg = cefl_zoo.get_pretrained_cfg(name)
    words = shlex.split(weights.publish_steps(cfg)[0])
    assert words[:2] == ["cefl-zoo", "train"]
    parser = argparse.ArgumentParser()
    train_command.add_arguments(parser)
    config = config_from_args(parser.parse_args(words[2:]))
    assert config.pretrained_backbone  # the paper starts ResNet-18 from ImageNet weights
    # AFEW's test labels are not public: its adapter has no "test" split to validate on
    assert config.val_split == ("val" if cfg.dataset == "afew" else "test")
    assert config.fold == (None if cfg.dataset == "afew" else 1)


def test_list_models_pretrained_lists_exactly_the_available_sets():
    assert cefl_zoo.list_models(pretrained=True) == sorted(c.name for c in AVAILABLE)
    assert [c.name for c in cefl_zoo.list_pretrained(include_unavailable=False)] == sorted(
        c.name for c in AVAILABLE
    )


def test_weights_table_is_generated_from_the_registry():
    table = weights.weights_table().splitlines()
    assert len(table) == 2 + len(ALL)
    for cfg in ALL:
        row = next(r for r in table if f"`{cfg.name}`" in r)
        assert f"| {cfg.status} |" in row and f"| {len(cfg.label_names)} |" in row


# -- the packaged weight set: status follows the files ------------------------------------------
def _base():
    return weights.SYNTHETIC_WEIGHTS.replace(
        status="not-trained", file=None, sha256=None, metrics={}
    )


def test_packaged_status_without_files_is_not_trained(tmp_path):
    cfg = weights.packaged_cfg(_base(), tmp_path)
    assert cfg.status == "not-trained" and cfg.file is None
    assert "model.safetensors and config.json missing" in cfg.notes


def test_packaged_folder_becomes_available_and_loads_through_the_hub_code(tmp_path, monkeypatch):
    model = tiny_model("ceflnet_tiny", num_classes=7)
    trained = model.pretrained_cfg.replace(
        label_names=DATASET_CLASSES["synthetic"],
        metrics={"war": 0.9},
        input_size=(3, 32, 32),
        train_command="cefl-zoo train --model ceflnet_tiny --data synthetic:d --seed 0",
    )
    folder = model.save_pretrained(tmp_path / "pkg", pretrained_cfg=trained)
    cfg = weights.packaged_cfg(_base(), folder)
    assert cfg.status == "available" and cfg.file == str(folder)
    assert cfg.sha256 == sha256sum(folder / "model.safetensors") and cfg.metrics == {"war": 0.9}
    assert cfg.input_size == (3, 32, 32)

    monkeypatch.setitem(registry._pretrained_cfgs["ceflnet_tiny"], "synthetic", cfg)
    loaded = cefl_zoo.create_model(
        "ceflnet_tiny.synthetic", pretrained=True, backbone="test_convnext"
    ).eval()
    x = video()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.label_names == DATASET_CLASSES["synthetic"]

    # A file replaced after import (e.g. a git-lfs pointer) fails at load time, by checksum.
    (folder / "model.safetensors").write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(cefl_zoo.PretrainedWeightsError, match="sha256"):
        cefl_zoo.create_model("ceflnet_tiny.synthetic", pretrained=True, backbone="test_convnext")
    # ... and the status derived from such a folder says so.
    stale = weights.packaged_cfg(_base(), folder)
    assert stale.status == "not-trained" and stale.file is None
    assert "but its config.json records" in stale.notes and "re-export" in stale.notes


def test_packaged_folder_with_a_foreign_config_is_not_available(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    cfg = weights.packaged_cfg(_base(), tmp_path)
    assert cfg.status == "not-trained" and "not a cefl-zoo config" in cfg.notes


def test_a_broken_shipped_weight_set_gives_its_real_recipe(tmp_path):
    # The recipe in the message is the one that made the shipped weights (K=2, 32 px),
    # and the folder to load is named, not '<out_dir>'.
    shipped = weights._PACKAGE_ROOT / weights.PACKAGE_WEIGHTS_DIR / "ceflnet_tiny.synthetic"
    recorded = json.loads((shipped / "config.json").read_text())["pretrained_cfg"]
    assert weights.SYNTHETIC_TRAIN_COMMAND == recorded["train_command"]
    folder = tmp_path / "ceflnet_tiny.synthetic"
    folder.mkdir()
    (folder / "config.json").write_text((shipped / "config.json").read_text())
    (folder / "model.safetensors").write_text("version https://git-lfs.github.com/spec/v1\n")
    cfg = weights.packaged_cfg(weights._synthetic_base(), folder)
    assert cfg.status == "not-trained" and "git-lfs" in cfg.notes
    assert (cfg.frames_per_clip, cfg.input_size) == (recorded["frames_per_clip"], (3, 32, 32))
    text = weights.not_trained_message(cfg)
    assert recorded["train_command"] in text and "<out_dir>" not in text
    assert "create_model('cefl_zoo/weights/ceflnet_tiny.synthetic')" in text
