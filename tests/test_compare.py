"""sagemix.compare and `sagemix compare`: the matrix, resumability (finished runs skipped, interrupted
runs resumed), evaluation skipping, the report, config validation."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sagemix.compare import (ComparisonConfig, expected_eval_files, load_comparison, plan_runs, run_comparison,
                             run_state)

TINY = {"epochs": 1, "batch_size": 32, "train_limit": 64, "test_limit": 32, "milestones": [], "device": "cpu",
        "progress": False}


def _cfg(tmp_path: Path, **kw) -> dict:
    d = {"recipe": "offline", "out": str(tmp_path / "cmp"), "methods": ["vanilla", "mixup"], "seeds": [0],
         "overrides": dict(TINY), "report": {"plots": False}}
    d.update(kw)
    return d


def test_plan_is_seed_major_with_overrides(tmp_path: Path) -> None:
    cfg = ComparisonConfig.from_dict(_cfg(tmp_path, seeds=[0, 1], models=["smallnet"],
                                          method_overrides={"mixup": {"method_kwargs.alpha": 0.5}}))
    specs = plan_runs(cfg)
    assert [(s.seed, s.method) for s in specs] == [(0, "vanilla"), (0, "mixup"), (1, "vanilla"), (1, "mixup")]
    assert specs[1].run_dir == Path(cfg.out) / "smallnet-mixup-s0"
    assert specs[1].overrides["method_kwargs.alpha"] == 0.5 and "method_kwargs.alpha" not in specs[0].overrides
    assert all(s.overrides["epochs"] == 1 and s.overrides["out"] == str(s.run_dir) for s in specs)


def test_states_decide_train_resume_skip(tmp_path: Path) -> None:
    cfg = ComparisonConfig.from_dict(_cfg(tmp_path, methods=["vanilla", "mixup", "cutmix"]))
    runs = {s.method: s.run_dir for s in plan_runs(cfg)}
    runs["vanilla"].mkdir(parents=True)
    (runs["vanilla"] / "summary.json").write_text(json.dumps({"finished": True}))
    runs["mixup"].mkdir(parents=True)
    (runs["mixup"] / "checkpoint.pt").write_bytes(b"x")
    (runs["mixup"] / "summary.json").write_text(json.dumps({"finished": False}))
    assert [run_state(runs[m]) for m in ("vanilla", "mixup", "cutmix")] == ["finished", "interrupted", "new"]
    calls = []

    def fake_train(config, *, resume):
        calls.append((config.method, resume, config.out, config.epochs))
        if config.method == "cutmix":
            raise RuntimeError("boom")
        return {}

    res = run_comparison(cfg, train_fn=fake_train, report=False, log=lambda s: None)
    assert calls == [("mixup", True, str(runs["mixup"]), 1), ("cutmix", False, str(runs["cutmix"]), 1)]
    assert res["skipped"] == [runs["vanilla"].name] and res["resumed"] == [runs["mixup"].name]
    assert "boom" in res["failed"][runs["cutmix"].name]  # a failure does not stop the others
    # only= restricts the matrix; unknown names are refused
    calls.clear()
    run_comparison(cfg, only={"methods": ["mixup"]}, train_fn=fake_train, report=False, log=lambda s: None)
    assert [c[0] for c in calls] == ["mixup"]
    with pytest.raises(ValueError, match="not in the comparison"):
        run_comparison(cfg, only={"methods": ["sage"]}, train_fn=fake_train, report=False, log=lambda s: None)


def test_interrupted_run_is_resumed_by_the_next_invocation(tmp_path: Path) -> None:
    """A real run interrupted after its first epoch (Ctrl-C) is resumed, not restarted, by the next call."""
    from sagemix.train import train

    cfg = ComparisonConfig.from_dict(_cfg(tmp_path, methods=["mixup"], overrides={**TINY, "epochs": 2}))
    run_dir = plan_runs(cfg)[0].run_dir
    raised = []

    def log(line: str) -> None:
        if line.startswith("epoch 1/2") and not raised:
            raised.append(line)
            raise KeyboardInterrupt  # as if Ctrl-C arrived right after epoch 1

    with pytest.raises(KeyboardInterrupt):
        run_comparison(cfg, train_fn=lambda c, resume: train(c, resume=resume, log=log), report=False,
                       log=lambda s: None)
    assert raised and run_state(run_dir) == "interrupted"
    res = run_comparison(cfg, report=False, log=lambda s: None)  # the real trainer, resume=True
    assert res["resumed"] == [run_dir.name] and not res["failed"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["finished"] is True and summary["epochs_done"] == 2
    epochs = [json.loads(line)["epoch"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]  # epoch 1 was not trained again
    assert run_comparison(cfg, report=False, log=lambda s: None)["skipped"] == [run_dir.name]


def test_eval_options_are_values_with_placeholders(tmp_path: Path) -> None:
    from sagemix.compare import eval_options_for
    from sagemix.evaluate import EvalOptions

    cfg = ComparisonConfig.from_dict(_cfg(tmp_path, seeds=[2], eval={"enabled": True, "options": {
        "corruptions": "{out}/c-{model}-s{seed}", "out": "{out}/e-{method}", "adversarial": ["fgsm"]}}))
    spec = plan_runs(cfg)[1]
    assert eval_options_for(cfg, spec) == EvalOptions(corruptions=f"{cfg.out}/c-smallnet-s2", out=f"{cfg.out}/e-mixup",
                                                      adversarial=("fgsm",))
    cfg.eval_options = {"out": "{nope}"}
    with pytest.raises(ValueError, match="unknown placeholder"):
        eval_options_for(cfg, spec)


def test_eval_args_of_a_former_config_are_read_once_into_options(tmp_path: Path) -> None:
    from sagemix.compare import eval_options_for

    old = ComparisonConfig.from_dict(_cfg(tmp_path, eval={"enabled": True, "args": [
        "--device", "cpu", "--limit", "100", "--corruptions", "{out}/c-s{seed}", "--adversarial", "fgsm"],
        "options": {"limit": 50}}))
    assert old.eval_options == {"device": "cpu", "limit": 50, "corruptions": "{out}/c-s{seed}",
                                "adversarial": ["fgsm"]}  # options after args, as before
    spec = plan_runs(old)[0]
    new = ComparisonConfig.from_dict(_cfg(tmp_path, eval={"enabled": True, "options": {
        "device": "cpu", "limit": 50, "corruptions": "{out}/c-s{seed}", "adversarial": ["fgsm"]}}))
    assert eval_options_for(old, spec) == eval_options_for(new, spec)
    with pytest.raises(ValueError, match=r"comparison key 'eval.args': sagemix eval arguments .*--tag"):
        ComparisonConfig.from_dict(_cfg(tmp_path, eval={"enabled": True, "args": ["--tag", "x"]}))
    with pytest.raises(ValueError, match=r"comparison key 'eval': limit \(--limit\) must be a positive int, got 0"):
        ComparisonConfig.from_dict(_cfg(tmp_path, eval={"enabled": True, "options": {"limit": 0}}))


def test_expected_eval_files() -> None:
    from sagemix.evaluate import EvalOptions

    assert expected_eval_files(EvalOptions()) == ["clean.json"]
    assert expected_eval_files(EvalOptions(adversarial=("fgsm",), corruptions="x", fewshot=True)) == [
        "clean.json", "corruptions.json", "adversarial.json", "fewshot.json"]
    with pytest.raises(TypeError, match="options must be an EvalOptions, got list"):
        expected_eval_files(["--fewshot"])


@pytest.mark.parametrize("change, match", [
    ({"methods": []}, "'methods' must be a non-empty list"),
    ({"seeds": [0, 0]}, "duplicates"),
    ({"seeds": [-1]}, "'seeds' must be a non-empty list of ints >= 0"),
    ({"overrides": {"method": "sage"}}, "must not set 'method'"),
    ({"method_overrides": {"sage": {}}}, "not in methods"),
    ({"eval": {"enabled": "yes"}}, "eval.enabled"),
    ({"colour": 1}, "unknown comparison key"),
])
def test_config_errors(tmp_path: Path, change: dict, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        ComparisonConfig.from_dict(_cfg(tmp_path, **change))


def test_shipped_offline_comparison_config_is_valid() -> None:
    path = Path(__file__).resolve().parents[1] / "configs" / "offline_comparison.json"
    cfg = load_comparison(path)
    assert cfg.methods == ["vanilla", "mixup", "manifold_mixup", "cutmix", "saliencymix", "puzzlemix", "comixup",
                           "sage"]
    assert len(cfg.seeds) == 3
    specs = plan_runs(cfg)
    assert len(specs) == 24 and all(s.model == "smallnet" for s in specs)
    from sagemix.train import load_config

    for s in specs[:8]:  # every method's config validates
        assert load_config(cfg.recipe, overrides=s.overrides).dataset == "offline"


def test_compare_cli_trains_reports_and_second_run_does_nothing(tmp_path: Path) -> None:
    cfg_path = tmp_path / "cmp.json"
    cfg_path.write_text(json.dumps(_cfg(tmp_path, eval={"enabled": True, "args": ["--limit", "16",
                                                                                  "--device", "cpu"]})))
    cmd = [sys.executable, "-m", "sagemix", "compare", "--config", str(cfg_path)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "trained 2, resumed 0, skipped 0 (finished), evaluated 2, failed 0" in first.stdout
    out = tmp_path / "cmp"
    summaries = sorted(out.glob("*/summary.json"))
    assert len(summaries) == 2 and all(json.loads(p.read_text())["finished"] for p in summaries)
    assert all((p.parent / "eval" / "clean.json").is_file() for p in summaries)
    report = (out / "report" / "report.md").read_text()
    assert "| smallnet | vanilla |" in report and "| smallnet | mixup |" in report
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "report" not in p.parts}

    second = subprocess.run(cmd, capture_output=True, text=True, timeout=200)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "trained 0, resumed 0, skipped 2 (finished), evaluated 0, failed 0" in second.stdout
    assert "evaluation already done" in second.stdout
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # no run file was touched

    dry = subprocess.run(cmd + ["--dry-run"], capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0 and dry.stdout.count("finished, eval done") == 2
