"""CUDA checks (marked ``cuda``, skipped without a GPU): what ``benchmarks/gpu_check.py`` runs first.

- every registered mixer on CUDA gives its CPU result for the same draws (same generator seed);
- the training step under bf16 autocast and under fp16 autocast with a GradScaler;
- a channels-last model and batch give the default layout's step, and the mixed batch stays channels-last;
- the step of a ``torch.compile``-d model gives the eager step's loss.

TF32 is switched off inside these tests (the CPU reference is full float32).
"""
from __future__ import annotations

import copy

import pytest
import torch

from sagemix.mixers import create_mixer, get_mixer_class, list_mixers
from sagemix.models import create_model
from sagemix.train.setup import build_step

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

K = 10
NEEDS_GCO = {"puzzlemix", "comixup"}
OPTIONS = {"saliencymix": {"prob": 1.0}, "comixup": {"m_part": 3}}
#: The methods whose step needs no graph-cut extra (the step tests run these).
STEP_METHODS = ["vanilla", "mixup", "manifold_mixup", "cutmix", "cutout", "sage"]
DEV = torch.device("cuda", 0)


@pytest.fixture(autouse=True)
def _full_float32():
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _mixer(name: str, seed: int = 0):
    if name in NEEDS_GCO:
        pytest.importorskip("gco")
    return create_mixer(name, num_classes=K, generator=torch.Generator().manual_seed(seed), **OPTIONS.get(name, {}))


def _batch(b: int = 12, size: int = 16, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, size, size, generator=g)
    y = torch.randint(0, K, (b,), generator=g)
    sal = torch.rand(b, size, size, generator=g) + 0.05
    return x, y, sal


@pytest.mark.parametrize("name", list_mixers())
def test_mixer_on_cuda_equals_cpu(name):
    x, y, sal = _batch()
    takes_saliency = get_mixer_class(name).needs_gradient_saliency or name == "saliencymix"
    outs = []
    for dev in ("cpu", DEV):
        mixer = _mixer(name)
        try:
            args = (x.to(dev), y.to(dev)) + ((sal.to(dev),) if takes_saliency else ())
            outs.append(mixer(*args))
        finally:
            mixer.close()
    cpu, gpu = outs
    assert gpu.images.device.type == "cuda" and gpu.targets.device.type == "cuda"
    torch.testing.assert_close(gpu.index.cpu(), cpu.index, rtol=0, atol=0)
    torch.testing.assert_close(gpu.lam.cpu(), cpu.lam, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gpu.images.cpu(), cpu.images, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gpu.targets.cpu(), cpu.targets, rtol=1e-5, atol=1e-5)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("smallnet", num_classes=K, width=8).to(DEV)


def _one_step(model, name: str, *, amp: str = "none", channels_last: bool = False, seed: int = 0):
    x, y, _ = _batch(b=16, size=32, seed=seed + 1)
    x, y = x.to(DEV), y.to(DEV)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    step = build_step(model, _mixer(name, seed), num_classes=K, amp=amp, device=DEV)
    opt.zero_grad(set_to_none=True)
    out = step(x, y)
    if step.scaler is not None:
        step.scaler.step(opt)
        step.scaler.update()
    else:
        opt.step()
    return out, model


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.parametrize("name", STEP_METHODS)
def test_step_under_autocast(name, amp):
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    out, model = _one_step(model, name, amp=amp)
    assert torch.isfinite(out.loss).item()
    assert any(not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters()))
    assert all(torch.isfinite(p).all().item() for p in model.parameters())
    if amp == "fp16":
        assert out.saliency is None or out.saliency.dtype == torch.float32


@pytest.mark.parametrize("name", STEP_METHODS)
def test_channels_last_step_matches_default_layout(name):
    base = _model()
    ref, _ = _one_step(copy.deepcopy(base), name)
    out, model = _one_step(copy.deepcopy(base), name, channels_last=True)
    torch.testing.assert_close(out.loss, ref.loss, rtol=1e-3, atol=1e-4)
    if name != "manifold_mixup":  # Manifold Mixup returns the unmixed batch
        assert out.mix.images.is_contiguous(memory_format=torch.channels_last), f"{name} dropped channels_last"


@pytest.mark.parametrize("name", ["vanilla", "mixup", "sage"])
def test_compiled_step_matches_eager(name):
    base = _model()
    ref, _ = _one_step(copy.deepcopy(base), name)
    compiled = torch.compile(copy.deepcopy(base))
    out, _ = _one_step(compiled, name)
    torch.testing.assert_close(out.loss, ref.loss, rtol=1e-3, atol=1e-4)
