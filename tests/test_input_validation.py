"""Values checked at the boundary (issue 13 item 1) and where they are checked (sagemix.debug).

On CPU tensors the value checks raise a precise ValueError (argument, expected, found); on meta
tensors there is nothing to read and they pass; on a device they are ``torch._assert_async``
(covered by tests/test_sync_free.py on CUDA).
"""
from __future__ import annotations

import math

import pytest
import torch

from sagemix import debug
from sagemix.functional import sage as F
from sagemix.functional.mixup import mixup
from sagemix.mixers.base import ALPHA_RANGE, check_alpha, sample_beta, to_soft_targets


def test_check_values_on_cpu_meta_and_in_debug_mode():
    ok = torch.tensor([True, False])
    with pytest.raises(ValueError, match="x must be positive, got -1"):
        debug.check_values(ok, "x must be positive", lambda: "got -1")
    debug.check_values(torch.empty(2, dtype=torch.bool, device="meta"), "never read")  # no values: no check
    debug.check_values(torch.tensor([True, True]), "fine")
    with debug.debug_checks():
        assert debug.debug_enabled()
        with debug.debug_checks(False):
            assert not debug.debug_enabled()
        assert debug.debug_enabled()
    with pytest.raises(TypeError, match="enabled must be a bool"):
        debug.set_debug("yes")


def test_to_device_keeps_values_and_cpu_identity():
    t = torch.arange(5)
    assert debug.to_device(t, "cpu") is t
    assert debug.to_device(t, "meta").device.type == "meta"


@pytest.mark.parametrize("alpha", [ALPHA_RANGE[0], 0.01, 0.2, 1.0, 2.0, ALPHA_RANGE[1]])
def test_sample_beta_is_never_nan_in_the_accepted_range(alpha):
    lam = sample_beta(alpha, size=4000, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(lam).all() and bool(((lam >= 0) & (lam <= 1)).all())
    # The mean of Beta(a, a) is 1/2 whatever a; for tiny a the draws sit at 0 or 1, not at a constant 0.5.
    assert abs(float(lam.mean()) - 0.5) < 0.05
    if alpha == ALPHA_RANGE[0]:
        assert float(((lam < 0.01) | (lam > 0.99)).float().mean()) > 0.95


def test_sample_beta_is_unchanged_for_usual_alphas():
    # The log-space fallback only replaces draws whose Gamma ratio was 0/0: seeds give the same values as before.
    from sagemix.mixers.base import sample_gamma
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    lam = sample_beta(0.4, size=50, generator=g1)
    ga, gb = sample_gamma(0.4, 50, g2), sample_gamma(0.4, 50, g2)
    assert torch.equal(lam, ga / (ga + gb))


@pytest.mark.parametrize("alpha", [1e-300, 1e308, math.inf, math.nan, 5e-4, 1e4])
def test_degenerate_concentrations_are_refused(alpha):
    with pytest.raises(ValueError, match=r"must be (a number|a finite number in \[0.001, 1000\])"):
        sample_beta(alpha, size=2)
    with pytest.raises(ValueError, match=r"alpha must be a finite number in \[0.001, 1000\]"):
        check_alpha(alpha)


def test_sample_beta_zero_alpha_is_one_half():
    assert sample_beta(0.0, size=3).tolist() == [0.5, 0.5, 0.5]


def test_to_soft_targets_rank_and_rows():
    with pytest.raises(ValueError, match=r"targets must have shape \(B,\) .* got shape \(\)"):
        to_soft_targets(torch.tensor(3), 5, 1)
    with pytest.raises(ValueError, match=r"got shape \(2, 2, 2\)"):
        to_soft_targets(torch.zeros(2, 2, 2), 2, 2)
    rows = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    assert torch.equal(to_soft_targets(rows, 2, 2), rows)
    within = torch.tensor([[0.5, 0.5 + 5e-4]])  # inside the 1e-3 tolerance
    assert to_soft_targets(within, 2, 1).shape == (1, 2)
    with pytest.raises(ValueError, match=r"got row 0 = \[0.5, 0.6\] \(sum 1.1\)"):
        to_soft_targets(torch.tensor([[0.5, 0.6]]), 2, 1)


def test_mixup_kernel_refuses_an_out_of_range_permutation():
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match=r"perm must hold partner indices in \[0, 2\], got values in \[0, 3\]"):
        mixup(x, torch.tensor([0, 3, 1]), 0.5)
    with pytest.raises(ValueError, match=r"perm must hold partner indices in \[0, 2\], got values in \[-1, 2\]"):
        mixup(x, torch.tensor([2, -1, 1]), 0.5)


def test_sage_kernel_checks_values():
    x, s = torch.randn(2, 3, 4, 4), torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match=r"perm must hold partner indices in \[0, 1\]"):
        F.sage_mix(x, s, torch.tensor([0, 2]), 0.5, F.all_shifts(4, 4))
    with pytest.raises(ValueError, match="saliency must be non-negative.*got minimum -1"):
        F.sage_mix(x, torch.where(s == s.max(), -1.0, s), torch.tensor([1, 0]), 0.5, F.all_shifts(4, 4))
    with pytest.raises(ValueError, match=r"prior must lie in \[0, 1\]"):
        F.sage_mix(x, s, torch.tensor([1, 0]), torch.tensor([0.5, 1.5]), F.all_shifts(4, 4))
    with pytest.raises(ValueError, match=r"every shift must satisfy \|dy\| < H=4"):
        F.sage_mix(x, s, torch.tensor([1, 0]), 0.5, torch.tensor([[4, 0]]))
