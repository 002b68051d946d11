"""A real 2-process DDP run: ``torchrun --nproc_per_node 2 -m sagemix train ...`` on CPU (gloo)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from sagemix.models import create_model
from sagemix.train import load_checkpoint
from sagemix.train.distributed import param_digest


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, SAGEMIX_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    launcher = [shutil.which("torchrun")] if shutil.which("torchrun") else [sys.executable, "-m", "torch.distributed.run"]
    cmd = [*launcher, "--standalone", "--nproc_per_node", "2", "-m", "sagemix", "train", "offline",
           "--method", "sage", "--epochs", "1", "--device", "cpu", "--batch-size", "8", "--no-progress",
           "--out", str(out), "--set", 'dataset_kwargs={"n_train": 40, "n_test": 21}', "--set", "image_size=16",
           "--set", 'model_kwargs={"width": 4}', "--set", "threads=1"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # only rank 0 prints the summary line and writes files
    assert sum(line.startswith('{"method"') for line in r.stdout.splitlines()) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["finished"] and summary["epochs_done"] == 1
    # 40 images over 2 ranks of batch 8: 3 steps each (20 images per rank, last batch 4)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and 0 <= rows[0]["test_acc"] <= 100
    # every test image scored exactly once over the two ranks: accuracy is a multiple of 1/21
    assert abs(rows[0]["test_acc"] * 21 / 100 - round(rows[0]["test_acc"] * 21 / 100)) < 1e-9
    # both replicas hold the same parameters: rank 1's own digest equals the digest of what rank 0 saved
    digests = summary["replica_param_digests"]
    assert len(digests) == 2 and summary["replicas_in_sync"]
    state = load_checkpoint(out / "checkpoint.pt")
    model = create_model("smallnet", num_classes=10, width=4)
    model.load_state_dict(state["model"])
    assert param_digest(model) == digests[1] == digests[0]
    # each rank mixed with its own generator (seed + rank): two different mixer RNG states saved
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["mixer"], state["rng"][1]["mixer"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["world_size"] == 2
