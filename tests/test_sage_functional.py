"""SAGE kernels against the naive float64 reference and the properties of the spec."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sagemix.functional import sage as F
from sagemix.functional import sage_objective as SO
from sagemix.functional.sage_reference import sage_mix_naive, shift_map, smooth_naive


def _inputs(b, c, h, w, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(b, c, h, w, generator=g).to(dtype)
    # Peaky, non-negative saliency: smoothed squared noise plus a blob, like a real gradient map.
    sal = F.gaussian_smooth(torch.randn(b, h, w, generator=g) ** 2)
    perm = torch.randperm(b, generator=g)
    return images, sal, perm


@pytest.mark.parametrize("b,c,h,w", [(1, 3, 6, 6), (3, 3, 5, 7), (4, 1, 8, 5), (5, 2, 4, 4)])
@pytest.mark.parametrize("exhaustive", [True, False])
def test_sage_mix_matches_naive_reference(b, c, h, w, exhaustive):
    images, sal, perm = _inputs(b, c, h, w, seed=b * 100 + h)
    g = torch.Generator().manual_seed(1)
    shifts = F.candidate_shifts(h, w, rand_pos=None if exhaustive else 0.2, generator=g)
    prior = 0.37
    mixed, lam, chosen = F.sage_mix(images, sal, perm, prior, shifts)
    ref_mixed, ref_lam, ref_chosen, ref_obj = sage_mix_naive(images, sal, perm, prior, shifts)
    obj = F.sage_objective(sal, perm, prior, shifts)
    np.testing.assert_allclose(obj.double().numpy(), ref_obj, atol=1e-5)
    # The chosen shift maximises the reference objective (up to float32 rounding) ...
    picked = ref_obj[np.arange(b), [int(((shifts == ch).all(1)).nonzero()[0]) for ch in chosen]]
    np.testing.assert_allclose(picked, ref_obj.max(1), atol=1e-5)
    # ... and where the optimum is clear it is the reference's choice, so the outputs agree.
    srt = np.sort(ref_obj, axis=1)
    clear = (srt[:, -1] - srt[:, -2] > 1e-5) if shifts.shape[0] > 1 else np.ones(b, bool)
    assert clear.any()
    np.testing.assert_array_equal(chosen.numpy()[clear], ref_chosen[clear])
    np.testing.assert_allclose(mixed.double().numpy()[clear], ref_mixed[clear], atol=1e-5)
    np.testing.assert_allclose(lam.double().numpy()[clear], ref_lam[clear], atol=1e-5)
    assert mixed.dtype == images.dtype and lam.dtype == torch.float32 and chosen.dtype == torch.int64


def test_grid_and_gather_paths_agree():
    images, sal, perm = _inputs(6, 3, 9, 11, seed=3)
    a, p = F.prepare_maps(sal, perm, 0.6)
    a[0, :3] = 0  # exact zeros: infinite reciprocals must give a zero harmonic term, not NaN
    shifts = F.all_shifts(9, 11)
    grid = SO.harmonic_grid(a.reciprocal(), p.reciprocal())
    gathered = SO.harmonic_gather(a.reciprocal(), p.reciprocal(), shifts)
    assert torch.isfinite(grid).all()
    torch.testing.assert_close(grid, gathered, atol=2e-6, rtol=0)


def test_grid_path_reads_candidates_in_given_order():
    # More candidates than 2*H*W selects the full-grid path; a permuted candidate list must give the
    # permuted objective values.
    _, sal, perm = _inputs(3, 1, 4, 4, seed=5)
    shifts = F.all_shifts(4, 4)
    order = torch.randperm(shifts.shape[0], generator=torch.Generator().manual_seed(0))
    base = F.sage_objective(sal, perm, 0.5, shifts)
    perm_obj = F.sage_objective(sal, perm, 0.5, shifts[order])
    torch.testing.assert_close(perm_obj, base[:, order])


def test_chosen_shift_maximises_objective_over_candidates():
    images, sal, perm = _inputs(8, 3, 12, 12, seed=11)
    shifts = F.candidate_shifts(12, 12, rand_pos=0.1, generator=torch.Generator().manual_seed(2))
    _, _, chosen = F.sage_mix(images, sal, perm, 0.4, shifts)
    obj = F.sage_objective(sal, perm, 0.4, shifts)
    best = obj.argmax(1)
    assert torch.equal(chosen, shifts[best])
    assert torch.all(obj.gather(1, best[:, None]).squeeze(1) >= obj.max(1).values)


def test_ties_go_to_earliest_candidate():
    images, sal, perm = _inputs(4, 3, 6, 6, seed=2)
    # Exact ties: a duplicated candidate list; uniform maps make every same-overlap shift tie too.
    shifts = torch.tensor([[1, 2], [0, 0], [1, 2], [0, 0]])
    _, _, chosen = F.sage_mix(images, sal, perm, 0.5, shifts)
    obj = F.sage_objective(sal, perm, 0.5, shifts)
    assert torch.equal(obj[:, 0], obj[:, 2]) and torch.equal(obj[:, 1], obj[:, 3])
    first = torch.where((obj[:, 0] >= obj[:, 1])[:, None], shifts[0], shifts[1])
    assert torch.equal(chosen, first)


def test_lam_is_mask_mean_and_mix_is_convex_combination():
    images, sal, perm = _inputs(5, 3, 8, 10, seed=4)
    shifts = F.all_shifts(8, 10)
    mixed, lam, chosen = F.sage_mix(images, sal, perm, 0.3, shifts)
    mask = F.sage_mask(sal, perm, 0.3, chosen)
    assert torch.all((mask >= 0) & (mask <= 1))
    torch.testing.assert_close(lam, mask.mean((1, 2)))
    partner = F.translate(images[perm], chosen)
    torch.testing.assert_close(mixed, mask[:, None] * images + (1 - mask[:, None]) * partner)
    assert torch.all((lam >= 0) & (lam <= 1))


def test_all_zero_and_nan_saliency_give_no_nan():
    images = torch.randn(4, 3, 8, 8)
    perm = torch.tensor([1, 2, 3, 0])
    for sal in (torch.zeros(4, 8, 8), torch.full((4, 8, 8), float("nan"))):
        for shifts in (F.all_shifts(8, 8), torch.tensor([[0, 0], [3, -2]])):
            mixed, lam, chosen = F.sage_mix(images, sal, perm, 0.5, shifts)
            assert torch.isfinite(mixed).all() and torch.isfinite(lam).all()
            # Uniform maps: with zero shift the mask is alpha everywhere.
            if shifts.shape[0] == 2:
                assert torch.equal(chosen[0], torch.tensor([0, 0]))
                torch.testing.assert_close(lam, torch.full((4,), 0.5))


def test_prior_extremes():
    images, sal, perm = _inputs(4, 3, 8, 8, seed=6)
    shifts = F.all_shifts(8, 8)
    mixed, lam, _ = F.sage_mix(images, sal, perm, 1.0, shifts)  # alpha = 1: the partner has no weight
    torch.testing.assert_close(mixed, images)
    torch.testing.assert_close(lam, torch.ones(4))
    _, lam0, _ = F.sage_mix(images, sal, perm, 0.0, shifts)
    assert torch.all(lam0 == 0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(dtype):
    images, sal, perm = _inputs(5, 3, 8, 8, seed=7)
    shifts = F.all_shifts(8, 8)
    mixed32, lam32, chosen32 = F.sage_mix(images, sal, perm, 0.5, shifts)
    mixed, lam, chosen = F.sage_mix(images.to(dtype), sal.to(dtype), perm, 0.5, shifts)
    assert mixed.dtype == dtype and lam.dtype == torch.float32
    assert torch.isfinite(mixed.float()).all()
    # The objective runs in float32 on the half saliency; the mixes stay close to the float32 ones.
    same = (chosen == chosen32).all(1)
    assert same.any()
    tol = 1e-2 if dtype == torch.float16 else 5e-2
    torch.testing.assert_close(mixed.float()[same], mixed32[same], atol=tol * 4, rtol=tol)


def test_translate_matches_naive():
    x = torch.randn(4, 2, 5, 7, dtype=torch.float64)
    shifts = torch.tensor([[0, 0], [2, -3], [-4, 6], [4, -6]])
    out = F.translate(x, shifts)
    for n in range(4):
        ref = shift_map(x[n].numpy(), int(shifts[n, 0]), int(shifts[n, 1]))
        np.testing.assert_array_equal(out[n].numpy(), ref)
    # (B, H, W) maps too
    assert torch.equal(F.translate(x[:, 0], shifts), out[:, 0])


@pytest.mark.parametrize("h,w", [(8, 8), (6, 11), (3, 3)])
def test_gaussian_smooth_matches_naive(h, w):
    s = torch.rand(3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(h * w))
    out = F.gaussian_smooth(s)
    np.testing.assert_allclose(out.double().numpy(), smooth_naive(s.numpy()), atol=1e-6)
    assert out.shape == s.shape and out.dtype == torch.float32


def test_gaussian_kernel_taps():
    taps = F.gaussian_kernel1d(5, 1.0, dtype=torch.float64)
    expected = np.exp(-np.arange(-2, 3) ** 2 / 2.0)
    np.testing.assert_allclose(taps.numpy(), expected / expected.sum())
    assert taps.sum().item() == pytest.approx(1.0)


def test_reduce_saliency_modes():
    g = torch.randn(2, 3, 4, 5)
    np.testing.assert_allclose(F.reduce_saliency(g, "l2").numpy(),
                               np.sqrt((g.double().numpy() ** 2).sum(1)), rtol=1e-6)
    np.testing.assert_allclose(F.reduce_saliency(g, "mean_abs").numpy(),
                               np.abs(g.double().numpy()).mean(1), rtol=1e-6)
    with pytest.raises(ValueError, match="saliency_reduce"):
        F.reduce_saliency(g, "max")


def test_candidate_shifts():
    grid = F.all_shifts(32, 32)
    assert grid.shape == (63 * 63, 2) and grid.dtype == torch.int64
    assert len({tuple(t) for t in grid.tolist()}) == 3969
    assert grid.abs().max() == 31
    k = F.candidate_shifts(32, 32, generator=torch.Generator().manual_seed(0))
    assert k.shape == (39, 2)  # floor(3969 * 0.01)
    assert len({tuple(t) for t in k.tolist()}) == 39
    same = F.candidate_shifts(32, 32, generator=torch.Generator().manual_seed(0))
    other = F.candidate_shifts(32, 32, generator=torch.Generator().manual_seed(1))
    assert torch.equal(k, same) and not torch.equal(k, other)
    assert F.candidate_shifts(2, 2, rand_pos=0.01).shape == (1, 2)  # at least one
    z = F.candidate_shifts(32, 32, force_zero_shift=True, generator=torch.Generator().manual_seed(0))
    assert z.shape == (39, 2) and torch.equal(z[0], torch.zeros(2, dtype=torch.int64))
    assert ((z == 0).all(1)).sum() == 1
    assert torch.equal(F.candidate_shifts(3, 4, rand_pos=None), F.all_shifts(3, 4))


def test_bad_arguments_raise_clear_errors():
    images, sal, perm = _inputs(3, 3, 6, 6)
    shifts = F.all_shifts(6, 6)
    with pytest.raises(ValueError, match="prior"):
        F.sage_mix(images, sal, perm, 1.5, shifts)
    with pytest.raises(ValueError, match="perm"):
        F.sage_mix(images, sal, perm.int(), 0.5, shifts)
    with pytest.raises(ValueError, match="perm"):
        F.sage_mix(images, sal, torch.tensor([0, 1, 5]), 0.5, shifts)
    with pytest.raises(ValueError, match="shifts"):
        F.sage_mix(images, sal, perm, 0.5, torch.zeros(3))
    with pytest.raises(TypeError, match="int64"):
        F.sage_mix(images, sal, perm, 0.5, shifts.float())
    with pytest.raises(ValueError, match="overlap"):
        F.sage_mix(images, sal, perm, 0.5, torch.tensor([[6, 0]]))
    with pytest.raises(ValueError, match="non-negative"):
        F.sage_mix(images, -sal - 1, perm, 0.5, shifts)
    with pytest.raises(ValueError, match="saliency must have shape"):
        F.sage_mix(images, sal[:, :5], perm, 0.5, shifts)
    with pytest.raises(ValueError, match="images"):
        F.sage_mix(images.long(), sal, perm, 0.5, shifts)
    with pytest.raises(ValueError, match="rand_pos"):
        F.candidate_shifts(6, 6, rand_pos=-0.1)
    with pytest.raises(ValueError, match="blur_kernel_size"):
        F.gaussian_smooth(sal, kernel_size=4)


def test_chunked_evaluation_equals_single_chunk(monkeypatch):
    images, sal, perm = _inputs(5, 3, 7, 9, seed=8)
    every = F.all_shifts(7, 9)
    some = F.candidate_shifts(7, 9, rand_pos=0.3, generator=torch.Generator().manual_seed(0))
    whole = [F.sage_objective(sal, perm, 0.45, s) for s in (every, some)]
    monkeypatch.setattr(SO, "_CHUNK_ELEMENTS", {"cpu": 700})  # a few rows / candidates per chunk
    chunked = [F.sage_objective(sal, perm, 0.45, s) for s in (every, some)]
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b)


def test_static_and_overlap_gathers_agree():
    # The static-shape gather (devices: no nonzero, no host sync) equals the overlap-only one (CPU).
    _, sal, perm = _inputs(5, 1, 7, 9, seed=11)
    a, p = F.prepare_maps(sal, perm, 0.4)
    a[1, 2:4] = 0
    shifts = F.candidate_shifts(7, 9, rand_pos=0.3, generator=torch.Generator().manual_seed(0))
    ra, rp = a.reciprocal(), p.reciprocal()
    static = SO.harmonic_gather(ra, rp, shifts, static=True)
    overlap = SO.harmonic_gather(ra, rp, shifts, static=False)
    assert torch.isfinite(static).all()
    torch.testing.assert_close(static, overlap, atol=2e-6, rtol=1e-6)
    assert torch.equal(overlap, SO.harmonic_gather(ra, rp, shifts))  # the CPU default visits the overlap only
