"""The paper's loss (eq. 11) and the cross-entropy option."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cefl_zoo import CEFLNetLoss, ceflnet_loss


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """float32 result against a float64 reference, at float32 tolerances."""
    torch.testing.assert_close(actual.double(), expected.double(), rtol=1e-5, atol=1e-6)


def _eq11(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = logits.double().softmax(-1)
    return -(y * p.log() + (1 - y) * (1 - p).log()).sum(-1)


def test_eq11_against_the_formula() -> None:
    logits = torch.randn(6, 7)
    target = torch.tensor([0, 3, 6, 2, 2, 5])
    y = F.one_hot(target, 7).double()
    expected = _eq11(logits, y)
    _close(ceflnet_loss(logits, target, reduction="none"), expected)
    _close(ceflnet_loss(logits, target), expected.mean())
    _close(ceflnet_loss(logits, target, reduction="sum"), expected.sum())


def test_eq11_hand_computed_value() -> None:
    # Two classes, equal logits: p = (0.5, 0.5); L = -(log 0.5 + log 0.5) = 2 log 2.
    loss = ceflnet_loss(torch.zeros(1, 2), torch.tensor([1]))
    assert abs(float(loss) - 2 * 0.6931471805599453) < 1e-6


def test_one_hot_targets_equal_index_targets() -> None:
    logits = torch.randn(4, 5)
    target = torch.tensor([1, 0, 4, 2])
    torch.testing.assert_close(
        ceflnet_loss(logits, target), ceflnet_loss(logits, F.one_hot(target, 5).float())
    )


def test_stable_for_confident_logits() -> None:
    # p of the confident class rounds to 1 even in float64; the naive log(1 - p) is -inf.
    s = 60.0
    logits = torch.tensor([[s, 0.0, 0.0], [0.0, 0.0, s]], requires_grad=True)
    wrong = torch.tensor([1, 0])
    right = torch.tensor([0, 2])
    loss_wrong = ceflnet_loss(logits, wrong)
    loss_right = ceflnet_loss(logits, right)
    assert torch.isfinite(loss_wrong) and torch.isfinite(loss_right)
    loss_wrong.backward()
    assert torch.isfinite(logits.grad).all()
    # Closed form with Z = e^s + 2: for a target that is one of the two small classes,
    # -log p_target - log(1 - p_confident) - log(1 - p_other)
    #   = log Z + (log Z - log 2) + (log Z - log(e^s + 1)).
    log_z = s + math.log1p(2 * math.exp(-s))
    log_e_plus_1 = s + math.log1p(math.exp(-s))
    expected = 3 * log_z - math.log(2) - log_e_plus_1
    assert abs(float(loss_wrong.detach()) - expected) < 1e-4
    # Right and confident: -log p_conf - 2 log(1 - p_small) = -log(1 - 2/Z) - 2 log(1 - 1/Z)
    assert 0.0 <= float(loss_right.detach()) < 1e-20


def test_label_smoothing_moves_targets_towards_uniform() -> None:
    logits = torch.randn(3, 4)
    target = torch.tensor([0, 1, 2])
    smooth = 0.2
    y = F.one_hot(target, 4).double() * (1 - smooth) + smooth / 4
    _close(ceflnet_loss(logits, target, label_smoothing=smooth), _eq11(logits, y).mean())


def test_cross_entropy_option() -> None:
    logits = torch.randn(5, 7)
    target = torch.randint(0, 7, (5,))
    torch.testing.assert_close(CEFLNetLoss("ce")(logits, target), F.cross_entropy(logits, target))
    torch.testing.assert_close(
        CEFLNetLoss("ce", label_smoothing=0.1)(logits, target),
        F.cross_entropy(logits, target, label_smoothing=0.1),
    )
    torch.testing.assert_close(CEFLNetLoss("bce")(logits, target), ceflnet_loss(logits, target))


def test_loss_decreases_when_the_right_class_gains() -> None:
    target = torch.tensor([2])
    losses = [float(ceflnet_loss(torch.tensor([[0.0, 0.0, s]]), target)) for s in (-2, 0, 2, 4)]
    assert losses == sorted(losses, reverse=True)


@pytest.mark.parametrize(
    "logits,target,error,match",
    [
        (torch.randn(2, 1), torch.tensor([0, 0]), ValueError, "C >= 2"),
        (torch.randn(2, 3), torch.tensor([0, 3]), ValueError, r"\[0, 2\]"),
        (torch.randn(2, 3), torch.tensor([0.0, 1.0]), TypeError, "integer"),
        (torch.randn(2, 3), torch.zeros(2, 4), ValueError, r"\(B, 3\)"),
    ],
)
def test_bad_targets_get_clear_errors(logits, target, error, match) -> None:
    with pytest.raises(error, match=match):
        ceflnet_loss(logits, target)


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="bce"):
        CEFLNetLoss("focal")


def test_label_smoothing_outside_0_1_is_refused_and_small_int_targets_work() -> None:
    logits = torch.randn(3, 4)
    for bad in (-0.5, 1.0, 1.5):
        with pytest.raises(ValueError, match="label_smoothing must be in"):
            ceflnet_loss(logits, torch.tensor([0, 1, 2]), label_smoothing=bad)
        with pytest.raises(ValueError, match="label_smoothing must be in"):
            CEFLNetLoss("ce", label_smoothing=bad)
    target = torch.tensor([0, 1, 3])
    for kind in ("bce", "ce"):
        loss = CEFLNetLoss(kind)
        for dtype in (torch.uint8, torch.int32):
            assert torch.equal(loss(logits, target.to(dtype)), loss(logits, target))
