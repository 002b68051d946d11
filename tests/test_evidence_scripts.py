"""The scripts behind results/evidence/: record_runs (finished runs only), verdict (gathers the reports'
verdict.json) and gate_summary (the README's gate tables), on run folders in the trainer's format."""
from __future__ import annotations

import importlib.util
import json
import math
import statistics
from pathlib import Path

import pytest

from sagemix.report import write_report
from sagemix.report.runs import collect_runs
from sagemix.report.stats import t_quantile
from sagemix.report.verdict import GateOptions, parse_endpoints

SCRIPTS = Path(__file__).resolve().parents[1] / "results" / "evidence" / "scripts"
VANILLA = [86.0, 87.0, 86.5]
GAINS = {"vanilla": [0.0, 0.0, 0.0], "mixup": [1.1, 1.3, 1.2], "manifold_mixup": [0.5, -0.4, 0.1],
         "cutmix": [-1.0, 0.2, -0.3]}


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"evidence_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_run(folder: Path, method: str, seed: int, final: float, *, finished: bool = True,
               lr: float = 0.05, wd: float = 5e-3) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"method": method, "seed": seed, "model": "preactresnet18",
                                                    "dataset": "fashion_mnist", "lr": lr, "weight_decay": wd}))
    (folder / "summary.json").write_text(json.dumps({"method": method, "seed": seed, "finished": finished,
                                                     "final_acc": final, "best_acc": final,
                                                     "median_last10_acc": final}))
    rows = [{"epoch": e, "train_acc": 100.0, "test_acc": final if e > 5 else 50.0, "epoch_cpu_s": 2.0,
             "epoch_time_s": 2.5} for e in range(1, 11)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def gate_runs(tmp_path: Path) -> tuple[Path, Path]:
    runs, grid = tmp_path / "runs" / "evidence", tmp_path / "runs" / "grid"
    for method, gains in GAINS.items():
        for seed, (v, g) in enumerate(zip(VANILLA, gains)):
            _write_run(runs / f"m-{method}-s{seed}", method, seed, v + g)
    _write_run(runs / "m-sage-s0", "sage", 0, 50.0, finished=False)  # still training: never recorded
    for i, (lr, wd) in enumerate([(0.02, 5e-3), (0.1, 5e-3), (0.05, 5e-4)]):
        _write_run(grid / f"m-vanilla{i}-s0", "vanilla", 0, 85.0, lr=lr, wd=wd)
    return runs, grid


def test_record_verdict_and_gate_summary(gate_runs, tmp_path: Path, capsys) -> None:
    runs, grid = gate_runs
    rec = tmp_path / "record"
    assert _script("record_runs").main(runs.parent, rec) == 0
    recorded = sorted(p.name for p in (rec / "evidence").iterdir())
    assert len(recorded) == 12 and "m-sage-s0" not in recorded  # the unfinished run is left out
    assert (rec / "evidence" / "m-mixup-s1" / "metrics.jsonl").read_text() == (
        runs / "m-mixup-s1" / "metrics.jsonl").read_text()

    report = tmp_path / "report"
    write_report(collect_runs([rec / "evidence"]), report, plots=False, references=["vanilla"],
                 endpoints=parse_endpoints(["sage:vanilla:clean"]), gate=GateOptions(grid=tuple(collect_runs([grid]))))
    out = tmp_path / "verdict.json"
    assert _script("verdict").main([f"fmnist={report}", "--out", str(out)]) == 0
    v = json.loads(out.read_text())["fmnist"]
    assert v["source"] == str(report) and v["gate"]["control"] == "mixup"
    assert v["gate"]["passed"] == (v["gate"]["failed"] == [])
    assert v["endpoints"][0]["diff"] is None  # no finished SAGE run
    # one dataset gated in two regimes, oldest first: the entry is the last, the first kept whole under it
    report2 = tmp_path / "report2"
    write_report(collect_runs([rec / "evidence"]), report2, plots=False, references=["vanilla"],
                 endpoints=parse_endpoints(["sage:vanilla:clean"]), gate=GateOptions(min_seeds=4))
    assert _script("verdict").main([f"fmnist={report}", f"fmnist={report2}", "--out", str(out)]) == 0
    both = json.loads(out.read_text())["fmnist"]
    assert both["source"] == str(report2) and "vanilla_seeds" in both["gate"]["failed"]
    assert both["earlier_regimes"] == [v]
    (tmp_path / "empty").mkdir()
    assert _script("verdict").main([f"x={tmp_path / 'empty'}", "--out", str(out)]) == 2  # no verdict.json there

    capsys.readouterr()
    assert _script("gate_summary").main([f"fmnist={report}={rec / 'evidence'}"]) == 0
    text = capsys.readouterr().out
    assert "| vanilla | 86.00 | 87.00 | 86.50 | 86.50 ± 0.50 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| mixup | 3 |"))
    need = t_quantile(1 - 0.05 / 6, 2) * statistics.stdev(GAINS["mixup"]) / math.sqrt(3)
    assert row.split("|")[3].strip() == "+1.20" and row.split("|")[-2].strip() == f"{need:.2f}"
    assert "training of 12 runs: 0.07 CPU-hours" in text  # 12 runs x 10 epochs x 2 s
    assert _script("gate_summary").main(["no-separators"]) == 2
