"""benchmarks/gpu_check.py without a GPU: it says so and exits 0; its orchestration keeps every part's result."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("gpu_check", None)


def test_without_cuda_it_says_so_and_exits_0(gpu_check, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path / "gpu")]) == 0
    assert "no CUDA device" in capsys.readouterr().out
    assert not (tmp_path / "gpu").exists()


def test_a_failing_part_leaves_the_others_numbers(gpu_check, tmp_path):
    def boom(budget_s):
        raise RuntimeError("CUDA error: illegal memory access")

    def too_slow(budget_s):
        gpu_check.run_subprocess([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=0.5)
        return {"never": True}

    written = []
    parts = [gpu_check.Part("first", 10, lambda b: {"value": 1.5, "markdown": "| a |"}),
             gpu_check.Part("broken", 10, boom),
             gpu_check.Part("hung", 10, too_slow),
             gpu_check.Part("last", 10, lambda b: {"status": "failed", "value": 2})]
    record = {"device_name": "Test GPU"}
    gpu_check.run_parts(parts, record, out_dir=tmp_path, slug="Test_GPU", budget_s=60, log=written.append)
    saved = json.loads((tmp_path / "Test_GPU.json").read_text())
    assert saved["parts"]["first"]["status"] == "ok" and saved["parts"]["first"]["value"] == 1.5
    assert saved["parts"]["broken"]["status"] == "error" and "illegal memory access" in saved["parts"]["broken"]["error"]
    assert saved["parts"]["hung"]["status"] == "error" and "TimeoutError" in saved["parts"]["hung"]["error"]
    assert saved["parts"]["hung"]["seconds"] < 20
    assert saved["parts"]["last"] == {"status": "failed", "value": 2, "seconds": saved["parts"]["last"]["seconds"]}
    md = (tmp_path / "Test_GPU.md").read_text()
    assert "## broken: error" in md and "| a |" in md
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_parts_past_the_total_budget_are_skipped(gpu_check, tmp_path):
    parts = [gpu_check.Part("only", 100, lambda b: {"budget_given": b})]
    record = gpu_check.run_parts(parts, {}, out_dir=tmp_path, slug="x", budget_s=2, log=lambda s: None)
    assert record["parts"]["only"]["status"] == "skipped"
    record = gpu_check.run_parts(parts, {}, out_dir=tmp_path, slug="x", budget_s=30, log=lambda s: None)
    assert 25 < record["parts"]["only"]["budget_given"] <= 30  # cut to what is left of the total


@pytest.mark.slow
def test_a_part_that_fails_in_its_process_is_recorded(gpu_check):
    # sync_debug needs CUDA: on this machine its process fails, and the failure comes back as data
    result = gpu_check._part_in_subprocess("sync_debug")(120)
    assert result["status"] == "error" and "_sync_debug" in result["error"]


def test_device_slug_and_parts(gpu_check):
    assert gpu_check.device_slug("NVIDIA H200 (MIG 1g.18gb)") == "NVIDIA_H200_MIG_1g.18gb"
    parts = gpu_check.default_parts()
    assert [p.name for p in parts] == ["tests", "sync_debug", "bench_methods", "bench_graphcut", "bench_kernels", "train"]
    assert sum(p.budget_s for p in parts) <= 8 * 60 + 30
    assert set(gpu_check.PART_FUNCTIONS) == {p.name for p in parts} - {"tests"}
