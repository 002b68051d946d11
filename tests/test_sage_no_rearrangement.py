"""The no-rearrangement ablation of SAGE: ``rand_pos=0`` keeps only the zero shift."""
from __future__ import annotations

import pytest
import torch

from sagemix import SAGE, create_mixer
from sagemix.functional import sage as F


def _batch(b: int = 6, h: int = 10, w: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, h, w, generator=g)
    y = torch.randint(0, 5, (b,), generator=g)
    s = torch.rand(b, h, w, generator=g) + 0.01
    return x, y, s


def test_candidate_shifts_zero_is_the_zero_shift_only():
    for h, w in ((1, 1), (5, 7), (32, 32)):
        shifts = F.candidate_shifts(h, w, rand_pos=0)
        assert shifts.dtype == torch.int64
        assert torch.equal(shifts, torch.zeros(1, 2, dtype=torch.int64))
    assert torch.equal(F.candidate_shifts(4, 4, rand_pos=0.0, force_zero_shift=True), torch.zeros(1, 2, dtype=torch.int64))


def test_mixer_with_rand_pos_zero_equals_sage_mix_with_the_zero_shift():
    x, y, s = _batch()
    mixer = SAGE(num_classes=5, rand_pos=0, generator=torch.Generator().manual_seed(4))
    assert mixer.rand_pos == 0.0
    out = mixer(x, y, saliency=s)
    zero = torch.tensor([[0, 0]], dtype=torch.int64)
    mixed, lam, chosen = F.sage_mix(x, s, out.index, out.extras["prior"], zero)
    assert torch.equal(out.images, mixed) and torch.equal(out.lam, lam)
    assert torch.equal(out.extras["shift"], torch.zeros(len(x), 2, dtype=torch.int64))
    # not a no-op: the partner is blended in (in place), so the images change when lam < 1
    assert not torch.equal(out.images, x)
    # whereas the exhaustive search moves a partner whose salient corner overlaps the own one
    corner = torch.full_like(s, 0.01)
    corner[:, :3, :3] = 1.0
    moved = SAGE(num_classes=5, rand_pos=None, generator=torch.Generator().manual_seed(4))(x, y, saliency=corner)
    assert (moved.extras["shift"] != 0).any()
    kept = SAGE(num_classes=5, rand_pos=0, generator=torch.Generator().manual_seed(4))(x, y, saliency=corner)
    assert (kept.extras["shift"] == 0).all()


def test_registry_accepts_rand_pos_zero_and_rejects_negative():
    assert create_mixer("sage", num_classes=5, rand_pos=0).rand_pos == 0.0
    with pytest.raises(ValueError, match=r"rand_pos.*\[0, 1\].*-0.5"):
        SAGE(num_classes=5, rand_pos=-0.5)
    with pytest.raises(ValueError, match=r"rand_pos.*\[0, 1\]"):
        F.candidate_shifts(4, 4, rand_pos=-0.01)
