"""Checkpoints: atomic writes, damaged and foreign files refused, incompatible configs refused, load_model."""
from __future__ import annotations

import os

import pytest
import torch

from sagemix.data import ImageData
from sagemix.train import CheckpointError, TrainConfig, Trainer, load_checkpoint, load_model, save_checkpoint
from sagemix.train.checkpoint import check_compatible


def _data(n: int, seed: int) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = torch.randint(0, 256, (n, 3, 6, 7), generator=g, dtype=torch.uint8)
    return ImageData(images, labels, ["a", "b"], (0.5, 0.5, 0.5), (0.2, 0.2, 0.2), "tiny")


def _trainer(tmp_path, **kw) -> Trainer:
    opts = dict(method="vanilla", model="smallnet", model_kwargs={"width": 4}, dataset="tiny", epochs=1,
                batch_size=5, lr=0.05, milestones=[5], device="cpu", out=str(tmp_path / "run"), progress=False)
    opts.update(kw)
    return Trainer(TrainConfig(**opts), train_data=_data(10, 0), test_data=_data(6, 1), log=None)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    _trainer(tmp).fit()
    return tmp / "run"


def test_atomic_write_keeps_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint({"epoch": 1}, path)
    before = path.read_bytes()

    def exploding_save(obj, f, *a, **k):
        f.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", exploding_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"epoch": 2}, path)
    assert path.read_bytes() == before  # the old checkpoint is intact
    assert os.listdir(tmp_path) == ["checkpoint.pt"]  # and no temp file is left behind


def test_truncated_checkpoint_is_refused(run_dir, tmp_path):
    data = (run_dir / "checkpoint.pt").read_bytes()
    for cut in (len(data) // 2, 100, 0):
        bad = tmp_path / f"cut{cut}.pt"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="damaged or unreadable"):
            load_checkpoint(bad)


def test_resume_from_damaged_checkpoint_is_refused(tmp_path):
    _trainer(tmp_path).fit()
    path = tmp_path / "run" / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(CheckpointError, match="damaged"):
        _trainer(tmp_path, epochs=2).fit(resume=True)


def test_foreign_files_are_refused(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a sagemix checkpoint"):
        load_checkpoint(other)
    partial = tmp_path / "partial.pt"
    save_checkpoint({"epoch": 1}, partial)
    with pytest.raises(CheckpointError, match="missing entries"):
        load_checkpoint(partial)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")


def test_incompatible_config_is_refused_naming_the_keys(run_dir):
    state = load_checkpoint(run_dir / "checkpoint.pt")
    base = TrainConfig.from_dict(state["config"])
    check_compatible(state, base.replace(epochs=9, out="/elsewhere"))  # not run-defining: accepted
    with pytest.raises(CheckpointError, match=r"lr: checkpoint 0.05 != requested 0.1"):
        check_compatible(state, base.replace(lr=0.1))
    with pytest.raises(CheckpointError, match=r"method.*'vanilla'.*'mixup'"):
        check_compatible(state, base.replace(method="mixup"))


def test_resume_with_other_config_is_refused(tmp_path):
    _trainer(tmp_path).fit()
    with pytest.raises(CheckpointError, match="different config.*seed"):
        _trainer(tmp_path, epochs=2, seed=1).fit(resume=True)


def test_load_model(run_dir):
    model, config = load_model(run_dir / "checkpoint.pt")
    assert not model.training and config["model"] == "smallnet" and config["num_classes"] == 2
    assert config["mean"] == [0.5, 0.5, 0.5] and config["input_size"] == [6, 7] and config["classes"] == ["a", "b"]
    model2, _ = load_model(run_dir, map_location="cpu")  # a run folder works too
    x = torch.randn(3, 3, 6, 7)
    with torch.no_grad():
        assert torch.equal(model(x), model2(x))
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert all(torch.equal(v, state["model"][k]) for k, v in model.state_dict().items())


def test_load_model_refuses_mismatched_weights(run_dir, tmp_path):
    state = load_checkpoint(run_dir / "checkpoint.pt")
    state["config"]["model_kwargs"] = {"width": 8}
    del state["format"], state["format_version"]
    save_checkpoint(state, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="does not fit model 'smallnet'"):
        load_model(tmp_path / "c.pt")
