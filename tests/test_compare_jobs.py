"""`sagemix compare --jobs 2`: two runs at once in spawned processes give the same run folders and numbers
as one after the other, stay resumable, and the report options of a comparison reach the report."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sagemix.compare import ComparisonConfig, run_comparison

TINY = {"epochs": 1, "batch_size": 32, "train_limit": 64, "test_limit": 32, "milestones": [], "device": "cpu",
        "progress": False, "threads": 1}


def _cfg(out: Path, **kw) -> ComparisonConfig:
    d = {"recipe": "offline", "out": str(out), "methods": ["vanilla", "sage_no_rearrangement"], "seeds": [0],
         "variants": {"sage_no_rearrangement": {"method": "sage", "method_kwargs.rand_pos": 0}},
         "overrides": dict(TINY), "report": {"plots": False, "clean_metric": "best_acc", "ci": "bootstrap"}}
    d.update(kw)
    return ComparisonConfig.from_dict(d)


def _numbers(run_dir: Path) -> list[tuple]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["epoch"], r["train_loss"], r["train_acc"], r["test_acc"]) for r in rows]


@pytest.mark.slow
def test_two_jobs_equal_one_job_and_resume(tmp_path: Path) -> None:
    one = _cfg(tmp_path / "one")
    two = _cfg(tmp_path / "two")
    r1 = run_comparison(one, log=lambda s: None)
    lines: list[str] = []
    r2 = run_comparison(two, jobs=2, log=lines.append)
    assert not r1["failed"] and not r2["failed"], (r1["failed"], r2["failed"])
    assert sorted(r2["trained"]) == sorted(r1["trained"]) == ["smallnet-sage_no_rearrangement-s0",
                                                                "smallnet-vanilla-s0"]
    assert any("2 at once" in s for s in lines)
    for name in r1["trained"]:
        assert _numbers(tmp_path / "one" / name) == _numbers(tmp_path / "two" / name)
        summary = json.loads((tmp_path / "two" / name / "summary.json").read_text())
        assert summary["finished"] is True
    report = (tmp_path / "two" / "report" / "report.md").read_text()
    assert "clean test accuracy (best, %)" in report and "| sage_no_rearrangement |" in report
    again = run_comparison(two, log=lambda s: None, report=False)
    assert sorted(again["skipped"]) == sorted(r1["trained"]) and not again["trained"]


def test_jobs_and_report_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="jobs must be an int >= 1"):
        run_comparison(_cfg(tmp_path), jobs=0)
    with pytest.raises(ValueError, match="report.ci' must be one of"):
        _cfg(tmp_path, report={"ci": "z"})
    with pytest.raises(ValueError, match="report.clean_metric' must be one of"):
        _cfg(tmp_path, report={"clean_metric": "top5"})
    with pytest.raises(ValueError, match="'report' must be an object with some of"):
        _cfg(tmp_path, report={"colour": 1})
