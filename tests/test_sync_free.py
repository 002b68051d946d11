"""The training step never reads a device value on the host (issue 10 item 1).

A step with the model, the images and the labels on torch's ``meta`` device (shapes, no data)
fails at the first host read of a tensor value (``.item()``, ``int()``, ``bool()``, ``nonzero``,
a boolean-mask gather), so one :class:`sagemix.MixStep` per method on ``meta`` is the CPU guard
that the step is free of synchronisations. On a machine with CUDA the same step runs under
``torch.cuda.set_sync_debug_mode("error")``, which raises on any synchronising call.
"""
from __future__ import annotations

import pytest
import torch

from sagemix import MixStep, create_mixer
from sagemix.models import create_model

#: The methods whose step is free of host reads (Puzzle Mix, Co-Mixup and SaliencyMix work on the CPU).
SYNC_FREE = ["vanilla", "mixup", "manifold_mixup", "cutmix", "cutout", "sage"]
K = 5


def _step(name: str, device: str, **options) -> MixStep:
    torch.manual_seed(0)
    model = create_model("smallnet", K, width=8).to(device)
    return MixStep(model, create_mixer(name, num_classes=K, generator=torch.Generator().manual_seed(0), **options))


def _run_without_cuda_sync(step: MixStep, size: int, batch: int) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, size, size, generator=g).cuda()
    y = torch.randint(0, K, (batch,), generator=g).cuda()
    step(x, y)  # warm-up: lazy initialisations (cuDNN, the pinned-memory allocator) may synchronise once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = step(x, y)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(out.loss).item()


@pytest.mark.parametrize("name", SYNC_FREE)
def test_step_runs_on_meta_device(name):
    step = _step(name, "meta")
    x = torch.empty(4, 3, 16, 16, device="meta")
    y = torch.empty(4, dtype=torch.long, device="meta")
    out = step(x, y)
    assert out.logits.shape == (4, K) and out.logits.device.type == "meta"
    assert out.mix.images.shape == x.shape and out.mix.targets.shape == (4, K)
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in step.model.parameters())


@pytest.mark.parametrize("options", [{"search": "coarse_to_fine"}, {"search": "exhaustive"}, {"rand_pos": None}])
def test_sage_searches_on_meta_device(options):
    # the searches used above 64 px (coarse-to-fine) and for rand_pos=None (every shift) read no value either
    step = _step("sage", "meta", **options)
    out = step(torch.empty(2, 3, 40, 40, device="meta"), torch.empty(2, dtype=torch.long, device="meta"))
    assert out.mix.images.shape == (2, 3, 40, 40) and out.mix.images.device.type == "meta"


def test_soft_targets_on_meta_device():
    step = _step("mixup", "meta")
    out = step(torch.empty(3, 3, 8, 8, device="meta"), torch.empty(3, K, device="meta"))
    assert out.mix.targets.shape == (3, K)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", SYNC_FREE)
def test_step_has_no_cuda_sync(name):
    _run_without_cuda_sync(_step(name, "cuda"), 32, 8)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("options", [{"search": "coarse_to_fine"}, {"rand_pos": None}])
def test_sage_searches_have_no_cuda_sync(options):
    _run_without_cuda_sync(_step("sage", "cuda", **options), 40, 4)
