"""p-values, Holm's correction, the resolvable difference, the primary endpoints and the gate (issue 19)."""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from sagemix.report import write_report
from sagemix.report.paired import paired_table
from sagemix.report.runs import Run
from sagemix.report.stats import holm, paired_difference, paired_t_p, t_quantile
from sagemix.report.verdict import (Endpoint, GateOptions, _readout, dataset_verdict, endpoint_results,
                                    endpoints_table, gate_result, parse_endpoints, parse_gate)


def _naive_holm(p: list[float]) -> list[float]:
    """Holm by its definition: q_i = max over the tests ranked at or before i of min(1, (m - rank + 1) p)."""
    m = len(p)
    rank = sorted(range(m), key=lambda i: p[i])
    q = [0.0] * m
    for pos, i in enumerate(rank):
        q[i] = max(min(1.0, (m - k) * p[rank[k]]) for k in range(pos + 1))
    return q


def test_paired_p_value_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    for n in (2, 3, 5, 8):
        for _ in range(5):
            a = [rng.gauss(60, 2) for _ in range(n)]
            b = [x - rng.gauss(0.5, 1) for x in a]
            d = paired_difference(a, b)
            assert d.p == pytest.approx(float(stats.ttest_rel(a, b).pvalue), rel=1e-6, abs=1e-9)


def test_p_value_edge_cases() -> None:
    assert paired_t_p(0.0, 0.0, 5) == 1.0 and paired_t_p(1.0, 0.0, 5) == 0.0
    assert paired_difference([1, 2, 3], [1, 2, 3]).p == 1.0
    with pytest.raises(ValueError, match="df must be"):
        paired_t_p(1.0, 1.0, 1)
    with pytest.raises(ValueError, match="finite"):
        paired_t_p(math.nan, 1.0, 5)


def test_format_p() -> None:
    from sagemix.report.stats import format_p
    assert [format_p(p) for p in (0.0, 0.000999, 0.001, 0.0499, 1.0)] == ["<0.001", "<0.001", "0.001", "0.050", "1.000"]


def test_holm_by_hand_and_against_its_definition() -> None:
    # by hand: sorted 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> 0.06)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    rng = random.Random(1)
    for m in (1, 2, 5, 9):
        p = [rng.random() ** 3 for _ in range(m)]
        q = holm(p)
        assert q == pytest.approx(_naive_holm(p))
        assert all(qi >= pi for qi, pi in zip(q, p)) and all(qi <= 1 for qi in q)
    q = holm([0.01, math.nan, 0.02])  # NaN: no test, not counted in m
    assert math.isnan(q[1]) and q[0] == pytest.approx(0.02) and q[2] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="p-values"):
        holm([1.5])


def test_holm_on_the_committed_smallnet_clean_differences() -> None:
    """The issue's check: of the nine clean differences to vanilla in results/evidence, Holm keeps two."""
    import csv

    path = Path(__file__).resolve().parents[1] / "results" / "evidence" / "report" / "paired_clean.csv"
    rows = list(csv.DictReader(path.open()))
    seeds = {r["method"]: dict(kv.split(":") for kv in r["per_seed"].split(";")) for r in rows}
    van = seeds.pop("vanilla")
    diffs = {m: paired_difference([float(v[s]) for s in sorted(v)], [float(van[s]) for s in sorted(v)])
             for m, v in seeds.items()}
    assert len(diffs) == 9
    q = dict(zip(diffs, holm([d.p for d in diffs.values()])))
    assert sum(d.excludes_zero for d in diffs.values()) == 6
    assert sorted(m for m in q if q[m] < 0.05) == ["cutmix", "puzzlemix"]
    assert q["sage"] >= 0.05


def test_resolvable_is_the_interval_half_width() -> None:
    a, b = [61.0, 63.0, 62.5, 60.0, 64.0], [60.0, 61.5, 62.0, 59.0, 62.0]
    d = paired_difference(a, b)
    diffs = [x - y for x, y in zip(a, b)]
    sd = math.sqrt(sum((x - d.mean) ** 2 for x in diffs) / 4)
    assert d.resolvable == pytest.approx(t_quantile(0.975, 4) * sd / math.sqrt(5))
    assert d.resolvable == pytest.approx((d.hi - d.lo) / 2)
    assert d.excludes_zero == (abs(d.mean) > d.resolvable)


def _run(method: str, seed: int, final: float, *, corr: float | None = None, train: float = 100.0,
         lr: float = 0.05, wd: float = 5e-3, curve: tuple[float, float] | None = None, base: str | None = None) -> Run:
    before, last = curve if curve is not None else (final, final)
    metrics = [{"epoch": 10, "train_acc": 50.0, "test_acc": 40.0},
               {"epoch": 90, "train_acc": train, "test_acc": before},
               {"epoch": 100, "train_acc": train, "test_acc": last}]
    ev = {"corruptions": {"mean_acc": corr, "corruptions": {"fog": {"acc": [corr] * 5}}}} if corr is not None else {}
    return Run(path=Path(f"/r/m-{method}-s{seed}"), method=method, model="m", dataset="fashion_mnist", seed=seed,
               summary={"final_acc": final, "best_acc": final, "median_last10_acc": final, "finished": True},
               config={"lr": lr, "weight_decay": wd}, metrics=metrics, eval=ev, base_method=base or method)


VAN = [80.0, 81.5, 80.5, 82.0, 81.0]


def _gate_matrix(mixup_gain: list[float], *, stuck: bool = False) -> list[Run]:
    runs = [_run("vanilla", s, v, corr=v - 10) for s, v in enumerate(VAN)]
    runs += [_run("mixup", s, v + mixup_gain[s], train=90.0) for s, v in enumerate(VAN)]
    runs += [_run("manifold_mixup", s, v + [0.5, -0.5, 0.2, -0.3, 0.1][s]) for s, v in enumerate(VAN)]
    runs += [_run("cutmix", s, v - 1 if not (stuck and s == 2) else 40.0) for s, v in enumerate(VAN)]
    runs += [_run("sage", s, v + 1.0 + 0.1 * s, corr=v - 9) for s, v in enumerate(VAN)]
    return runs


GRID = tuple(_run(f"vanilla_{lr}_{wd}", s, 78.0 + s * 0.5, lr=lr, wd=wd, base="vanilla")
             for lr, wd in [(0.02, 5e-3), (0.1, 5e-3), (0.05, 5e-4)] for s in (0, 1))


def test_gate_passes_with_a_clear_control_and_fails_without() -> None:
    good = gate_result(_gate_matrix([2.0, 2.2, 1.9, 2.1, 2.0]), GateOptions(grid=GRID))
    assert good["passed"] and good["control"] == "mixup"
    assert good["control_minus_vanilla"] == pytest.approx(2.04)
    assert good["vanilla_sd"] == pytest.approx(0.7905694, rel=1e-6) and good["seeds"] == 5
    ctrl = {c["method"]: c for c in good["checks"]["positive_control"]["controls"]}
    # Holm over the three controls, by hand from their raw p-values
    assert [ctrl[m]["p_holm"] for m in ("mixup", "manifold_mixup", "cutmix")] == pytest.approx(
        _naive_holm([ctrl[m]["p"] for m in ("mixup", "manifold_mixup", "cutmix")]))
    assert ctrl["mixup"]["passes"] and not ctrl["cutmix"]["passes"]  # cutmix is reliably *worse*: no control
    assert good["checks"]["vanilla_tuned"]["ok"] and len(good["checks"]["vanilla_tuned"]["grid"]) == 4

    weak = gate_result(_gate_matrix([2.0, -1.0, 1.5, 0.5, 0.0]), GateOptions(grid=GRID))
    assert not weak["passed"] and not weak["checks"]["positive_control"]["ok"]
    assert weak["checks"]["vanilla_sd"]["ok"]  # the rest still holds: only the control failed

    untuned = gate_result(_gate_matrix([2.0, 2.2, 1.9, 2.1, 2.0]), GateOptions(grid=GRID[:2]))
    assert not untuned["passed"] and not untuned["checks"]["vanilla_tuned"]["ok"]  # 2 settings < 4
    better = GRID + tuple(_run("vanilla_x", s, 90.0, lr=0.2, wd=5e-3, base="vanilla") for s in (0, 1))
    assert not gate_result(_gate_matrix([2.0] * 5), GateOptions(grid=better))["checks"]["vanilla_tuned"]["ok"]


def test_gate_flags_plateau_runs_unfit_and_unconverged_vanilla() -> None:
    g = gate_result(_gate_matrix([2.0, 2.2, 1.9, 2.1, 2.0], stuck=True), GateOptions(grid=GRID))
    assert not g["passed"] and g["checks"]["no_plateau_runs"]["value"][0].startswith("cutmix seed 2")
    runs = _gate_matrix([2.0] * 5)
    runs[0] = _run("vanilla", 0, VAN[0], train=95.0, curve=(78.0, VAN[0]))
    g = gate_result(runs, GateOptions(grid=GRID))
    assert not g["checks"]["vanilla_fits"]["ok"] and g["checks"]["vanilla_fits"]["value"] == 95.0
    assert g["checks"]["vanilla_converged"]["value"] == pytest.approx(0.4)  # (2.0 + 0 + 0 + 0 + 0) / 5
    runs[0] = _run("vanilla", 0, VAN[0], curve=(78.0, VAN[0]))  # fits, still moving 2 points at the end
    assert gate_result(runs, GateOptions(grid=GRID, max_last_change=0.5))["passed"]
    g = gate_result(runs, GateOptions(grid=GRID, max_last_change=0.3))
    assert not g["passed"] and not g["checks"]["vanilla_converged"]["ok"] and g["checks"]["vanilla_fits"]["ok"]


def test_convergence_spans_back_to_the_last_evaluation_at_or_before_90_percent() -> None:
    from sagemix.report.verdict import _last_change

    def run(epochs: list[int]) -> Run:
        r = _run("vanilla", 0, 80.0)
        r.metrics = [{"epoch": e, "test_acc": float(e)} for e in epochs]  # accuracy = epoch: the span is read off
        return r

    assert _last_change(run(list(range(1, 201)))) == 20.0          # every epoch of 200: 180 -> 200
    assert _last_change(run([40, 80, 120, 160, 200])) == 40.0       # every 40 of 200: 160 -> 200
    assert _last_change(run([10, 20, 30, 40, 50, 60, 70, 80, 90, 100])) == 10.0  # every 10 of 100: 90 -> 100
    assert _last_change(run([100])) is None and _last_change(run([95, 100])) is None  # nothing at or before 90


def test_endpoints_by_hand() -> None:
    runs = _gate_matrix([2.0, 2.2, 1.9, 2.1, 2.0])
    eps = [Endpoint("sage", "vanilla", "clean"), Endpoint("sage", "mixup", "clean"),
           Endpoint("sage", "vanilla", "corruptions"), Endpoint("sage", "comixup", "clean")]
    res = endpoint_results(runs, eps)
    d = [1.0 + 0.1 * s for s in range(5)]
    assert res[0]["diff"] == pytest.approx(sum(d) / 5) and res[0]["n"] == 5
    assert res[2]["diff"] == pytest.approx(1.0) and res[2]["p"] == 0.0  # every seed exactly +1
    assert res[3]["n"] == 0 and res[3]["p"] is None and res[3]["p_holm"] is None  # no comixup runs
    ps = [r["p"] for r in res[:3]]
    assert [r["p_holm"] for r in res[:3]] == pytest.approx(_naive_holm(ps))
    ref = paired_difference([v + x for v, x in zip(VAN, d)], VAN)
    assert res[0]["ci"] == pytest.approx([ref.lo, ref.hi]) and res[0]["resolvable"] == pytest.approx(ref.resolvable)


def test_parse_endpoints_and_gate_errors() -> None:
    assert parse_endpoints(["sage:vanilla", {"a": "sage", "b": "mixup", "metric": "corruptions"}]) == [
        Endpoint("sage", "vanilla", "clean"), Endpoint("sage", "mixup", "corruptions")]
    for bad, match in [([], "non-empty"), (["sage"], "not 'a:b'"), (["sage:sage"], "two different"),
                       (["sage:vanilla:top5"], "metric must be"), (["a:b", "a:b"], "twice"), ([{"a": 1}], "keys")]:
        with pytest.raises(ValueError, match=match):
            parse_endpoints(bad)
    assert parse_gate({"controls": ["mixup"], "max_sd": 1.5}).controls == ("mixup",)
    for bad, match in [({"nope": 1}, "unknown"), ({"controls": "mixup"}, "controls"), ({"alpha": -1}, "alpha"),
                       ([], "must be an object")]:
        with pytest.raises(ValueError, match=match):
            parse_gate(bad)


def test_paired_table_holm_column_is_per_reference() -> None:
    runs = _gate_matrix([2.0, 2.2, 1.9, 2.1, 2.0])
    t = paired_table(runs, "clean", references=["vanilla"])
    raw = {r[1]: r for r in t.raw}
    # columns per reference: n, diff, lo, hi, excludes_0, p, p_holm, resolvable
    methods = ["mixup", "manifold_mixup", "cutmix", "sage"]
    ps = [raw[m][6 + 5] for m in methods]
    assert [raw[m][6 + 6] for m in methods] == pytest.approx(_naive_holm(ps))
    assert raw["vanilla"][6 + 5] is None
    row = {r[1]: r for r in t.rows}["mixup"]
    assert row[6].startswith("<0.001 (") or row[6][0] == "0"


def test_write_report_writes_the_verdict(tmp_path: Path) -> None:
    runs = _gate_matrix([2.0, 2.2, 1.9, 2.1, 2.0])
    written = write_report(runs, tmp_path / "rep", plots=False, references=["vanilla"],
                           endpoints=parse_endpoints(["sage:vanilla:clean", "sage:mixup:clean"]),
                           gate=GateOptions(grid=GRID))
    v = json.loads(written["verdict"].read_text())
    assert v["gate"]["passed"] is True and v["gate"]["control"] == "mixup"
    assert {"passed", "control", "control_minus_vanilla", "ci", "seeds", "vanilla_sd"} <= set(v["gate"])
    assert v["seeds"] == [0, 1, 2, 3, 4] and "sage" in v["methods"]
    assert [(e["a"], e["b"], e["metric"]) for e in v["endpoints"]] == [("sage", "vanilla", "clean"),
                                                                       ("sage", "mixup", "clean")]
    assert {"diff", "ci", "p", "p_holm"} <= set(v["endpoints"][0])
    md = written["report"].read_text()
    assert md.index("## Verdict") < md.index("## Paired differences") and "PASSED" in md
    # sage - vanilla = 1.0..1.4 and sage - mixup = -0.6..-1.1 on every seed: both resolved, in words
    assert v["verdict"] == ("the 2 endpoints (Holm p < 0.05): sage better than vanilla on clean (+1.20); "
                            "mixup better than sage on clean (+0.84)")
    assert "Primary endpoints" in md and "p (Holm)" in md and f"**Verdict:** {v['verdict']}." in md


def test_the_verdict_names_each_resolved_endpoint_and_lists_the_rest() -> None:
    def end(a: str, b: str, metric: str, diff: float, q: float) -> dict:
        return {"a": a, "b": b, "metric": metric, "diff": diff, "p_holm": q}
    ends = [end("sage", "vanilla", "clean", 1.53, 0.015), end("sage", "mixup", "clean", 0.34, 1.0),
            end("sage", "mixup", "corruptions", -15.49, 1e-4), end("sage", "comixup", "corruptions", -4.45, 0.145)]
    assert _readout(ends, 0.05) == (
        "the 4 endpoints (Holm p < 0.05): sage better than vanilla on clean (+1.53); mixup better than sage on "
        "corruptions (+15.49); not resolved: sage vs mixup on clean, sage vs comixup on corruptions")
    # the threshold is the gate's alpha, compared strictly; nothing resolved says so
    assert _readout(ends[:1], 0.015) == ("the 1 endpoint (Holm p < 0.015): none resolved; "
                                         "not resolved: sage vs vanilla on clean")


def test_a_control_needs_the_gates_seeds_and_a_failed_gate_gives_no_verdict() -> None:
    # mixup ahead on every seed, but paired on 2 seeds only: under the gate's >= 3 it cannot pass
    runs = [r for r in _gate_matrix([3.0, 3.1, 2.9, 3.0, 3.0]) if not (r.method == "mixup" and r.seed > 1)]
    g = gate_result(runs, GateOptions(grid=GRID))
    ctrl = {c["method"]: c for c in g["checks"]["positive_control"]["controls"]}
    assert ctrl["mixup"]["n"] == 2 and ctrl["mixup"]["diff"] > 0 and not ctrl["mixup"]["passes"]
    assert not g["passed"]
    v = dataset_verdict(runs, endpoints=parse_endpoints(["sage:comixup:clean"]), gate=GateOptions(grid=GRID))
    assert v["gate"]["failed"] == ["positive_control"]
    assert v["verdict"].startswith("none: the gate failed (positive_control)")
    assert v["verdict"].endswith("the full comparison was not run")  # no comixup: nothing measured
    ok = dataset_verdict(_gate_matrix([2.0, 2.2, 1.9, 2.1, 2.0]), endpoints=parse_endpoints(["sage:vanilla"]),
                         gate=GateOptions(grid=GRID))
    assert ok["gate"]["failed"] == [] and ok["verdict"] == ("the 1 endpoint (Holm p < 0.05): sage better than "
                                                            "vanilla on clean (+1.20)")
    # a passed gate before the full comparison: the endpoints' methods have no runs yet, so no verdict yet
    gate_only = [r for r in _gate_matrix([2.0, 2.2, 1.9, 2.1, 2.0]) if r.method != "sage"]
    pending = dataset_verdict(gate_only, endpoints=parse_endpoints(["sage:vanilla", "sage:mixup"]),
                              gate=GateOptions(grid=GRID))
    assert pending["gate"]["passed"] is True
    assert pending["verdict"] == ("pending: the gate passed; 0 of 2 endpoints measured on at least 5 paired seeds "
                                  "(the full comparison is not finished)")
    # a partly finished comparison: SAGE on 2 of the 5 seeds is numbers, not yet a verdict, however clear
    partial = [r for r in _gate_matrix([2.0, 2.2, 1.9, 2.1, 2.0]) if not (r.method == "sage" and r.seed > 1)]
    part = dataset_verdict(partial, endpoints=parse_endpoints(["sage:vanilla", "sage:mixup"]),
                           gate=GateOptions(grid=GRID))
    assert [e["seeds"] for e in part["endpoints"]] == [[0, 1], [0, 1]] and part["endpoints"][0]["diff"] is not None
    assert part["verdict"].startswith("pending: the gate passed; 0 of 2 endpoints measured on at least 5 paired")
    assert dataset_verdict(partial, endpoints=parse_endpoints(["sage:vanilla"]),
                           gate=GateOptions(grid=GRID, endpoint_seeds=2))["verdict"].startswith("the 1 endpoint")
    rows = {r[1]: r[-1] for r in endpoints_table(part["endpoints"], min_seeds=5).rows}
    assert rows == {"vanilla": "pending (2 of 5 seeds)", "mixup": "pending (2 of 5 seeds)"}
    assert dataset_verdict(gate_only, gate=GateOptions(grid=GRID))["verdict"].startswith("none named: the gate passed")
    # every control loses: the one named is the smallest loss, not the most significant one
    losing = _gate_matrix([-3.0, -2.0, -4.0, -3.5, -2.5])
    losing = [r if r.method != "cutmix" else _run("cutmix", r.seed, r.summary["final_acc"] - 30 + 0.1 * r.seed)
              for r in losing]
    g = gate_result(losing, GateOptions(grid=GRID))
    ctrl = {c["method"]: c for c in g["checks"]["positive_control"]["controls"]}
    assert ctrl["cutmix"]["p_holm"] < ctrl["manifold_mixup"]["p_holm"]
    assert ctrl["manifold_mixup"]["diff"] == pytest.approx(0.0) and ctrl["mixup"]["diff"] < 0  # none gains
    assert g["control"] == "manifold_mixup" and g["control_minus_vanilla"] == ctrl["manifold_mixup"]["diff"]


def test_gate_prefers_the_eval_mode_train_accuracy() -> None:
    runs = _gate_matrix([2.0, 2.2, 1.9, 2.1, 2.0])
    for r in runs[:5]:
        r.metrics[-1]["train_acc"] = 97.5  # logged on augmented batches: below 99
    fits = gate_result(runs, GateOptions(grid=GRID))["checks"]["vanilla_fits"]
    assert not fits["ok"] and fits["value"] == 97.5 and "logged train accuracy" in fits["measured"]
    runs[0].eval["train_fit"] = {"acc": 99.9, "n": 1000}  # one run measured: the rest still count as logged
    fits = gate_result(runs, GateOptions(grid=GRID))["checks"]["vanilla_fits"]
    assert not fits["ok"] and "1 of 5 runs; the others: logged" in fits["measured"]
    for r in runs[:5]:
        r.eval["train_fit"] = {"acc": 99.8, "n": 1000}  # sagemix eval --train-fit
    fits = gate_result(runs, GateOptions(grid=GRID))["checks"]["vanilla_fits"]
    assert fits["ok"] and fits["value"] == 99.8 and fits["measured"].endswith("(5 of 5 runs)")


def test_a_grid_folder_not_run_yet_is_an_empty_grid(tmp_path: Path) -> None:
    g = parse_gate({"grid": str(tmp_path / "not_yet")})
    assert g.grid == ()
    res = gate_result(_gate_matrix([2.0] * 5), g)
    assert not res["checks"]["vanilla_tuned"]["ok"] and len(res["checks"]["vanilla_tuned"]["grid"]) == 1
