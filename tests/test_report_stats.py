"""The report's paired statistics: t quantiles, paired CIs (t and bootstrap), and the paired tables."""
from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from sagemix.report import Run, write_report
from sagemix.report.paired import epoch_time, gap_table, paired_table, runs_table
from sagemix.report.stats import PairedDifference, paired_difference, t_cdf, t_quantile

# t_{0.975, df}, two-sided 95% critical values, from a printed table
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980}


def test_t_quantile_matches_the_printed_table() -> None:
    for df, want in T975.items():
        assert t_quantile(0.975, df) == pytest.approx(want, abs=6e-4), df
    assert t_quantile(0.5, 3) == 0.0
    assert t_quantile(0.025, 4) == pytest.approx(-t_quantile(0.975, 4))
    assert t_cdf(0.0, 7) == 0.5 and t_cdf(math.inf, 2) == 1.0
    assert t_cdf(-1.3, 5) == pytest.approx(1 - t_cdf(1.3, 5))


def test_t_quantile_and_cdf_match_scipy() -> None:
    st = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 5, 9, 10, 17, 40, 150):
        for p in (0.6, 0.9, 0.95, 0.975, 0.995):
            assert t_quantile(p, df) == pytest.approx(st.t.ppf(p, df), rel=1e-8, abs=1e-9)
        for x in (-4.0, -1.0, 0.3, 2.0):
            assert t_cdf(x, df) == pytest.approx(st.t.cdf(x, df), abs=1e-10)


def _naive_t(d: list[float]) -> tuple[float, float, float]:
    n = len(d)
    m = sum(d) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1))
    half = T975[n - 1] * sd / math.sqrt(n)
    return m, m - half, m + half


def test_paired_t_interval_equals_the_naive_one_and_excludes_zero_when_clear() -> None:
    a = [70.0, 71.5, 69.0, 72.0, 70.5]
    shift = [1.0, 1.3, 0.8, 1.1, 0.9]
    b = [x - s for x, s in zip(a, shift)]
    d = paired_difference(a, b, seeds=[0, 1, 2, 3, 4])
    m, lo, hi = _naive_t(shift)
    assert d.n == 5 and d.mean == pytest.approx(m) and d.std == pytest.approx(statistics.stdev(shift))
    assert d.lo == pytest.approx(lo, abs=1e-3) and d.hi == pytest.approx(hi, abs=1e-3)
    assert d.excludes_zero and d.cell().endswith(" *") and d.cell().startswith("+1.02 [")
    assert d.seeds == (0, 1, 2, 3, 4)
    # unpaired, the seed-to-seed spread of a (sd 1.2) would hide the 1-point difference; paired it does not
    assert statistics.stdev(a) > 1.0 > d.hi - d.lo


def test_paired_interval_contains_zero_when_the_differences_disagree() -> None:
    diffs = [1.0, -1.0, 2.0, -2.0, 0.5]
    b = [60.0, 61.0, 59.0, 62.0, 60.5]
    d = paired_difference([x + y for x, y in zip(b, diffs)], b)
    m, lo, hi = _naive_t(diffs)
    assert d.lo == pytest.approx(lo, abs=1e-3) and d.hi == pytest.approx(hi, abs=1e-3)
    assert d.lo < 0 < d.hi and not d.excludes_zero and "*" not in d.cell()
    neg = PairedDifference(n=3, mean=-1.0, std=0.1, lo=-1.2, hi=-0.8)
    assert neg.excludes_zero and neg.cell() == "-1.00 [-1.20, -0.80] *"


def test_bootstrap_interval_is_reproducible_and_sensible() -> None:
    shift = [1.0, 1.3, 0.8, 1.1, 0.9, 1.2]
    b = [50.0 + i for i in range(6)]
    a = [x + s for x, s in zip(b, shift)]
    one = paired_difference(a, b, method="bootstrap", seed=3)
    assert one == paired_difference(a, b, method="bootstrap", seed=3)
    assert min(shift) <= one.lo < one.mean < one.hi <= max(shift) and one.excludes_zero
    assert one.method == "bootstrap"
    mixed = paired_difference([x + s for x, s in zip(b, [1, -1, 2, -2, 0.5, -0.5])], b, method="bootstrap")
    assert not mixed.excludes_zero


@pytest.mark.parametrize("kwargs, match", [
    ({"a": [1, 2], "b": [1]}, "same length"), ({"a": [1], "b": [2]}, "at least 2 pairs"),
    ({"method": "z"}, "method must be one of"), ({"confidence": 1.5}, "confidence"),
    ({"a": [1, float("nan")]}, "finite"), ({"n_boot": 5}, "n_boot"),
])
def test_paired_difference_errors(kwargs: dict, match: str) -> None:
    args = {"a": [1.0, 2.0], "b": [0.0, 0.5], **kwargs}
    with pytest.raises(ValueError, match=match):
        paired_difference(**args)
    with pytest.raises(ValueError, match="df must be"):
        t_quantile(0.9, 0)
    with pytest.raises(ValueError, match=r"p must be a probability in \(0, 1\), got 1"):
        t_quantile(1, 3)


def _run(method: str, seed: int, final: float, *, base: str | None = None, cpu: float | None = None,
         train: float | None = None, corr: float | None = None) -> Run:
    summary = {"final_acc": final, "best_acc": final + 1, "median_last10_acc": final, "finished": True,
               "mean_epoch_time_s": 2.0}
    if cpu is not None:
        summary["mean_epoch_cpu_s"] = cpu
    metrics = [{"epoch": 1, "train_acc": 50.0, "test_acc": 40.0},
               {"epoch": 2, "train_acc": train if train is not None else 99.0, "test_acc": final}]
    ev = {"corruptions": {"corruptions": {"fog": {"acc": [corr] * 5}}, "mean_acc": corr}} if corr is not None else {}
    return Run(path=Path(f"/r/m-{method}-s{seed}"), method=method, model="m", dataset="offline", seed=seed,
               summary=summary, metrics=metrics, eval=ev, base_method=base or method)


def _matrix() -> list[Run]:
    van = [60.0, 62.0, 61.0, 63.0, 59.0]
    runs = [_run("vanilla", s, v, corr=v - 20) for s, v in enumerate(van)]
    runs += [_run("sage", s, v + 2 + 0.1 * s, cpu=3.0, corr=v - 20 + [1, -1, 2, -2, 0][s]) for s, v in enumerate(van)]
    runs += [_run("sage_no_rearrangement", s, v + [1, -1, 0.5, -0.5, 0][s], base="sage") for s, v in enumerate(van)]
    runs += [_run("mixup", s, v, train=80.0) for s, v in enumerate(van[:1])]  # one seed only
    return runs


def test_paired_table_marks_what_is_and_is_not_distinguishable() -> None:
    t = paired_table(_matrix(), "clean")
    rows = {r[1]: r for r in t.rows}
    assert [r[1] for r in t.rows] == ["vanilla", "mixup", "sage", "sage_no_rearrangement"]
    assert rows["vanilla"][5] == "(reference)" and rows["vanilla"][4] == "60.00 62.00 61.00 63.00 59.00"
    assert rows["sage"][5].startswith("+2.20 [") and rows["sage"][5].endswith(" *")
    assert rows["sage_no_rearrangement"][5].startswith("+0.00 [") and "*" not in rows["sage_no_rearrangement"][5]
    assert rows["sage_no_rearrangement"][7].startswith("-2.20 [") and rows["sage_no_rearrangement"][7].endswith("*")
    assert rows["mixup"][5] == "—"  # one pair cannot give an interval
    training = _run("sage", 5, 10.0)  # a sixth seed still training: its last epoch is not a final number
    training.summary["finished"] = False
    runs = _matrix() + [training, _run("vanilla", 5, 61.0)]
    assert {r[1]: r for r in paired_table(runs, "clean").rows}["sage"][2] == "5"
    assert {r[1]: r for r in gap_table(runs).rows}["sage"][2] == "5"
    raw = {r[1]: r for r in t.raw}
    assert raw["sage"][6:11][0] == 5 and raw["sage"][6:11][4] is True and raw["sage"][7] == pytest.approx(2.2)
    corr = {r[1]: r for r in paired_table(_matrix(), "corruptions").rows}
    assert "*" not in corr["sage"][5] and corr["sage"][5].startswith("+0.00 [")
    with pytest.raises(ValueError, match="ci must be one of"):
        paired_table(_matrix(), ci="z")
    with pytest.raises(ValueError, match="clean_key must be one of"):
        paired_table(_matrix(), clean_key="top5")


def test_runs_gap_and_cost_use_each_run_and_cpu_time_when_recorded() -> None:
    runs = _matrix()
    t = runs_table(runs)
    assert len(t.rows) == len(runs)
    sage0 = next(r for r in t.rows if r[1] == "sage" and r[2] == "0")
    assert sage0[5] == "62.00" and sage0[9] == "3.00 (cpu)"
    assert epoch_time(runs[0]) == (2.0, "wall")
    gap = {r[1]: r for r in gap_table(runs).raw}
    assert gap["mixup"][3] == 80.0 and gap["mixup"][7] == pytest.approx(20.0)


def test_write_report_has_the_paired_tables_and_the_gap_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    written = write_report(_matrix(), tmp_path / "rep", ci="bootstrap")
    md = written["report"].read_text()
    assert "Paired differences over seeds: clean test accuracy (final, %)" in md and "bootstrap" in md
    assert "Every run's numbers" in md and "train_test_gap.png" in md
    assert {"paired_clean", "paired_corruptions", "gap", "runs", "train_test_gap"} <= set(written)
    header = written["paired_clean"].read_text().splitlines()[0]
    assert "excludes_0_vs_vanilla" in header and "ci_lo_vs_sage" in header


def test_report_cli_options_reach_the_tables(tmp_path: Path, capsys) -> None:
    import json

    from sagemix.cli import main

    for method, seed, acc in [("vanilla", 0, 60.0), ("vanilla", 1, 62.0), ("vanilla", 2, 61.0),
                              ("sage", 0, 62.0), ("sage", 1, 64.5), ("sage", 2, 63.0)]:
        d = tmp_path / "runs" / f"{method}-s{seed}"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"method": method, "model": "m", "dataset": "offline",
                                                    "seed": seed, "finished": True, "final_acc": acc,
                                                    "best_acc": acc + 1, "median_last10_acc": acc}))
        (d / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_acc": 98.0, "test_acc": acc + 1}) + "\n"
                                         + json.dumps({"epoch": 2, "train_acc": 99.0, "test_acc": acc}) + "\n")
    out = tmp_path / "rep"
    assert main(["report", str(tmp_path / "runs"), "--out", str(out), "--no-plots", "--clean-metric", "best_acc",
                 "--references", "vanilla"]) == 0
    md = (out / "report.md").read_text()
    assert "clean test accuracy (best, %)" in md and "Δ vs vanilla [95% CI]" in md and "Δ vs sage" not in md
    assert "| m | sage | 3 | 64.17 ± 1.26 | 63.00 65.50 64.00 | +2.17 [" in md
