"""Every registered model, timm style: forward, backward, shapes, heads, determinism.

Full-size backbones run at 32 px with 2 clips x 2 frames, which keeps the whole file fast
on a 2-core CPU; the paper-size model is exercised by tests/test_complexity.py.
"""

from __future__ import annotations

import pytest
import torch

import cefl_zoo
from cefl_zoo import ExplainOutput, VideoClassifier

MODELS = cefl_zoo.list_models()
EIAN_MODELS = [m for m in MODELS if m.startswith("ceflnet") and "_sal" not in m]
TINY = dict(batch=2, clips=2, frames=2, size=32)


def _video(batch: int = 2, clips: int = 2, frames: int = 2, size: int = 32) -> torch.Tensor:
    return torch.randn(batch, clips, frames, 3, size, size)


@pytest.fixture(scope="module")
def models() -> dict[str, VideoClassifier]:
    return {name: cefl_zoo.create_model(name, num_classes=5) for name in MODELS}


def test_registry_has_the_paper_model_and_table6_rows() -> None:
    for name in (
        "ceflnet_resnet18",  # + EIAN (full model)
        "ceflnet_resnet18_sal_lrl",  # + LRL
        "ceflnet_resnet18_sal",  # + SAL
        "cnnlstm_resnet18",  # CNN-LSTM
        "frameavg_resnet18",  # ResNet-18
    ):
        assert name in MODELS


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_finite(name: str, models: dict) -> None:
    model = models[name].eval()
    with torch.no_grad():
        out = model(_video(**TINY))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS)
def test_backward_reaches_every_parameter(name: str, models: dict) -> None:
    # DDP without find_unused_parameters needs every parameter to get a gradient.
    model = models[name].train()
    model.zero_grad(set_to_none=True)
    model(_video(**TINY)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("clips,frames", [(1, 1), (3, 2), (4, 3)])
def test_any_number_of_clips_and_frames(name: str, clips: int, frames: int, models: dict) -> None:
    model = models[name].eval()
    with torch.no_grad():
        out = model.forward_explain(_video(1, clips, frames, 32))
    assert out.logits.shape == (1, 5)
    if out.clip_scores is not None:
        assert out.clip_scores.shape == (1, 5, clips)
        assert 0 <= int(out.emotion_rich_clip) < clips
    if out.frame_weights is not None:
        assert out.frame_weights.shape == (1, clips, frames)


@pytest.mark.parametrize("name", MODELS)
def test_eval_is_deterministic_and_batch_independent(name: str, models: dict) -> None:
    model = models[name].eval()
    x = _video(**TINY)
    with torch.no_grad():
        a, b = model(x), model(x)
        single = model(x[1:])
    assert torch.equal(a, b)
    torch.testing.assert_close(single[0], a[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_forward_features_head_and_explain_agree(name: str, models: dict) -> None:
    model = models[name].eval()
    x = _video(**TINY)
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_features(x)
        head = model.forward_head(feats)
        pre = model.forward_head(feats, pre_logits=True)
        explained = model.forward_explain(x)
    torch.testing.assert_close(head, logits)
    torch.testing.assert_close(explained.logits, logits)
    assert isinstance(explained, ExplainOutput)
    assert pre.shape[0] == 2 and pre.shape[-1] in (
        model.num_features,
        getattr(model, "clip_dim", -1),
        512,
    )


@pytest.mark.parametrize("name", EIAN_MODELS)
def test_explain_outputs_of_eian_models(name: str, models: dict) -> None:
    model = models[name].eval()
    with torch.no_grad():
        out = model.forward_explain(_video(2, 3, 2, 32))
    assert out.clip_scores.shape == (2, 5, 3)
    torch.testing.assert_close(out.clip_scores.sum(-1), torch.ones(2, 5))
    expected = cefl_zoo.emotion_rich_clip(out.clip_scores, out.logits.argmax(-1))
    assert torch.equal(out.emotion_rich_clip, expected)
    assert out.frame_weights.shape == (2, 3, 2)
    assert out.clip_features.shape == (2, 3, model.clip_dim)


@pytest.mark.parametrize("name", MODELS)
def test_reset_classifier(name: str) -> None:
    model = cefl_zoo.create_model(name, num_classes=7)
    backbone_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model.reset_classifier(3)
    assert model.num_classes == 3 and model.config["num_classes"] == 3
    assert len(model.label_names) == 3
    assert model.get_classifier() is not None
    with torch.no_grad():
        assert model.eval()(_video(**TINY)).shape == (2, 3)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, backbone_before[key])


@pytest.mark.parametrize("name", MODELS)
def test_pretrained_cfg_sanity(name: str, models: dict) -> None:
    cfg = models[name].pretrained_cfg
    assert cfg.architecture == name
    assert cfg.num_clips == 7 and cfg.frames_per_clip == 5
    assert len(cfg.input_size) == 3 and cfg.input_size[0] == 3
    assert len(cfg.mean) == len(cfg.std) == 3
    assert models[name].config["architecture"] == name


@pytest.mark.parametrize("name", MODELS)
def test_compiles_without_graph_breaks(name: str) -> None:
    # fullgraph=True fails on any graph break; the eager backend keeps this cheap on CPU.
    # Our modules are what is under test, so a tiny backbone stands in for the big ones.
    # Dynamo cannot trace nn.LSTM without a graph break (a PyTorch limitation), so the
    # CNN-LSTM baseline is only checked to compile and agree.
    torch._dynamo.reset()
    model = cefl_zoo.create_model(name, backbone="test_convnext", num_classes=4).eval()
    x = _video(**TINY)
    fullgraph = not isinstance(model, cefl_zoo.CNNLSTM)
    compiled = torch.compile(model, backend="eager", fullgraph=fullgraph)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))


def test_compiled_explain_without_graph_breaks() -> None:
    torch._dynamo.reset()
    model = cefl_zoo.create_model("ceflnet_tiny").eval()
    x = _video(1, 7, 5, 32)
    explain = torch.compile(model.forward_explain, backend="eager", fullgraph=True)
    with torch.no_grad():
        got, want = explain(x), model.forward_explain(x)
    torch.testing.assert_close(got.clip_scores, want.clip_scores)
    assert torch.equal(got.emotion_rich_clip, want.emotion_rich_clip)


def test_any_timm_backbone_and_custom_module() -> None:
    model = cefl_zoo.CEFLNet(backbone="test_vit", num_classes=3)
    assert model.num_features == 64
    with torch.no_grad():
        assert model.eval()(_video(1, 2, 2, 160)).shape == (1, 3)

    class TinyNet(torch.nn.Module):
        num_features = 8

        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).mean(dim=(2, 3))

    model = cefl_zoo.CEFLNet(backbone=TinyNet(), num_classes=2)
    assert model(_video(1, 2, 3, 16)).shape == (1, 2)
    assert model.config["backbone"] is None  # a module cannot go into config.json
    with pytest.raises(ValueError, match="num_features"):
        cefl_zoo.CEFLNet(backbone=torch.nn.Conv2d(3, 8, 3))


def test_grad_checkpointing_gives_the_same_gradients() -> None:
    model = cefl_zoo.create_model("ceflnet_tiny").train()
    x = _video(1, 2, 2, 32)
    model(x).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    model.set_grad_checkpointing(True)
    model(x).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], rtol=1e-4, atol=1e-6)


def test_clip_encoder_and_eian_compose_in_a_user_model() -> None:
    # The modules are usable on their own, e.g. after a user's own frame encoder.
    class MyModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.frame = torch.nn.Linear(12, 16)
            self.cfe = cefl_zoo.ClipEncoder(16, 8)
            self.eian = cefl_zoo.EmotionIntensityActivation(8, num_classes=4, kernel_size=3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, K, 12)
            return self.eian(self.cfe(self.frame(x)))

    model = MyModel()
    out = model(torch.randn(3, 6, 4, 12))
    out.sum().backward()
    assert out.shape == (3, 4)
    assert all(p.grad is not None for p in model.parameters())


class _PixelBackbone(torch.nn.Module):
    """A frame's pixels as its features: tags every frame with its own values."""

    num_features = 3 * 2 * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def test_frames_reach_the_backbone_in_their_clips() -> None:
    """Folding (B, N, K) into the backbone batch and back keeps every frame in its place."""
    model = cefl_zoo.CEFLNet(backbone=_PixelBackbone(), num_classes=3).eval()
    x = torch.randn(2, 3, 4, 3, 2, 2)
    torch.testing.assert_close(model.forward_frames(x), x.flatten(3))
    # Changing the frames of clip 1 of video 0 changes that clip's feature only.
    y = x.clone()
    y[0, 1] = torch.randn(4, 3, 2, 2)
    with torch.no_grad():
        before, after = model.forward_features(x), model.forward_features(y)
    changed = ~torch.isclose(before, after).all(dim=-1)
    assert changed.tolist() == [[False, True, False], [False, False, False]]


def test_table6_baselines_pool_over_the_intended_axes() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 3, 4, 3, 2, 2)
    frames = x.flatten(1, 2)  # (B, N*K, ...)
    shuffled = frames[:, torch.randperm(12)].reshape_as(x)  # frames moved across clips
    avg = cefl_zoo.FrameAverage(backbone=_PixelBackbone(), num_classes=3).eval()
    lstm = cefl_zoo.CNNLSTM(backbone=_PixelBackbone(), num_classes=3).eval()
    with torch.no_grad():
        # The frame average sees a bag of frames; the LSTM reads them in temporal order.
        torch.testing.assert_close(avg(shuffled), avg(x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(
            avg.forward_head(avg.forward_features(x), pre_logits=True),
            x.flatten(3).mean(dim=(1, 2)),
        )
        assert not torch.allclose(lstm(shuffled), lstm(x))
        assert lstm.forward_features(x).shape[:2] == (1, 12)


@pytest.mark.parametrize("name", ["ceflnet_tiny", "ceflnet_resnet18"])
def test_forward_and_training_loss_compile_to_one_graph(name: str) -> None:
    """torch.compile sees the whole model as one graph: no graph breaks (each would end a
    compiled region and return to Python) in the forward, ``forward_explain`` or the
    trainer's forward + loss (one-hot targets, as the trainer passes them)."""
    import torch._dynamo as dynamo
    import torch.nn.functional as F

    model = cefl_zoo.create_model(name)
    x = _video(2, 3, 2, 32)
    targets = F.one_hot(torch.tensor([0, 3]), 7).float()
    loss_fn = cefl_zoo.CEFLNetLoss("bce", label_smoothing=0.1)

    def forward_and_loss(x, targets):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
        return loss_fn(logits.float(), targets)

    try:
        for train in (True, False):
            model.train(train)
            for fn, args in ((model, (x,)), (forward_and_loss, (x, targets))):
                dynamo.reset()
                explained = dynamo.explain(fn)(*args)
                assert explained.graph_break_count == 0, explained.break_reasons
                assert explained.graph_count == 1
        dynamo.reset()
        assert dynamo.explain(model.forward_explain)(x).graph_break_count == 0
    finally:
        dynamo.reset()
