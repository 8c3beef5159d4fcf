"""save_pretrained / from_pretrained / push_to_hub, Hub downloads, verification, export."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from unittest import mock

import huggingface_hub
import pytest
import torch
from _hub_utils import build_hf_cache, mock_hub, tiny_model, train_toy_run, video
from safetensors import safe_open

import cefl_zoo
from cefl_zoo import registry
from cefl_zoo.hub import (
    ChecksumMismatchError,
    ConfigMismatchError,
    CorruptWeightsError,
    WeightsNotFoundError,
    WeightsSource,
    load_weights,
    sha256sum,
)
from cefl_zoo.models import CEFLNet, FrameAverage

REV = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def saved(tmp_path):
    """A ceflnet_tiny with DFEW's label names, saved; returns (model, folder)."""
    model = tiny_model(num_classes=7)
    model.pretrained_cfg = model.pretrained_cfg.replace(
        label_names=cefl_zoo.DATASET_CLASSES["dfew"], dataset="dfew", metrics={"war": 0.5}
    )
    return model, model.save_pretrained(tmp_path / "weights", training={"seed": 3})


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache that hf_hub_download uses by default."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


# -- round trip ------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", cefl_zoo.list_models())
def test_round_trip_is_bit_identical_for_every_architecture(arch, tmp_path):
    model = tiny_model(arch, num_classes=5)
    x = video()
    with torch.no_grad():
        expected = model(x)
    folder = model.save_pretrained(tmp_path / arch)

    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == arch
    assert config["model_class"] == type(model).__name__
    assert config["backbone"] == "test_convnext" and config["num_classes"] == 5
    assert config["pretrained_cfg"]["sha256"] == sha256sum(folder / "model.safetensors")

    again = type(model).from_pretrained(folder)
    assert not again.training  # huggingface_hub convention: eval mode
    by_name = cefl_zoo.create_model(str(folder)).eval()
    with torch.no_grad():
        assert torch.equal(again(x), expected)
        assert torch.equal(by_name(x), expected)
    assert again.architecture == arch and type(again) is type(model)
    assert again.pretrained_cfg.status == "available"
    assert again.pretrained_cfg.file == str(folder.resolve())


def test_saved_folder_records_labels_preprocessing_and_provenance(saved):
    model, folder = saved
    config = json.loads((folder / "config.json").read_text())
    cfg = config["pretrained_cfg"]
    assert cfg["label_names"] == list(cefl_zoo.DATASET_CLASSES["dfew"])
    assert cfg["input_size"] == list(model.pretrained_cfg.input_size)
    assert cfg["mean"] == list(model.pretrained_cfg.mean) and cfg["num_clips"] == 7
    assert cfg["hf_hub_id"] is None and cfg["file"] is None  # location belongs to the publisher
    assert config["training"] == {"seed": 3}
    with safe_open(str(folder / "model.safetensors"), "pt") as fh:
        assert fh.metadata()["architecture"] == "ceflnet_tiny"
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: cefl-zoo" in card
    assert "| 3 | anger |" in card and "| war | 0.5000 |" in card and "seed: 3" in card
    assert "10.1016/j.ins.2022.03.062" in card
    loaded = CEFLNet.from_pretrained(folder)
    assert loaded.label_names == cefl_zoo.DATASET_CLASSES["dfew"]
    assert loaded.pretrained_cfg.metrics == {"war": 0.5}


def test_saving_the_same_weights_again_gives_the_same_file(tmp_path):
    # safetensors writes its metadata in hash-map order, which differs every time: the
    # sha256 recorded for a weight set must not depend on it.
    import json as _json
    import struct

    from safetensors import safe_open

    from cefl_zoo.hub import sha256sum

    model = cefl_zoo.create_model("ceflnet_tiny")
    files = [model.save_pretrained(tmp_path / f"m{i}") / "model.safetensors" for i in range(4)]
    assert len({sha256sum(f) for f in files}) == 1
    raw = files[0].read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    meta = _json.loads(raw[8 : 8 + n])["__metadata__"]
    assert list(meta) == sorted(meta) and meta["format"] == "pt"
    with safe_open(str(files[0]), "pt") as fh:
        assert fh.metadata() == meta and set(fh.keys()) == set(model.state_dict())


def test_save_leaves_no_temporary_files_and_overwrites_atomically(saved, tmp_path):
    model, folder = saved
    before = sha256sum(folder / "model.safetensors")
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    model.save_pretrained(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert sha256sum(folder / "model.safetensors") != before
    assert json.loads((folder / "config.json").read_text())["pretrained_cfg"][
        "sha256"
    ] == sha256sum(folder / "model.safetensors")
    umask = os.umask(0)
    os.umask(umask)
    assert all(p.stat().st_mode & 0o777 == 0o666 & ~umask for p in folder.iterdir())


def test_a_save_that_dies_midway_leaves_the_old_folder_intact(saved):
    model, folder = saved
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def dying_save_file(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise KeyboardInterrupt

    with (
        mock.patch("safetensors.torch.save_file", dying_save_file),
        pytest.raises(KeyboardInterrupt),
    ):
        model.save_pretrained(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_other_num_classes_drops_the_classifier_with_a_log_line(saved, caplog):
    model, folder = saved
    with caplog.at_level(logging.WARNING, logger="cefl_zoo.hub"):
        smaller = cefl_zoo.create_model(str(folder), num_classes=3)
    assert "7 classes, the model 3" in caplog.text and "head.*" in caplog.text
    assert smaller.num_classes == 3 and smaller.label_names == ("class_0", "class_1", "class_2")
    ref, new = model.state_dict(), smaller.state_dict()
    assert all(torch.equal(ref[k], new[k]) for k in new if not k.startswith("head."))
    assert new["head.fc.weight"].shape[0] == 3 and new["head.temporal_conv.weight"].shape[0] == 3


def test_constructor_overrides_that_change_shapes_fail_strictly(saved):
    _, folder = saved
    with pytest.raises(ConfigMismatchError) as err:
        cefl_zoo.create_model(str(folder), clip_dim=16)
    text = str(err.value)
    assert (
        "do not fit ceflnet_tiny" in text and "clip_dim: weights" in text and "strict=False" in text
    )
    partial = cefl_zoo.create_model(str(folder), clip_dim=16, strict=False)
    assert partial.clip_dim == 16


def test_model_built_from_a_backbone_module_is_refused_with_the_way_out(tmp_path):
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(8))
    backbone.num_features = 8
    model = CEFLNet(backbone=backbone, num_classes=2)
    with pytest.raises(ValueError, match="backbone module"):
        model.save_pretrained(tmp_path / "x")


# -- Hugging Face cache, offline ------------------------------------------------------------
def test_hf_hub_names_load_offline_from_the_cache_with_pinned_revision(saved, hf_cache):
    model, folder = saved
    build_hf_cache(hf_cache, "org/tiny", folder, revision=REV)
    calls = []
    real = huggingface_hub.hf_hub_download

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    x = video()
    with mock.patch.object(huggingface_hub, "hf_hub_download", spy):
        loaded = cefl_zoo.create_model(f"hf-hub:org/tiny@{REV}").eval()
        latest = CEFLNet.from_pretrained("org/tiny")  # refs/main -> REV
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x)) and torch.equal(latest(x), model(x))
    assert loaded.pretrained_cfg.hf_hub_id == "org/tiny"
    assert loaded.pretrained_cfg.hf_hub_revision == REV == latest.pretrained_cfg.hf_hub_revision
    assert {args[1] for args, _ in calls} == {"config.json", "model.safetensors"}
    for args, kwargs in calls:
        assert args[0] == "org/tiny"
        assert (
            kwargs["library_name"] == "cefl-zoo"
            and kwargs["library_version"] == cefl_zoo.__version__
        )
    assert [kw["revision"] for _, kw in calls] == [REV, REV, None, REV]
    # (3rd: config.json of the default branch; 4th: the weights pinned to that config's commit)


def test_offline_with_an_empty_cache_names_repo_file_and_fix(hf_cache):
    with pytest.raises(WeightsNotFoundError) as err:
        CEFLNet.from_pretrained("org/absent", revision=REV)
    text = str(err.value)
    assert "'org/absent'" in text and "config.json" in text and "HF_HUB_OFFLINE=1" in text
    assert f"hf download org/absent config.json --revision {REV}" in text
    assert str(hf_cache) in text
    assert "unset HF_HUB_OFFLINE" in text


def test_local_files_only_error_does_not_blame_hf_hub_offline(hf_cache, monkeypatch):
    from cefl_zoo import hub

    monkeypatch.setattr(hub, "_offline", lambda: False)
    with pytest.raises(WeightsNotFoundError) as err:
        CEFLNet.from_pretrained("org/absent", revision=REV, local_files_only=True)
    text = str(err.value)
    assert "local_files_only=True" in text and "HF_HUB_OFFLINE" not in text


def test_missing_weights_file_in_the_cache(saved, hf_cache, tmp_path):
    _, folder = saved
    snapshot = build_hf_cache(hf_cache, "org/nofile", folder, revision=REV)
    (snapshot / "model.safetensors").unlink()
    with pytest.raises(
        WeightsNotFoundError, match=r"model\.safetensors of Hugging Face repo 'org/nofile'"
    ):
        cefl_zoo.create_model("hf-hub:org/nofile")


def test_registered_hub_weights_verify_the_pinned_sha256(saved, hf_cache, monkeypatch):
    model, folder = saved
    build_hf_cache(hf_cache, "org/pinned", folder, revision=REV, ref=None)
    good = model.pretrained_cfg.replace(
        architecture="ceflnet_tiny",
        tag="testhub",
        hf_hub_id="org/pinned",
        hf_hub_revision=REV,
        sha256=sha256sum(folder / "model.safetensors"),
        status="available",
    )
    tags = registry._pretrained_cfgs["ceflnet_tiny"]
    monkeypatch.setitem(tags, "testhub", good)
    loaded = cefl_zoo.create_model(
        "ceflnet_tiny.testhub", pretrained=True, backbone="test_convnext"
    ).eval()
    x = video()
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.label_names == cefl_zoo.DATASET_CLASSES["dfew"]

    monkeypatch.setitem(tags, "testhub", good.replace(sha256="0" * 64))
    with pytest.raises(ChecksumMismatchError) as err:
        cefl_zoo.create_model("ceflnet_tiny.testhub", pretrained=True, backbone="test_convnext")
    text = str(err.value)
    assert "model.safetensors" in text and "'org/pinned'" in text and "force_download=True" in text
    assert "0" * 64 in text and "registry" in text


def test_registered_weights_whose_config_names_another_architecture(saved, hf_cache, monkeypatch):
    _, folder = saved
    build_hf_cache(hf_cache, "org/wrongarch", folder, revision=REV, ref=None)
    cfg = registry.get_pretrained_cfg("ceflnet_resnet18").replace(
        tag="testhub",
        hf_hub_id="org/wrongarch",
        hf_hub_revision=REV,
        sha256=None,
        status="available",
    )
    monkeypatch.setitem(registry._pretrained_cfgs["ceflnet_resnet18"], "testhub", cfg)
    with pytest.raises(ConfigMismatchError) as err:
        cefl_zoo.create_model("ceflnet_resnet18.testhub", pretrained=True, backbone="test_convnext")
    text = str(err.value)
    assert "config.json of Hugging Face repo 'org/wrongarch'" in text
    assert (
        "'ceflnet_tiny', not 'ceflnet_resnet18'" in text
        and "create_model('hf-hub:org/wrongarch" in text
    )


# -- local directories: every failure names the folder, the file and the fix ------------------
def test_from_pretrained_refuses_another_model_class(tmp_path):
    folder = tiny_model("frameavg_resnet18").save_pretrained(tmp_path / "fa")
    with pytest.raises(ConfigMismatchError, match="describes a FrameAverage .* not a CEFLNet"):
        CEFLNet.from_pretrained(folder)
    assert isinstance(FrameAverage.from_pretrained(folder), FrameAverage)
    assert isinstance(cefl_zoo.VideoClassifier.from_pretrained(folder), FrameAverage)


def test_load_weights_refuses_a_folder_of_another_architecture(tmp_path):
    folder = tiny_model("ceflnet_resnet18_sal").save_pretrained(tmp_path / "sal")
    target = tiny_model("ceflnet_resnet18")
    with pytest.raises(ConfigMismatchError, match="'ceflnet_resnet18_sal', not 'ceflnet_resnet18'"):
        load_weights(target, folder)


def test_missing_file_in_a_local_directory(saved):
    _, folder = saved
    (folder / "model.safetensors").unlink()
    with pytest.raises(WeightsNotFoundError) as err:
        CEFLNet.from_pretrained(folder)
    text = str(err.value)
    assert "model.safetensors is missing" in text and str(folder) in text
    assert "README.md, config.json" in text and "save_pretrained" in text


def test_checksum_mismatch_in_a_local_directory(saved):
    _, folder = saved
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, one flipped byte: only the checksum can tell
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError) as err:
        cefl_zoo.create_model(str(folder))
    text = str(err.value)
    assert str(folder) in text and "model.safetensors" in text and "its config.json" in text


@pytest.mark.parametrize("keep_sha", [True, False])
def test_truncated_weights(saved, keep_sha):
    _, folder = saved
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    if not keep_sha:
        config = json.loads((folder / "config.json").read_text())
        config["pretrained_cfg"]["sha256"] = None
        (folder / "config.json").write_text(json.dumps(config))
    expected = ChecksumMismatchError if keep_sha else CorruptWeightsError
    with pytest.raises(expected) as err:
        CEFLNet.from_pretrained(folder)
    assert "model.safetensors" in str(err.value) and str(folder) in str(err.value)
    if not keep_sha:
        assert "truncated" in str(err.value) and "re-save" in str(err.value)


def test_corrupt_or_foreign_config(saved):
    _, folder = saved
    (folder / "config.json").write_text("{not json")
    with pytest.raises(
        CorruptWeightsError, match="config.json of local directory .* is not valid JSON"
    ):
        cefl_zoo.create_model(str(folder))
    (folder / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(CorruptWeightsError, match="not a cefl-zoo config"):
        cefl_zoo.create_model(str(folder))


def test_backbone_module_config_explains_how_to_load(saved):
    _, folder = saved
    config = json.loads((folder / "config.json").read_text())
    config["backbone"] = None
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigMismatchError, match="backbone=null.*load_weights"):
        CEFLNet.from_pretrained(folder)


def test_source_parsing():
    assert WeightsSource.parse("hf-hub:org/repo@v1") == WeightsSource("org/repo", False, "v1")
    assert WeightsSource.parse("org/repo", revision=REV).revision == REV
    assert WeightsSource.parse("hf-hub:org/repo").name == "hf-hub:org/repo"
    with pytest.raises(ValueError, match="two revisions"):
        WeightsSource.parse("hf-hub:org/repo@v1", revision="v2")
    with pytest.raises(WeightsNotFoundError, match="neither an existing directory"):
        WeightsSource.parse("./no/such/dir")
    with pytest.raises(
        WeightsNotFoundError, match=r"create_model\('ceflnet_resnet18.dfew', pretrained=True\)"
    ):
        CEFLNet.from_pretrained("ceflnet_resnet18.dfew")
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        WeightsSource.parse(Path("/no/such/dir"))


# -- push -----------------------------------------------------------------------------------
def test_push_to_hub_uploads_a_checked_folder(saved):
    model, _ = saved
    sent, patches = mock_hub()
    with patches[0] as create_repo, patches[1] as create_branch, patches[2]:
        info = model.push_to_hub("org/tiny", private=True, revision="v1")
    assert info.oid == "f" * 40
    create_repo.assert_called_once()
    assert create_repo.call_args.args[1] == "org/tiny"
    assert (
        create_repo.call_args.kwargs["private"] is True and create_repo.call_args.kwargs["exist_ok"]
    )
    assert create_branch.call_args.kwargs["branch"] == "v1"
    assert sent["repo_id"] == "org/tiny" and sent["kwargs"]["revision"] == "v1"
    assert set(sent["files"]) == {"README.md", "config.json", "model.safetensors"}
    assert b'create_model("hf-hub:org/tiny")' in sent["files"]["README.md"]
    config = json.loads(sent["files"]["config.json"])
    import hashlib

    assert (
        config["pretrained_cfg"]["sha256"]
        == hashlib.sha256(sent["files"]["model.safetensors"]).hexdigest()
    )


def test_push_command_checks_then_uploads_and_prints_the_pin(saved, capsys, tmp_path):
    from cefl_zoo.cli import main

    model, _ = saved
    cfg = model.pretrained_cfg.replace(tag="dfew")  # a registry name needs a tag
    folder = model.save_pretrained(tmp_path / "tagged", pretrained_cfg=cfg)
    sent, patches = mock_hub()
    with patches[0], patches[1] as create_branch, patches[2]:
        assert main(["push", str(folder), "org/tiny"]) == 0
    out = capsys.readouterr().out
    assert "ceflnet_tiny.dfew: hf_hub_id='org/tiny'" in out
    assert f"hf_hub_revision='{'f' * 40}'" in out and sha256sum(folder / "model.safetensors") in out
    assert "hf-hub:org/tiny@" + "f" * 40 in out
    create_branch.assert_not_called()
    assert sent["kwargs"]["revision"] is None

    (folder / "model.safetensors").write_bytes(b"broken")
    sent.clear()
    with patches[0], patches[1], patches[2]:
        assert main(["push", str(folder), "org/tiny"]) == 1
    assert sent == {}  # nothing uploaded
    assert "sha256" in capsys.readouterr().err


# -- export ---------------------------------------------------------------------------------
def test_export_a_training_run(tmp_path, capsys):
    from cefl_zoo.cli import main
    from cefl_zoo.train.checkpoint import load_checkpoint

    run = train_toy_run(tmp_path / "run", seed=7)
    out = tmp_path / "out"
    assert main(["export", str(run), str(out), "--torch-export"]) == 0
    assert "sha256" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["artifacts"] == {"model.pt2": sha256sum(out / "model.pt2")}
    cfg = config["pretrained_cfg"]
    metrics = json.loads((run / "metrics.json").read_text())["best"]
    assert cfg["metrics"]["war"] == pytest.approx(metrics["war"])
    assert cfg["label_names"] == ["happiness", "sadness"] and cfg["input_size"] == [3, 32, 32]
    assert cfg["dataset"] == "synthetic" and cfg["tag"] == "synthetic"
    assert cfg["fold"] == "evaluated on the 'test' split" and cfg["license"] == "mit"  # registry's
    assert config["training"]["seed"] == 7 and "--seed 7" in config["training"]["command"]
    assert config["training"]["command"].startswith(
        "cefl-zoo train --model ceflnet_tiny --data synthetic:unused"
    )

    ckpt = load_checkpoint(run / "best.pt")
    reference = cefl_zoo.create_model("ceflnet_tiny", num_classes=2).eval()
    reference.load_state_dict(ckpt["model"])
    exported = cefl_zoo.create_model(str(out)).eval()
    program = torch.export.load(str(out / "model.pt2")).module()
    x = video(batch=3)
    with torch.no_grad():
        assert torch.equal(exported(x), reference(x))
        assert torch.allclose(program(x), reference(x), atol=1e-6)
    assert exported.label_names == ("happiness", "sadness")


def test_export_a_saved_folder_with_an_eval_json_and_onnx(saved, tmp_path):
    pytest.importorskip("onnxscript", reason="--onnx needs onnx + onnxscript (the export extra)")
    ort = pytest.importorskip("onnxruntime", reason="checking the ONNX file needs onnxruntime")
    from cefl_zoo.commands.export import ExportError, export

    model, folder = saved
    names = list(cefl_zoo.DATASET_CLASSES["dfew"])
    eval_json = tmp_path / "eval.json"
    eval_json.write_text(
        json.dumps(
            {
                "metrics": {
                    "war": 0.61,
                    "uar": 0.52,
                    "class_names": names,
                    "confusion_matrix": [[1]],
                    "clip_locating": {"pred_class": 0.4, "num_videos": 10},
                }
            }
        )
    )
    model.pretrained_cfg = model.pretrained_cfg.replace(
        input_size=(3, 32, 32), num_clips=2, frames_per_clip=2
    )
    model.save_pretrained(folder)
    out = export(folder, tmp_path / "out", eval_json=eval_json, license="mit", onnx=True)
    cfg = json.loads((out / "config.json").read_text())["pretrained_cfg"]
    assert cfg["metrics"] == {"war": 0.61, "uar": 0.52, "clip_locating.pred_class": 0.4}
    assert cfg["license"] == "mit" and "| uar | 0.5200 |" in (out / "README.md").read_text()
    session = ort.InferenceSession(str(out / "model.onnx"))
    x = video(batch=3)
    with torch.no_grad():
        expected = model(x).numpy()
    got = session.run(None, {"video": x.numpy()})[0]
    assert got.shape == (3, 7) and abs(got - expected).max() < 1e-4

    eval_json.write_text(json.dumps({"metrics": {"war": 0.6, "class_names": names[::-1]}}))
    with pytest.raises(ExportError, match="other weights"):
        export(folder, tmp_path / "out2", eval_json=eval_json)


def test_export_of_a_path_without_a_run_says_what_it_expected(tmp_path, capsys):
    from cefl_zoo.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty"), str(tmp_path / "out")]) == 1
    assert "best.pt or last.pt" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_exported_metrics_are_those_of_the_exported_checkpoint(tmp_path):
    from cefl_zoo.commands.export import metrics_from_json

    path = tmp_path / "metrics.json"
    path.write_text(
        json.dumps({"best": {"war": 1.0, "uar": 0.9}, "last": {"war": 0.8, "uar": 0.7}})
    )
    assert metrics_from_json(path)["war"] == 1.0
    assert metrics_from_json(path, prefer="last") == {"war": 0.8, "uar": 0.7}
    path.write_text(json.dumps({"last": {"war": 0.8}}))  # no best: fall back
    assert metrics_from_json(path, prefer="best") == {"war": 0.8}
