"""sagemix.bench and `sagemix bench`: ratios to vanilla, peak memory, kernels, JSON/Markdown, errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from sagemix.bench import (BenchReport, PeakMemory, bench_kernels, bench_methods, memory_method,
                           parse_input_size)


def tiny() -> nn.Module:
    """A model without the stage protocol (so Manifold Mixup cannot run on it)."""
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 5))


@pytest.fixture(scope="module")
def report() -> BenchReport:
    return bench_methods(["sage", "mixup", "manifold_mixup"], model=tiny, num_classes=5, input_size=(8, 12),
                         batch_size=5, steps=3, warmup=1, progress=False)


def test_ratios_positive_and_vanilla_exactly_one(report: BenchReport) -> None:
    names = [m.method for m in report.methods]
    assert names == ["vanilla", "sage", "mixup", "manifold_mixup"]  # vanilla added first
    ratios = report.ratios()
    assert ratios["vanilla"] == 1.0
    for name in ("sage", "mixup"):
        m = next(r for r in report.methods if r.method == name)
        assert m.error is None and m.steps == 3
        assert m.ratio > 0 and m.step_ms > 0 and m.step_ms_min <= m.step_ms
        vanilla = report.methods[0].step_ms
        assert m.ratio == pytest.approx(m.step_ms / vanilla)
        assert m.mix_ms is not None and m.mix_ms > 0
        assert m.peak_mem_mb is not None and m.peak_mem_mb >= 0
        assert m.cpu_ms is not None and m.cpu_ms > 0  # process CPU time on CPU
    sage = next(r for r in report.methods if r.method == "sage")
    mixup = next(r for r in report.methods if r.method == "mixup")
    assert sage.saliency_ms is not None and sage.saliency_ms > 0  # SAGE has a clean pass
    assert mixup.saliency_ms is None  # Mixup has none


def test_unrunnable_method_reported_not_raised(report: BenchReport) -> None:
    mm = next(r for r in report.methods if r.method == "manifold_mixup")
    assert mm.error and "stage protocol" in mm.error and mm.ratio is None
    md = report.to_markdown()
    assert "| manifold_mixup | — | — | — | — | — | — | — |" in md
    assert "manifold_mixup: not measured" in md
    assert "| vanilla |" in md and "| 1.00 |" in md


def test_json_round_trip(report: BenchReport, tmp_path: Path) -> None:
    p = tmp_path / "b.json"
    p.write_text(json.dumps(report.to_dict()))
    back = BenchReport.from_dict(json.loads(p.read_text()))
    assert back.ratios() == report.ratios()
    assert back.input_size == (8, 12) and back.batch_size == 5
    assert back.to_markdown() == report.to_markdown()


def test_peak_memory_sees_a_large_allocation() -> None:
    if memory_method("cpu").startswith("growth"):
        pytest.skip("no /proc/self/statm on this platform")
    with PeakMemory(torch.device("cpu")) as pm:
        x = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        x += 1
        del x
    assert pm.peak >= 48 * 2**20
    with PeakMemory(torch.device("cpu")) as small:
        torch.ones(16)
    assert small.peak < 16 * 2**20


def test_kernels_sage_k39_and_exhaustive() -> None:
    res = bench_kernels(input_size=32, batch_size=2, repeats=1, warmup=0, include=("sage",), progress=False)
    assert [k.name for k in res] == ["sage_mix (K=39)", "sage_mix (exhaustive, K=3969)"]
    assert all(k.error is None and k.ms > 0 for k in res)


def test_kernels_graph_cuts() -> None:
    pytest.importorskip("gco")
    res = bench_kernels(input_size=8, batch_size=3, repeats=1, warmup=0, include=("puzzlemix", "comixup"),
                        progress=False)
    names = [k.name for k in res]
    assert "puzzlemix graphcut_mask (n=2)" in names and "puzzlemix graphcut_mask (n=8)" in names
    assert "puzzlemix graphcut_mask (n=16)" not in names  # 16 does not divide 8
    assert "comixup mixer" in names and "comixup solve_labelling (1 partition of 3)" in names
    assert all(k.error is None and k.ms > 0 for k in res), res


@pytest.mark.parametrize("value, expected", [(32, (32, 32)), ("32", (32, 32)), ("24x40", (24, 40)),
                                             ((5, 7), (5, 7))])
def test_parse_input_size(value, expected) -> None:
    assert parse_input_size(value) == expected


@pytest.mark.parametrize("value", ["abc", "0", (3,), True, 2.5, "3x4x5"])
def test_parse_input_size_errors(value) -> None:
    with pytest.raises(ValueError, match="input_size"):
        parse_input_size(value)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        bench_methods(["nope"], model=tiny, progress=False)
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        bench_methods(["mixup"], model=tiny, steps=0, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        bench_methods(["mixup"], model=tiny, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="mixer_kwargs has options for 'cutmix'"):
        bench_methods(["mixup"], model=tiny, mixer_kwargs={"cutmix": {}}, progress=False)
    with pytest.raises(TypeError, match="model"):
        bench_methods(["mixup"], model=3, progress=False)
    with pytest.raises(ValueError, match="include"):
        bench_kernels(include=("foo",), progress=False)


def test_bench_cli(tmp_path: Path) -> None:
    out = tmp_path / "b"
    proc = subprocess.run(
        [sys.executable, "-m", "sagemix", "bench", "--model", "smallnet", "--methods", "mixup", "cutmix",
         "--batch-size", "3", "--input-size", "8", "--steps", "2", "--warmup", "0", "--no-kernels",
         "--no-progress", "--threads", "1", "--out", str(out)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "bench.json").read_text())
    ratios = {m["method"]: m["ratio"] for m in data["methods"]}
    assert ratios["vanilla"] == 1.0 and ratios["mixup"] > 0 and ratios["cutmix"] > 0
    assert "| method | step (ms) |" in (out / "bench.md").read_text()
    assert "× vanilla" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "sagemix", "bench", "--mixer-kwargs", "{oops", "--no-progress"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--mixer-kwargs must be JSON" in bad.stderr
