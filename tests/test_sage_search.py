"""SAGE's coarse-to-fine shift search (sagemix.functional.sage_search) and its wiring in SAGE."""
from __future__ import annotations

import pytest
import torch

from sagemix.functional.sage import all_shifts, prepare_maps, sage_mix, sage_objective, translate
from sagemix.functional.sage_objective import objective_from_maps
from sagemix.functional.sage_search import (AUTO_MIN_SIDE, coarse_to_fine_search, objective_around,
                                            objective_per_pair, pool2, resolve_search)
from sagemix.mixers.sage import SAGE


def _naive(a: torch.Tensor, p: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    q = translate(p.double(), shift.view(1, 2).expand(a.shape[0], 2).contiguous())
    ad = a.double()
    return ((ad ** 2 + q ** 2) / (ad + q).clamp_min(1e-16)).sum(dim=(1, 2))


def _maps(b: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(b, h, w, generator=g) ** 4
    return prepare_maps(s, torch.randperm(b, generator=g), 0.4)


def test_pool2_keeps_mass_and_handles_odd_sides():
    x = torch.rand(3, 9, 6)
    y = pool2(x)
    assert y.shape == (3, 5, 3)
    torch.testing.assert_close(y.sum(dim=(1, 2)), x.sum(dim=(1, 2)))
    assert y[0, 0, 0] == pytest.approx(float(x[0, :2, :2].sum()), rel=1e-6)


def test_objective_per_pair_equals_naive_and_the_shared_objective():
    a, p = _maps(3, 12, 10, 0)
    shifts = torch.tensor([[[0, 0], [3, -2], [-11, 9]], [[5, 5], [0, 0], [11, -9]], [[-1, 1], [2, 0], [0, 0]]])
    got = objective_per_pair(a, p, shifts)
    for b in range(3):
        for k in range(3):
            want = _naive(a[b:b + 1], p[b:b + 1], shifts[b, k])[0]
            assert float(got[b, k]) == pytest.approx(float(want), rel=1e-5, abs=1e-7)
    shared = objective_from_maps(a, p, shifts[0])
    torch.testing.assert_close(objective_per_pair(a, p, shifts[0].expand(3, 3, 2)), shared, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("h, w", [(40, 40), (37, 50)])
def test_chosen_objective_is_the_naive_objective_at_the_chosen_shift(h, w):
    a, p = _maps(4, h, w, 1)
    chosen, value = coarse_to_fine_search(a, p, coarse_size=8, top_k=2)
    assert chosen.shape == (4, 2) and chosen.dtype == torch.int64
    assert (chosen[:, 0].abs() < h).all() and (chosen[:, 1].abs() < w).all()
    for b in range(4):
        assert float(value[b]) == pytest.approx(float(_naive(a[b:b + 1], p[b:b + 1], chosen[b])[0]), rel=1e-5)


def test_finds_the_optimum_on_constructed_maps():
    # Own mass in a 6x6 square at the top-left; the partner's in a 6x6 square at the bottom-right.
    # Every shift that keeps the partner's square fully inside the frame and off the own square
    # reaches the maximum J = 1 (both masses kept, no overlap); an overlapping one loses.
    h = w = 64
    a = torch.zeros(2, h, w)
    p = torch.zeros(2, h, w)
    a[:, 4:10, 4:10] = 0.5 / 36
    p[:, 50:56, 50:56] = 0.5 / 36
    exhaustive = objective_from_maps(a, p, all_shifts(h, w)).max(dim=1).values
    chosen, value = coarse_to_fine_search(a, p)
    torch.testing.assert_close(value, exhaustive, rtol=1e-6, atol=1e-6)
    assert float(value[0]) == pytest.approx(1.0, abs=1e-6)
    # a single salient pixel each at the same place: the partner must move off it
    a2 = torch.zeros(1, 48, 48)
    a2[0, 20, 30] = 0.6
    p2 = torch.zeros(1, 48, 48)
    p2[0, 20, 30] = 0.4
    chosen2, value2 = coarse_to_fine_search(a2, p2, coarse_size=6)
    assert not torch.equal(chosen2[0], torch.zeros(2, dtype=torch.int64))
    assert float(value2[0]) == pytest.approx(1.0, abs=1e-6)


def test_matches_the_exhaustive_optimum_on_smooth_random_maps():
    g = torch.Generator().manual_seed(3)
    s = torch.nn.functional.avg_pool2d(torch.rand(8, 1, 48, 48, generator=g) ** 6, 9, 1, 4).squeeze(1)
    a, p = prepare_maps(s, torch.randperm(8, generator=g), 0.5)
    opt = objective_from_maps(a, p, all_shifts(48, 48)).max(dim=1).values
    _, value = coarse_to_fine_search(a, p, coarse_size=12, top_k=4)
    assert (value >= opt - 1e-3).float().mean() >= 0.75
    assert (value <= opt + 1e-5).all()  # never above the true optimum


def test_objective_around_equals_the_per_pair_objective_of_each_neighbour():
    a, p = _maps(3, 11, 9, 6)
    g = torch.Generator().manual_seed(6)
    centres = torch.stack([torch.randint(-10, 11, (3, 4), generator=g), torch.randint(-8, 9, (3, 4), generator=g)], -1)
    centres[0, 0] = torch.tensor([10, -8])  # at the edge: some neighbours out of range
    got = objective_around(a, p, centres)
    d = torch.tensor([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    shifts = (centres.unsqueeze(2) + d.view(1, 1, 9, 2)).reshape(3, -1, 2)
    valid = (shifts[..., 0].abs() < 11) & (shifts[..., 1].abs() < 9)
    assert not valid.all() and valid.any()
    assert torch.isneginf(got[~valid]).all()
    want = objective_per_pair(a, p, torch.where(valid.unsqueeze(-1), shifts, torch.zeros_like(shifts)))
    torch.testing.assert_close(got[valid], want[valid], rtol=1e-5, atol=1e-6)


def test_fine_k_refines_a_subset_of_the_parents_at_full_resolution():
    g = torch.Generator().manual_seed(4)
    s = torch.nn.functional.avg_pool2d(torch.rand(6, 1, 48, 48, generator=g) ** 6, 9, 1, 4).squeeze(1)
    a, p = prepare_maps(s, torch.randperm(6, generator=g), 0.5)
    _, v1 = coarse_to_fine_search(a, p, coarse_size=12, top_k=4, fine_k=1)
    _, v4 = coarse_to_fine_search(a, p, coarse_size=12, top_k=4, fine_k=4)
    _, v9 = coarse_to_fine_search(a, p, coarse_size=12, top_k=4, fine_k=9)  # capped at top_k
    assert (v4 >= v1 - 1e-6).all()  # the best parent's children are among the four parents' children
    torch.testing.assert_close(v9, v4)


def test_deterministic_and_small_images_are_exhaustive():
    a, p = _maps(5, 40, 40, 4)
    c1, v1 = coarse_to_fine_search(a, p, coarse_size=10)
    c2, v2 = coarse_to_fine_search(a.clone(), p.clone(), coarse_size=10)
    assert torch.equal(c1, c2) and torch.equal(v1, v2)
    a, p = _maps(3, 12, 12, 5)  # already at most coarse_size: the exhaustive optimum
    _, v = coarse_to_fine_search(a, p)
    torch.testing.assert_close(v, objective_from_maps(a, p, all_shifts(12, 12)).max(dim=1).values)


def test_bad_arguments():
    a, p = _maps(2, 8, 8, 0)
    with pytest.raises(ValueError, match="coarse_size"):
        coarse_to_fine_search(a, p, coarse_size=1)
    with pytest.raises(ValueError, match="top_k"):
        coarse_to_fine_search(a, p, top_k=0)
    with pytest.raises(ValueError, match="fine_k must be an int >= 1, got 0"):
        coarse_to_fine_search(a, p, fine_k=0)
    with pytest.raises(ValueError, match="same shape|one shape"):
        coarse_to_fine_search(a, p[:, :4])
    with pytest.raises(ValueError, match="search"):
        resolve_search("fast", 32, 32)
    with pytest.raises(ValueError, match="search"):
        SAGE(num_classes=3, search="fast")


def test_auto_keeps_the_papers_search_on_small_images():
    assert resolve_search("auto", 32, 32) == "random"
    assert resolve_search("auto", AUTO_MIN_SIDE, AUTO_MIN_SIDE) == "random"
    assert resolve_search("auto", 224, 224) == "coarse_to_fine"
    x, y, s = torch.randn(4, 3, 32, 32), torch.arange(4), torch.rand(4, 32, 32)
    out_auto = SAGE(num_classes=4, generator=torch.Generator().manual_seed(0))(x, y, saliency=s)
    out_rand = SAGE(num_classes=4, search="random", generator=torch.Generator().manual_seed(0))(x, y, saliency=s)
    assert torch.equal(out_auto.images, out_rand.images) and out_auto.extras["search"] == "random"


def test_mixer_and_sage_mix_with_coarse_to_fine():
    g = torch.Generator().manual_seed(7)
    x, s = torch.randn(3, 3, 72, 72, generator=g), torch.rand(3, 72, 72, generator=g)
    out = SAGE(num_classes=3, generator=torch.Generator().manual_seed(0))(x, torch.arange(3), saliency=s)
    assert out.extras["search"] == "coarse_to_fine" and out.extras["shift"].shape == (3, 2)
    perm = out.index
    mixed, lam, chosen = sage_mix(x, s, perm, out.extras["prior"], "coarse_to_fine")
    torch.testing.assert_close(mixed, out.images)
    assert torch.equal(chosen, out.extras["shift"])
    a, p = prepare_maps(s, perm, out.extras["prior"])
    torch.testing.assert_close(chosen, coarse_to_fine_search(a, p)[0])
