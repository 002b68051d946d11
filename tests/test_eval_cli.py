"""`sagemix eval` on a tiny run trained by the real trainer: files written, numbers consistent, errors clear."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sagemix.cli import main

N_TRAIN, N_TEST = 400, 300


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """smallnet trained 1 epoch on the offline dataset's base classes 0-4 (novel classes 5-9 held out)."""
    from sagemix.train import load_config, train

    root = tmp_path_factory.mktemp("evalcli")
    cfg = load_config("offline", overrides={
        "epochs": 1, "out": str(root / "run"), "data_dir": str(root / "cache"), "device": "cpu", "progress": False,
        "dataset_kwargs": {"n_train": N_TRAIN, "n_test": N_TEST, "classes": [0, 1, 2, 3, 4]}})
    train(cfg)
    return root / "run"


def _run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SAGEMIX_CACHE": str(cwd / "cache"), "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "sagemix", "eval", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_eval_subprocess_writes_all_results(base_run):
    root = base_run.parent
    episodes_dir = root / "episodes"
    proc = _run_cli([str(base_run), "--device", "cpu", "--limit", "60", "--batch-size", "32",
                     "--corruptions", "--corruption-names", "gaussian_noise", "contrast",
                     "--adversarial", "fgsm", "pgd", "--eps", "8/255", "--pgd-steps", "2",
                     "--fewshot", "--shots", "1", "5", "--queries", "5", "--episodes", "8",
                     "--classifier", "logreg", "proto", "--episodes-dir", str(episodes_dir)], root)
    assert proc.returncode == 0, proc.stderr
    ev = base_run / "eval"
    for f in ("clean.json", "corruptions.json", "corruptions.csv", "adversarial.json", "adversarial.csv",
              "fewshot.json", "fewshot.csv", "summary.json", "summary.csv"):
        assert (ev / f).is_file(), f
    assert not list(ev.glob(".*.tmp"))  # atomic writes leave no temp files
    # the printed table
    assert "clean" in proc.stdout and "fgsm" in proc.stdout and "5-way 5-shot logreg" in proc.stdout

    # clean accuracy equals an independent in-process computation on the same subset
    from sagemix.data import random_subset as _subset
    from sagemix.data import load_dataset
    from sagemix.train.checkpoint import load_model

    clean = json.loads((ev / "clean.json").read_text())
    model, config = load_model(base_run)
    test = _subset(load_dataset("offline", root=config["data_dir"], train=False, **config["dataset_kwargs"]), 60)
    x = (test.images.float() / 255 - torch.tensor(config["mean"]).view(1, 3, 1, 1)) / torch.tensor(
        config["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = 100.0 * float((model(x).argmax(1) == test.labels).float().mean())
    assert clean["n"] == 60 and clean["acc"] == pytest.approx(expected)
    assert clean["method"] == "vanilla" and clean["model"] == "smallnet"

    adv = json.loads((ev / "adversarial.json").read_text())
    assert adv["attack"] == "fgsm" and adv["eps"] == pytest.approx(8 / 255)
    assert adv["clean_accuracy"] == pytest.approx(clean["acc"])
    assert adv["accuracy"] <= clean["acc"] and adv["attacks"]["pgd"]["adv_acc"] <= clean["acc"]
    assert adv["attacks"]["pgd"]["steps"] == 2

    corr = json.loads((ev / "corruptions.json").read_text())
    assert corr["corrupted_set"]["source"] == "generated"
    assert set(corr["corruptions"]) == {"gaussian_noise", "contrast"}
    assert 0.0 <= corr["mean_acc"] <= 100.0
    c_dir = Path(corr["corrupted_set"]["dir"])
    assert (c_dir / "gaussian_noise.npy").is_file() and (c_dir / "labels.npy").is_file()

    few = json.loads((ev / "fewshot.json").read_text())
    assert few["novel_classes"] == [5, 6, 7, 8, 9] and few["base_class_names"] == ["0", "1", "2", "3", "4"]
    rows = few["results"]
    assert [(r["shots"], r["classifier"]) for r in rows] == [(1, "logreg"), (1, "proto"), (5, "logreg"), (5, "proto")]
    for r in rows:
        assert 0.0 <= r["acc"] <= 100.0 and r["ci95"] >= 0.0 and r["episodes"] == 8 and r["ways"] == 5
        assert Path(r["episodes_file"]).parent == episodes_dir
    with open(ev / "fewshot.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert len(csv_rows) == 4 and float(csv_rows[0]["acc"]) == pytest.approx(rows[0]["acc"])
    summary = json.loads((ev / "summary.json").read_text())
    assert [r["evaluation"] for r in summary["rows"]] == ["clean", "corruptions", "fgsm", "pgd"] + ["fewshot"] * 4

    # Same episodes files -> the same tasks and the same numbers in a second evaluation (in-process),
    # written to another folder; the episode files are reused, not redrawn.
    mtimes = {p: p.stat().st_mtime_ns for p in episodes_dir.glob("*.json")}
    assert len(mtimes) == 2
    out2 = base_run.parent / "eval2"
    assert main(["eval", str(base_run / "checkpoint.pt"), "--device", "cpu", "--out", str(out2), "--fewshot",
                 "--shots", "1", "5", "--queries", "5", "--episodes", "8", "--classifier", "logreg", "proto",
                 "--episodes-dir", str(episodes_dir)]) == 0
    assert json.loads((out2 / "fewshot.json").read_text())["results"] == rows
    assert {p: p.stat().st_mtime_ns for p in episodes_dir.glob("*.json")} == mtimes


def test_eval_errors_are_clear(base_run, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "no run folder or checkpoint" in capsys.readouterr().err
    # novel classes must be unseen in training
    assert main(["eval", str(base_run), "--device", "cpu", "--out", str(tmp_path / "e"), "--fewshot",
                 "--novel-classes", "3-9", "--episodes", "2", "--episodes-dir", str(tmp_path)]) == 2
    assert "overlap" in capsys.readouterr().err
    assert main(["eval", str(base_run), "--device", "cpu", "--out", str(tmp_path / "e"), "--fewshot",
                 "--novel-classes", "5-12", "--episodes-dir", str(tmp_path)]) == 2
    assert "classes 0-9" in capsys.readouterr().err
    assert main(["eval", str(base_run), "--device", "cpu", "--out", str(tmp_path / "e"), "--adversarial", "fgsm",
                 "--eps", "2"]) == 2
    assert "eps" in capsys.readouterr().err
    assert main(["eval", str(base_run), "--device", "cpu", "--out", str(tmp_path / "e"), "--limit", "0"]) == 2
    assert "--limit" in capsys.readouterr().err


def test_help_lists_protocols():
    proc = subprocess.run([sys.executable, "-m", "sagemix", "eval", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0
    for flag in ("--corruptions", "--generate-corruptions", "--adversarial", "--fewshot", "--novel-classes",
                 "--classifier", "--episodes-dir"):
        assert flag in proc.stdout


def test_mini_imagenet_backbone_and_fewshot(tmp_path):
    """Train on the base classes of a fake mini-ImageNet copy, then few-shot on its test.csv classes."""
    from test_mini_imagenet import make_fake_mini_imagenet

    from sagemix.train import load_config, train

    data = make_fake_mini_imagenet(tmp_path / "mini")
    cfg = load_config("offline", overrides={
        "epochs": 1, "out": str(tmp_path / "run"), "dataset": "mini_imagenet", "data_dir": str(data),
        "dataset_kwargs": {"base_holdout": 2}, "batch_size": 8, "device": "cpu", "progress": False})
    train(cfg)
    assert main(["eval", str(tmp_path / "run"), "--device", "cpu", "--fewshot", "--ways", "3", "--shots", "1", "2",
                 "--queries", "3", "--episodes", "5", "--classifier", "cosine",
                 "--episodes-dir", str(tmp_path / "eps")]) == 0
    ev = tmp_path / "run" / "eval"
    clean = json.loads((ev / "clean.json").read_text())
    assert clean["n"] == 8  # the held-out base-class images (2 per class x 4 classes)
    few = json.loads((ev / "fewshot.json").read_text())
    assert few["split"] == "test" and few["novel_class_names"] == ["n03000001", "n03000002", "n03000003"]
    assert not set(few["novel_class_names"]) & set(few["base_class_names"])
    assert [r["shots"] for r in few["results"]] == [1, 2]
    assert all(len(json.loads(Path(r["episodes_file"]).read_text())["tasks"]) == 5 for r in few["results"])
