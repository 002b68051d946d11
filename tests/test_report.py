"""sagemix.report and `sagemix report`: every number in the tables equals the run files it came from."""
from __future__ import annotations

import csv
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sagemix.report import (DASH, clean_numbers, collect_runs, corruption_numbers, fewshot_numbers, load_run,
                            mean_std, write_report)

EPOCHS = 12
CORR = ["gaussian_noise", "fog"]


def _make_run(root: Path, method: str, seed: int, *, epoch_s: float, step_s: float, finished: bool = True,
              summary: bool = True, evals: tuple[str, ...] = ("clean", "corruptions", "adversarial", "fewshot"),
              model: str = "smallnet") -> Path:
    """A well-formed run folder in the trainer's and `sagemix eval`'s layout, with random numbers."""
    g = torch.Generator().manual_seed(hash((method, seed)) % 2**31)
    d = root / f"{model}-{method}-s{seed}"
    d.mkdir(parents=True)
    accs = (torch.rand(EPOCHS, generator=g, dtype=torch.float64) * 60 + 30).tolist()
    rows = [{"epoch": e + 1, "train_loss": 1.0, "train_acc": 50.0, "test_loss": 1.0, "test_acc": a, "lr": 0.1,
             "epoch_time_s": epoch_s + 0.01 * e, "step_time_s": step_s, "images_per_s": 100.0}
            for e, a in enumerate(accs)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = {"method": method, "model": model, "dataset": "offline", "seed": seed, "epochs": EPOCHS}
    (d / "config.json").write_text(json.dumps(cfg))
    if summary:
        (d / "summary.json").write_text(json.dumps({
            **cfg, "epochs_done": EPOCHS, "finished": finished, "best_acc": max(accs), "final_acc": accs[-1],
            "median_last10_acc": statistics.median(accs[-10:]),
            "mean_epoch_time_s": statistics.fmean(r["epoch_time_s"] for r in rows), "mean_step_time_s": step_s}))
    ev = d / "eval"
    ev.mkdir()
    r = lambda: float(torch.rand((), generator=g)) * 100  # noqa: E731
    if "clean" in evals:
        (ev / "clean.json").write_text(json.dumps({"acc": r(), "n": 100}))
    if "corruptions" in evals:
        per = {}
        for c in CORR:
            a = [r() for _ in range(5)]
            per[c] = {"acc": a, "error": [100 - x for x in a], "mean_acc": statistics.fmean(a),
                      "mean_error": 100 - statistics.fmean(a), "benchmark": True}
        m = statistics.fmean(p["mean_acc"] for p in per.values())
        (ev / "corruptions.json").write_text(json.dumps({"corrupted_set": {"source": "generated"}, "corruptions": per,
                                                         "mean_acc": m, "mean_error": 100 - m, "mean_over": CORR}))
    if "adversarial" in evals:
        (ev / "adversarial.json").write_text(json.dumps({"attack": "fgsm", "eps": 8 / 255, "accuracy": r(),
                                                         "clean_accuracy": r()}))
    if "fewshot" in evals:
        res = [{"ways": 5, "shots": k, "classifier": c, "acc": r(), "ci95": r() / 50}
               for k in (1, 5) for c in ("logreg", "proto")]
        (ev / "fewshot.json").write_text(json.dumps({"classifier": "logreg", "results": res}))
    return d


@pytest.fixture()
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for seed in (0, 1, 2):
        _make_run(root, "vanilla", seed, epoch_s=10.0, step_s=0.01, evals=("clean", "adversarial"))
        _make_run(root, "sage", seed, epoch_s=18.0, step_s=0.02)
    # An unfinished run without summary.json: its numbers come from metrics.jsonl.
    _make_run(root, "mixup", 0, epoch_s=11.0, step_s=0.011, summary=False, evals=())
    return root


def _metric_accs(d: Path) -> list[float]:
    return [json.loads(line)["test_acc"] for line in (d / "metrics.jsonl").read_text().splitlines()]


def _read_csv(p: Path) -> list[dict[str, str]]:
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def test_clean_table_equals_metrics_files(runs_root: Path, tmp_path: Path) -> None:
    runs = collect_runs([runs_root])
    assert len(runs) == 7
    written = write_report(runs, tmp_path / "out", plots=False)
    rows = {r["method"]: r for r in _read_csv(written["clean"])}
    for method in ("vanilla", "sage"):
        dirs = sorted(runs_root.glob(f"smallnet-{method}-s*"))
        accs = [_metric_accs(d) for d in dirs]
        for col, f in (("best_acc", max), ("final_acc", lambda a: a[-1]),
                       ("median_last10_acc", lambda a: statistics.median(a[-10:]))):
            vals = [f(a) for a in accs]
            assert float(rows[method][col]) == pytest.approx(statistics.fmean(vals), rel=1e-5)
            assert float(rows[method][col + "_std"]) == pytest.approx(statistics.stdev(vals), rel=1e-5)
        assert rows[method]["seeds"] == "3"
    # One seed: no std, numbers computed from metrics.jsonl alone.
    mix = _metric_accs(runs_root / "smallnet-mixup-s0")
    assert float(rows["mixup"]["best_acc"]) == pytest.approx(max(mix), rel=1e-5)
    assert rows["mixup"]["best_acc_std"] == ""
    md = written["report"].read_text()
    assert "1 (1 unfinished)" in md
    # Method order follows the paper's tables.
    assert [r["method"] for r in _read_csv(written["clean"])] == ["vanilla", "mixup", "sage"]


def test_eval_tables_equal_eval_files_and_missing_is_dash(runs_root: Path, tmp_path: Path) -> None:
    runs = collect_runs([runs_root])
    written = write_report(runs, tmp_path / "out", plots=False)
    sage_dirs = sorted(runs_root.glob("smallnet-sage-s*"))
    ev = [json.loads((d / "eval" / "corruptions.json").read_text()) for d in sage_dirs]
    corr = {r["method"]: r for r in _read_csv(written["corruptions"])}
    assert float(corr["sage"]["mean"]) == pytest.approx(statistics.fmean(e["mean_acc"] for e in ev), rel=1e-5)
    for c in CORR:
        want = statistics.fmean(statistics.fmean(e["corruptions"][c]["acc"]) for e in ev)
        assert float(corr["sage"][c]) == pytest.approx(want, rel=1e-5)
    assert corr["vanilla"]["mean"] == "" and corr["vanilla"]["seeds"] == "0"

    adv = {r["method"]: r for r in _read_csv(written["adversarial"])}
    for method in ("vanilla", "sage"):
        vals = [json.loads((d / "eval" / "adversarial.json").read_text())["accuracy"]
                for d in sorted(runs_root.glob(f"smallnet-{method}-s*"))]
        assert float(adv[method]["accuracy"]) == pytest.approx(statistics.fmean(vals), rel=1e-5)
        assert adv[method]["eps"] == "8/255"
    assert adv["mixup"]["accuracy"] == ""

    few = {r["method"]: r for r in _read_csv(written["fewshot"])}
    fs = [json.loads((d / "eval" / "fewshot.json").read_text())["results"] for d in sage_dirs]
    for k in (1, 5):
        rows = [next(r for r in f if r["shots"] == k and r["classifier"] == "logreg") for f in fs]
        assert float(few["sage"][f"{k}_shot"]) == pytest.approx(statistics.fmean(r["acc"] for r in rows), rel=1e-5)
        assert float(few["sage"][f"{k}_shot_ci95"]) == pytest.approx(statistics.fmean(r["ci95"] for r in rows),
                                                                    rel=1e-5)
    assert few["vanilla"]["1_shot"] == ""
    md = written["report"].read_text()
    fs_section = md.split("### Few-shot")[1].split("###")[0]
    assert f"| smallnet | vanilla | 0 | {DASH} | {DASH} |" in fs_section


def test_cost_ratios_relative_to_vanilla(runs_root: Path, tmp_path: Path) -> None:
    written = write_report(collect_runs([runs_root]), tmp_path / "out", plots=False)
    cost = {r["method"]: r for r in _read_csv(written["cost"])}
    def mean_epoch(method: str) -> float:
        return statistics.fmean(json.loads((d / "summary.json").read_text())["mean_epoch_time_s"]
                                for d in runs_root.glob(f"smallnet-{method}-s*"))
    assert float(cost["vanilla"]["epoch_x_vanilla"]) == 1.0
    assert float(cost["sage"]["epoch_x_vanilla"]) == pytest.approx(mean_epoch("sage") / mean_epoch("vanilla"), rel=1e-5)
    assert float(cost["sage"]["step_x_vanilla"]) == pytest.approx(2.0, rel=1e-5)
    # mixup has no summary: its epoch time is the mean of metrics.jsonl's epoch_time_s.
    want = statistics.fmean(11.0 + 0.01 * e for e in range(EPOCHS)) / mean_epoch("vanilla")
    assert float(cost["mixup"]["epoch_x_vanilla"]) == pytest.approx(want, rel=1e-5)


def test_no_vanilla_means_no_ratio(tmp_path: Path) -> None:
    _make_run(tmp_path / "r", "sage", 0, epoch_s=5.0, step_s=0.1)
    written = write_report(collect_runs([tmp_path / "r"]), tmp_path / "out", plots=False)
    row = _read_csv(written["cost"])[0]
    assert row["epoch_x_vanilla"] == "" and float(row["epoch_s"]) > 0


def test_helpers_and_errors(tmp_path: Path) -> None:
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([4.0]) == (4.0, None)
    assert mean_std([None]) == (None, None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        collect_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no run folders"):
        collect_runs([tmp_path / "empty"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "summary.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_run(bad)
    d = _make_run(tmp_path / "x", "sage", 3, epoch_s=1.0, step_s=0.1)
    run = load_run(d)
    assert run.seed == 3 and run.finished
    assert set(corruption_numbers(run)) == set(CORR) | {"mean"}
    assert set(fewshot_numbers(run)) == {1, 5}
    assert clean_numbers(run)["best_acc"] == pytest.approx(max(_metric_accs(d)))


def test_median_last10_is_over_the_last_10_epochs_when_evaluated_every_k(tmp_path: Path) -> None:
    """With eval_every 10 the last 10 evaluations span the whole run; the median must use epochs 91-100 only.

    The report recomputes from metrics.jsonl, so a summary.json written by older code does not leak through.
    """
    from sagemix.train.logging import summarize

    d = _make_run(tmp_path / "r", "vanilla", 0, epoch_s=1.0, step_s=0.1)
    row = json.loads((d / "metrics.jsonl").read_text().splitlines()[0])
    rows = [{**row, "epoch": e, "test_acc": 10.0 * e if e % 10 == 0 or e == 95 else None}
            for e in range(1, 101)]  # 100 epochs; evaluated at 10, 20, ..., 100 and 95
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    stale = json.loads((d / "summary.json").read_text())
    (d / "summary.json").write_text(json.dumps({**stale, "median_last10_acc": 550.0}))
    expected = statistics.median([950.0, 1000.0])
    assert summarize(rows, epochs=100)["median_last10_acc"] == expected
    got = clean_numbers(load_run(d))
    assert got == {"best_acc": 1000.0, "final_acc": 1000.0, "median_last10_acc": expected}


def test_report_cli_writes_tables_and_plots(runs_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "rep"
    proc = subprocess.run([sys.executable, "-m", "sagemix", "report", str(runs_root), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in ("report.md", "clean.csv", "corruptions.csv", "adversarial.csv", "fewshot.csv", "cost.csv",
                 "accuracy_vs_cost.png", "learning_curves.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert "Clean test accuracy" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "sagemix", "report", str(tmp_path / "missing"), "--out", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_accuracy_vs_cost_plots_the_reports_clean_metric(runs_root: Path) -> None:
    from sagemix.report.plots import cost_points, label_offsets
    runs = collect_runs([runs_root])
    for key, pick in (("final_acc", lambda a: a[-1]), ("best_acc", max)):
        points, use_cpu = cost_points(runs, key)
        got = {m: (x, y, s) for m, x, y, s in points["smallnet"]}
        accs = [pick(_metric_accs(runs_root / f"smallnet-sage-s{s}")) for s in (0, 1, 2)]
        assert got["sage"][1] == pytest.approx(statistics.fmean(accs))
        assert got["sage"][2] == pytest.approx(statistics.stdev(accs))
        assert got["vanilla"][0] == 1.0 and not use_cpu  # these runs record wall time only
    with pytest.raises(ValueError, match="clean_key='acc'"):
        cost_points(runs, "acc")
    # labels of close points take the nearest free place, below then above; a far point keeps the default offset
    assert label_offsets([(100, 200), (101, 200), (102, 200), (103, 200), (300, 200)],
                         [40, 40, 40, 40, 40]) == [4.0, -6.0, 14.0, -16.0, 4.0]
    # a long label reaches a point 60 points to its right, whose label steps down; a short one does not
    assert label_offsets([(100, 200), (160, 200)], [120, 40]) == [4.0, -6.0]
    assert label_offsets([(100, 200), (160, 200)], [30, 40]) == [4.0, 4.0]
    # a label well below an earlier one keeps its place
    assert label_offsets([(100, 200), (100, 170)], [40, 40]) == [4.0, 4.0]
