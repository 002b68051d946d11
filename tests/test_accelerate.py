"""sagemix with Hugging Face Accelerate: accelerator.prepare, accelerator.accumulate and accelerator.backward of
MixStep.objective give MixStep's gradients, on one process (bf16 autocast) and on 2 launched CPU processes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("accelerate", reason='needs pip install "sagemix[accelerate]"')

ROOT = Path(__file__).resolve().parents[1]
WORKER = str(ROOT / "tests" / "_accelerate_worker.py")


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HOME=str(tmp_path / "hf"),  # no user accelerate config
               PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "ACCELERATE_CONFIG_FILE"):
        env.pop(key, None)
    return env


def _ranks(out: Path, world: int) -> list[dict]:
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(world)]
    for seen in ranks:
        assert seen["world"] == world
        assert len(seen["rel"]) == 2 and max(seen["rel"]) <= 1e-5, seen["rel"]
    return ranks


def test_one_process_bf16_accumulate(tmp_path):
    r = subprocess.run([sys.executable, WORKER, str(tmp_path), "--mixed-precision", "bf16"], capture_output=True,
                       text=True, env=_env(tmp_path), timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    _ranks(tmp_path, 1)


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(tmp_path):
    # `accelerate launch --cpu` starts one process (several CPU processes go through mpirun); the torchrun-based
    # launcher below starts two, and the script's Accelerator(cpu=True) joins them over gloo (MULTI_CPU).
    launcher = [shutil.which("accelerate"), "launch"] if shutil.which("accelerate") else \
        [sys.executable, "-m", "accelerate.commands.launch"]
    cmd = [*launcher, "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", WORKER, str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(tmp_path), timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "marked ready twice" not in r.stderr and "Expected to have finished reduction" not in r.stderr
    for seen in _ranks(tmp_path, 2):
        # inside accumulate the processes' gradients still differ (no all-reduce); at the sync step they are the mean
        assert seen["differ_inside_accumulate"] == [True, True]
