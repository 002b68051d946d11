"""Tests of Co-Mixup: kernels against naive float64 loops, the solver's properties, the mixer."""
from __future__ import annotations

import itertools
import math
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("gco")

import sagemix.functional.comixup as fc  # noqa: E402
import sagemix.functional.comixup_solver as fcs  # noqa: E402
from sagemix import MixStep, create_mixer, list_mixers  # noqa: E402
from sagemix.mixers.comixup import CoMixup  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Naive references (loops, float64), independent of the module
# ---------------------------------------------------------------------------------------------
def naive_block_of(y: int, size: int, n: int) -> int:
    return math.floor(y * n / size)


def naive_block_saliency(sal: torch.Tensor, n: int) -> np.ndarray:
    b, h, w = sal.shape
    s = sal.double().numpy()
    out = np.zeros((b, n, n))
    for k in range(b):
        sums = np.zeros((n, n))
        cnt = np.zeros((n, n))
        for y in range(h):
            for x in range(w):
                p, q = naive_block_of(y, h, n), naive_block_of(x, w, n)
                sums[p, q] += s[k, y, x]
                cnt[p, q] += 1
        avg = sums / cnt
        out[k] = avg / avg.sum() if avg.sum() > 0 else np.full((n, n), 1.0 / (n * n))
    return out


def naive_compat(sal: torch.Tensor, omega: float, pool: int = 8) -> np.ndarray:
    m, h, w = sal.shape
    s = sal.double().numpy()
    kh, kw = min(pool, h), min(pool, w)
    peaks = []
    for k in range(m):
        best, loc = -np.inf, None
        for y in range(h - kh + 1):
            for x in range(w - kw + 1):
                v = s[k, y:y + kh, x:x + kw].mean()
                if v > best + 1e-12:
                    best, loc = v, (y, x)
        peaks.append(loc)
    dist = np.zeros((m, m))
    for i in range(m):
        for j in range(m):
            dist[i, j] = abs(peaks[i][0] - peaks[j][0]) + abs(peaks[i][1] - peaks[j][1])
    a_hat = dist / dist.sum() * m if dist.sum() > 0 else dist
    return (1 - omega) * np.eye(m) + omega * a_hat


def naive_objective(masks: np.ndarray, unary: np.ndarray, compat: np.ndarray, beta: float, gamma: float) -> float:
    """sum of block costs + beta/N * Potts (1/4 between a half block and its parents) + diversity."""
    n_out, n, _, m = masks.shape
    big_n = n * n

    def label(v: np.ndarray) -> frozenset:
        return frozenset(int(i) for i in np.flatnonzero(v > 0))

    def dist(u: np.ndarray, v: np.ndarray) -> float:
        lu, lv = label(u), label(v)
        if lu == lv:
            return 0.0
        if (len(lu) == 1 and len(lv) == 2 and lu <= lv) or (len(lv) == 1 and len(lu) == 2 and lv <= lu):
            return 0.25
        return 1.0

    total = 0.0
    for j in range(n_out):
        for p in range(n):
            for q in range(n):
                for i in range(m):
                    total += masks[j, p, q, i] * unary[i, p, q]
                if p + 1 < n:
                    total += beta / big_n * dist(masks[j, p, q], masks[j, p + 1, q])
                if q + 1 < n:
                    total += beta / big_n * dist(masks[j, p, q], masks[j, p, q + 1])
    counts = masks.reshape(n_out, big_n, m).sum(1)
    for j in range(n_out):
        for k in range(n_out):
            if j != k:
                for i in range(m):
                    for i2 in range(m):
                        total += gamma / big_n * counts[j, i] * compat[i, i2] * counts[k, i2]
    return total


def naive_mix(images: torch.Tensor, masks: list[torch.Tensor], bounds: list[tuple[int, int]]):
    """Pixel loops: each output pixel is sum_i mask_i(block) * x_i; shares counted per pixel."""
    b, c, h, w = images.shape
    x = images.double()
    out = torch.zeros(b, c, h, w, dtype=torch.float64)
    weights = torch.zeros(b, b, dtype=torch.float64)
    for (s, e), mk in zip(bounds, masks):
        n = mk.shape[1]
        for j in range(e - s):
            for y in range(h):
                for xx in range(w):
                    p, q = naive_block_of(y, h, n), naive_block_of(xx, w, n)
                    for i in range(e - s):
                        v = float(mk[j, p, q, i])
                        if v:
                            out[s + j, :, y, xx] += v * x[s + i, :, y, xx]
                            weights[s + j, s + i] += v / (h * w)
    return out, weights


def dirichlet_prior(b: int, m_part: int, g: torch.Generator) -> torch.Tensor:
    prior = torch.rand(b, generator=g, dtype=torch.float64) + 0.1
    for s, e in fc.partition_bounds(b, m_part):
        prior[s:e] /= prior[s:e].sum()
    return prior


def random_case(b: int, h: int, w: int, seed: int, k: int = 5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, h, w, generator=g)
    y = torch.arange(b) % k
    sal = torch.rand(b, h, w, generator=g) ** 4
    return x, y, sal, g


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("b,h,w,n", [(3, 8, 8, 4), (2, 10, 7, 3), (1, 9, 13, 4), (5, 6, 6, 1)])
def test_block_saliency_matches_naive(b, h, w, n):
    sal = torch.rand(b, h, w, generator=torch.Generator().manual_seed(b + h)) ** 3
    got = fc.block_saliency(sal, n)
    assert got.dtype == torch.float64 and got.shape == (b, n, n)
    np.testing.assert_allclose(got.numpy(), naive_block_saliency(sal, n), rtol=1e-10, atol=1e-12)
    assert torch.allclose(got.flatten(1).sum(1), torch.ones(b, dtype=torch.float64))


def test_block_saliency_zero_map_is_uniform_not_nan():
    sal = torch.zeros(2, 8, 8)
    sal[1, 3, 3] = 1.0
    got = fc.block_saliency(sal, 4)
    assert torch.isfinite(got).all()
    assert torch.allclose(got[0], torch.full((4, 4), 1 / 16, dtype=torch.float64))
    assert got[1, 1, 1] == 1.0


def test_block_index_matches_nearest_upsampling_when_divisible():
    idx = fc.block_index(32, 4)
    grid = torch.arange(4.0)[None, None, :, None]
    up = F.interpolate(grid, size=(32, 1), mode="nearest")[0, 0, :, 0].long()
    assert torch.equal(idx, up)


@pytest.mark.parametrize("m,h,w,omega", [(5, 16, 16, 0.3), (4, 11, 9, 0.001), (6, 6, 5, 1.0)])
def test_compatibility_matches_naive(m, h, w, omega):
    sal = torch.rand(m, h, w, generator=torch.Generator().manual_seed(m * h), dtype=torch.float64)
    got = fc.compatibility_matrix(sal, omega=omega)
    ref = naive_compat(sal, omega)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12, atol=1e-12)
    assert torch.allclose(got, got.T)
    off = got - (1 - omega) * torch.eye(m, dtype=torch.float64)
    assert math.isclose(float(off.sum()), omega * m, rel_tol=1e-9) or float(off.sum()) == 0.0


def test_compatibility_degenerate_peaks():
    sal = torch.zeros(3, 10, 10)
    sal[:, 5, 5] = 1.0  # same peak for all: A^ = 0, no NaN
    a = fc.compatibility_matrix(sal, omega=0.2)
    assert torch.allclose(a, 0.8 * torch.eye(3, dtype=torch.float64))
    a1 = fc.compatibility_matrix(sal[:1], omega=0.2)
    assert a1.shape == (1, 1) and torch.isfinite(a1).all()


def test_objective_matches_naive_with_half_blocks():
    rng = np.random.default_rng(0)
    m, n = 4, 3
    eye = np.eye(m)
    labels = [eye[i] for i in range(m)] + [0.5 * (eye[0] + eye[1]), 0.5 * (eye[1] + eye[3])]
    masks = np.stack([labels[k] for k in rng.integers(0, len(labels), 5 * n * n)]).reshape(5, n, n, m)
    unary = rng.normal(size=(m, n, n))
    a = fc.compatibility_matrix(torch.rand(m, 9, 9, generator=torch.Generator().manual_seed(1)), omega=0.5).numpy()
    got = fc.comixup_objective(masks, unary, a, beta=0.7, gamma=1.3)
    assert math.isclose(got, naive_objective(masks, unary, a, 0.7, 1.3), rel_tol=1e-12)


# ---------------------------------------------------------------------------------------------
# The solver
# ---------------------------------------------------------------------------------------------
def _partition(m: int, n: int, seed: int, omega: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    sal = torch.rand(m, 4 * n, 4 * n, generator=g, dtype=torch.float64) ** 4
    cost = -fc.block_saliency(sal, n).numpy()
    compat = fc.compatibility_matrix(sal, omega=omega).numpy()
    prior = dirichlet_prior(m, m, g).numpy()
    init = torch.randint(0, m, (m, n, n), generator=g).numpy()
    unary = cost - 0.05 / (n * n) * np.log(prior + 1e-8)[:, None, None]
    return cost, compat, prior, init, unary


@pytest.mark.parametrize("seed,m,n", [(0, 6, 3), (1, 5, 4), (2, 7, 2)])
def test_objective_never_increases_in_exact_mode(seed, m, n):
    """With thres=0, no set resolution, no half bias and warm-started cuts, every cut solves the
    exact block subproblem from the current labelling: the objective cannot increase."""
    cost, compat, prior, init, unary = _partition(m, n, seed)
    opts = dict(beta=0.8, gamma=1.0, eta=0.05, thres=0.0, set_resolve=False, warm_start=True, half_bias=0.0, tol=-1.0)
    values = [naive_objective(np.eye(m)[init], unary, compat, 0.8, 1.0)]
    for k in range(1, 6):
        res = fc.solve_labelling(cost, compat, prior, init, niter=k, **opts)
        assert res.iterations == k
        values.append(naive_objective(res.masks, unary, compat, 0.8, 1.0))
        assert math.isclose(res.objective[-1], values[-1], rel_tol=1e-9, abs_tol=1e-12)
    scale = max(abs(v) for v in values)
    for before, after in zip(values, values[1:]):
        assert after <= before + 1e-6 * scale, values
    assert values[-1] < values[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_solver_improves_on_random_start(seed):
    cost, compat, prior, init, unary = _partition(8, 4, seed, omega=0.001)
    res = fc.solve_labelling(cost, compat, prior, init)
    final = naive_objective(res.masks, unary, compat, 0.32, 1.0)
    assert math.isclose(res.objective[-1], final, rel_tol=1e-9)
    assert math.isclose(res.objective[0], naive_objective(np.eye(8)[init], unary, compat, 0.32, 1.0), rel_tol=1e-9)
    assert final < res.objective[0]
    assert 1 <= res.iterations <= 4


def test_half_half_labels_built_as_specified(monkeypatch):
    calls = []
    real_cut = fcs._cut

    def spy(gco, unary, dist, edges, weight, init):
        labels = real_cut(gco, unary, dist, edges, weight, init)
        calls.append((unary.copy(), dist.copy(), labels.copy()))
        return labels

    monkeypatch.setattr(fcs, "_cut", spy)
    m, n = 5, 4
    cost, compat, prior, init, _ = _partition(m, n, 3)
    fc.solve_labelling(cost, compat, prior, init, niter=3, set_resolve=False, tol=-1.0)
    assert len(calls) == 3 * m
    # First sweep: plain Potts over the m inputs.
    for unary, dist, _ in calls[:m]:
        assert unary.shape == (n * n, m)
        np.testing.assert_array_equal(dist, 1 - np.eye(m))
    seen = set()
    for k, (unary, dist, _) in enumerate(calls[m:], start=m):
        j = k % m
        prev_labels = calls[k - m][2]
        # The inputs output j used: the parents of the labels chosen by its previous cut.
        counts = np.zeros(m)
        for lab in prev_labels:
            if lab < m:
                counts[lab] += 1
            else:
                for parent in _parents(calls[k - m][1], lab, m):
                    counts[parent] += 0.5
        used = np.flatnonzero(counts > 0)
        extra = unary.shape[1] - m
        if used.size <= 1:
            assert extra == 0
            continue
        if used.size == 2:
            pairs = [tuple(used)]
        else:
            order = sorted(range(m), key=lambda i: (-counts[i], i))[:3]
            pairs = list(itertools.combinations(sorted(order), 2))
        assert extra == len(pairs)
        seen.add(len(pairs))
        for e, (a, b) in enumerate(pairs):
            np.testing.assert_allclose(unary[:, m + e], 0.5 * (unary[:, a] + unary[:, b]) - 5e-4, atol=1e-15)
            for i in range(m):
                assert dist[m + e, i] == dist[i, m + e] == (0.25 if i in (a, b) else 1.0)
        np.testing.assert_array_equal(dist[m:, m:], 1 - np.eye(extra))
    assert seen == {1, 3}, seen  # both cases (2 inputs; 3 or more inputs) were exercised


def _parents(dist: np.ndarray, label: int, m: int) -> list[int]:
    """The inputs at distance 1/4 from a half-half label are its two parents."""
    return [i for i in range(m) if dist[label, i] == 0.25]


def test_masks_are_valid_and_half_blocks_blend_two_inputs():
    x, y, sal, g = random_case(12, 16, 16, 4)
    out = CoMixup(num_classes=5, generator=g, m_part=12, niter=4)(x, y, sal)
    mk = out.extras["masks"][0]
    assert mk.shape == (12, 4, 4, 12)
    assert torch.allclose(mk.sum(-1), torch.ones(12, 4, 4))
    vals = set(mk.unique().tolist())
    assert vals <= {0.0, 0.5, 1.0}
    assert ((mk > 0).sum(-1) <= 2).all()
    assert 0.5 in vals, "expected some half-half blocks with the default settings"


def test_resolve_sets_against_naive():
    rng = np.random.default_rng(5)
    for _ in range(20):
        counts = (rng.random((6, 4)) < 0.5) * rng.integers(1, 5, (6, 4)).astype(float)
        counts[2] = counts[0]
        got = fcs._resolve_sets(counts)
        ref = np.zeros_like(counts)
        sets = [tuple(np.flatnonzero(c > 0)) for c in counts]
        for a in range(6):
            for b in range(a + 1, 6):
                if sets[a] == sets[b] and len(sets[a]) >= 2:
                    ref[a, sets[a][0]] = 1.0
                    ref[b, sets[a][1]] = 1.0
        np.testing.assert_array_equal(got, ref)


def _duplicate_pairs(mask: torch.Tensor) -> int:
    used = mask.flatten(1, 2).sum(1) > 0
    return sum(1 for a, b in itertools.combinations(range(len(used)), 2)
               if used[a].sum() >= 2 and torch.equal(used[a], used[b]))


def test_set_resolution_separates_outputs():
    """The set resolution makes outputs with the same input set diverge (m >= 2). It is a nudge
    (a unit cost for one sweep), so it is checked over several partitions, not promised for each."""
    with_resolve = without = 0
    for seed in range(12):
        for b, n, h in ((2, 2, 8), (3, 2, 8)):
            x, y, sal, _ = random_case(b, h, h, seed)
            prior = dirichlet_prior(b, b, torch.Generator().manual_seed(seed))
            for flag in (True, False):
                res = fc.comixup(x, F.one_hot(y, 5).float(), sal, prior, m_part=b, block_num=n, set_resolve=flag,
                                 generator=torch.Generator().manual_seed(seed))
                dup = _duplicate_pairs(res.masks[0])
                if flag:
                    with_resolve += dup
                else:
                    without += dup
    assert without > 0
    assert with_resolve <= without // 2, (with_resolve, without)


def test_resolution_costs_reach_the_last_sweep(monkeypatch):
    calls = []
    real_cut = fcs._cut

    def spy(gco, unary, dist, edges, weight, init):
        calls.append(unary.copy())
        return real_cut(gco, unary, dist, edges, weight, init)

    monkeypatch.setattr(fcs, "_cut", spy)
    m, n = 2, 2
    # Input 0 is salient in the top row, input 1 in the bottom row; with the diversity threshold
    # out of reach both outputs take the top row from 0 and the bottom row from 1: same set {0, 1}.
    cost = np.array([[[-0.3, -0.3], [-0.2, -0.2]], [[-0.2, -0.2], [-0.3, -0.3]]])
    init = np.array([[[0, 1], [1, 0]], [[1, 0], [0, 1]]])
    prior = np.full(m, 0.5)
    res = fc.solve_labelling(cost, np.eye(m), prior, init, niter=4, gamma=1.0, thres=10.0, tol=1e-6)
    assert res.objective[2] == res.objective[3]  # converged after the third sweep ...
    assert res.iterations == 4  # ... yet the resolution (at iteration niter - 2) got its sweep
    before, last = calls[2 * m: 3 * m], calls[3 * m:]
    # Output 0 paid gamma/N on input 0 and output 1 on input 1 (and on their half labels).
    np.testing.assert_allclose(last[0][:, 0] - before[0][:, 0], 1.0 / 4, atol=1e-12)
    np.testing.assert_allclose(last[0][:, 1] - before[0][:, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(last[1][:, 1] - before[1][:, 1], 1.0 / 4, atol=1e-12)
    sets = [tuple(np.flatnonzero(res.masks[j].sum((0, 1)) > 0)) for j in range(m)]
    assert sets == [(1,), (0,)]
    stopped = fc.solve_labelling(cost, np.eye(m), prior, init, niter=4, gamma=1.0, thres=10.0,
                                 stop_before_resolve=True)
    assert stopped.iterations == 3  # the research code's order: stops before the resolution acts


# ---------------------------------------------------------------------------------------------
# The mix and the mixer
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("b,h,w,m_part,n", [(7, 12, 10, 3, 4), (5, 8, 8, 5, 2), (4, 9, 16, 20, 3)])
def test_mix_matches_naive_and_labels_are_area_shares(b, h, w, m_part, n):
    x, y, sal, g = random_case(b, h, w, b * h)
    mixer = CoMixup(num_classes=5, generator=g, m_part=m_part, m_block_num=n)
    out = mixer(x, y, sal)
    ref_img, ref_w = naive_mix(x, out.extras["masks"], out.extras["partitions"])
    assert torch.allclose(out.images.double(), ref_img, atol=1e-5)
    assert torch.allclose(out.extras["weights"].double(), ref_w, atol=1e-6)
    onehot = F.one_hot(y, 5).double()
    assert torch.allclose(out.targets.double(), ref_w @ onehot, atol=1e-6)
    assert torch.allclose(out.targets.sum(1), torch.ones(b))
    assert torch.allclose(out.lam.double(), ref_w.diagonal(), atol=1e-6)
    assert ((out.lam >= 0) & (out.lam <= 1)).all()
    for j in range(b):
        row = ref_w[j].clone()
        row[j] = -1
        expect = int(row.argmax()) if row.max() > 0 else j
        assert math.isclose(float(ref_w[j, int(out.index[j])]), float(ref_w[j, expect]), abs_tol=1e-9)
        if row.max() <= 0:
            assert int(out.index[j]) == j
    assert not torch.equal(out.images, x) or b == 1


def test_partial_batch_and_partitions_stay_separate():
    x, y, sal, g = random_case(23, 8, 8, 7)
    out = CoMixup(num_classes=5, generator=g)(x, y, sal)
    assert out.extras["partitions"] == [(0, 20), (20, 23)]
    wts = out.extras["weights"]
    assert wts[:20, 20:].abs().sum() == 0 and wts[20:, :20].abs().sum() == 0
    assert torch.allclose(wts.sum(1), torch.ones(23))
    assert (out.index[:20] < 20).all() and (out.index[20:] >= 20).all()


def test_batch_of_one_is_returned_unmixed():
    x, y, sal, g = random_case(1, 8, 8, 8)
    out = CoMixup(num_classes=5, generator=g)(x, y, sal)
    assert torch.equal(out.images, x)
    assert out.lam.tolist() == [1.0] and out.index.tolist() == [0]
    assert torch.allclose(out.targets, F.one_hot(y, 5).float())


def test_partitions_of_one_leave_every_image_unmixed():
    x, y, sal, g = random_case(3, 8, 8, 15)
    out = CoMixup(num_classes=5, generator=g, m_part=1)(x, y, sal)
    assert torch.equal(out.images, x)
    assert torch.equal(out.lam, torch.ones(3)) and torch.equal(out.index, torch.arange(3))


def test_soft_targets_in_and_saliency_with_channel_dim():
    x, y, sal, g = random_case(5, 8, 8, 11)
    soft = torch.softmax(torch.randn(5, 5, generator=g), 1)
    out = CoMixup(generator=g)(x, soft, sal[:, None])
    assert torch.allclose(out.targets, out.extras["weights"] @ soft, atol=1e-6)


def test_registry_and_step_protocol():
    assert "comixup" in list_mixers()
    mixer = create_mixer("comixup", num_classes=3, clean_lam=0.5)
    assert isinstance(mixer, CoMixup) and mixer.name == "comixup"
    assert (mixer.m_part, mixer.m_block_num, mixer.alpha, mixer.beta, mixer.gamma, mixer.eta) == (20, 4, 2.0, 0.32, 1.0, 0.05)
    assert (mixer.omega, mixer.thres, mixer.niter, mixer.set_resolve) == (0.001, 0.83, 4, True)
    assert mixer.auto_workers and mixer.num_workers == (2 if (os.cpu_count() or 1) >= 2 else 0)  # "auto"
    assert mixer.needs_gradient_saliency and mixer.saliency_train_mode and mixer.saliency_loss == "ce"
    assert mixer.clean_weight(10) == 0.5
    grad = torch.randn(2, 3, 5, 4)
    assert torch.allclose(mixer.reduce_saliency(grad), torch.sqrt((grad ** 2).mean(1)))


@pytest.mark.parametrize("alpha", [2.0, 0.001])
def test_prior_is_one_dirichlet_per_partition(alpha):
    x, y, s = torch.randn(10, 3, 8, 8), torch.arange(10), torch.rand(10, 8, 8)
    mixer = CoMixup(num_classes=10, generator=torch.Generator().manual_seed(0), m_part=4, alpha=alpha)
    prior = mixer.make_params(x, y, s).prior
    assert prior.shape == (10,) and (prior > 0).all()
    for s0, e in fc.partition_bounds(10, 4):
        assert math.isclose(float(prior[s0:e].sum()), 1.0, rel_tol=1e-12)
    again = CoMixup(num_classes=10, generator=torch.Generator().manual_seed(0), m_part=4, alpha=alpha)
    assert torch.equal(prior, again.make_params(x, y, s).prior)


def test_small_alpha_mixes():
    """alpha = 0.001 (the low end of ALPHA_RANGE): every Gamma draw of a partition can underflow to 0;
    the prior is then normalised from the logs and the batch mixes (it used to fail on every call)."""
    g = torch.Generator().manual_seed(0)
    x, y, s = torch.randn(16, 3, 8, 8, generator=g), torch.arange(16) % 10, torch.rand(16, 8, 8, generator=g)
    mixer = CoMixup(num_classes=10, generator=torch.Generator().manual_seed(0), m_part=16, alpha=0.001,
                    num_workers=0)
    for _ in range(3):
        out = mixer(x, y, s)
        assert torch.isfinite(out.images).all() and torch.allclose(out.targets.sum(1), torch.ones(16))
    with pytest.raises(ValueError, match=r"alpha must be a finite number in \[0.001, 1000\]"):
        CoMixup(alpha=1e-4)


def test_mixstep_runs_a_comixup_step():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    mixer = create_mixer("comixup", num_classes=3, generator=torch.Generator().manual_seed(1), m_part=4)
    step = MixStep(model, mixer)
    x = torch.randn(6, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    out = step(x, y)
    assert torch.isfinite(out.loss) and out.clean_loss is not None
    assert out.saliency.shape == (6, 8, 8) and (out.saliency >= 0).all()
    assert torch.allclose(out.loss, out.mixed_loss + 1.0 * out.clean_loss)
    assert out.mix.extras["partitions"] == [(0, 4), (4, 6)]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,match", [
    ({"m_part": 0}, "m_part"), ({"m_block_num": 1.5}, "m_block_num"), ({"alpha": 0.0}, "alpha"),
    ({"beta": -1.0}, "beta"), ({"omega": 1.5}, "omega"), ({"thres": float("nan")}, "thres"),
    ({"niter": 0}, "niter"), ({"num_workers": -1}, "num_workers"), ({"clean_lam": -0.1}, "clean_lam"),
])
def test_bad_options_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CoMixup(**kwargs)


def test_bad_flag_type_raises_type_error():
    with pytest.raises(TypeError, match="set_resolve"):
        CoMixup(set_resolve="yes")


def test_bad_inputs_raise_clear_errors():
    x, y, sal, g = random_case(4, 8, 8, 12)
    mixer = CoMixup(num_classes=5, generator=g)
    with pytest.raises(ValueError, match="needs saliency"):
        mixer(x, y)
    with pytest.raises(ValueError, match="saliency must have shape"):
        mixer(x, y, sal[:, :4])
    with pytest.raises(ValueError, match="non-negative"):
        mixer(x, y, -sal)
    bad = sal.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        mixer(x, y, bad)
    with pytest.raises(ValueError, match="m_block_num=16"):
        CoMixup(num_classes=5, m_block_num=16)(x, y, sal)
    with pytest.raises(TypeError, match="saliency"):
        mixer(x, y, sal.numpy())
    with pytest.raises(ValueError, match="block_num"):
        fc.block_saliency(sal, 0)
    with pytest.raises(ValueError, match="prior"):
        fc.comixup(x, F.one_hot(y, 5).float(), sal, torch.ones(3))


def test_solver_rejects_bad_arrays():
    cost, compat, prior, init, _ = _partition(4, 3, 0)
    with pytest.raises(ValueError, match="compat"):
        fc.solve_labelling(cost, compat[:3, :3], prior, init)
    with pytest.raises(ValueError, match="init labels"):
        fc.solve_labelling(cost, compat, prior, init + 4)
    with pytest.raises(ValueError, match="prior"):
        fc.solve_labelling(cost, compat, -prior, init)
    with pytest.raises(ValueError, match="beta"):
        fc.solve_labelling(cost, compat, prior, init, beta=-1.0)
    with pytest.raises(ValueError, match="cost"):
        fc.solve_labelling(cost[:, :2], compat, prior, init)


def test_docstring_example_runs():
    import doctest

    import sagemix.mixers.comixup as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_missing_gco_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gco", None)
    x, y, sal, g = random_case(3, 8, 8, 13)
    with pytest.raises(ImportError, match=r'pip install "sagemix\[comixup\]"'):
        CoMixup(num_classes=5, generator=g)(x, y, sal)


def test_auto_workers_solve_small_images_in_process():
    x, y, sal, _ = random_case(4, 8, 8, 15)
    mixer = CoMixup(num_classes=5, generator=torch.Generator().manual_seed(2), m_part=4)
    try:
        mixer(x, y, sal)
        assert mixer.pool is None or not mixer.pool.started  # 8 px: no process was started
        assert mixer.pool_for(torch.zeros(1, 3, 64, 64)) is mixer.pool  # from 64 x 64 pixels on, the pool
    finally:
        mixer.close()
    assert CoMixup(num_classes=5, num_workers=0).pool_for(torch.zeros(1, 3, 64, 64)) is None


@pytest.mark.slow
def test_process_pool_gives_the_same_result_and_is_reused():
    x, y, sal, _ = random_case(10, 8, 8, 14)
    serial = CoMixup(num_classes=5, generator=torch.Generator().manual_seed(2), m_part=4)(x, y, sal)
    mixer = CoMixup(num_classes=5, generator=torch.Generator().manual_seed(2), m_part=4, num_workers=2)
    try:
        pooled = mixer(x, y, sal)
        pool = mixer.pool
        assert pool is not None and pool.started
        mixer(x, y, sal)
        assert mixer.pool is pool and pool.started
    finally:
        mixer.close()
    assert not mixer.pool.started
    assert torch.equal(serial.images, pooled.images) and torch.equal(serial.targets, pooled.targets)
