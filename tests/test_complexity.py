"""Faithfulness to the paper's Table 8 and Table 9, counted with torch's flop counter."""

from __future__ import annotations

import pytest
import torch

import cefl_zoo
from cefl_zoo import count_macs, count_parameters, model_complexity

PAPER_PARAMS = 12.83e6  # Table 8
PAPER_GMACS_BY_FRAMES = {2: 25.52, 5: 63.80, 10: 127.59, 15: 191.39}  # Table 9


def _rel(a: float, b: float) -> float:
    return abs(a - b) / b


def test_table8_params_and_macs_within_5_percent() -> None:
    c = model_complexity("ceflnet_resnet18", num_clips=7, frames_per_clip=5, img_size=224)
    assert c["input_shape"] == (1, 7, 5, 3, 224, 224)
    assert _rel(c["params"], PAPER_PARAMS) < 0.05
    assert _rel(c["macs"] / 1e9, 63.80) < 0.05


@pytest.mark.parametrize("frames", sorted(PAPER_GMACS_BY_FRAMES))
def test_table9_frames_per_clip_within_5_percent(frames: int) -> None:
    c = model_complexity("ceflnet_resnet18", num_clips=7, frames_per_clip=frames, img_size=224)
    assert _rel(c["macs"] / 1e9, PAPER_GMACS_BY_FRAMES[frames]) < 0.05


def test_macs_grow_linearly_with_frames() -> None:
    macs = {k: model_complexity("ceflnet_resnet18", frames_per_clip=k)["macs"] for k in (5, 10)}
    # The backbone dominates: doubling K doubles MACs to within the head's share (<1 %).
    assert abs(macs[10] / macs[5] - 2.0) < 0.01


def test_count_macs_hand_checked() -> None:
    assert count_macs(torch.nn.Linear(10, 4), torch.randn(3, 10)) == 3 * 10 * 4
    conv = torch.nn.Conv2d(2, 3, kernel_size=3, padding=1, bias=False)
    assert count_macs(conv, torch.randn(1, 2, 5, 5)) == 5 * 5 * 3 * 2 * 9


def test_meta_count_equals_real_count() -> None:
    model = cefl_zoo.create_model("ceflnet_tiny").eval()
    real = count_macs(model, torch.randn(1, 7, 5, 3, 64, 64))
    assert model_complexity("ceflnet_tiny")["macs"] == real
    assert model_complexity(model, device="cpu")["macs"] == real
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())


def test_trainable_only_counts_unfrozen_parameters() -> None:
    model = cefl_zoo.create_model("ceflnet_tiny")
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    head = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("backbone."))
    assert count_parameters(model, trainable_only=True) == head


def test_lstm_counted_alike_on_every_device() -> None:
    # nn.LSTM's fused CPU/CUDA kernels have no flop formula; counting on meta sees matmuls.
    lstm = torch.nn.LSTM(16, 8, batch_first=True)
    by_hand = 2 * 5 * 4 * 8 * (16 + 8)  # B * T * 4 gates * h * (d + h)
    assert count_macs(lstm, torch.randn(2, 5, 16)) == by_hand
    kwargs = dict(backbone="test_convnext", num_clips=7, frames_per_clip=2, img_size=32)
    on_meta = model_complexity("cnnlstm_resnet18", **kwargs)
    on_cpu = model_complexity("cnnlstm_resnet18", device="cpu", **kwargs)
    frames_only = model_complexity("frameavg_resnet18", **kwargs)
    assert on_cpu["macs"] == on_meta["macs"]
    assert on_meta["macs"] > frames_only["macs"] * 1.5  # the LSTM is over half of it


def test_model_complexity_leaves_the_model_in_its_mode() -> None:
    model = cefl_zoo.create_model("ceflnet_tiny").train()
    model_complexity(model, device="cpu")
    assert model.training
    model.eval()
    model_complexity(model, device="cpu")
    assert not model.training


def _reads_tensor_values(monkeypatch) -> None:
    """Make every registry model's construction read a tensor's values, as timm before
    1.0.21 does for ConvNeXt's drop-path rates: impossible on the ``meta`` device."""
    from cefl_zoo import registry

    real = registry.create_model

    def create_model(name, **kwargs):
        torch.linspace(0, 0.1, 3).tolist()
        return real(name, **kwargs)

    monkeypatch.setattr(registry, "create_model", create_model)


def test_a_model_that_cannot_be_built_on_meta_is_counted_on_the_cpu(monkeypatch) -> None:
    expected = model_complexity("ceflnet_tiny", frames_per_clip=2)
    _reads_tensor_values(monkeypatch)
    with pytest.raises(NotImplementedError, match="meta"), torch.device("meta"):
        cefl_zoo.registry.create_model("ceflnet_tiny")
    assert model_complexity("ceflnet_tiny", frames_per_clip=2) == expected


def test_transforms_of_an_unconfigured_name_survive_a_value_reading_backbone(
    monkeypatch,
) -> None:
    from cefl_zoo import transforms

    expected = repr(cefl_zoo.transforms_for("ceflnet_tiny"))
    _reads_tensor_values(monkeypatch)
    monkeypatch.setattr(transforms, "get_pretrained_cfg", lambda name: None)
    assert repr(cefl_zoo.transforms_for("ceflnet_tiny")) == expected
