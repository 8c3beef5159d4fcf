"""Spatial transforms: one random choice per video, normalisation from the model config."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

import cefl_zoo
from cefl_zoo.registry import PretrainedCfg
from cefl_zoo.transforms import (
    VideoTransform,
    build_video_transform,
    create_model_and_transforms,
    resolve_data_cfg,
    transforms_for,
)


def asymmetric_video(n=3, k=4, h=40, w=48):
    """(N, K, 3, H, W) uint8 frames, all equal: a gradient plus a bright block top-left."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    img = torch.stack([xx * 5 % 256, yy * 6 % 256, (xx + yy) * 3 % 256]).to(torch.uint8)
    img[:, 2:12, 3:15] = 255
    return img.expand(n, k, 3, h, w).contiguous()


def test_same_random_crop_and_flip_for_every_frame():
    tf = build_video_transform(
        32, train=True, scale=(0.3, 1.0), ratio=(0.7, 1.4), hflip=0.5, color_jitter=0.4
    )
    video = asymmetric_video()
    outputs = []
    for seed in range(12):
        torch.manual_seed(seed)
        out = tf(video)
        assert out.shape == (3, 4, 3, 32, 32) and out.dtype == torch.float32
        flat = out.flatten(0, 1)
        assert torch.allclose(flat, flat[:1].expand_as(flat)), seed  # one choice per video
        outputs.append(out[0, 0])
    # ... and the choice does change from video to video (crops, flips).
    distinct = {tuple(o.flatten()[:50].tolist()) for o in outputs}
    assert len(distinct) >= 10


def test_frames_that_differ_keep_their_differences_under_the_shared_choice():
    # Frame j = base + 10 j: a shared crop / flip keeps frame differences spatially constant.
    base = asymmetric_video(1, 1).squeeze(0).squeeze(0).to(torch.int32).clamp(max=200)
    frames = torch.stack([base + 10 * j for j in range(4)]).to(torch.uint8)
    tf = build_video_transform(
        24,
        mean=(0, 0, 0),
        std=(1, 1, 1),
        train=True,
        hflip=1.0,
        interpolation="nearest",
        scale=(0.5, 0.5),
        ratio=(1, 1),
    )
    torch.manual_seed(3)
    out = tf(frames.unsqueeze(0))[0]  # (K, 3, 24, 24)
    diffs = (out[1:] - out[:1]) * 255
    for j, d in enumerate(diffs, start=1):
        assert torch.allclose(d, torch.full_like(d, 10.0 * j), atol=1e-3)


def test_same_seed_same_augmentation():
    tf = build_video_transform(32, train=True)
    video = asymmetric_video()
    torch.manual_seed(5)
    a = tf(video)
    torch.manual_seed(5)
    b = tf(video)
    assert torch.equal(a, b)


def test_eval_is_deterministic_resize_and_centre_crop():
    tf = build_video_transform((32, 32), train=False)
    video = asymmetric_video(h=40, w=80)  # 2:1 frames: shorter side to 32, centre square
    a, b = tf(video), tf(video)
    assert torch.equal(a, b) and a.shape == (3, 4, 3, 32, 32)
    ref = v2.functional.center_crop(v2.functional.resize(video[0, 0], 32, antialias=True), [32, 32])
    mean = torch.tensor((0.485, 0.456, 0.406)).view(3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(3, 1, 1)
    assert torch.allclose(a[0, 0], (ref.float() / 255 - mean) / std, atol=1e-5)


@pytest.mark.parametrize("frame_hw", [(50, 50), (40, 120), (120, 40)])
def test_eval_non_square_input_size_crops_inside_the_frame(frame_hw):
    h, w = frame_hw
    tf = build_video_transform((32, 48), train=False, crop_pct=1.0, normalize=False)
    video = torch.full((1, 2, 3, h, w), 200, dtype=torch.uint8)
    out = tf(video)
    assert out.shape == (1, 2, 3, 32, 48)
    assert int(out.min()) == 200  # no black bars: the crop lies inside the resized frame
    # The aspect is kept: a centre crop of the frame resized to just cover (32, 48).
    _, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ramp = (xx * 255 // max(w - 1, 1)).to(torch.uint8).expand(1, 1, 3, h, w).contiguous()
    scale = max(32 / h, 48 / w)
    size = [max(32, round(h * scale)), max(48, round(w * scale))]
    ref = v2.functional.center_crop(
        v2.functional.resize(ramp[0, 0], size, antialias=True), [32, 48]
    )
    assert torch.equal(tf(ramp)[0, 0], ref)


def test_normalisation_comes_from_the_config():
    cfg = PretrainedCfg(
        architecture="x", input_size=(3, 16, 16), mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0)
    )
    tf = transforms_for(cfg)
    white = torch.full((2, 2, 3, 20, 20), 255, dtype=torch.uint8)
    out = tf(white)
    assert out.shape == (2, 2, 3, 16, 16)
    assert torch.allclose(out[:, :, 0], torch.tensor(1.0))  # (1 - 0.5) / 0.5
    assert torch.allclose(out[:, :, 1], torch.tensor(3.0))  # (1 - 0.25) / 0.25
    assert torch.allclose(out[:, :, 2], torch.tensor(1.0))  # (1 - 0) / 1


def test_transforms_for_model_name_cfg_and_dict_agree():
    model = cefl_zoo.create_model("ceflnet_tiny")
    video = asymmetric_video(h=70, w=90)
    outs = [
        transforms_for(obj)(video)
        for obj in (model, "ceflnet_tiny", model.pretrained_cfg, model.pretrained_cfg.to_dict())
    ]
    assert outs[0].shape == (3, 4, 3, 64, 64)
    for out in outs[1:]:
        assert torch.equal(out, outs[0])
    big = transforms_for("ceflnet_resnet18")(video)
    assert big.shape == (3, 4, 3, 224, 224)


def test_transforms_follow_a_swapped_config_and_overrides():
    model = cefl_zoo.create_model("ceflnet_tiny")
    model.pretrained_cfg = model.pretrained_cfg.replace(
        input_size=(3, 40, 40), mean=(0, 0, 0), std=(1, 1, 1)
    )
    out = transforms_for(model)(asymmetric_video())
    assert out.shape[-2:] == (40, 40) and float(out.min()) >= 0.0
    assert transforms_for(model, input_size=24)(asymmetric_video()).shape[-2:] == (24, 24)


def test_create_model_and_transforms():
    model, train_tf, eval_tf = create_model_and_transforms(
        "ceflnet_tiny", num_classes=3, aug_cfg={"hflip": 0.0}
    )
    assert model.num_classes == 3
    video = asymmetric_video(7, 5, 80, 80)
    x = eval_tf(video).unsqueeze(0)
    assert model(x).shape == (1, 3)
    torch.manual_seed(0)
    assert train_tf(video).shape == x.shape[1:]
    assert "RandomHorizontalFlip" not in repr(train_tf) and "RandomResizedCrop" in repr(train_tf)
    assert cefl_zoo.create_model_and_transforms is create_model_and_transforms
    assert cefl_zoo.transforms_for is transforms_for


def test_uint8_output_without_normalisation():
    tf = build_video_transform(16, normalize=False)
    out = tf(asymmetric_video())
    assert out.dtype == torch.uint8 and out.shape == (3, 4, 3, 16, 16)


def test_works_on_any_leading_shape_and_plain_frame_stacks():
    tf = build_video_transform(16)
    assert tf(torch.zeros(6, 3, 20, 20, dtype=torch.uint8)).shape == (6, 3, 16, 16)
    assert tf(torch.zeros(2, 2, 2, 3, 20, 20, dtype=torch.uint8)).shape == (2, 2, 2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"expected frames \(\.\.\., 3, H, W\)"):
        tf(torch.zeros(20, 20))


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown interpolation 'cubic'"):
        build_video_transform(16, interpolation="cubic")
    with pytest.raises(ValueError, match="crop_pct"):
        build_video_transform(16, crop_pct=1.5)
    with pytest.raises(ValueError, match="input_size"):
        build_video_transform((1, 2, 3, 4))
    with pytest.raises(TypeError, match="expected a model, a model name or a PretrainedCfg"):
        resolve_data_cfg(42)
    with pytest.raises(TypeError, match="has no pretrained_cfg"):
        resolve_data_cfg(torch.nn.Linear(2, 2))


def test_video_transform_wraps_any_v2_transform():
    tf = VideoTransform(v2.RandomVerticalFlip(p=1.0))
    video = asymmetric_video(1, 2)
    assert torch.equal(tf(video), video.flip(-2))
