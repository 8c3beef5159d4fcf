"""create_model / list_models / register_model, and clear errors for wrong input."""

from __future__ import annotations

import pytest
import torch

import cefl_zoo
from cefl_zoo import CEFLNet, UnknownModelError, create_model, list_models
from cefl_zoo.models import build_model

SHAPE = r"\(B, N, K, 3, H, W\)"


# --- listing and creating ---------------------------------------------------------------
def test_list_models_filters_like_timm() -> None:
    everything = list_models()
    assert everything == sorted(everything)
    assert set(list_models("ceflnet*")) == {m for m in everything if m.startswith("ceflnet")}
    assert list_models(["frameavg*", "cnnlstm*"]) == ["cnnlstm_resnet18", "frameavg_resnet18"]
    assert "ceflnet_resnet18" not in list_models("ceflnet*", exclude_filters="*resnet18*")
    assert list_models("no_such_*") == []


def test_unknown_model_lists_close_matches() -> None:
    with pytest.raises(UnknownModelError, match="ceflnet_resnet18") as err:
        create_model("ceflnet_resnet81")
    assert "Close matches" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_unknown_weight_tag() -> None:
    with pytest.raises(UnknownModelError, match="unknown weights 'ceflnet_tiny.no_such_tag'"):
        create_model("ceflnet_tiny.no_such_tag")


def test_num_classes_and_kwargs_reach_the_model() -> None:
    model = create_model("ceflnet_tiny", num_classes=11, eian_kernel_size=3, clip_dim=32)
    assert isinstance(model, CEFLNet)
    assert model.num_classes == 11 and model.clip_dim == 32
    assert model.head.temporal_conv.kernel_size == (3,)
    assert model.config == {
        "architecture": "ceflnet_tiny",
        "backbone": "test_convnext",
        "num_classes": 11,
        "in_chans": 3,
        "backbone_kwargs": {},
        "clip_dim": 32,
        "self_attention": True,
        "relation": True,
        "head": "eian",
        "eian_kernel_size": 3,
        "drop_rate": 0.0,
        "attn_drop": 0.0,
    }


def test_config_rebuilds_the_same_architecture() -> None:
    model = create_model("ceflnet_resnet18_sal", backbone="test_convnext", num_classes=3)
    config = dict(model.config)
    arch = config.pop("architecture")
    rebuilt = create_model(arch, **config)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    rebuilt.load_state_dict(model.state_dict())  # same shapes everywhere


def test_ablation_flags_of_table6_models() -> None:
    sal = create_model("ceflnet_resnet18_sal", backbone="test_convnext")
    lrl = create_model("ceflnet_resnet18_sal_lrl", backbone="test_convnext")
    full = create_model("ceflnet_resnet18", backbone="test_convnext")
    assert sal.clip_encoder.sal is not None and sal.clip_encoder.lrl.relation is None
    assert sal.head_type == lrl.head_type == "mean"
    assert lrl.clip_encoder.lrl.relation is not None
    assert full.head_type == "eian"
    assert isinstance(
        create_model("frameavg_resnet18", backbone="test_convnext"), cefl_zoo.FrameAverage
    )
    assert isinstance(create_model("cnnlstm_resnet18", backbone="test_convnext"), cefl_zoo.CNNLSTM)


def test_pretrained_cfg_follows_a_swapped_backbone() -> None:
    default = create_model("ceflnet_resnet18")
    assert default.pretrained_cfg.mean == (0.485, 0.456, 0.406)
    assert default.pretrained_cfg.input_size == (3, 224, 224)
    swapped = create_model("ceflnet_resnet18", backbone="test_convnext")
    assert swapped.pretrained_cfg.mean == (0.5, 0.5, 0.5)
    assert swapped.pretrained_cfg.input_size == (3, 160, 160)
    tiny = create_model("ceflnet_tiny")
    assert tiny.pretrained_cfg.input_size == (3, 64, 64)  # the registry's choice, not timm's


@pytest.mark.parametrize("backbone", ["mobilenetv3_small_050", "hgnetv2_b0"])
def test_backbones_with_a_head_block_give_their_pre_logits_size(backbone: str) -> None:
    # timm's num_classes=0 output is head_hidden_size wide (1024 / 2048), not num_features.
    model = create_model("ceflnet_tiny", backbone=backbone, num_classes=3).eval()
    assert model.num_features == model.backbone.head_hidden_size != model.backbone.num_features
    with torch.no_grad():
        out = model.forward_explain(torch.randn(1, 2, 2, 3, 32, 32))
    assert out.logits.shape == (1, 3) and out.clip_features.shape[:2] == (1, 2)


def test_fixed_size_backbone_sets_the_input_size_and_notes() -> None:
    model = create_model(
        "ceflnet_tiny", backbone="vit_tiny_patch16_224", backbone_kwargs={"img_size": 32}
    )
    cfg = model.pretrained_cfg
    assert cfg.input_size == (3, 32, 32)
    assert cfg.notes == "untrained architecture; vit_tiny_patch16_224 backbone"
    x = cefl_zoo.transforms_for(model)(torch.randint(0, 255, (2, 2, 3, 48, 48), dtype=torch.uint8))
    assert model.eval()(x[None]).shape == (1, 7)  # the model's own transform fits it
    convnext = create_model("ceflnet_resnet18", backbone="convnext_atto")
    assert convnext.pretrained_cfg.notes == "untrained architecture; convnext_atto backbone"


def test_bare_architecture_pretrained_loads_the_default_weight_set() -> None:
    from cefl_zoo.hub import WeightsNotTrainedError
    from cefl_zoo.registry import default_pretrained_cfg

    model = create_model("ceflnet_tiny", pretrained=True)
    tagged = create_model("ceflnet_tiny.synthetic", pretrained=True)
    assert model.pretrained_cfg.name == "ceflnet_tiny.synthetic"
    for key, value in tagged.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    # The first registered weight set when none is available, which says how to make it.
    assert default_pretrained_cfg("ceflnet_resnet18").name == "ceflnet_resnet18.dfew"
    with pytest.raises(WeightsNotTrainedError, match="ceflnet_resnet18.dfew"):
        create_model("ceflnet_resnet18", pretrained=True)
    assert default_pretrained_cfg("ceflnet_resnet34") is None


@pytest.mark.parametrize("name", ["./no_such_model_dir", "runs/v1.2/model", "~/x"])
def test_a_path_that_does_not_exist_is_named_as_a_missing_folder(name: str) -> None:
    with pytest.raises(FileNotFoundError, match="no model folder .*save_pretrained"):
        create_model(name)


def test_timm_reads_the_pretrained_cfg_and_reset_classifier_signature() -> None:
    import timm.data

    model = create_model("ceflnet_tiny")
    data = timm.data.resolve_model_data_config(model)
    assert data["input_size"] == (3, 64, 64) and data["mean"] == model.pretrained_cfg.mean
    # timm's own eval transform must resize the whole face crop, as transforms_for does
    # (timm's default crop_pct, 0.875, would cut the face's border away)
    assert data["crop_pct"] == 1.0 == model.pretrained_cfg.crop_pct
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 5, 5), size=80, mode="bilinear")
    frames = (smooth * 255).round().to(torch.uint8).view(1, 1, 3, 80, 80)
    ours = cefl_zoo.transforms_for(model)(frames)[0, 0]
    theirs = timm.data.create_transform(**data)(frames[0, 0].float() / 255)
    torch.testing.assert_close(ours, theirs, atol=0.05, rtol=0)
    half = cefl_zoo.transforms_for(model.pretrained_cfg.replace(crop_pct=0.5))(frames)
    assert half.shape == ours.unsqueeze(0).unsqueeze(0).shape
    assert not torch.allclose(half[0, 0], ours, atol=0.05)
    assert model.pretrained_cfg["std"] == model.pretrained_cfg.std
    assert model.pretrained_cfg.get("no_such_field", 1) == 1
    with pytest.raises(KeyError):
        model.pretrained_cfg["no_such_field"]
    model.reset_classifier(4, None)
    assert model(torch.randn(1, 2, 2, 3, 32, 32)).shape == (1, 4)
    with pytest.raises(ValueError, match="global_pool"):
        model.reset_classifier(4, "avg")


def test_label_names_default_and_after_reset() -> None:
    model = create_model("ceflnet_tiny", num_classes=3)
    assert model.label_names == ("class_0", "class_1", "class_2")
    model.pretrained_cfg = model.pretrained_cfg.replace(label_names=("a", "b", "c"))
    assert model.label_names == ("a", "b", "c")
    model.reset_classifier(2)
    assert model.label_names == ("class_0", "class_1")


def test_a_new_head_drops_the_tag_and_scores_of_the_weights(tmp_path, caplog) -> None:
    import json

    shipped = create_model("ceflnet_tiny.synthetic", pretrained=True)
    assert shipped.pretrained_cfg.metrics["war"] > 0.9  # the weights' own scores
    resized = create_model("ceflnet_tiny.synthetic", pretrained=True, num_classes=3)
    assert "keeping a new, untrained classifier" in caplog.text
    shipped.reset_classifier(4)
    for model, n in ((resized, 3), (shipped, 4)):
        cfg = model.pretrained_cfg
        assert (cfg.name, cfg.metrics, cfg.dataset, cfg.train_command) == (
            "ceflnet_tiny",
            {},
            None,
            None,
        )
        assert cfg.notes == f"new {n}-class head on ceflnet_tiny.synthetic weights"
        assert (cfg.num_clips, cfg.input_size, cfg.license) == (7, (3, 32, 32), "mit")
    folder = shipped.save_pretrained(tmp_path / "m")
    saved = json.loads((folder / "config.json").read_text())["pretrained_cfg"]
    assert saved["metrics"] == {} and saved["tag"] == "" and saved["dataset"] is None
    card = (folder / "README.md").read_text()
    assert "0.99" not in card and "No evaluation results were recorded" in card
    assert "- notes: new 4-class head on ceflnet_tiny.synthetic weights" in card
    # a model without provenance keeps its notes
    plain = create_model("ceflnet_tiny")
    notes = plain.pretrained_cfg.notes
    plain.reset_classifier(2)
    assert plain.pretrained_cfg.notes == notes


def test_random_weights_of_a_tag_keep_its_classes_and_preprocessing_not_its_scores(
    tmp_path,
) -> None:
    import json

    shipped = create_model("ceflnet_tiny.synthetic", pretrained=True).pretrained_cfg
    random = create_model("ceflnet_tiny.synthetic")  # pretrained=False: random weights
    cfg = random.pretrained_cfg
    assert (cfg.label_names, cfg.input_size, cfg.mean) == (
        shipped.label_names,
        shipped.input_size,
        shipped.mean,
    )
    assert (cfg.tag, cfg.metrics, cfg.status, cfg.sha256, cfg.file) == ("", {}, "none", None, None)
    assert (
        cfg.notes == "random weights, with the classes and preprocessing of ceflnet_tiny.synthetic"
    )
    saved = json.loads((random.save_pretrained(tmp_path / "m") / "config.json").read_text())
    assert saved["pretrained_cfg"]["metrics"] == {} and saved["pretrained_cfg"]["tag"] == ""
    assert "0.99" not in (tmp_path / "m" / "README.md").read_text()
    # another backbone is another model: its preprocessing, not the tiny weights' 32 px
    swapped = create_model("ceflnet_tiny.synthetic", backbone="resnet18").pretrained_cfg
    assert (swapped.tag, swapped.input_size) == ("", (3, 224, 224))
    # a state dict file gives weights: the tag stays, as in timm
    path = tmp_path / "w.pth"
    torch.save(create_model("ceflnet_tiny.synthetic", pretrained=True).state_dict(), path)
    assert create_model("ceflnet_tiny.synthetic", checkpoint_path=path).pretrained_cfg.tag == (
        "synthetic"
    )


def test_pretrained_without_weights_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match="pretrained=False.*pretrained_backbone=True"):
        create_model("frameavg_resnet18", pretrained=True)


def test_pretrained_backbone_offline_fails_clearly() -> None:
    # HF_HUB_OFFLINE=1 with an empty cache (tests/conftest.py): timm cannot fetch ImageNet
    # weights, and the error must say how to proceed instead of a bare hub exception.
    with pytest.raises(RuntimeError, match="pretrained_backbone=False"):
        create_model("ceflnet_resnet18", pretrained_backbone=True)


def test_unknown_backbone() -> None:
    with pytest.raises(ValueError, match="unknown timm backbone 'resnet1800'"):
        CEFLNet(backbone="resnet1800")


def test_register_a_user_model(monkeypatch) -> None:
    from cefl_zoo import registry

    # Registered for this test only (other tests list the registry).
    monkeypatch.setattr(registry, "_model_entrypoints", dict(registry._model_entrypoints))
    monkeypatch.setattr(registry, "_model_to_module", dict(registry._model_to_module))

    @cefl_zoo.register_model
    def my_test_ceflnet(pretrained: bool = False, **kwargs):
        return build_model(
            CEFLNet,
            "my_test_ceflnet",
            pretrained,
            default_args={"backbone": "test_convnext", "clip_dim": 16},
            **kwargs,
        )

    assert "my_test_ceflnet" in list_models("my_test_*")
    model = create_model("my_test_ceflnet", num_classes=2)
    assert model.clip_dim == 16 and model.num_classes == 2
    assert model.architecture == "my_test_ceflnet"


def test_a_misspelt_keyword_names_its_close_matches() -> None:
    with pytest.raises(
        TypeError, match=r"'num_class': did you mean 'num_classes'\?.*CEFLNet takes:"
    ):
        create_model("ceflnet_tiny", num_class=3)
    with pytest.raises(TypeError, match=r"'clip_dim' for frameavg_resnet18 \(FrameAverage\)"):
        create_model("frameavg_resnet18", clip_dim=8, pretrained_backbone=False)


def test_num_classes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="num_classes.*forward_features"):
        create_model("ceflnet_tiny", num_classes=0)


def test_pretrained_cfg_dict_round_trip() -> None:
    cfg = create_model("ceflnet_tiny").pretrained_cfg.replace(
        label_names=("x", "y"), metrics={"war": 0.5}
    )
    data = cfg.to_dict()
    assert data["input_size"] == [3, 64, 64] and data["label_names"] == ["x", "y"]
    assert cefl_zoo.PretrainedCfg.from_dict({**data, "future_field": 1}) == cfg


# --- input validation -----------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny() -> CEFLNet:
    return create_model("ceflnet_tiny").eval()


@pytest.mark.parametrize(
    "x,error,extra",
    [
        (torch.randn(7, 5, 3, 32, 32), ValueError, "unsqueeze"),  # one video, no batch axis
        (torch.randn(35, 3, 32, 32), ValueError, "sampled"),  # frames, not clips
        (torch.randn(1, 7, 5, 32, 32, 3), ValueError, "permute"),  # channels last
        (torch.randn(1, 7, 5, 1, 32, 32), ValueError, "3 channels"),  # grayscale
        (torch.randn(1, 0, 5, 3, 32, 32), ValueError, "N=0"),
        (torch.randn(1, 7, 0, 3, 32, 32), ValueError, "K=0"),
        (torch.zeros(1, 7, 5, 3, 32, 32, dtype=torch.uint8), TypeError, "x.float"),
        (torch.zeros(1, 2, 2, 3, 8, 8).long(), TypeError, "floating-point"),
    ],
)
def test_wrong_input_gets_a_clear_error(
    tiny: CEFLNet, x: torch.Tensor, error: type, extra: str
) -> None:
    with pytest.raises(error, match=SHAPE) as info:
        tiny(x)
    assert extra in str(info.value)


def test_non_tensor_input(tiny: CEFLNet) -> None:
    with pytest.raises(TypeError, match=SHAPE):
        tiny([[1.0]])


def test_explain_and_features_validate_too(tiny: CEFLNet) -> None:
    with pytest.raises(ValueError, match=SHAPE):
        tiny.forward_explain(torch.randn(7, 5, 3, 32, 32))
    with pytest.raises(ValueError, match=SHAPE):
        tiny.forward_features(torch.randn(7, 5, 3, 32, 32))


def test_models_in_half_precision_and_autocast(tiny: CEFLNet) -> None:
    x = torch.randn(1, 2, 2, 3, 32, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny(x)
    assert out.shape == (1, 7) and torch.isfinite(out.float()).all()
    with torch.no_grad():
        reference = tiny(x)
    torch.testing.assert_close(out.float(), reference, rtol=0.1, atol=0.1)
