"""The evaluation stage: evaluate_run called directly writes what `sagemix eval` writes, with the same
numbers; EvalOptions from the eval command's parser; compare evaluates in process (no subprocess)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sagemix.evaluate.options import parse_options
from sagemix.evaluate import EvalOptions, evaluate_run
from sagemix.run_folder import EVAL_DIR

FLAGS = ["--device", "cpu", "--limit", "40", "--batch-size", "16", "--adversarial", "fgsm", "pgd", "--pgd-steps",
         "2", "--corruptions", "--corruption-names", "contrast"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from sagemix.train import load_config, train

    root = tmp_path_factory.mktemp("stage")
    cfg = load_config("offline", overrides={
        "epochs": 1, "batch_size": 32, "train_limit": 64, "test_limit": 48, "milestones": [], "device": "cpu",
        "progress": False, "out": str(root / "run")})
    train(cfg)
    return root / "run"


def _without_times(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in ("eval_time_s",)}


def test_evaluate_run_writes_what_the_cli_writes(run_dir, tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cli_out = tmp_path / "cli"
    proc = subprocess.run([sys.executable, "-m", "sagemix", "eval", str(run_dir), *FLAGS, "--out", str(cli_out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lib_out = tmp_path / "lib"
    opts = parse_options(FLAGS + ["--out", str(lib_out)])
    result = evaluate_run(run_dir, opts, log=lambda s: None)
    assert result["out_dir"] == lib_out
    cli_files = sorted(p.name for p in cli_out.iterdir() if p.is_file())
    assert sorted(p.name for p in lib_out.iterdir() if p.is_file()) == cli_files == sorted(result["files"])
    for name in cli_files:
        a, b = cli_out / name, lib_out / name
        if name.endswith(".json"):
            da, db = json.loads(a.read_text()), json.loads(b.read_text())
            if name == "corruptions.json":  # the generated set lives in each output folder
                da["corrupted_set"].pop("dir"), db["corrupted_set"].pop("dir")
            assert _without_times(da) == _without_times(db), name
        else:
            assert a.read_text() == b.read_text(), name
    clean = json.loads((lib_out / "clean.json").read_text())
    assert result["clean"] == clean["acc"] and clean["n"] == 40
    assert [r["evaluation"] for r in result["rows"]] == ["clean", "corruptions", "fgsm", "pgd"]
    assert opts.expected_files() == ["clean.json", "corruptions.json", "adversarial.json"]
    assert opts.done(run_dir)  # its results are in its out folder, whatever the run
    assert not EvalOptions(adversarial=("fgsm",)).done(run_dir)  # nothing in <run>/eval yet
    assert not EvalOptions(out=str(lib_out), fewshot=True).done(run_dir)


def test_default_output_is_the_run_eval_folder(run_dir):
    opts = EvalOptions(device="cpu", limit=8, threads=1)
    assert opts.out_dir(run_dir) == run_dir / EVAL_DIR and not opts.done(run_dir)
    res = evaluate_run(run_dir / "checkpoint.pt", opts)  # a checkpoint file: its folder is the run
    assert res["out_dir"] == run_dir / EVAL_DIR and opts.done(run_dir)
    assert res["corruptions"] is None and res["adversarial"] is None and res["fewshot"] is None


def test_options_from_flags_and_errors():
    o = parse_options(["--corruptions", "x", "--adversarial", "fgsm", "--fewshot", "--shots", "1"], threads=2)
    assert o.corruptions == "x" and o.adversarial == ("fgsm",) and o.fewshot and o.shots == (1,) and o.threads == 2
    assert parse_options(["--corruptions"]).corruptions is True
    assert parse_options([]).corruptions is False and parse_options([]) == EvalOptions()
    assert parse_options(["--generate-corruptions"]).expected_files() == ["clean.json", "corruptions.json"]
    with pytest.raises(ValueError, match="unrecognized arguments: --tag"):
        parse_options(["--tag", "x"])
    with pytest.raises(ValueError, match="invalid choice"):
        parse_options(["--adversarial", "cw"])
    with pytest.raises(ValueError, match=r"limit \(--limit\) must be a positive int, got 0"):
        EvalOptions(limit=0)
    with pytest.raises(ValueError, match="adversarial: unknown"):
        EvalOptions(adversarial=("cw",))
    with pytest.raises(ValueError, match="corruption-names"):
        EvalOptions(corruption_names=("rain",))
    with pytest.raises(TypeError, match="options must be an EvalOptions"):
        evaluate_run("somewhere", {"limit": 3})  # type: ignore[arg-type]


def test_compare_evaluates_in_process(tmp_path, monkeypatch):
    from sagemix import compare as compare_mod
    from sagemix.compare import ComparisonConfig, eval_options_for, plan_runs, run_comparison

    def no_subprocess(*a, **k):
        raise AssertionError(f"compare started a subprocess: {a}")

    cfg = ComparisonConfig.from_dict({
        "recipe": "offline", "out": str(tmp_path / "cmp"), "methods": ["vanilla"], "seeds": [0],
        "overrides": {"epochs": 1, "batch_size": 32, "train_limit": 64, "test_limit": 32, "milestones": [],
                      "device": "cpu", "progress": False, "threads": 1},
        "eval": {"enabled": True, "args": ["--limit", "16", "--device", "cpu", "--adversarial", "fgsm"],
                 "options": {"out": "{out}/eval-{method}-s{seed}"}},
        "report": {"plots": False}})
    spec = plan_runs(cfg)[0]
    opts = eval_options_for(cfg, spec)
    assert opts.threads == 1 and opts.adversarial == ("fgsm",) and opts.out == f"{cfg.out}/eval-vanilla-s0"
    assert run_comparison(cfg, evaluate=False, report=False, log=lambda s: None)["trained"] == [spec.name]
    # the trainer may ask git for the commit; from here on (evaluation, report) no process may start
    monkeypatch.setattr(subprocess, "run", no_subprocess)
    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    res = run_comparison(cfg, log=lambda s: None)
    assert res["skipped"] == [spec.name] and res["evaluated"] == [spec.name] and not res["failed"]
    out = Path(cfg.out) / "eval-vanilla-s0"
    assert (out / "clean.json").is_file() and (out / "adversarial.json").is_file()
    assert compare_mod.expected_eval_files(opts) == ["clean.json", "adversarial.json"]
    lines: list[str] = []
    again = run_comparison(cfg, report=False, log=lines.append)
    assert again["evaluated"] == [] and any("evaluation already done" in s for s in lines)
    # a failing evaluation is reported, the comparison carries on
    cfg.eval_options = {"dataset": "nonexistent_dataset"}
    failed = run_comparison(cfg, report=False, log=lambda s: None)
    assert "evaluation: " in failed["failed"][spec.name]
    with pytest.raises(ValueError, match="unknown field"):
        ComparisonConfig.from_dict({"recipe": "offline", "out": "x", "methods": ["vanilla"], "seeds": [0],
                                    "eval": {"enabled": True, "options": {"colour": 1}}})


def test_missing_corruption_extra_is_refused_before_any_work(run_dir, tmp_path, monkeypatch):
    """Without the corruptions extra, an evaluation that must generate the set stops before the clean pass."""
    import sagemix.evaluate.corruptions.common as common

    def missing():
        raise ImportError('the corruptions need OpenCV: pip install "sagemix[corruptions]"')

    monkeypatch.setattr(common, "_cv2", missing)
    with pytest.raises(ImportError, match=r"sagemix\[corruptions\]"):
        evaluate_run(run_dir, EvalOptions(device="cpu", limit=16, corruptions=True, out=str(tmp_path / "ev")),
                     log=lambda s: None)
    assert not (tmp_path / "ev" / "clean.json").exists()


def test_extra_eps_attacks_at_every_radius_and_reaches_the_report(run_dir, tmp_path):
    """--extra-eps: FGSM at each radius (the primary one on top), done() wants them all, the report pairs them."""
    from sagemix.report import collect_runs
    from sagemix.report.paired import extra_radii, metric_value, paired_tables

    out = tmp_path / "ev"
    opts = parse_options(["--device", "cpu", "--limit", "24", "--adversarial", "fgsm", "--eps", "8/255",
                          "--extra-eps", "1/255", "0", "--out", str(out)])
    assert opts.extra_eps == ("1/255", "0")
    evaluate_run(run_dir, opts, log=lambda s: None)
    doc = json.loads((out / "adversarial.json").read_text())
    assert list(doc["by_eps"]) == ["8/255", "1/255", "0"] and doc["eps_str"] == "8/255"
    assert doc["accuracy"] == doc["by_eps"]["8/255"]["attacks"]["fgsm"]["adv_acc"]
    acc = {e: doc["by_eps"][e]["attacks"]["fgsm"]["adv_acc"] for e in doc["by_eps"]}
    assert acc["0"] == doc["clean_accuracy"]  # a zero radius attacks nothing
    assert (out / "adversarial.csv").read_text().count("\n") == 4  # header + one row per radius
    opts_here = parse_options(["--device", "cpu", "--limit", "24", "--adversarial", "fgsm", "--out", str(out)])
    assert opts_here.done(run_dir)
    more = parse_options(["--device", "cpu", "--adversarial", "fgsm", "--extra-eps", "2/255", "--out", str(out)])
    assert not more.done(run_dir)  # a radius not evaluated yet: not done
    with pytest.raises(ValueError, match="eps must be"):
        parse_options(["--adversarial", "fgsm", "--extra-eps", "big"])
    # the report: one more paired table per extra radius, read from by_eps
    import shutil

    shutil.copytree(run_dir, tmp_path / "run_copy")
    shutil.copytree(out, tmp_path / "run_copy" / "eval", dirs_exist_ok=True)
    runs = collect_runs([tmp_path / "run_copy"])
    assert extra_radii(runs) == ["0", "1/255"]
    assert metric_value(runs[0], "fgsm@1/255") == acc["1/255"]
    names = [t.name for t in paired_tables(runs)]
    assert names == ["paired_clean", "paired_fgsm", "paired_fgsm_0", "paired_fgsm_1_255"]


def test_train_fit_is_the_accuracy_on_the_runs_own_training_subset(run_dir, tmp_path):
    """--train-fit: eval-mode accuracy on exactly the train_limit subset the run trained on, unaugmented."""
    from sagemix.evaluate.accuracy import accuracy
    from sagemix.run_folder import load_model
    from sagemix.train import load_config
    from sagemix.train.setup import build_setup

    out = tmp_path / "fit"
    evaluate_run(run_dir, parse_options(["--device", "cpu", "--train-fit", "--out", str(out)]), log=lambda s: None)
    doc = json.loads((out / "train_fit.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    setup = build_setup(load_config("offline", overrides={k: config[k] for k in (
        "epochs", "batch_size", "train_limit", "test_limit", "milestones", "device")} | {"progress": False}))
    model, _ = load_model(run_dir / "checkpoint.pt", map_location="cpu")
    want = accuracy(model, setup.train_data.images, setup.train_data.labels, mean=tuple(config["mean"]),
                    std=tuple(config["std"]), device="cpu")
    assert doc["n"] == 64 == len(setup.train_data.labels) and doc["acc"] == want and doc["split"] == "train"
    assert parse_options(["--train-fit"]).expected_files()[-1] == "train_fit.json"
    with pytest.raises(ValueError, match="train-fit"):
        evaluate_run(run_dir, parse_options(["--device", "cpu", "--train-fit", "--dataset", "cifar10",
                                             "--out", str(tmp_path / "x")]), log=lambda s: None)
