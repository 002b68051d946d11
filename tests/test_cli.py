"""The real CLI as a subprocess: list, train (run folder, resume, refusals, NaN), demo --quick."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

TINY = ['--set', 'dataset_kwargs={"n_train": 48, "n_test": 24}', "--set", "image_size=16",
        "--set", 'model_kwargs={"width": 4}', "--batch-size", "16", "--no-progress"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = dict(os.environ)
    e["SAGEMIX_CACHE"] = str(tmp_path_factory.mktemp("cache"))  # the offline dataset is generated here
    e["OMP_NUM_THREADS"] = "1"
    return e


def cli(*args: str, env: dict, cwd=None) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess (``python -m sagemix ...``)."""
    return subprocess.run([sys.executable, "-m", "sagemix", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def main(capsys, *args: str) -> tuple[int, str, str]:
    """The same entry point in-process (cheaper: no interpreter and torch start-up)."""
    from sagemix.cli import main as cli_main

    try:
        rc = cli_main(list(args))
    except SystemExit as e:  # argparse's --help
        rc = int(e.code or 0)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_list(env):
    r = cli("list", env=env)
    assert r.returncode == 0, r.stderr
    for word in ("methods", "sage", "mixup", "cutmix", "models", "smallnet", "preactresnet18", "datasets",
                 "offline", "recipes", "cifar100_wrn16_8_sage"):
        assert word in r.stdout


def test_list_json(capsys):
    rc, out, _ = main(capsys, "list", "recipes", "--json")
    names = {row["name"] for row in json.loads(out)}
    assert rc == 0 and {"offline", "cifar10_preactresnet18_sage", "cifar100_resnext29_sage"} <= names
    rc, out, _ = main(capsys, "list", "methods", "--json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["sage"]["saliency"] == "gradient" and rows["mixup"]["saliency"] == "-"


@pytest.mark.parametrize("command", ["train", "eval", "demo", "list", "bench", "show", "compare", "report"])
def test_help_has_examples(capsys, command):
    rc, out, _ = main(capsys, command, "--help")
    assert rc == 0 and "examples:" in out and f"sagemix {command}" in out
    assert "%%" not in out  # argparse %-formats the options' help, not the description: no escaped '%' there


def test_train_resume_and_refusals(env, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    r = cli("train", "offline", "--method", "sage", "--epochs", "1", "--out", str(out), *TINY, env=env)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["method"] == "sage" and summary["epochs_done"] == 1 and 0 <= summary["best_acc"] <= 100
    for name in ("config.json", "metrics.jsonl", "metrics.csv", "summary.json", "checkpoint.pt"):
        assert (out / name).is_file(), name
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["dataset_kwargs"] == {"n_train": 48, "n_test": 24} and cfg["image_size"] == 16
    monkeypatch.setenv("SAGEMIX_CACHE", env["SAGEMIX_CACHE"])
    # running again into the same folder is refused without --resume/--overwrite
    rc, _, err = main(capsys, "train", "offline", "--method", "sage", "--epochs", "1", "--out", str(out), *TINY)
    assert rc == 2 and "already holds a checkpoint" in err
    # resume from the run folder's own config.json, extended to 2 epochs
    r = cli("train", "--resume", "--out", str(out), "--epochs", "2", "--no-progress", env=env)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in rows] == [1, 2]
    # a different run-defining setting is refused, naming it
    rc, _, err = main(capsys, "train", "--resume", "--out", str(out), "--epochs", "3", "--lr", "0.5")
    assert rc == 2 and "different config" in err and "lr: checkpoint" in err
    # a damaged checkpoint is refused
    ck = out / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 3])
    rc, _, err = main(capsys, "train", "--resume", "--out", str(out), "--epochs", "3")
    assert rc == 2 and "damaged" in err


def test_train_nan_stops_cleanly(env, tmp_path):
    r = cli("train", "offline", "--epochs", "2", "--lr", "1e30", "--out", str(tmp_path / "nan"), *TINY,
            "--set", "nan_check_every=1", env=env)
    assert r.returncode == 1 and "NaN/inf" in r.stderr and "Traceback" not in r.stderr


def test_train_bad_input_and_show_config(capsys):
    rc, _, err = main(capsys, "train", "offline", "--set", "epochs=-1", "--show-config")
    assert rc == 2 and "'epochs'" in err and "-1" in err
    rc, _, err = main(capsys, "train", "offline", "--set", "learning_rate=0.1", "--show-config")
    assert rc == 2 and "unknown config key 'learning_rate'" in err
    rc, _, err = main(capsys, "train", "no_such_recipe")
    assert rc == 2 and "unknown recipe" in err
    rc, _, err = main(capsys, "train", "offline", "--set", "lr")
    assert rc == 2 and "key=value" in err
    rc, out, _ = main(capsys, "train", "cifar100_wrn16_8", "--method", "sage", "--set", "lr=0.1", "--show-config")
    shown = json.loads(out)
    assert rc == 0 and shown["method"] == "sage" and shown["lr"] == 0.1
    assert shown["method_defaults"]["sage"]["update_ratio"] == 0.5


def test_demo_quick(env, tmp_path):
    out = tmp_path / "demo"
    r = cli("demo", "--quick", "--out", str(out), env=env)
    assert r.returncode == 0, r.stderr
    for m in ("vanilla", "mixup", "cutmix", "sage"):
        assert f"| {m} |" in r.stdout
    data = json.loads((out / "demo.json").read_text())
    assert [row["method"] for row in data["rows"]] == ["vanilla", "mixup", "cutmix", "sage"]
    assert data["rows"][0]["relative_step_time"] == 1.0
    assert all(0 <= row["test_acc"] <= 100 and row["step_time_s"] > 0 for row in data["rows"])
    assert len({row["steps"] for row in data["rows"]}) == 1  # the same budget for every method
    assert all(0 <= v <= 1 for v in data["figure"]["lam"])
    png = (out / "sage_mixes.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    assert "| sage |" in (out / "demo.md").read_text()


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(env, tmp_path):
    import signal

    out = tmp_path / "int"
    args = [sys.executable, "-m", "sagemix", "train", "offline", "--epochs", "200", "--out", str(out), *TINY]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(env, PYTHONUNBUFFERED="1"))
    try:
        for line in proc.stdout:  # wait for the first finished epoch, then press Ctrl-C
            if line.startswith("epoch 1/200"):
                proc.send_signal(signal.SIGINT)
                break
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    assert "continue with --resume" in rest or "interrupted: checkpoint saved" in rest
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"] == "interrupted" and not summary["finished"] and summary["epochs_done"] >= 1
    from sagemix.train import load_checkpoint

    state = load_checkpoint(out / "checkpoint.pt")
    assert state["epoch"] >= 1
    r = cli("train", "--resume", "--out", str(out), "--epochs", str(state["epoch"] + 1), "--no-progress", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["epochs_done"] == state["epoch"] + 1
