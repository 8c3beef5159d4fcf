"""Regression tests for the hub review: push keeps the folder, stale exports, errors, names.

Each test pins one finding of the review of the Hub code (push rewriting README.md,
re-export leaving an old ``model.pt2``, ``force_download`` / malformed-id errors, typo'd
keywords blamed on the version, ``org/repo`` without ``hf-hub:``, the predictor's default
weight set, ``frame_weights`` of the SAL-only ablation).
"""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import pytest
import torch
from _hub_utils import (
    build_hf_cache,
    fake_program,
    mock_hub,
    tiny_model,
    two_saved_models,
    use_fake_exporters,
    video,
)

import cefl_zoo
from cefl_zoo import registry
from cefl_zoo.hub import (
    ChecksumMismatchError,
    ConfigMismatchError,
    PretrainedWeightsError,
    WeightsNotFoundError,
    WeightsSource,
    sha256sum,
)
from cefl_zoo.hub_mixin import check_folder, upload_folder
from cefl_zoo.models import CEFLNet

REV = "0123456789abcdef0123456789abcdef01234567"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir())}


@pytest.fixture
def folder(tmp_path):
    model = tiny_model(num_classes=3)
    model.pretrained_cfg = model.pretrained_cfg.replace(
        label_names=("anger", "happiness", "neutral"), input_size=(3, 32, 32)
    )
    return model.save_pretrained(tmp_path / "weights")


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def _usage_line(card: bytes | str) -> str:
    text = card.decode() if isinstance(card, bytes) else card
    return next(line for line in text.splitlines() if "create_model(" in line)


# -- 1. push does not touch the user's folder --------------------------------------------
def test_a_failed_push_leaves_the_folder_byte_identical(folder):
    before = _snapshot(folder)
    sent, patches = mock_hub(fail=OSError("offline"))
    with patches[0], patches[1], patches[2], pytest.raises(OSError):
        upload_folder(folder, "myorg/ceflnet-typo")
    assert _snapshot(folder) == before and sent == {}

    sent, patches = mock_hub()
    with patches[0], patches[1], patches[2]:
        upload_folder(folder, "myorg/ceflnet-right")
    assert _snapshot(folder) == before  # a successful push does not change it either
    assert _usage_line(sent["files"]["README.md"]) == (
        'model = cefl_zoo.create_model("hf-hub:myorg/ceflnet-right").eval()'
    )
    assert sent["files"]["model.safetensors"] == before["model.safetensors"]
    assert sent["files"]["config.json"] == before["config.json"]


def test_push_command_failure_keeps_the_card(folder, capsys):
    from cefl_zoo.cli import main

    before = _snapshot(folder)
    _, patches = mock_hub(fail=OSError("connection refused"))
    with patches[0], patches[1], patches[2]:
        assert main(["push", str(folder), "org/x"]) == 1
    assert "connection refused" in capsys.readouterr().err
    assert _snapshot(folder) == before


def test_a_card_rewritten_for_another_repo_is_retargeted_and_a_hand_edit_is_kept(folder):
    from cefl_zoo.model_card import render_model_card

    config = json.loads((folder / "config.json").read_text())
    # What the old code left behind after a push to a typo'd repo:
    (folder / "README.md").write_text(render_model_card(config, repo_id="myorg/typo"))
    sent, patches = mock_hub()
    with patches[0], patches[1], patches[2]:
        upload_folder(folder, "myorg/right")
    assert "hf-hub:myorg/right" in _usage_line(sent["files"]["README.md"])

    edited = render_model_card(config) + "\nHand-written notes.\n"
    (folder / "README.md").write_text(edited)
    with patches[0], patches[1], patches[2]:
        upload_folder(folder, "myorg/right")
    assert sent["files"]["README.md"].decode() == edited  # uploaded as it is
    assert (folder / "README.md").read_text() == edited


# -- 2. re-export and push never pair new weights with an old exported program -----------
@pytest.fixture
def fake_exporters(monkeypatch):
    """Fast stand-ins for torch.export / ONNX: files derived from the weights."""
    return use_fake_exporters(monkeypatch)


def test_reexport_removes_the_stale_program_and_keeps_user_files(tmp_path, fake_exporters):
    from cefl_zoo.commands.export import export

    src1, src2 = two_saved_models(tmp_path)
    out = tmp_path / "out"
    export(src1, out, torch_export=True, onnx=True)
    config = json.loads((out / "config.json").read_text())
    assert config["artifacts"] == {
        "model.onnx": sha256sum(out / "model.onnx"),
        "model.pt2": sha256sum(out / "model.pt2"),
    }
    assert check_folder(out)["artifacts"] == config["artifacts"]
    (out / "notes.txt").write_text("mine")
    (out / "model_int8.onnx").write_bytes(b"mine too")

    export(src2, out)  # new weights, no --torch-export / --onnx
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "README.md",
        "config.json",
        "model.safetensors",
        "model_int8.onnx",
        "notes.txt",
    ]
    assert "artifacts" not in json.loads((out / "config.json").read_text())
    assert (out / "notes.txt").read_text() == "mine"
    check_folder(out)

    export(src2, out, torch_export=True)
    again = json.loads((out / "config.json").read_text())
    assert sorted(again["artifacts"]) == ["model.pt2"] and not (out / "model.onnx").exists()
    reloaded = cefl_zoo.create_model(str(out)).eval()
    assert (out / "model.pt2").read_bytes() == fake_program(reloaded, tmp_path / "p").read_bytes()


def test_push_refuses_an_unrecorded_or_changed_artifact(tmp_path, fake_exporters, capsys):
    from cefl_zoo.cli import main
    from cefl_zoo.commands.export import export

    src1, src2 = two_saved_models(tmp_path)
    old = export(src1, tmp_path / "old", torch_export=True)
    out = export(src2, tmp_path / "out")
    (out / "model.pt2").write_bytes((old / "model.pt2").read_bytes())  # copied in by hand
    with pytest.raises(ConfigMismatchError, match=r"model\.pt2 .* not recorded"):
        check_folder(out)
    sent, patches = mock_hub()
    with patches[0], patches[1], patches[2]:
        assert main(["push", str(out), "org/x"]) == 1
    assert sent == {} and "model.pt2" in capsys.readouterr().err

    out = export(src2, out, torch_export=True)
    (out / "model.pt2").write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatchError, match=r"model\.pt2"):
        check_folder(out)


def test_push_uploads_recorded_artifacts_and_deletes_stale_remote_ones(tmp_path, fake_exporters):
    from cefl_zoo.commands.export import export

    src1, _ = two_saved_models(tmp_path)
    out = export(src1, tmp_path / "out", torch_export=True)
    sent, patches = mock_hub()
    with patches[0], patches[1], patches[2]:
        upload_folder(out, "org/x")
    assert set(sent["files"]) == {"README.md", "config.json", "model.safetensors", "model.pt2"}
    assert sent["files"]["model.pt2"] == (out / "model.pt2").read_bytes()
    assert sorted(sent["kwargs"]["delete_patterns"]) == ["model.onnx", "model.onnx.data"]
    assert sorted(sent["kwargs"]["allow_patterns"]) == sorted(sent["files"])


def test_save_pretrained_over_an_export_makes_its_program_unpublishable(tmp_path, fake_exporters):
    from cefl_zoo.commands.export import export

    src1, _ = two_saved_models(tmp_path)
    out = export(src1, tmp_path / "out", torch_export=True)
    tiny_model(num_classes=3).save_pretrained(out)  # other weights, written by hand
    with pytest.raises(ConfigMismatchError, match="model.pt2"):
        check_folder(out)


# -- branch= (huggingface_hub's spelling) ---------------------------------------------------
def test_push_to_hub_accepts_branch(folder):
    model = CEFLNet.from_pretrained(folder)
    sent, patches = mock_hub()
    with patches[0], patches[1] as create_branch, patches[2]:
        model.push_to_hub("org/x", branch="v2")
    assert create_branch.call_args.kwargs["branch"] == "v2" and sent["kwargs"]["revision"] == "v2"
    with pytest.raises(ValueError, match="two branches"):
        model.push_to_hub("org/x", branch="v2", revision="v3")


def test_save_pretrained_push_without_repo_id_writes_nothing(folder, tmp_path):
    model = CEFLNet.from_pretrained(folder)
    with pytest.raises(ValueError, match="push_to_hub=True needs repo_id"):
        model.save_pretrained(tmp_path / "out", push_to_hub=True)
    assert not (tmp_path / "out").exists()


# -- 7, 8. Hub error messages ---------------------------------------------------------------
def test_unreachable_hub_message_has_no_doubled_or(hf_cache, monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError

    from cefl_zoo import hub

    monkeypatch.setattr(hub, "_offline", lambda: False)

    def unreachable(*args, **kwargs):
        raise LocalEntryNotFoundError("connection error and not in the cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    with pytest.raises(WeightsNotFoundError) as err:
        CEFLNet.from_pretrained("org/absent")
    text = str(err.value)
    assert "or or" not in text and ", or ," not in text
    assert "the Hub could not be reached" in text and "check the network and HF_ENDPOINT" in text
    assert "hf download org/absent config.json" in text


def test_force_download_offline_is_a_weights_error(folder, hf_cache):
    build_hf_cache(hf_cache, "org/tiny", folder, revision=REV)
    with pytest.raises(WeightsNotFoundError) as err:  # HF_HUB_OFFLINE=1 (conftest)
        CEFLNet.from_pretrained("org/tiny", force_download=True)
    text = str(err.value)
    assert "force_download=True" in text and "'org/tiny'" in text and "config.json" in text
    assert "unset HF_HUB_OFFLINE" in text and "drop force_download=True" in text


def test_force_download_that_cannot_reach_the_hub_is_a_weights_error(hf_cache, monkeypatch):
    from cefl_zoo import hub

    monkeypatch.setattr(hub, "_offline", lambda: False)

    def failing(*args, **kwargs):
        try:
            raise ConnectionError("connection refused")
        except ConnectionError as cause:
            raise ValueError("Force download failed due to the above error.") from cause

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", failing)
    with pytest.raises(WeightsNotFoundError) as err:
        cefl_zoo.create_model("hf-hub:org/tiny", force_download=True)
    text = str(err.value)
    assert "connection refused" in text and "drop force_download=True" in text
    assert "check the network" in text


@pytest.mark.parametrize("name", ["hf-hub:", "hf-hub:org/repo/sub", "hf-hub:org/re po", "hf_hub:"])
def test_malformed_hub_ids_are_weights_errors(name):
    with pytest.raises(PretrainedWeightsError) as err:
        cefl_zoo.hub.load_model(name)
    text = str(err.value)
    assert repr(name) in text and "hf-hub:org/repo" in text
    with pytest.raises(WeightsNotFoundError):
        CEFLNet.from_pretrained(name)


def test_malformed_hub_id_through_create_model(hf_cache):
    with pytest.raises(WeightsNotFoundError, match="valid Hugging Face repo"):
        cefl_zoo.create_model("hf-hub:org/repo/sub")


# -- 9. a typo'd keyword is a typo, not a version mismatch --------------------------------
def test_typo_in_a_keyword_names_it_and_the_close_match(folder):
    for call in (
        lambda: CEFLNet.from_pretrained(folder, num_class=3),
        lambda: cefl_zoo.create_model(str(folder), num_class=3),
        lambda: cefl_zoo.create_model(str(folder), pretrained=False, num_class=3),
    ):
        with pytest.raises(TypeError) as err:
            call()
        text = str(err.value)
        assert "unknown argument 'num_class'" in text and "did you mean 'num_classes'" in text
        assert "another cefl-zoo version" not in text and "upgrade" not in text


def test_an_unknown_key_in_config_json_is_blamed_on_the_version(folder):
    config = json.loads((folder / "config.json").read_text())
    config["temporal_stride"] = 2
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigMismatchError) as err:
        CEFLNet.from_pretrained(folder)
    text = str(err.value)
    assert "'temporal_stride'" in text and "another cefl-zoo version" in text


# -- 10. names: hint for a bare org/repo; timm's hf_hub: and local-dir: ---------------------
def test_bare_org_repo_gets_the_hf_hub_hint(capsys, tmp_path):
    from cefl_zoo.cli import main

    with pytest.raises(cefl_zoo.UnknownModelError, match=r"'hf-hub:org/tiny'"):
        cefl_zoo.Predictor("org/tiny", device="cpu")
    video = tmp_path / "v.mp4"  # an input that exists: the model is what is wrong
    video.write_bytes(b"not read: the model fails to load first")
    assert main(["predict", str(video), "--model", "org/tiny", "--device", "cpu"]) == 2
    assert "did you mean the hugging face repo 'hf-hub:org/tiny'" in capsys.readouterr().err.lower()
    assert cefl_zoo.hub.hub_hint("ceflnet_tiny") == "" and cefl_zoo.hub.hub_hint("./a/b") == ""
    # a path is named as a missing folder, not offered as a Hub repo or a close match
    for path in ("./nothere", "../nothere", str(tmp_path / "nothere")):
        assert cefl_zoo.hub.hub_hint(path) == ""
        assert main(["predict", str(video), "--model", path, "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert f"no model folder '{path}'" in err, err
        assert "hf-hub" not in err and "Available:" not in err


def test_timm_prefixes_hf_hub_and_local_dir(folder, hf_cache):
    build_hf_cache(hf_cache, "org/tiny", folder, revision=REV)
    assert WeightsSource.parse("hf_hub:org/tiny@v1") == WeightsSource("org/tiny", False, "v1")
    assert WeightsSource.parse(f"local-dir:{folder}") == WeightsSource(str(folder), True)
    reference = CEFLNet.from_pretrained(folder)
    x = video()
    for name in ("hf_hub:org/tiny", f"hf_hub:org/tiny@{REV}", f"local-dir:{folder}"):
        for model in (
            CEFLNet.from_pretrained(name),
            cefl_zoo.hub.load_model(name).eval(),
            cefl_zoo.Predictor(name, device="cpu").model,
        ):
            with torch.no_grad():
                assert torch.equal(model(x), reference(x)), name
    assert cefl_zoo.hub.load_model("hf_hub:org/tiny").pretrained_cfg.hf_hub_revision == REV
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        CEFLNet.from_pretrained("local-dir:/no/such/folder")


# -- 6. the predictor's default weight set is the registry's --------------------------------
def test_predictor_uses_the_registry_default_weight_set(tmp_path, monkeypatch):
    from cefl_zoo.predict import load_model_for_inference

    synthetic = registry.get_pretrained_cfg("ceflnet_tiny.synthetic")
    torch.manual_seed(5)
    other = cefl_zoo.create_model("ceflnet_tiny", num_classes=len(synthetic.label_names))
    other.pretrained_cfg = synthetic.replace(tag="aaa_other", file=None, sha256=None)
    folder = other.save_pretrained(tmp_path / "other")
    sha = json.loads((folder / "config.json").read_text())["pretrained_cfg"]["sha256"]
    cfg = synthetic.replace(tag="aaa_other", file=str(folder), sha256=sha, status="available")
    monkeypatch.setitem(registry._pretrained_cfgs["ceflnet_tiny"], "aaa_other", cfg)
    assert registry.list_pretrained("ceflnet_tiny.*")[0].tag == "aaa_other"  # sorts first

    expected = cefl_zoo.create_model("ceflnet_tiny", pretrained=True)
    assert expected.pretrained_cfg.tag == registry.default_pretrained_cfg("ceflnet_tiny").tag
    for model in (
        load_model_for_inference("ceflnet_tiny"),
        cefl_zoo.Predictor("ceflnet_tiny", device="cpu").model,
    ):
        assert model.pretrained_cfg.tag == expected.pretrained_cfg.tag == "synthetic"
        ref = expected.state_dict()
        assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())


# -- 12. frame_weights of a model that does not weight frames --------------------------------
def _small(model):
    model.pretrained_cfg = model.pretrained_cfg.replace(
        input_size=(3, 32, 32), num_clips=3, frames_per_clip=2
    )
    return model


def test_sal_ablation_reports_no_frame_weights(tmp_path):
    from matplotlib.image import imread

    from cefl_zoo.predict import Prediction

    frames = torch.randint(0, 256, (24, 3, 40, 40), dtype=torch.uint8)
    sal = _small(tiny_model("ceflnet_resnet18_sal", num_classes=3))
    lrl = _small(tiny_model("ceflnet_resnet18_sal_lrl", num_classes=3))
    with torch.no_grad():
        assert torch.all(sal.forward_explain(torch.randn(1, 3, 2, 3, 32, 32)).frame_weights == 1)

    p = cefl_zoo.Predictor(sal, device="cpu").predict(frames, fps=10)
    assert p.frame_weights is None and p.num_clips == 3
    data = json.loads(p.to_json())
    assert [c["frame_weights"] for c in data["clips"]] == [None, None, None]
    assert Prediction.from_dict(data).frame_weights is None
    q = cefl_zoo.Predictor(lrl, device="cpu").predict(frames, fps=10)
    assert q.frame_weights.shape == (3, 2)
    assert all(len(c["frame_weights"]) == 2 for c in q.to_dict()["clips"])

    without = imread(p.plot(tmp_path / "sal.png"))
    p.frame_weights = torch.full((3, 2), 0.5)
    with_panel = imread(p.plot(tmp_path / "sal_weights.png"))
    assert without.shape[0] < with_panel.shape[0]  # the frame-weight panel is left out


def test_a_model_attribute_can_say_it_has_no_frame_weights():
    from cefl_zoo.predict.predictor import weights_frames

    model = _small(tiny_model(num_classes=3))
    assert weights_frames(model)
    assert not weights_frames(tiny_model("ceflnet_resnet18_sal"))
    assert weights_frames(tiny_model("ceflnet_resnet18_sal_lrl"))
    frames = torch.randint(0, 256, (24, 3, 40, 40), dtype=torch.uint8)
    assert cefl_zoo.Predictor(model, device="cpu").predict(frames).frame_weights is not None

    class Unweighted(type(model)):  # a model class that says it weights no frames
        has_frame_weights = False

    model.__class__ = Unweighted
    assert not weights_frames(model)
    assert cefl_zoo.Predictor(model, device="cpu").predict(frames).frame_weights is None


# -- minor: export summary of a folder without tag or labels ----------------------------------
def test_export_summary_without_tag(tmp_path, capsys):
    from cefl_zoo.cli import main

    src = tiny_model(num_classes=3).save_pretrained(tmp_path / "src")
    assert main(["export", str(src), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "ceflnet_tiny.  labels" not in out and "labels None" not in out
    assert "  ceflnet_tiny  labels not recorded" in out


def test_a_new_head_on_a_folder_drops_the_saved_scores(tmp_path):
    from cefl_zoo.models import CEFLNet

    folder = cefl_zoo.create_model("ceflnet_tiny.synthetic", pretrained=True).save_pretrained(
        tmp_path / "m"
    )
    for model in (
        CEFLNet.from_pretrained(folder, num_classes=3),
        cefl_zoo.create_model(folder, num_classes=3),
    ):
        cfg = model.pretrained_cfg
        assert (cfg.tag, cfg.metrics, cfg.dataset, cfg.train_command, cfg.label_names) == (
            "",
            {},
            None,
            None,
            None,
        )
        assert cfg.input_size == (3, 32, 32) and "new 3-class head" in cfg.notes
        saved = json.loads((model.save_pretrained(tmp_path / "again") / "config.json").read_text())
        assert saved["pretrained_cfg"]["metrics"] == {} and saved["pretrained_cfg"]["tag"] == ""
    same = cefl_zoo.create_model(folder).pretrained_cfg  # the folder's own head keeps its record
    assert same.tag == "synthetic" and same.metrics["war"] > 0.9


def test_folders_take_timms_create_model_options(tmp_path):
    from safetensors.torch import save_file

    model = cefl_zoo.create_model("ceflnet_tiny.synthetic", pretrained=True)
    folder = model.save_pretrained(tmp_path / "m")
    dropped = cefl_zoo.create_model(folder, drop_path_rate=0.1)
    assert dropped.init_kwargs["backbone_kwargs"] == {"drop_path_rate": 0.1}
    assert (
        cefl_zoo.create_model(
            folder, pretrained_cfg_overlay={"num_clips": 5}
        ).pretrained_cfg.num_clips
        == 5
    )
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] += 1
    save_file(state, str(tmp_path / "other.safetensors"))
    loaded = cefl_zoo.create_model(folder, checkpoint_path=tmp_path / "other.safetensors")
    assert torch.equal(loaded.state_dict()[key], state[key])
    with pytest.raises(TypeError, match="unknown field.*nope"):
        cefl_zoo.create_model(folder, pretrained_cfg_overlay={"nope": 1})
