"""MixStep.objective: one backward gives step()'s gradients for every method, under autocast, with a
GradScaler and under 2-process DDP (gloo)."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from sagemix import MixStep, SAGE
from sagemix.mixers import create_mixer, list_mixers
from sagemix.mixers.base import Mixer, MixOutput
from sagemix.models import create_model

from test_distributed import _env, _torchrun
from test_step import _LoudInput, _grads
from test_sync_free import SYNC_FREE, _step as _meta_step

ROOT = Path(__file__).resolve().parents[1]
K = 4
#: every registered method, and Puzzle Mix once more keeping its clean loss (train-mode clean pass whose
#: graph joins the single backward)
CASES = [*((m, {}) for m in list_mixers()), ("puzzlemix", {"clean_lam": 0.5})]
IDS = [m + ("-clean_lam" if kw else "") for m, kw in CASES]


def _batch(b=6, size=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, size, size, generator=g), torch.randint(0, K, (b,), generator=g)


def _pair(name, kw, **step_kw):
    """Two identical (model, MixStep) pairs whose mixers hold the same generator state."""
    torch.manual_seed(0)
    base = create_model("smallnet", num_classes=K, width=4)  # BN, in-place ReLU, Manifold Mixup stages
    out = []
    for _ in range(2):
        model = copy.deepcopy(base)
        mixer = create_mixer(name, num_classes=K, generator=torch.Generator().manual_seed(7), **kw)
        out.append((model, MixStep(model, mixer, **step_kw)))
    return out


def _max_rel(a, b):
    return max(float((x - y).norm() / y.norm().clamp_min(1e-30)) for x, y in zip(a, b))


@pytest.mark.parametrize("autocast", ["none", "step_bf16", "outer_bf16"])
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_one_backward_of_the_objective_equals_the_step(name, kw, autocast):
    (m1, s1), (m2, s2) = _pair(name, kw, autocast_dtype=torch.bfloat16 if autocast == "step_bf16" else None)
    x, y = _batch()
    # "outer_bf16": a framework's autocast region around the whole step (Lightning's bf16-mixed); the others
    # run inside a disabled region, which also keeps the weights' casts cached between the two forwards
    region = torch.autocast("cpu", dtype=torch.bfloat16) if autocast == "outer_bf16" else torch.autocast("cpu", enabled=False)
    with region:
        ref = s1(x, y)
    with region:
        out = s2.objective(x, y)
    # nothing reached the parameters before the backward: the saliency is the input gradient only
    assert all(p.grad is None for p in m2.parameters())
    assert out.loss.requires_grad and not out.mixed_loss.requires_grad
    assert out.clean_loss is None or not out.clean_loss.requires_grad
    out.loss.backward()
    assert _max_rel(_grads(m2), _grads(m1)) <= 1e-5
    # same draws, same saliency, same mix, same batch-norm statistics, same reported losses
    assert torch.equal(out.mix.images, ref.mix.images) and torch.equal(out.mix.targets, ref.mix.targets)
    assert (out.saliency is None) == (ref.saliency is None)
    if ref.saliency is not None:
        torch.testing.assert_close(out.saliency, ref.saliency, rtol=1e-6, atol=0)
        assert out.saliency.dtype == torch.float32
    assert all(torch.equal(a, b) for a, b in zip(m1.buffers(), m2.buffers()))
    torch.testing.assert_close(out.loss.detach(), ref.loss, rtol=1e-6, atol=0)
    torch.testing.assert_close(out.mixed_loss, ref.mixed_loss, rtol=1e-6, atol=0)


@pytest.mark.parametrize("update_ratio", [0.7, 1.0])
def test_objective_with_a_grad_scaler_matches_the_step(update_ratio):
    x, y = _batch()
    grads = []
    for use_objective in (False, True):
        torch.manual_seed(0)
        model = create_model("smallnet", num_classes=K, width=4)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
        step = MixStep(model, SAGE(num_classes=K, update_ratio=update_ratio,
                                   generator=torch.Generator().manual_seed(0)), scaler=scaler)
        if use_objective:
            out = step.objective(x, y)
            scaler.scale(out.loss).backward()  # the caller (or framework) scales the returned loss
        else:
            out = step(x, y)
        assert not bool(out.saliency_overflow)
        grads.append(_grads(model))  # scaled gradients
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler.step(opt)
        scaler.update()
        assert scaler.get_scale() == 2.0 ** 10  # no overflow: the step was taken and the scale kept
    assert _max_rel(grads[1], grads[0]) <= 1e-5


def test_objective_saliency_overflow_makes_the_scaler_skip():
    torch.manual_seed(0)
    model = _LoudInput(create_model("smallnet", num_classes=K, width=4))
    x, y = _batch()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
    step = MixStep(model, SAGE(num_classes=K, update_ratio=0.7, generator=torch.Generator().manual_seed(0)),
                   scaler=scaler)
    out = step.objective(x, y)
    assert bool(out.saliency_overflow) and torch.isfinite(out.saliency).all()
    assert torch.isnan(out.loss) and torch.isfinite(out.mixed_loss)  # the loss to back-propagate, not the logged ones
    scaler.scale(out.loss).backward()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    scaler.step(opt)
    scaler.update()
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert scaler.get_scale() == 2.0 ** 7


class _EvalModeKept(Mixer):
    """A custom saliency mixer keeping its clean loss from an eval-mode pass (no registered mixer does)."""

    needs_gradient_saliency = True
    saliency_train_mode = False

    def clean_weight(self, num_classes):
        return 0.5

    def reduce_saliency(self, grad):
        return grad.abs().mean(1)

    def mix(self, images, targets, saliency):
        b = images.shape[0]
        return MixOutput(images.clone(), targets, torch.ones(b), torch.arange(b))


def test_eval_mode_kept_clean_loss_is_refused_with_a_clear_error():
    model = create_model("smallnet", num_classes=K, width=4)
    step = MixStep(model, _EvalModeKept(num_classes=K))
    x, y = _batch()
    with pytest.raises(ValueError, match="eval-mode clean pass.*use step"):
        step.objective(x, y)
    step(x, y)  # the two-backward step handles it


def test_objective_checks_its_inputs():
    model = create_model("smallnet", num_classes=K, width=4)
    step = MixStep(model, SAGE(num_classes=K))
    with pytest.raises(ValueError, match=r"images must have shape \(B, C, H, W\)"):
        step.objective(torch.zeros(3, 16, 16), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="targets must lie in"):
        step.objective(*_batch()[:1], torch.full((6,), K))


@pytest.mark.slow
def test_two_process_ddp_gradients_are_the_mean_of_single_process_gradients(tmp_path):
    r = _torchrun([str(ROOT / "tests" / "_objective_ddp_worker.py"), str(tmp_path)], _env(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "marked ready twice" not in r.stderr and "Expected to have finished reduction" not in r.stderr
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    names = {key.split("/")[0] for key in ranks[0]}
    assert names == set(list_mixers()) | {"puzzlemix_kept"}
    assert {key.split("/", 1)[1] for key in ranks[0]} == {"default/objective", "find_unused_parameters/objective",
                                                          "static_graph/objective", "static_graph/step"}
    saliency = {"sage", "puzzlemix", "comixup", "puzzlemix_kept"}
    for seen in ranks:
        for key, res in seen.items():
            if key.endswith("static_graph/step") and key.split("/")[0] in saliency:
                # the two-backward step refuses static_graph, pointing at objective
                assert "static_graph=True" in res["error"] and "step.objective" in res["error"], res
                continue
            assert "error" not in res, f"{key}: {res.get('error')}"
            assert len(res["rel"]) == 3 and max(res["rel"]) <= 1e-5, (key, res["rel"])
            assert all(res["ranks_agree"]), key


@pytest.mark.parametrize("name", SYNC_FREE)
def test_objective_reads_no_device_value(name):
    # on the meta device any host read of a value raises: objective and its backward read none
    step = _meta_step(name, "meta")
    x = torch.empty(4, 3, 16, 16, device="meta")
    out = step.objective(x, torch.empty(4, dtype=torch.long, device="meta"))
    assert out.loss.device.type == "meta" and out.loss.requires_grad
    out.loss.backward()
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in step.model.parameters())
