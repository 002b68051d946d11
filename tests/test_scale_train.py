"""Training and evaluating on streamed image folders: the ``stream`` key, build_setup, the CLI, torchrun, recipes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sagemix.data import ImageData, StreamingImageFolder, decide_stream
from sagemix.data.synthetic import make_jpeg_folder
from sagemix.train import TrainConfig
from sagemix.train.config import load_config
from sagemix.train.setup import build_setup

FAST = {"epochs": 1, "batch_size": 8, "eval_batch_size": 16, "device": "cpu", "progress": False, "workers": 0}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """train/ (40 JPEGs, 4 classes) and test/ (21 JPEGs) in the ImageFolder layout."""
    root = tmp_path_factory.mktemp("jpegs")
    make_jpeg_folder(root / "train", 40, size=(20, 24), classes=4, seed=1)
    make_jpeg_folder(root / "test", 21, size=(20, 24), classes=4, seed=2)
    return root


def test_stream_key_validation() -> None:
    assert TrainConfig(stream="TRUE").stream is True and TrainConfig(stream="off").stream is False
    assert TrainConfig().stream == "auto"
    with pytest.raises(ValueError, match="config key 'stream' must be 'auto', true or false, got 'maybe'"):
        TrainConfig(stream="maybe")
    with pytest.raises(ValueError, match="config key 'stream' must be"):
        TrainConfig(stream=2)
    with pytest.raises(ValueError, match="stream=true needs an image-folder dataset"):
        decide_stream("cifar10", None, True)


def test_decide_stream_auto_uses_the_budget(folder: Path) -> None:
    assert decide_stream("imagefolder", folder, "auto", image_size=16) is False  # 40 small images fit
    assert decide_stream("imagefolder", folder, "auto", image_size=16, budget_bytes=40 * 3 * 16 * 16 - 1) is True
    assert decide_stream("imagefolder", folder, "false") is False
    assert decide_stream("tiny_imagenet", folder, "auto") is True  # no in-memory loader for that layout


def test_build_setup_streams_with_stream_true(folder: Path) -> None:
    cfg = TrainConfig(method="mixup", model="smallnet", dataset="imagefolder", data_dir=str(folder), image_size=16,
                      stream=True, train_limit=30, **FAST)
    s = build_setup(cfg)
    assert isinstance(s.train_data, StreamingImageFolder) and isinstance(s.test_data, StreamingImageFolder)
    assert len(s.train_data) == 30 and len(s.test_data) == 21 and s.steps_per_epoch == 4
    assert s.test_data.mean == s.train_data.mean  # the test split uses the training statistics
    x, y = next(iter(s.train_loader))
    assert x.shape == (8, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(float(x.mean())) < 1.5  # normalised, not 0-255
    xt, yt = next(iter(s.test_loader))
    assert xt.shape == (16, 3, 16, 16)
    # auto on a small folder keeps the in-memory, device-resident path
    mem = build_setup(cfg.replace(stream="auto", train_limit=None))
    assert isinstance(mem.train_data, ImageData) and isinstance(mem.test_data, ImageData)
    with pytest.raises(ValueError, match="stream=true needs an image-folder dataset.*got 'offline'"):
        build_setup(TrainConfig(dataset="offline", stream=True, **FAST))


def test_streamed_train_limit_is_seeded(folder: Path) -> None:
    cfg = TrainConfig(model="smallnet", dataset="imagefolder", data_dir=str(folder), image_size=16, stream=True,
                      train_limit=10, **FAST)
    a, b = build_setup(cfg).train_data, build_setup(cfg).train_data
    assert [a.index.relpath(i) for i in range(10)] == [b.index.relpath(i) for i in range(10)]
    assert a.data_hash == b.data_hash != build_setup(cfg.replace(train_limit=None)).train_data.data_hash


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "sagemix", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


@pytest.mark.slow  # three CLI processes
def test_cli_train_stream_true_then_eval(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = _cli("train", "--method", "cutmix", "--model", "smallnet", "--dataset", "imagefolder", "--data-dir",
             str(folder), "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--no-progress", "--out", str(out),
             "--set", "stream=true", "--set", "image_size=16", "--set", "workers=1", "--set", "eval_batch_size=16",
             cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "streaming imagefolder" in r.stdout + r.stderr
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["stream"] is True and cfg["input_size"] == [16, 16]
    final = json.loads((out / "summary.json").read_text())["final_acc"]
    r = _cli("eval", str(out), "--device", "cpu", cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    clean = json.loads((out / "eval" / "clean.json").read_text())
    assert clean["n"] == 21 and clean["acc"] == pytest.approx(final)  # the same 21 files, same transform
    r = _cli("eval", str(out), "--device", "cpu", "--adversarial", "fgsm", "--out", str(tmp_path / "e2"), cwd=tmp_path)
    assert r.returncode != 0 and "only clean accuracy is evaluated for streamed datasets" in r.stderr


def _tiny_imagenet(root: Path, per_class: int = 6) -> None:
    from PIL import Image

    wnids = ["n01", "n02", "n03"]
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    rng = np.random.default_rng(0)
    for w in wnids:
        d = root / "train" / w / "images"
        d.mkdir(parents=True)
        for j in range(per_class):
            Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(d / f"{w}_{j}.JPEG")
    (root / "val" / "images").mkdir(parents=True)
    lines = []
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{wnids[i % 3]}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("recipe", ["tinyimagenet_preactresnet18", "imagenet_resnet50"])
def test_scale_recipes_select_every_method(recipe: str) -> None:
    from sagemix import create_mixer, list_mixers

    for method in list_mixers():
        c = load_config(recipe, overrides={"method": method})
        create_mixer(method, num_classes=10, **c.mixer_kwargs())
    c = load_config(recipe)
    assert "github.com/snu-mllab/PuzzleMix" in c.description and c.stream in ("auto", True)


def test_tinyimagenet_recipe_trains_one_step(tmp_path: Path) -> None:
    _tiny_imagenet(tmp_path / "tiny")
    cfg = load_config("tinyimagenet_preactresnet18", overrides={
        "data_dir": str(tmp_path / "tiny"), "method": "mixup", "max_steps_per_epoch": 1, "out": str(tmp_path / "r"),
        "model_kwargs.width": 8, **FAST})
    s = build_setup(cfg)
    assert isinstance(s.train_data, StreamingImageFolder) and s.train_data.image_size == (64, 64)
    assert s.mean == (0.5, 0.5, 0.5) and s.raw_model.stem.stride == (2, 2)
    x, y = next(iter(s.train_loader))
    s.optimizer.zero_grad()
    out = s.step(x, y)
    s.optimizer.step()
    assert torch.isfinite(out.loss)


@pytest.mark.slow
def test_torchrun_two_processes_stream_a_jpeg_folder(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src") + os.pathsep + env.get("PYTHONPATH", "")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    launcher = [shutil.which("torchrun")] if shutil.which("torchrun") else [sys.executable, "-m", "torch.distributed.run"]
    cmd = [*launcher, "--standalone", "--nproc_per_node", "2", "-m", "sagemix", "train", "--method", "mixup",
           "--model", "smallnet", "--dataset", "imagefolder", "--data-dir", str(folder), "--epochs", "1",
           "--device", "cpu", "--batch-size", "8", "--no-progress", "--out", str(out), "--set", "stream=true",
           "--set", "image_size=16", "--set", "threads=1", "--set", "workers=0", "--set", "eval_batch_size=8",
           "--set", 'model_kwargs={"width": 4}']
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["finished"] and summary["replicas_in_sync"]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    # every one of the 21 test files scored exactly once over the two ranks
    assert abs(rows[0]["test_acc"] * 21 / 100 - round(rows[0]["test_acc"] * 21 / 100)) < 1e-9
    assert json.loads((out / "config.json").read_text())["stream"] is True
