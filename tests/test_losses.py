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


def _bce_softmax_naive(logits, targets):
    """The B x K x K formula bce_softmax used before: log(1 - p_k) from a logsumexp over j != k."""
    z = logits.float()
    logp = torch.nn.functional.log_softmax(z, dim=1).clamp_min(-100.0)
    b, k = z.shape
    eye = torch.eye(k, dtype=torch.bool)
    others = z.unsqueeze(1).expand(b, k, k).masked_fill(eye, float("-inf"))
    log1mp = (torch.logsumexp(others, dim=2) - torch.logsumexp(z, dim=1, keepdim=True)).clamp_min(-100.0)
    return -(targets * logp + (1 - targets) * log1mp).mean()


@pytest.mark.parametrize("scale", [1.0, 30.0, 300.0])
def test_bce_softmax_equals_the_naive_b_k_k_formula(scale):
    g = torch.Generator().manual_seed(2)
    z = torch.randn(16, 11, generator=g) * scale
    z[3, 4] = z[3].max() + 500.0  # one dominant class (p ~ 1): the arg-max term must not cancel
    z[5, :2] = 7.0  # a tie at the maximum
    t = torch.softmax(torch.randn(16, 11, generator=g), 1)
    z1, z2 = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    got, want = bce_softmax(z1, t), _bce_softmax_naive(z2, t)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    got.backward()
    want.backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-5, atol=1e-7)


def test_bce_softmax_memory_is_linear_in_k():
    # K = 4000, B = 64: the B x K x K formula would need 4 GiB; O(B x K) needs a few MiB.
    z = torch.randn(64, 4000)
    t = torch.full((64, 4000), 1.0 / 4000)
    with torch.autograd.profiler.profile(profile_memory=True) as prof:
        bce_softmax(z, t)
    peak = max((abs(e.cpu_memory_usage) for e in prof.function_events), default=0)
    assert peak < 64 * 4000 * 8 * 4
