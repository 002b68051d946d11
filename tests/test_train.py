"""The trainer: run folder, exact resume (after epochs and after Ctrl-C), NaN stop, seeds, evaluation."""
from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from sagemix.data import ImageData, make_loader
from sagemix.train import TrainConfig, Trainer, TrainingDiverged, evaluate_accuracy, load_model
from sagemix.train.checkpoint import load_checkpoint


def tiny_data(n: int, seed: int, classes: int = 3, size: tuple[int, int] = (8, 10)) -> ImageData:
    """Images whose mean colour depends on the label (learnable), non-square."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    base = torch.tensor([[200, 40, 40], [40, 200, 40], [40, 40, 200], [120, 120, 120]])[labels % 4]
    noise = torch.randint(-40, 41, (n, 3, *size), generator=g)
    images = (base.view(n, 3, 1, 1) + noise).clamp(0, 255).to(torch.uint8)
    return ImageData(images, labels, [f"c{i}" for i in range(classes)], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "tiny")


TRAIN, TEST = tiny_data(30, 0), tiny_data(15, 1)


def make_trainer(tmp_path, name="run", **kw) -> Trainer:
    opts = dict(method="vanilla", model="smallnet", model_kwargs={"width": 4}, dataset="tiny", epochs=2,
                batch_size=8, lr=0.05, milestones=[1], device="cpu", out=str(tmp_path / name), progress=False,
                nan_check_every=2)
    opts.update(kw)
    return Trainer(TrainConfig(**opts), train_data=TRAIN, test_data=TEST, log=None)


def params_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_run_folder_contents(tmp_path):
    t = make_trainer(tmp_path, epochs=2)
    summary = t.fit()
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_time_s", "step_time_s",
                    "images_per_s"):
            assert isinstance(r[key], float) and math.isfinite(r[key]), key
        assert 0.0 <= r["test_acc"] <= 100.0 and 0.0 <= r["train_acc"] <= 100.0
    assert rows[0]["lr"] == pytest.approx(0.05) and rows[1]["lr"] == pytest.approx(0.005)  # milestone at 1
    with open(run / "metrics.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert [float(r["test_acc"]) for r in csv_rows] == [r["test_acc"] for r in rows]
    s = json.loads((run / "summary.json").read_text())
    assert s == json.loads(json.dumps(summary))
    assert s["finished"] and s["epochs_done"] == 2 and s["epochs"] == 2
    assert s["best_acc"] == max(r["test_acc"] for r in rows) and s["final_acc"] == rows[-1]["test_acc"]
    assert s["median_last10_acc"] == pytest.approx(sum(r["test_acc"] for r in rows) / 2)
    for key in ("method", "model", "dataset", "seed", "mean_epoch_time_s", "mean_step_time_s"):
        assert key in s
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["sagemix_version"] and "git_commit" in cfg and cfg["num_classes"] == 3 and cfg["method"] == "vanilla"
    assert TrainConfig.from_dict(cfg).lr == 0.05  # config.json reads back as a config
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["epoch"] == 2 and state["step"] == 0 and len(state["history"]) == 2
    # load_model gives the trained weights in eval mode, and scores what the trainer scored
    model, mcfg = load_model(run)
    assert not model.training and mcfg["num_classes"] == 3 and mcfg["epoch"] == 2
    assert params_equal(model, t.raw_model)
    loader = make_loader(TEST, batch_size=7, train=False, device="cpu")
    acc, loss = evaluate_accuracy(model, loader)
    assert acc == pytest.approx(rows[-1]["test_acc"]) and loss == pytest.approx(rows[-1]["test_loss"], rel=1e-5)


def test_evaluate_accuracy_matches_naive_loop():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 10, 3)).double()
    x = torch.randn(11, 3, 8, 10, dtype=torch.float64)
    y = torch.randint(0, 3, (11,))
    batches = [(x[:4], y[:4]), (x[4:5], y[4:5]), (x[5:], y[5:])]
    acc, loss = evaluate_accuracy(model, batches)
    correct, total = 0, 0.0
    for i in range(11):
        z = model(x[i:i + 1])[0]
        correct += int(int(z.argmax()) == int(y[i]))
        total += float((torch.logsumexp(z, 0) - z[y[i]]).detach())
    assert acc == pytest.approx(100.0 * correct / 11) and loss == pytest.approx(total / 11, rel=1e-6)
    with pytest.raises(ValueError, match="no batches"):
        evaluate_accuracy(model, [])
    with pytest.raises(TypeError, match="model"):
        evaluate_accuracy("nope", batches)


def test_resume_after_epochs_equals_straight_run(tmp_path):
    straight = make_trainer(tmp_path, "a", method="sage", epochs=4, milestones=[3])
    sa = straight.fit()
    first = make_trainer(tmp_path, "b", method="sage", epochs=2, milestones=[3])
    first.fit()
    second = make_trainer(tmp_path, "b", method="sage", epochs=4, milestones=[3])
    sb = second.fit(resume=True)
    assert params_equal(straight.raw_model, second.raw_model)
    assert straight.optimizer.state_dict()["state"].keys() == second.optimizer.state_dict()["state"].keys()
    for k, v in straight.optimizer.state_dict()["state"].items():
        assert torch.equal(v["momentum_buffer"], second.optimizer.state_dict()["state"][k]["momentum_buffer"])
    drop = ("epoch_time_s", "step_time_s", "images_per_s", "epoch_cpu_s", "step_cpu_s")
    strip = lambda h: [{k: v for k, v in r.items() if k not in drop} for r in h]  # noqa: E731
    assert strip(straight.history) == strip(second.history)
    assert sa["best_acc"] == sb["best_acc"] and sb["epochs_done"] == 4
    assert torch.equal(straight.mixer_generator.get_state(), second.mixer_generator.get_state())
    rows = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3, 4]


def test_ctrl_c_saves_and_resumes_exactly(tmp_path):
    straight = make_trainer(tmp_path, "a", method="mixup", epochs=2)
    straight.fit()
    t = make_trainer(tmp_path, "b", method="mixup", epochs=2)
    real_step, calls = t.step, []

    def interrupting_step(images, labels):
        calls.append(1)
        if len(calls) == 6:  # epoch 2 (4 steps per epoch), its second step
            raise KeyboardInterrupt
        return real_step(images, labels)

    t.setup.step = interrupting_step
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    state = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert (state["epoch"], state["step"]) == (1, 1) and state["partial"] is not None
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["stopped"] == "interrupted" and not summary["finished"]
    resumed = make_trainer(tmp_path, "b", method="mixup", epochs=2)
    resumed.fit(resume=True)
    assert params_equal(straight.raw_model, resumed.raw_model)
    assert resumed.history[-1]["train_loss"] == pytest.approx(straight.history[-1]["train_loss"], rel=1e-12)
    assert resumed.history[-1]["test_acc"] == straight.history[-1]["test_acc"]


def test_nan_loss_stops_with_clear_message(tmp_path):
    t = make_trainer(tmp_path, lr=1e30, epochs=3, nan_check_every=50)
    with pytest.raises(TrainingDiverged, match=r"NaN/inf in epoch \d.*lr=1e\+30"):
        t.fit()
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["stopped"] == "nonfinite_loss" and not s["finished"]


def test_same_seed_same_run_other_seed_differs(tmp_path):
    a = make_trainer(tmp_path, "a", method="cutmix", epochs=1, seed=5)
    a.fit()
    b = make_trainer(tmp_path, "b", method="cutmix", epochs=1, seed=5)
    b.fit()
    c = make_trainer(tmp_path, "c", method="cutmix", epochs=1, seed=6)
    c.fit()
    assert params_equal(a.raw_model, b.raw_model)
    assert not params_equal(a.raw_model, c.raw_model)


def test_existing_run_folder_needs_resume_or_overwrite(tmp_path):
    make_trainer(tmp_path, epochs=1).fit()
    with pytest.raises(ValueError, match="already holds a checkpoint.*--resume"):
        make_trainer(tmp_path, epochs=1).fit()
    s = make_trainer(tmp_path, epochs=1).fit(overwrite=True)
    assert s["finished"]
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        make_trainer(tmp_path, "fresh", epochs=1).fit(resume=True)


def test_resume_of_finished_run_with_same_epochs_does_nothing(tmp_path):
    t = make_trainer(tmp_path, epochs=1)
    t.fit()
    again = make_trainer(tmp_path, epochs=1)
    s = again.fit(resume=True)
    assert s["epochs_done"] == 1 and params_equal(t.raw_model, again.raw_model)


@pytest.mark.parametrize("method", ["manifold_mixup", "cutout"])
def test_other_methods_run(tmp_path, method):
    s = make_trainer(tmp_path, method=method, epochs=1, max_steps_per_epoch=2, loss="bce_softmax").fit()
    assert s["finished"] and 0.0 <= s["final_acc"] <= 100.0


def test_pixel_methods_get_the_dataset_normalisation_and_are_closed(tmp_path, monkeypatch):
    t = make_trainer(tmp_path, method="saliencymix", epochs=1, max_steps_per_epoch=1)
    assert tuple(t.mixer.mean) == TRAIN.mean and tuple(t.mixer.std) == TRAIN.std
    closed = []
    monkeypatch.setattr(t.mixer, "close", lambda: closed.append(True))
    t.close()
    assert closed == [True]
    # An explicit setting wins over the dataset's.
    t = make_trainer(tmp_path, name="run2", method="saliencymix", method_kwargs={"mean": [0.1, 0.2, 0.3]})
    assert tuple(t.mixer.mean) == (0.1, 0.2, 0.3) and tuple(t.mixer.std) == TRAIN.std
    # A method without the options is created without them.
    assert not hasattr(make_trainer(tmp_path, name="run3", method="cutmix").mixer, "mean")


def test_eval_every_and_limits(tmp_path, capsys):
    t = make_trainer(tmp_path, epochs=3, eval_every=2, train_limit=10, test_limit=7, max_steps_per_epoch=1,
                     progress=True)
    assert len(t.train_data) == 10 and len(t.test_data) == 7 and t.steps_per_epoch == 1
    s = t.fit()
    assert [r["test_acc"] is None for r in t.history] == [True, False, False]  # epoch 2 and the last
    assert s["median_last10_acc"] is not None
    assert "epoch 3/3" in capsys.readouterr().err  # the progress bar (on stderr)


def test_config_errors_at_the_boundary(tmp_path):
    with pytest.raises(ValueError, match="'amp' is 'fp16'.*CUDA"):
        make_trainer(tmp_path, amp="fp16")
    with pytest.raises(ValueError, match="unknown mixer 'nope'"):
        make_trainer(tmp_path, method="nope")
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        Trainer({"method": "vanilla"})


def test_bf16_autocast_on_cpu_trains(tmp_path):
    s = make_trainer(tmp_path, amp="bf16", method="sage", epochs=1, max_steps_per_epoch=2).fit()
    assert s["finished"] and math.isfinite(s["final_acc"])


def test_channels_last_matches_default_layout(tmp_path):
    a = make_trainer(tmp_path, "a", epochs=1, max_steps_per_epoch=2)
    a.fit()
    b = make_trainer(tmp_path, "b", epochs=1, max_steps_per_epoch=2, channels_last=True)
    b.fit()
    assert b.history[0]["test_acc"] == a.history[0]["test_acc"]
    for (name, p), q in zip(a.raw_model.named_parameters(), b.raw_model.parameters()):
        assert torch.allclose(p, q, atol=1e-5), name


def test_tensorboard_option(tmp_path):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"sagemix\[tensorboard\]"):
            make_trainer(tmp_path, tensorboard=True)
    else:
        make_trainer(tmp_path, tensorboard=True, epochs=1, max_steps_per_epoch=1).fit()
        assert any((tmp_path / "run" / "tb").iterdir())


def test_fit_in_turns_equals_one_fit(tmp_path):
    straight = make_trainer(tmp_path, "a", method="sage", epochs=3)
    straight.fit()
    turns = make_trainer(tmp_path, "b", method="sage", epochs=3)
    s1 = turns.fit(until_epoch=1)
    assert s1["epochs_done"] == 1 and not s1["finished"]
    assert turns.fit(until_epoch=1)["epochs_done"] == 1  # already there: nothing runs
    s3 = turns.fit(until_epoch=9)  # capped at config.epochs
    assert s3["epochs_done"] == 3 and s3["finished"]
    assert params_equal(straight.raw_model, turns.raw_model)
    with pytest.raises(ValueError, match="until_epoch"):
        turns.fit(until_epoch=0)
