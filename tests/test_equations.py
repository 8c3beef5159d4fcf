"""Each equation of the paper's sections 3.2-3.4 against an explicit computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cefl_zoo import ClipEncoder, EmotionIntensityActivation, emotion_rich_clip
from cefl_zoo.models import LocalGlobalRelation, SelfAttention


# --- eq. 1: SAL ------------------------------------------------------------------------
def test_sal_matches_explicit_softmax_attention() -> None:
    d, k = 8, 5
    sal = SelfAttention(d)
    x = torch.randn(2, 3, k, d)
    wq, wk, wv = sal.qkv.weight.chunk(3, dim=0)
    bq, bk, bv = sal.qkv.bias.chunk(3)
    q, key, v = x @ wq.T + bq, x @ wk.T + bk, x @ wv.T + bv
    scores = torch.einsum("bnid,bnjd->bnij", q, key) / math.sqrt(d)
    expected = torch.einsum("bnij,bnjd->bnid", torch.softmax(scores, dim=-1), v)
    torch.testing.assert_close(sal(x), expected, rtol=1e-5, atol=1e-6)
    attn = sal.attention_weights(x)
    torch.testing.assert_close(attn, torch.softmax(scores, dim=-1))
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 3, k))


def test_sal_attends_within_a_clip_only() -> None:
    sal = SelfAttention(6).eval()
    x = torch.randn(1, 4, 3, 6)
    y = x.clone()
    y[0, 2] = torch.randn(3, 6)  # change every frame of clip 2
    out_x, out_y = sal(x), sal(y)
    changed = [n for n in range(4) if not torch.allclose(out_x[0, n], out_y[0, n])]
    assert changed == [2]


def test_sal_hand_checked_two_frames() -> None:
    # Identity projections: q = k = v = x; with x = [[1, 0], [0, 1]] and d = 2 every row
    # attends with weights softmax([1, 0] / sqrt(2)).
    sal = SelfAttention(2, qkv_bias=False)
    with torch.no_grad():
        sal.qkv.weight.copy_(torch.cat([torch.eye(2)] * 3))
    x = torch.eye(2).view(1, 1, 2, 2)
    a = 1 / (1 + math.exp(-1 / math.sqrt(2)))  # softmax weight of the matching frame
    expected = torch.tensor([[a, 1 - a], [1 - a, a]]).view(1, 1, 2, 2)
    torch.testing.assert_close(sal(x), expected)


# --- eq. 2-3: LRL -----------------------------------------------------------------------
def test_lrl_weights_and_output_by_hand() -> None:
    lrl = LocalGlobalRelation(2, 2)
    with torch.no_grad():
        lrl.relation.weight.copy_(torch.tensor([[0.0, 0.0, 1.0, -1.0]]))  # q0 . [f_hat ; f_k]
        lrl.relation.bias.zero_()
        lrl.proj.weight.copy_(torch.eye(2))
        lrl.proj.bias.zero_()
    frames = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]]).view(1, 1, 3, 2)
    # w_k = sigmoid(f_k[0] - f_k[1]): sigmoid(2), sigmoid(-2), sigmoid(0)
    w_expected = torch.sigmoid(torch.tensor([2.0, -2.0, 0.0]))
    r, w = lrl(frames)
    torch.testing.assert_close(w.view(3), w_expected)
    pooled = (w_expected[:, None] * frames.view(3, 2)).sum(0) / w_expected.sum()
    torch.testing.assert_close(r.view(2), pooled)


@pytest.mark.parametrize(
    "dtype, bias", [(torch.float16, -18.0), (torch.bfloat16, -110.0), (torch.float32, -110.0)]
)
def test_lrl_stays_right_when_every_frame_weight_underflows(dtype, bias) -> None:
    # Relation logits below what sigmoid can represent in the dtype (about -17 in fp16,
    # -104 in fp32 and bf16): every w_k was 0 and sum(w f) / sum(w) = 0 / 0 = NaN for
    # every clip. The weights' shares w / sum(w) are still defined: compare with float64.
    torch.manual_seed(0)
    lrl = LocalGlobalRelation(8, 4)
    with torch.no_grad():
        lrl.relation.weight.mul_(0.01)
        lrl.relation.bias.fill_(bias)
    x = torch.randn(2, 3, 5, 8)
    with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
        r, w = lrl(x)
    logits = lrl._relation_logits(x).double()
    share = torch.softmax(F.logsigmoid(logits), dim=-1)  # = w / sum(w), exactly
    expected = lrl.proj.double()((share.unsqueeze(-1) * x.double()).sum(-2)).float()
    lrl.float()
    assert torch.isfinite(r).all()
    assert w.shape == (2, 3, 5) and (w >= 0).all()
    tol = 1e-5 if dtype == torch.float32 else 0.05
    torch.testing.assert_close(r.float(), expected, atol=tol, rtol=tol)


def test_lrl_uses_the_clip_summary() -> None:
    lrl = LocalGlobalRelation(3, 3)
    with torch.no_grad():
        lrl.relation.weight.zero_()
        lrl.relation.weight[0, :3] = torch.tensor([1.0, 2.0, 3.0])  # only f_hat matters
        lrl.relation.bias.fill_(0.5)
    x = torch.randn(2, 4, 5, 3)
    expected = torch.sigmoid(x.mean(dim=2) @ torch.tensor([1.0, 2.0, 3.0]) + 0.5)
    torch.testing.assert_close(lrl.frame_weights(x), expected[..., None].expand(2, 4, 5))


def test_clip_encoder_is_frame_order_invariant_and_returns_weights() -> None:
    enc = ClipEncoder(16, 8).eval()
    x = torch.randn(2, 7, 5, 16)
    out, w = enc(x, return_weights=True)
    assert out.shape == (2, 7, 8) and w.shape == (2, 7, 5)
    assert bool(((w > 0) & (w < 1)).all())
    perm = torch.tensor([3, 1, 4, 0, 2])
    out_p, w_p = enc(x[:, :, perm], return_weights=True)
    torch.testing.assert_close(out_p, out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w_p, w[:, :, perm], rtol=1e-5, atol=1e-6)


def test_clip_encoder_is_sal_then_lrl_by_hand() -> None:
    """Eq. 1-3 chained: SAL within each clip, then LRL on SAL's output, then W_r."""
    torch.manual_seed(0)
    d = 16
    enc = ClipEncoder(d, 8).eval()
    f = torch.randn(2, 7, 5, d)  # (B, N, K, d)
    q, k, v = enc.sal.qkv(f).chunk(3, dim=-1)
    f1 = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1) @ v  # eq. 1
    summary = f1.mean(dim=-2, keepdim=True).expand_as(f1)
    w = torch.sigmoid(enc.lrl.relation(torch.cat([summary, f1], dim=-1))).squeeze(-1)  # eq. 2
    r = enc.lrl.proj((w[..., None] * f1).sum(-2) / w.sum(-1, keepdim=True))  # eq. 3
    out, weights = enc(f, return_weights=True)
    torch.testing.assert_close(out, r, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(weights, w, rtol=1e-5, atol=1e-6)


def test_clip_encoder_without_relation_is_a_mean() -> None:
    enc = ClipEncoder(4, 4, self_attention=False, relation=False)
    assert enc.lrl.relation is None
    x = torch.randn(1, 2, 3, 4)
    out, w = enc(x, return_weights=True)
    torch.testing.assert_close(w, torch.ones(1, 2, 3))
    torch.testing.assert_close(out, enc.lrl.proj(x.mean(dim=2)))


# --- eq. 4-9: EIAN ----------------------------------------------------------------------
def _eian_identity(c: int = 3) -> EmotionIntensityActivation:
    eian = EmotionIntensityActivation(c, c)
    with torch.no_grad():
        eian.temporal_conv.weight.copy_(torch.eye(c).unsqueeze(-1))
        eian.temporal_conv.bias.zero_()
        eian.fc.weight.copy_(torch.eye(c))
        eian.fc.bias.zero_()
    return eian


def test_eian_matches_explicit_equations() -> None:
    eian = EmotionIntensityActivation(6, 4, kernel_size=3)
    v = torch.randn(2, 5, 6)
    out = eian.forward_explain(v)
    # eq. 5: conv over clips (zero padded), softmax over clips per class
    conv = F.conv1d(
        v.transpose(1, 2), eian.temporal_conv.weight, eian.temporal_conv.bias, padding=1
    )
    scores = torch.softmax(conv, dim=-1)
    torch.testing.assert_close(out.clip_scores, scores)
    torch.testing.assert_close(out.clip_scores.sum(-1), torch.ones(2, 4))
    # eq. 7-9, one class at a time
    for b in range(2):
        for c in range(4):
            m_c = scores[b, c][:, None] * v[b]  # (N, d)
            rep = m_c.max(dim=0).values
            torch.testing.assert_close(out.representation[b, c], rep)
            logit = rep @ eian.fc.weight[c] + eian.fc.bias[c]
            torch.testing.assert_close(out.logits[b, c], logit)
    torch.testing.assert_close(eian(v), out.logits)
    torch.testing.assert_close(eian(v, pre_logits=True), out.representation)


def test_emotion_rich_clip_follows_the_dominant_clip() -> None:
    eian = _eian_identity(3)
    v = 0.01 * torch.randn(1, 7, 3)
    for dominant in (4, 1, 6):
        x = v.clone()
        x[0, dominant] = torch.tensor([0.0, 5.0, 0.0])  # strong evidence for class 1
        out = eian.forward_explain(x)
        assert int(out.logits.argmax()) == 1
        assert int(out.emotion_rich_clip) == dominant
        assert int(out.clip_scores[0, 1].argmax()) == dominant


def test_emotion_rich_clip_helper_uses_the_given_class() -> None:
    scores = torch.tensor([[[0.1, 0.8, 0.1], [0.6, 0.3, 0.1]], [[0.2, 0.2, 0.6], [0.1, 0.1, 0.8]]])
    assert emotion_rich_clip(scores, torch.tensor([0, 0])).tolist() == [1, 2]
    assert emotion_rich_clip(scores, torch.tensor([1, 1])).tolist() == [0, 2]


def test_eian_kernel_one_is_clip_permutation_invariant() -> None:
    eian = EmotionIntensityActivation(8, 5, kernel_size=1)
    v = torch.randn(3, 7, 8)
    perm = torch.randperm(7)
    out, out_p = eian.forward_explain(v), eian.forward_explain(v[:, perm])
    torch.testing.assert_close(out_p.logits, out.logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out_p.clip_scores, out.clip_scores[:, :, perm])


@pytest.mark.parametrize("n", [1, 2, 7, 11])
@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_eian_any_number_of_clips(n: int, kernel_size: int) -> None:
    out = EmotionIntensityActivation(4, 3, kernel_size).forward_explain(torch.randn(2, n, 4))
    assert out.clip_scores.shape == (2, 3, n)
    torch.testing.assert_close(out.clip_scores.sum(-1), torch.ones(2, 3))
    assert bool((out.emotion_rich_clip < n).all())


def test_eian_rejects_even_kernel_and_wrong_features() -> None:
    with pytest.raises(ValueError, match="odd"):
        EmotionIntensityActivation(4, 3, kernel_size=2)
    with pytest.raises(ValueError, match=r"\(B, N, 4\)"):
        EmotionIntensityActivation(4, 3)(torch.randn(2, 7, 5))
