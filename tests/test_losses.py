"""Soft-target cross-entropy and BCE on softmax against direct float64 formulas."""
from __future__ import annotations

import pytest
import torch

from sagemix.losses import bce_softmax, get_loss, soft_cross_entropy


def _data(b=5, k=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, k, generator=g) * 3, torch.softmax(torch.randn(b, k, generator=g), 1)


def test_soft_cross_entropy_matches_formula_and_hard_labels():
    z, t = _data()
    ref = -(t.double() * torch.log_softmax(z.double(), 1)).sum(1).mean()
    assert soft_cross_entropy(z, t).item() == pytest.approx(ref.item(), rel=1e-6)
    y = torch.tensor([0, 3, 6, 1, 2])
    hard = torch.nn.functional.one_hot(y, 7).float()
    assert soft_cross_entropy(z, hard).item() == pytest.approx(torch.nn.functional.cross_entropy(z, y).item(), rel=1e-6)


def test_bce_softmax_matches_torch_bce_on_probabilities():
    z, t = _data()
    p = torch.softmax(z.double(), 1)
    ref = torch.nn.functional.binary_cross_entropy(p, t.double())
    assert bce_softmax(z, t).item() == pytest.approx(ref.item(), rel=1e-5)
    # Saturated logits stay finite (log terms clamped at -100 like torch's BCELoss).
    big = torch.tensor([[1000.0, -1000.0, 0.0]])
    assert torch.isfinite(bce_softmax(big, torch.tensor([[0.0, 1.0, 0.0]])))


def test_gradients_flow_and_half_inputs():
    z, t = _data()
    z = z.clone().requires_grad_(True)
    bce_softmax(z, t).backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert soft_cross_entropy(z.detach().bfloat16(), t).dtype == torch.float32


def test_errors():
    z, t = _data()
    with pytest.raises(ValueError, match="must match"):
        soft_cross_entropy(z, t[:, :3])
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("mse")
    assert get_loss("bce_softmax") is bce_softmax
