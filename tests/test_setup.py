"""build_setup (one builder of a training set-up), and the demo, show and bench building through it."""
from __future__ import annotations

import pytest
import torch

from sagemix.data import ImageData
from sagemix.train import TrainConfig, Trainer
from sagemix.train import setup as setup_mod
from sagemix.train import trainer as trainer_mod
from sagemix.train.setup import Setup, build_mixer, build_setup, build_step
from sagemix.utils import Stopwatch, resolve_device, train_mode


def _data(n: int, seed: int) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    return ImageData(images=torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g),
                     labels=torch.arange(n) % 3, classes=["a", "b", "c"], mean=(0.5, 0.5, 0.5),
                     std=(0.25, 0.25, 0.25), name="toy")


def _config(tmp_path, **kw) -> TrainConfig:
    base = dict(method="sage", model="smallnet", dataset="offline", epochs=1, batch_size=8, lr=0.05, milestones=[],
                device="cpu", progress=False, max_steps_per_epoch=1, out=str(tmp_path / "run"),
                model_kwargs={"width": 4})
    base.update(kw)
    return TrainConfig(**base)


def test_build_setup_one_step_equals_the_trainers_first_step(tmp_path) -> None:
    cfg = _config(tmp_path)
    s = build_setup(cfg, train_data=_data(24, 0), test_data=_data(8, 1))
    assert isinstance(s, Setup) and s.num_classes == 3 and s.steps_per_epoch == 1
    assert s.step.model is s.model and s.step.mixer is s.mixer and s.device == torch.device("cpu")
    s.train_loader.set_epoch(0)
    images, labels = next(iter(s.train_loader))
    s.model.train()
    s.optimizer.zero_grad(set_to_none=True)
    out = s.step(images, labels)
    s.optimizer.step()
    assert torch.isfinite(out.loss)

    trainer = Trainer(_config(tmp_path, out=str(tmp_path / "run2")), train_data=_data(24, 0), test_data=_data(8, 1),
                      log=None)
    try:
        trainer.fit()
        assert trainer.setup.steps_per_epoch == 1
        for a, b in zip(s.raw_model.state_dict().values(), trainer.raw_model.state_dict().values()):
            assert torch.equal(a, b)  # bitwise: same build, same first step
    finally:
        trainer.close()


def test_build_setup_bad_input(tmp_path) -> None:
    with pytest.raises(TypeError, match="config"):
        build_setup({"method": "sage"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fp16"):
        build_setup(_config(tmp_path, amp="fp16"), train_data=_data(24, 0), test_data=_data(8, 1))
    with pytest.raises(ValueError, match="no training step"):
        build_setup(_config(tmp_path, batch_size=64, drop_last=True), train_data=_data(24, 0), test_data=_data(8, 1))


def test_the_training_path_validates_once_and_the_trainer_holds_its_setup(tmp_path, monkeypatch) -> None:
    cfg = _config(tmp_path)
    calls: list[str] = []
    real_validate, real_amp = TrainConfig.validate, setup_mod.check_amp_device
    monkeypatch.setattr(TrainConfig, "validate", lambda self: calls.append("validate") or real_validate(self))
    monkeypatch.setattr(setup_mod, "check_amp_device", lambda *a: calls.append("amp") or real_amp(*a))
    trainer = Trainer(cfg, train_data=_data(24, 0), test_data=_data(8, 1), log=None)
    try:
        assert calls == ["validate", "amp"]
        assert trainer.setup.config is trainer.config
        for part in ("model", "raw_model", "optimizer", "mixer", "step", "train_loader", "steps_per_epoch"):
            assert getattr(trainer, part) is getattr(trainer.setup, part)
        with pytest.raises(AttributeError):
            trainer.model = torch.nn.Linear(1, 1)  # read through the set-up, never a second copy
    finally:
        trainer.close()
    with pytest.raises(ValueError, match="'amp' is 'fp16', which needs CUDA"):
        build_step(torch.nn.Linear(2, 3), build_mixer("mixup", num_classes=3), num_classes=3, amp="fp16")


def test_build_mixer_passes_the_data_normalisation_only_where_accepted() -> None:
    pm = build_mixer("puzzlemix", num_classes=3, mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))
    assert tuple(pm.mean) == pytest.approx((0.1, 0.2, 0.3))
    explicit = build_mixer("puzzlemix", num_classes=3, mixer_kwargs={"mean": (0.5, 0.5, 0.5)}, mean=(0.1, 0.2, 0.3))
    assert tuple(explicit.mean) == pytest.approx((0.5, 0.5, 0.5))
    build_mixer("mixup", num_classes=3, mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))  # no mean option: not passed
    with pytest.raises(ValueError, match="amp"):
        build_step(torch.nn.Linear(2, 3), build_mixer("mixup", num_classes=3), num_classes=3, amp="fp8")


def _count_builds(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = setup_mod.setup_from_valid

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(trainer_mod, "setup_from_valid", counting)
    return calls


def test_demo_warm_up_trains_through_the_trainer(monkeypatch) -> None:
    from sagemix.commands import demo

    calls = _count_builds(monkeypatch)
    demo._warm_up(demo.QUICK, ["vanilla", "mixup"])
    assert len(calls) == 2  # one throwaway run per method, built by build_setup


def test_show_quick_model_trains_through_the_trainer(monkeypatch) -> None:
    from sagemix.commands import show

    calls = _count_builds(monkeypatch)
    data = _data(32, 2)
    model = show._train_quick_model(data, mean=data.mean, std=data.std, steps=3, seed=0)
    assert len(calls) == 1 and not model.training
    assert model(torch.zeros(1, 3, 8, 8)).shape == (1, 3)


def test_bench_builds_every_step_with_build_step(monkeypatch) -> None:
    from sagemix.bench import bench_methods

    built: list[str] = []
    real = setup_mod.build_step

    def counting(model, mixer, **kw):
        built.append(mixer.name)
        return real(model, mixer, **kw)

    monkeypatch.setattr(setup_mod, "build_step", counting)
    report = bench_methods(["mixup"], model="smallnet", input_size=8, batch_size=4, steps=1, warmup=0,
                           measure_parts=False, measure_memory=False, progress=False)
    assert sorted(built) == ["mixup", "vanilla"] and report.ratios()["vanilla"] == 1.0


def test_resolve_device_train_mode_stopwatch() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_device("warp-drive")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    net = torch.nn.BatchNorm1d(2).train()
    with pytest.raises(RuntimeError):
        with train_mode(net, False):
            assert not net.training
            raise RuntimeError("restored even on error")
    assert net.training
    with pytest.raises(TypeError, match="model"):
        with train_mode("net"):  # type: ignore[arg-type]
            pass
    with Stopwatch() as sw:
        sum(range(10000))
    wall = sw.wall_s
    assert wall > 0 and sw.wall_s == wall  # stopped: the reading stays
