"""sagemix.integrations.lightning with a real lightning.Trainer: gradients of accumulate_grad_batches and
bf16-mixed equal MixStep's, an exact checkpoint resume, 2-process DDP, and the missing-extra error."""
from __future__ import annotations

import copy
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning", reason='needs pip install "sagemix[lightning]"')
import lightning as L  # noqa: E402

from sagemix import MixStep, create_mixer  # noqa: E402
from sagemix.integrations.lightning import CHECKPOINT_KEY, MixLightningModule  # noqa: E402
from sagemix.models import create_model  # noqa: E402
from sagemix.train.setup import mixer_seed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
K = 4


def _data(n=32, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, K, (n,), generator=g)


def _loader(n=32, batch=8):
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*_data(n)), batch_size=batch, shuffle=False)


def _model():
    torch.manual_seed(0)
    return create_model("smallnet", num_classes=K, width=4)


def _trainer(**kw):
    opts = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, num_sanity_val_steps=0)
    opts.update(kw)
    return L.Trainer(**opts)


class _GradProbe(L.Callback):
    """The parameter gradients Lightning hands to the first optimizer step."""

    def __init__(self):
        self.grads = None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if self.grads is None:
            self.grads = [p.grad.detach().clone() for p in pl_module.model.parameters()]


def _reference_grads(model, batches, method="sage", autocast_dtype=None, rank=0):
    """step() over ``batches`` (the same draws: rank ``rank``'s generator), mean gradient per batch."""
    model = copy.deepcopy(model)
    mixer = create_mixer(method, num_classes=K, generator=torch.Generator().manual_seed(mixer_seed(0, rank)))
    step = MixStep(model, mixer, autocast_dtype=autocast_dtype)
    for x, y in batches:
        step(x, y)
    return [p.grad / len(batches) for p in model.parameters()]


def _max_rel(a, b):
    return max(float((x - y).norm() / y.norm().clamp_min(1e-30)) for x, y in zip(a, b))


@pytest.mark.parametrize("method", ["sage", "comixup", "mixup"])
def test_accumulated_gradients_equal_the_mean_of_step_gradients(method):
    model = _model()
    want = _reference_grads(model, list(_loader())[:2], method)
    probe = _GradProbe()
    module = MixLightningModule(model, create_mixer(method, num_classes=K))
    _trainer(max_steps=1, accumulate_grad_batches=2, callbacks=[probe]).fit(module, _loader())
    assert _max_rel(probe.grads, want) <= 1e-5


def test_bf16_mixed_gradients_equal_the_autocast_step_and_losses_are_logged():
    model = _model()
    want = _reference_grads(model, list(_loader())[:1], "sage", torch.bfloat16)
    probe = _GradProbe()
    module = MixLightningModule(model, create_mixer("sage", num_classes=K))
    trainer = _trainer(max_steps=1, precision="bf16-mixed", callbacks=[probe])
    trainer.fit(module, _loader())
    assert _max_rel(probe.grads, want) <= 1e-5
    metrics = trainer.callback_metrics
    for key in ("train/loss", "train/mixed_loss", "train/clean_loss"):
        assert key in metrics and torch.isfinite(metrics[key])
    # SAGE's objective is (1 - r) * clean + r * mixed with r = 0.7
    assert float(metrics["train/loss"]) == pytest.approx(0.3 * float(metrics["train/clean_loss"])
                                                         + 0.7 * float(metrics["train/mixed_loss"]), rel=1e-5)


def test_16_mixed_scaler_reaches_the_step_and_a_saliency_overflow_skips_the_update():
    # Lightning turns precision="16-mixed" into bf16 on a CPU; the plugin given explicitly runs float16 autocast
    from lightning.pytorch.plugins.precision import MixedPrecision

    from test_step import _LoudInput  # its input gradient overflows float16 (not the parameters')

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8)
    model = _LoudInput(_model())
    before = [p.detach().clone() for p in model.parameters()]
    module = MixLightningModule(model, create_mixer("sage", num_classes=K))
    _trainer(max_steps=1, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)]).fit(module, _loader())
    assert module.mix_step.scaler is scaler
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))  # the update was skipped
    assert scaler.get_scale() == 2.0 ** 7


def _fit(tmp_path, max_epochs, ckpt_path=None, drop_mixer_state=False):
    """Train (or resume) SAGE; returns the final parameters and the last checkpoint's path."""
    if drop_mixer_state:
        state = torch.load(ckpt_path, weights_only=False)
        del state[CHECKPOINT_KEY]
        tmp_path.mkdir(parents=True, exist_ok=True)
        ckpt_path = tmp_path / "no_mixer_state.ckpt"
        torch.save(state, ckpt_path)
    module = MixLightningModule(_model(), create_mixer("sage", num_classes=K), seed=3,
                                optimizer=lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9))
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_epochs=1)
    trainer = _trainer(max_epochs=max_epochs, enable_checkpointing=True, callbacks=[ckpt])
    with pytest.warns(UserWarning, match="no sagemix mixer state") if drop_mixer_state else _no_warning():
        trainer.fit(module, _loader(), _loader(16), ckpt_path=ckpt_path)
    assert trainer.current_epoch == max_epochs
    assert 0 <= float(trainer.callback_metrics["val/acc"]) <= 100 and torch.isfinite(trainer.callback_metrics["val/loss"])
    return [p.detach().clone() for p in module.model.parameters()], tmp_path / "ckpt" / "last.ckpt"


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_resume_through_a_lightning_checkpoint_is_exact(tmp_path):
    straight, _ = _fit(tmp_path / "a", 2)
    _, last = _fit(tmp_path / "b", 1)
    epoch1 = tmp_path / "epoch1.ckpt"
    epoch1.write_bytes(last.read_bytes())  # the resumed run below overwrites last.ckpt
    saved = torch.load(last, weights_only=False)[CHECKPOINT_KEY]
    assert len(saved["mixer_generator_states"]) == 1 and saved["method"] == "sage" and saved["seed"] == 3
    resumed, _ = _fit(tmp_path / "b", 2, ckpt_path=epoch1)
    assert all(torch.equal(a, b) for a, b in zip(resumed, straight))
    # the control: the same resume without the mixer's state draws differently (the test can fail)
    unrestored, _ = _fit(tmp_path / "c", 2, ckpt_path=epoch1, drop_mixer_state=True)
    assert not all(torch.equal(a, b) for a, b in zip(unrestored, straight))


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src") + os.pathsep + str(ROOT / "tests")
               + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK"):
        env.pop(key, None)
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "_lightning_ddp_worker.py"), str(tmp_path)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "marked ready twice" not in r.stderr and "Expected to have finished reduction" not in r.stderr
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert [s["world_size"] for s in ranks] == [2, 2]
    for seen in ranks:
        # the all-reduced first-step gradients are the mean of the two ranks' single-process step() gradients
        assert seen["rel_to_mean_of_single_process"] <= 1e-5
        assert seen["steps"] == 3 and seen["first_batch_as_expected"]
    assert ranks[0]["params"] == ranks[1]["params"]  # the replicas' parameters stayed equal (BN statistics are per rank)
    # each rank's mixer generator is in the checkpoint rank 0 wrote, and they differ
    states = torch.load(tmp_path / "last.ckpt", weights_only=False)[CHECKPOINT_KEY]["mixer_generator_states"]
    assert len(states) == 2 and not torch.equal(states[0], states[1])
    assert [torch.equal(states[i], torch.tensor(ranks[i]["generator_state"], dtype=torch.uint8)) for i in range(2)] \
        == [True, True]


def test_bad_arguments_and_batches():
    model = _model()
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        MixLightningModule(model, create_mixer("mixup", num_classes=K), seed=-1)
    with pytest.raises(TypeError, match="optimizer must be callable"):
        MixLightningModule(model, create_mixer("mixup", num_classes=K), optimizer="sgd")
    with pytest.raises(TypeError, match="mixer must be a sagemix Mixer"):
        MixLightningModule(model, "sage")
    module = MixLightningModule(model, create_mixer("mixup", num_classes=K))
    with pytest.raises(TypeError, match=r"expects batches \(images, targets, \.\.\.\), got Tensor"):
        module.training_step(torch.zeros(2, 3, 8, 8), 0)


def test_missing_lightning_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.delitem(sys.modules, "sagemix.integrations.lightning")
    with pytest.raises(ImportError, match=r'pip install "sagemix\[lightning\]"'):
        importlib.import_module("sagemix.integrations.lightning")
