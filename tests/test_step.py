"""The two-pass step: gradients equal (1-r) grad(clean) + r grad(mixed) computed separately; modes; AMP; DDP."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from sagemix import MixStep, SAGE, create_mixer
from sagemix.losses import bce_softmax, soft_cross_entropy
from sagemix.mixers.base import Mixer, MixOutput


def _model(k=4, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, k))


def _batch(b=6, k=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, 8, 8, generator=g), torch.randint(0, k, (b,), generator=g)


def _grads(model):
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


@pytest.mark.parametrize("r", [0.7, 0.5, 1.0])
@pytest.mark.parametrize("loss", [soft_cross_entropy, bce_softmax])
def test_step_gradient_equals_weighted_sum_of_separate_gradients(r, loss):
    model = _model()
    reference = copy.deepcopy(model)
    x, y = _batch()
    step = MixStep(model, SAGE(num_classes=4, update_ratio=r, generator=torch.Generator().manual_seed(0)), loss)
    out = step(x, y)
    got = _grads(model)

    soft = nn.functional.one_hot(y, 4).float()
    reference.train()
    reference.zero_grad()
    loss(reference(x), soft).backward()
    g_clean = _grads(reference)
    reference.zero_grad()
    loss(reference(out.mix.images), out.mix.targets).backward()
    g_mixed = _grads(reference)
    for a, c, m in zip(got, g_clean, g_mixed):
        torch.testing.assert_close(a, (1 - r) * c + r * m, atol=1e-5, rtol=1e-4)
    assert out.loss.item() == pytest.approx(((1 - r) * out.clean_loss + r * out.mixed_loss).item(), rel=1e-6)


def test_saliency_is_the_input_gradient_of_the_clean_loss():
    model = _model()
    x, y = _batch()
    mixer = SAGE(num_classes=4, update_ratio=1.0, saliency_reduce="mean_abs", blur_kernel_size=1)
    out = MixStep(model, mixer)(x, y)
    ref_model = copy.deepcopy(model)
    xr = x.clone().requires_grad_(True)
    # BN running stats moved during the step; the gradient in train mode uses batch statistics only.
    soft_cross_entropy(ref_model.train()(xr), nn.functional.one_hot(y, 4).float()).backward()
    torch.testing.assert_close(out.saliency, xr.grad.abs().mean(1), atol=1e-7, rtol=1e-5)


def test_r_one_leaves_no_clean_gradient():
    model = _model()
    x, y = _batch()
    step = MixStep(model, SAGE(num_classes=4, update_ratio=1.0))
    saliency, _, _ = step.clean_pass(x, nn.functional.one_hot(y, 4).float())
    assert all(p.grad is None for p in model.parameters())
    assert saliency.shape == (6, 8, 8) and saliency.dtype == torch.float32


class _EvalModeProbe(Mixer):
    """A saliency mixer asking for an eval-mode clean pass with discarded gradients (Puzzle Mix style)."""

    needs_gradient_saliency = True
    saliency_train_mode = False
    saliency_loss = "ce"

    def reduce_saliency(self, grad):
        return grad.pow(2).mean(1).sqrt()

    def mix(self, images, targets, saliency):
        self.seen = saliency
        b = images.shape[0]
        return MixOutput(images.clone(), targets, torch.ones(b), torch.arange(b))


def test_eval_mode_clean_pass_keeps_running_stats_and_restores_mode():
    model = _model()
    bn = model[1]
    before = bn.running_mean.clone()
    x, y = _batch()
    mixer = _EvalModeProbe(num_classes=4)
    step = MixStep(model, mixer)
    step.clean_pass(x, nn.functional.one_hot(y, 4).float())
    assert torch.equal(bn.running_mean, before)  # eval mode: running stats untouched
    assert model.training  # restored
    step(x, y)
    assert not torch.equal(bn.running_mean, before)  # the mixed pass runs in train mode


def test_vanilla_step_is_plain_training():
    model = _model()
    ref = copy.deepcopy(model)
    x, y = _batch()
    out = MixStep(model, create_mixer("vanilla", num_classes=4))(x, y)
    assert out.clean_loss is None and out.saliency is None
    nn.functional.cross_entropy(ref(x), y).backward()
    for a, b in zip(_grads(model), _grads(ref)):
        torch.testing.assert_close(a, b)


def test_autocast_bfloat16_keeps_saliency_float32():
    model = _model()
    x, y = _batch()
    out = MixStep(model, SAGE(num_classes=4), autocast_dtype=torch.bfloat16)(x, y)
    assert out.saliency.dtype == torch.float32 and torch.isfinite(out.saliency).all()
    assert torch.isfinite(out.loss) and all(torch.isfinite(g).all() for g in _grads(model))


class _NoSyncProbe(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.syncing = True
        self.calls = []

    def forward(self, x, **kw):
        self.calls.append(self.syncing)
        return self.inner(x, **kw)

    def no_sync(self):
        probe = self

        class _Ctx:
            def __enter__(self):
                probe.syncing = False

            def __exit__(self, *a):
                probe.syncing = True

        return _Ctx()


def test_clean_pass_runs_under_no_sync():
    wrapped = _NoSyncProbe(_model())
    x, y = _batch()
    MixStep(wrapped, SAGE(num_classes=4))(x, y)
    assert wrapped.calls == [False, True]  # clean pass without sync, mixed pass with


def test_real_ddp_single_process_matches_plain_model(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        plain = _model()
        ddp = nn.parallel.DistributedDataParallel(copy.deepcopy(plain))
        x, y = _batch()
        MixStep(plain, SAGE(num_classes=4, generator=torch.Generator().manual_seed(0)))(x, y)
        MixStep(ddp, SAGE(num_classes=4, generator=torch.Generator().manual_seed(0)))(x, y)
        for a, b in zip(_grads(plain), _grads(ddp.module)):
            torch.testing.assert_close(a, b)
    finally:
        dist.destroy_process_group()


def test_errors():
    model = _model()
    with pytest.raises(TypeError, match="model"):
        MixStep(object(), SAGE(num_classes=4))
    with pytest.raises(TypeError, match="mixer"):
        MixStep(model, lambda x, y: x)
    with pytest.raises(ValueError, match="autocast_dtype"):
        MixStep(model, SAGE(num_classes=4), autocast_dtype=torch.float64)
    if "manifold_mixup" in __import__("sagemix").list_mixers():
        with pytest.raises(ValueError, match="stage protocol"):
            MixStep(model, create_mixer("manifold_mixup", num_classes=4))
    x, y = _batch()
    with pytest.raises(ValueError, match="num_classes is required"):
        MixStep(model, SAGE())(x, y)


class _LoudGradient(torch.autograd.Function):
    """Identity forward; the backward overflows float16 (only the input gradient, not the parameters')."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return (grad.half() * 1e6).to(grad.dtype)


class _LoudInput(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(_LoudGradient.apply(x))


@pytest.mark.parametrize("update_ratio", [1.0, 0.7])
def test_float16_saliency_overflow_skips_the_scaler_step(update_ratio):
    model = _LoudInput(_model())
    x, y = _batch()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
    step = MixStep(model, SAGE(num_classes=4, update_ratio=update_ratio, generator=torch.Generator().manual_seed(0)),
                   scaler=scaler)
    out = step(x, y)
    assert bool(out.saliency_overflow) and torch.isfinite(out.saliency).all()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    scaler.step(opt)
    scaler.update()
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))  # the update was skipped
    assert scaler.get_scale() == 2.0 ** 7


def test_step_without_overflow_reports_none_and_keeps_gradients():
    model = _model()
    x, y = _batch()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
    out = MixStep(model, SAGE(num_classes=4), scaler=scaler)(x, y)
    assert not bool(out.saliency_overflow)
    assert all(torch.isfinite(g).all() for g in _grads(model))
    assert MixStep(model, create_mixer("mixup", num_classes=4))(x, y).saliency_overflow is None


def test_model_without_trainable_parameters_is_refused():
    frozen = _model().requires_grad_(False)
    with pytest.raises(ValueError, match="model Sequential has no trainable parameters.*requires_grad"):
        MixStep(frozen, SAGE(num_classes=4))
    with pytest.raises(ValueError, match="no trainable parameters"):
        MixStep(nn.Flatten(), create_mixer("mixup", num_classes=4))


@pytest.mark.parametrize("name", ["mixup", "cutmix", "sage"])
def test_inputs_are_validated_once_per_step(name, monkeypatch):
    # the step checks images and targets, then calls the mixer's unchecked draw + apply (issue 21)
    import sagemix.mixers.targets as targets

    seen = []
    real = targets.check_values
    monkeypatch.setattr(targets, "check_values", lambda ok, msg, *a, **k: (seen.append(msg), real(ok, msg, *a, **k)))
    x, y = _batch()
    mixer = create_mixer(name, num_classes=4, generator=torch.Generator().manual_seed(0))
    mixer(x, y, torch.rand(6, 8, 8))
    assert len(seen) == 2  # a direct call checks the images (finite) and the labels (in range)
    step = MixStep(_model(), mixer)
    for run in (step, step.objective):
        seen.clear()
        run(x, y)
        assert len(seen) == 2, seen
