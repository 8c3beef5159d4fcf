"""timm's conventions on the zoo's models: create_model options, list_models, head sizes."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import cefl_zoo
from cefl_zoo import create_model, list_models


def _video(channels: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randn(1, 7, 2, channels, size, size)


def test_list_models_expands_plain_names_to_their_tags_and_filters_by_module() -> None:
    assert list_models("ceflnet_tiny", pretrained=True) == ["ceflnet_tiny.synthetic"]
    assert list_models("ceflnet_tiny*", pretrained=True) == ["ceflnet_tiny.synthetic"]
    assert list_models(pretrained=True, include_tags=False) == ["ceflnet_tiny"]
    tags = list_models("ceflnet_resnet18", include_tags=True)  # registered, trained or not
    assert "ceflnet_resnet18.dfew" in tags and "ceflnet_resnet18" not in tags
    assert list_models(module="baselines") == ["cnnlstm_resnet18", "frameavg_resnet18"]
    assert "ceflnet_resnet18" in list_models(module="ceflnet")
    assert list_models(module="no_such_module") == []


def test_pretrained_cfg_as_tag_dict_or_overlay() -> None:
    tagged = create_model("ceflnet_tiny", pretrained=True, pretrained_cfg="synthetic")
    reference = create_model("ceflnet_tiny.synthetic", pretrained=True)
    assert tagged.label_names == reference.label_names
    assert all(torch.equal(a, b) for a, b in zip(tagged.parameters(), reference.parameters()))
    custom = create_model("ceflnet_tiny", pretrained_cfg={"mean": (0.1, 0.2, 0.3)})
    assert custom.pretrained_cfg.mean == (0.1, 0.2, 0.3)
    overlaid = create_model("ceflnet_tiny", pretrained_cfg_overlay={"interpolation": "bicubic"})
    assert overlaid.pretrained_cfg.interpolation == "bicubic"
    with pytest.raises(TypeError, match="unknown field.*no_such_field"):
        create_model("ceflnet_tiny", pretrained_cfg_overlay={"no_such_field": 1})


def test_overlay_changes_the_default_weight_set_of_a_bare_name() -> None:
    # timm applies the overlay to the cfg of the weights pretrained=True loads
    for kwargs in (
        {"pretrained_cfg_overlay": {"num_clips": 5, "mean": (0.1, 0.2, 0.3)}},
        {"pretrained_cfg": {"num_clips": 5, "mean": (0.1, 0.2, 0.3)}},
    ):
        for name in ("ceflnet_tiny", "ceflnet_tiny.synthetic"):
            cfg = create_model(name, pretrained=True, **kwargs).pretrained_cfg
            assert (cfg.tag, cfg.num_clips, cfg.mean) == ("synthetic", 5, (0.1, 0.2, 0.3))


def test_explicit_preprocessing_wins_and_drop_rates_do_not_change_it() -> None:
    default = create_model("ceflnet_tiny").pretrained_cfg.input_size
    assert create_model("ceflnet_tiny", drop_path_rate=0.1).pretrained_cfg.input_size == default
    spelt_out = create_model("ceflnet_tiny", backbone_kwargs={"drop_path_rate": 0.1})
    assert spelt_out.pretrained_cfg.input_size == default
    swapped = create_model(
        "cnnlstm_resnet18",
        backbone="test_convnext",
        pretrained_cfg_overlay={"input_size": (3, 32, 32), "mean": (0.1, 0.2, 0.3)},
    ).pretrained_cfg
    assert (swapped.input_size, swapped.mean) == ((3, 32, 32), (0.1, 0.2, 0.3))
    assert (
        swapped.std == create_model("cnnlstm_resnet18", backbone="test_convnext").pretrained_cfg.std
    )


def test_overlay_file_on_a_bare_name_is_not_the_default_weight_set(tmp_path) -> None:
    folder = create_model("ceflnet_tiny", num_classes=5).save_pretrained(tmp_path / "five")
    cfg = create_model(
        "ceflnet_tiny", pretrained=True, num_classes=5, pretrained_cfg_overlay={"file": str(folder)}
    ).pretrained_cfg
    # the caller's weights: not the synthetic set's classes, dataset or notes
    assert (cfg.tag, cfg.label_names, cfg.dataset) == ("custom", None, None)
    assert (cfg.file, cfg.hf_hub_id) == (str(folder), None)


def test_overlay_weights_from_elsewhere_do_not_keep_the_registered_scores(tmp_path) -> None:
    folder = create_model("ceflnet_tiny.synthetic", pretrained=True).save_pretrained(tmp_path / "m")
    cfg = create_model(
        "ceflnet_tiny.synthetic", pretrained=True, pretrained_cfg_overlay={"file": str(folder)}
    ).pretrained_cfg
    assert (cfg.tag, cfg.metrics, cfg.train_command, cfg.sha256) == ("synthetic", {}, None, None)


def test_default_cfg_is_pretrained_cfg_and_list_pretrained_expands_names() -> None:
    model = create_model("ceflnet_tiny")
    assert model.default_cfg is model.pretrained_cfg
    model.default_cfg = model.pretrained_cfg.replace(interpolation="bicubic")
    assert model.pretrained_cfg.interpolation == "bicubic"
    assert [c.name for c in cefl_zoo.list_pretrained("ceflnet_tiny")] == ["ceflnet_tiny.synthetic"]
    assert cefl_zoo.list_pretrained("ceflnet_tin") == []


def test_overlay_file_loads_weights_from_a_local_folder(tmp_path) -> None:
    source = create_model("ceflnet_tiny", num_classes=3)
    source.pretrained_cfg = source.pretrained_cfg.replace(label_names=("a", "b", "c"))
    folder = source.save_pretrained(tmp_path / "mine")
    loaded = create_model(  # as in timm, num_classes follows the weights only when given
        "ceflnet_tiny",
        pretrained=True,
        num_classes=3,
        pretrained_cfg_overlay={"file": str(folder), "label_names": ("a", "b", "c")},
    )
    assert loaded.label_names == ("a", "b", "c")
    assert loaded.pretrained_cfg.sha256 is None  # not the registered set's checksum
    assert all(torch.equal(a, b) for a, b in zip(loaded.parameters(), source.parameters()))


@pytest.mark.parametrize("fmt", ["safetensors", "pth", "training-checkpoint", "ddp"])
def test_checkpoint_path_loads_a_state_dict_file(tmp_path, fmt) -> None:
    source = create_model("ceflnet_tiny", num_classes=3, clip_dim=40)
    state = source.state_dict()
    path = tmp_path / f"w.{'safetensors' if fmt == 'safetensors' else 'pth'}"
    if fmt == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif fmt == "pth":
        torch.save(state, path)
    elif fmt == "training-checkpoint":
        torch.save({"model": state, "epoch": 3}, path)
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    loaded = create_model("ceflnet_tiny", num_classes=3, clip_dim=40, checkpoint_path=path)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), state.values()))


def test_checkpoint_path_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        create_model("ceflnet_tiny", checkpoint_path=tmp_path / "nothere.pth")
    torch.save(create_model("ceflnet_tiny", num_classes=3).state_dict(), tmp_path / "three.pth")
    with pytest.raises(RuntimeError, match=r"three\.pth: does not fit CEFLNet"):
        create_model("ceflnet_tiny", num_classes=5, checkpoint_path=tmp_path / "three.pth")


def test_drop_path_rate_goes_to_the_backbone() -> None:
    model = create_model("ceflnet_tiny", drop_path_rate=0.25)
    rates = [m.drop_prob for m in model.backbone.modules() if type(m).__name__ == "DropPath"]
    assert rates and max(rates) == pytest.approx(0.25)
    assert model.init_kwargs["backbone_kwargs"] == {"drop_path_rate": 0.25}
    # The architecture's default preprocessing stays (a drop rate changes no input).
    assert model.pretrained_cfg == create_model("ceflnet_tiny").pretrained_cfg


def test_hub_options_reach_the_download_of_registered_weights(monkeypatch) -> None:
    import cefl_zoo.hub

    seen = {}
    real = cefl_zoo.hub.load_pretrained

    def spy(model, cfg, **hub_kwargs):
        seen.update(hub_kwargs)
        return real(model, cfg, **hub_kwargs)

    monkeypatch.setattr(cefl_zoo.hub, "load_pretrained", spy)
    create_model("ceflnet_tiny", pretrained=True, cache_dir="/nowhere", local_files_only=True)
    assert seen == {"cache_dir": "/nowhere", "local_files_only": True}
    create_model("ceflnet_tiny", cache_dir="/nowhere")  # unused without pretrained (timm)


def test_create_model_takes_the_path_save_pretrained_returns(tmp_path) -> None:
    model = create_model("ceflnet_tiny", num_classes=3)
    folder = model.save_pretrained(tmp_path / "m")
    again = create_model(folder)
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), model.parameters()))


def test_head_hidden_size_is_the_width_of_the_pre_logits() -> None:
    cases = [
        ("ceflnet_tiny", {"clip_dim": 40}, 40),
        ("ceflnet_tiny", {}, None),
        ("cnnlstm_resnet18", {"backbone": "test_convnext", "hidden_size": 24}, 24),
        ("frameavg_resnet18", {"backbone": "test_convnext"}, None),
    ]
    for name, kwargs, expected in cases:
        model = create_model(name, **kwargs).eval()
        pre = model.forward_head(model.forward_features(_video()), pre_logits=True)
        assert pre.shape[-1] == model.head_hidden_size == (expected or model.num_features)


def test_grey_frames_get_one_channel_statistics() -> None:
    model = create_model("ceflnet_tiny", in_chans=1).eval()
    cfg = model.pretrained_cfg
    assert cfg.input_size[0] == 1 and len(cfg.mean) == len(cfg.std) == 1
    frames = torch.randint(0, 256, (1, 7, 2, 1, 64, 64), dtype=torch.uint8)
    x = cefl_zoo.transforms_for(model)(frames)
    assert x.shape == frames.shape
    assert model(x).shape == (1, 7)


def test_reset_classifier_drops_the_old_class_names_even_for_as_many_classes() -> None:
    model = create_model("ceflnet_tiny", pretrained=True)
    assert model.label_names[0] == "anger"
    model.reset_classifier(7)
    assert model.label_names == tuple(f"class_{i}" for i in range(7))
    # Loading pretrained weights keeps the names that fit.
    assert create_model("ceflnet_tiny", pretrained=True).label_names[0] == "anger"


def test_unpooled_backbone_output_is_a_clear_error() -> None:
    model = create_model("ceflnet_tiny", backbone_kwargs={"global_pool": ""})
    with pytest.raises(ValueError, match=r"must return pooled \(M, d\) features"):
        model(_video())


def test_timm_local_dir_backbone(tmp_path) -> None:
    import timm
    from timm.models import save_for_hf

    backbone = timm.create_model("test_convnext", num_classes=0)
    save_for_hf(backbone, str(tmp_path / "bb"))
    name = f"local-dir:{tmp_path / 'bb'}"
    model = create_model("ceflnet_tiny", backbone=name, pretrained_backbone=True)
    assert type(model.backbone).__name__ == type(backbone).__name__
    ours = dict(model.backbone.named_parameters())
    assert all(torch.equal(ours[n], p) for n, p in backbone.named_parameters())


@pytest.mark.parametrize("backbone", [None, "test_vit", "resnet18"])
def test_layer_decay_runs_from_the_backbone_stem_to_the_video_head(backbone) -> None:
    import warnings

    from timm.optim._param_groups import param_groups_layer_decay

    kwargs = {} if backbone is None else {"backbone": backbone}
    model = create_model("ceflnet_tiny", **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        groups = param_groups_layer_decay(model, weight_decay=0.0, layer_decay=0.5)
    names = {id(p): n for n, p in model.named_parameters()}
    scale = {names[id(p)]: g["lr_scale"] for g in groups for p in g["params"]}
    assert len(scale) == len(names)  # every parameter in exactly one group
    outside = [n for n in names.values() if not n.startswith("backbone.")]
    assert {scale[n] for n in outside} == {1.0}  # the clip encoder and head: full lr
    inside = [scale[n] for n in names.values() if n.startswith("backbone.")]
    assert max(inside) < 1.0 and len(set(inside)) >= 3
    first = next(iter(model.backbone.named_parameters()))[0]
    assert scale[f"backbone.{first}"] == min(scale.values())  # the stem: smallest lr


def test_has_frame_weights_says_whether_explanations_weight_frames() -> None:
    x = _video()
    full = create_model("ceflnet_tiny").eval()
    no_relation = create_model("ceflnet_tiny", relation=False).eval()
    assert full.has_frame_weights and not no_relation.has_frame_weights
    assert not torch.all(full.forward_explain(x).frame_weights == 1)
    assert torch.all(no_relation.forward_explain(x).frame_weights == 1)
    assert not create_model("frameavg_resnet18", backbone="test_convnext").has_frame_weights
