"""Co-Mixup's ``variant="research"``: the authors' capped usage term and top-3 tie-breaking."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("gco")

from sagemix.functional.comixup import comixup, modular_penalty, most_used, solve_labelling  # noqa: E402
from sagemix.mixers.comixup import CoMixup  # noqa: E402


def test_modular_penalty_paper_vs_operator_precedence():
    A = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 1.0]])
    others = np.array([6.0, 1.0, 2.0])
    thr = 3.0
    r = A @ others                                   # [6.5, 4.4, 2.2]
    paper = modular_penalty(A, others, thr)
    research = modular_penalty(A, others, thr, "research")
    np.testing.assert_allclose(paper, np.where(r > thr, r, 0.0))
    mask = (r > thr).astype(float)                   # the authors' `(A @ p > t).float() * A @ p`
    np.testing.assert_allclose(research, (mask * A) @ others)
    np.testing.assert_allclose(research, [6.5, 4.0, 0.2])
    assert not np.allclose(paper, research)
    everything = modular_penalty(A, others, 0.0, "research")  # every usage above the cap: the two agree
    np.testing.assert_allclose(everything, modular_penalty(A, others, 0.0))


def test_most_used_ties():
    counts = np.array([4.0, 4.0, 4.0, 4.0])
    assert most_used(counts).tolist() == [0, 1, 2]   # stable: lowest indices
    research = most_used(counts, 3, "research")
    want = np.sort(torch.topk(torch.tensor(counts, dtype=torch.float32), 3).indices.numpy())
    assert research.tolist() == want.tolist()
    no_ties = np.array([1.0, 7.0, 3.0, 5.0])
    assert most_used(no_ties).tolist() == most_used(no_ties, 3, "research").tolist() == [1, 2, 3]


def _problem(seed: int):
    rng = np.random.default_rng(seed)
    m, n = 4, 4
    cost = -rng.dirichlet(np.ones(n * n), size=m).reshape(m, n, n)
    A = np.eye(m)
    A[0, 1] = A[1, 0] = 0.9
    A[2, 3] = A[3, 2] = 0.05
    return cost, A, np.full(m, 1.0 / m), rng.integers(0, m, (m, n, n))


def test_solver_variants_differ_where_the_cap_bites_and_agree_without_it():
    cost, A, prior, init = _problem(0)
    kw = dict(gamma=2.0, thres=1.0)
    paper = solve_labelling(cost, A, prior, init, **kw)
    research = solve_labelling(cost, A, prior, init, variant="research", **kw)
    assert not np.array_equal(paper.masks, research.masks)
    # thres = 0 keeps every usage term (an input unused elsewhere contributes 0 either way): the two
    # variants then differ at most through top-3 ties, absent in this problem
    a = solve_labelling(cost, A, prior, init, gamma=2.0, thres=0.0)
    b = solve_labelling(cost, A, prior, init, gamma=2.0, thres=0.0, variant="research")
    np.testing.assert_array_equal(a.masks, b.masks)
    with pytest.raises(ValueError, match="variant"):
        solve_labelling(cost, A, prior, init, variant="authors")
    with pytest.raises(ValueError, match="variant"):
        CoMixup(num_classes=4, variant="authors")


def test_mixer_variant_is_wired_and_one_transfer_each_way(request):
    g = torch.Generator().manual_seed(0)
    x, s = torch.rand(8, 3, 16, 16, generator=g), torch.rand(8, 16, 16, generator=g) ** 4
    y = torch.arange(8) % 4
    out = {}
    for variant in ("paper", "research"):
        mixer = CoMixup(num_classes=4, m_part=8, thres=1.0, gamma=2.0, variant=variant,
                        generator=torch.Generator().manual_seed(1))
        out[variant] = mixer(x, y, s)
    assert out["paper"].images.shape == out["research"].images.shape == x.shape
    assert not torch.equal(out["paper"].images, out["research"].images)  # the cap bites at thres = 1
    calls = request.getfixturevalue("cpu_transfers")  # counted from here on
    comixup(x, torch.eye(4)[y], s, torch.full((8,), 1 / 8), m_part=8, generator=torch.Generator().manual_seed(0))
    assert sum(1 for c in calls if c and c[0] == 8) == 1, calls
