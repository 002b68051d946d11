"""Distributed correctness: rank-0 decisions, buffers and the replica check, resume on another world size,
per-rank seeds, the torchrun device rule, spawn pools, the bench clock's device and the TF32 option."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sagemix.bench.clock import Clock
from sagemix.train import TrainConfig
from sagemix.train.distributed import (ReplicaMismatch, check_replicas, decide_on_main, param_digest,
                                       process_device_setting, run_in_turns, _raise_packed, _pack_error)
from sagemix.train.setup import derive_seed, mixer_seed, set_tf32
from sagemix.run_folder import state_digest

from test_train import make_trainer

ROOT = Path(__file__).resolve().parents[1]


# -- 2 processes (gloo) -----------------------------------------------------------------------
def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, SAGEMIX_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _torchrun(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 <args>`` (a script path, or ``-m module ...``)."""
    launcher = [shutil.which("torchrun")] if shutil.which("torchrun") else [sys.executable, "-m", "torch.distributed.run"]
    return subprocess.run([*launcher, "--standalone", "--nproc_per_node", "2", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.mark.slow
def test_two_process_decisions_turns_buffers_and_replica_check(tmp_path):
    r = _torchrun([str(ROOT / "tests" / "_dist_worker.py"), str(tmp_path)], _env(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    for seen in ranks:
        # rank 0's error reaches every rank, with its type, and names where it came from
        assert seen["decide_error"]["type"] == "CheckpointError"
        assert "only rank 0's folder was looked at" in seen["decide_error"]["message"]
        assert seen["decide_value"] == {"ok": {"decided_by": 0}}
        # turns: rank 0 first (although it sleeps), then the other node's local rank 0
        assert seen["turns"] == {"ok": seen["rank"]}
        # an error in rank 0's turn stops every rank before its own turn
        assert seen["turns_error"]["type"] == "ValueError" and "download failed" in seen["turns_error"]["message"]
        assert "ran_after_error" not in seen
        # buffers differ before the broadcast (an error, not a warning), agree after it
        assert seen["before"]["type"] == "ReplicaMismatch"
        assert seen["after_mean"] == [1.0, 1.0, 1.0] and seen["after_count"] == 5
        assert seen["after"] == {"ok": 1}
    assert "raised on rank 0" in ranks[1]["decide_error"]["message"]
    assert "raised on rank 0" not in ranks[0]["decide_error"]["message"]
    assert (tmp_path / "turns.log").read_text().split() == ["0", "1"]


# -- one process -------------------------------------------------------------------------------
def test_single_process_helpers_are_plain_calls():
    assert decide_on_main(lambda: 7) == 7
    assert run_in_turns(lambda: "x") == "x"
    with pytest.raises(KeyError):
        decide_on_main(lambda: {}["missing"])
    bn = torch.nn.BatchNorm1d(2)
    assert len(check_replicas(bn)) == 1


def test_cleanup_meets_every_rank_only_after_a_finished_run(monkeypatch):
    """A finished run barriers before the group goes (a fast rank tearing gloo down under a slow one
    aborted it in CI); an error path does not wait for ranks that may never come."""
    from sagemix.train import distributed as d
    calls: list[str] = []
    monkeypatch.setattr(d.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(d.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(d.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(d.dist, "destroy_process_group", lambda: calls.append("destroy"))
    d.cleanup_distributed(d.DistInfo(0, 2, 0, True), sync=True)
    assert calls == ["barrier", "destroy"]
    calls.clear()
    d.cleanup_distributed(d.DistInfo(0, 2, 0, True))
    assert calls == ["destroy"]
    calls.clear()
    d.cleanup_distributed(d.DistInfo(0, 2, 0, False), sync=True)  # a group the caller made stays
    assert calls == []


def test_packed_errors_keep_their_type_or_fall_back():
    from sagemix.run_folder import CheckpointError

    with pytest.raises(CheckpointError, match=r"bad file \(raised on rank 0\)"):
        _raise_packed(_pack_error(CheckpointError("bad file"), 0), here=1)

    class Local(Exception):
        def __init__(self, a, b):
            super().__init__(a, b)

    with pytest.raises(RuntimeError, match="Local"):
        _raise_packed(_pack_error(Local(1, 2), 0), here=0)


def test_param_digest_covers_buffers():
    a, b = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    assert param_digest(a) == param_digest(b)
    b.running_var.add_(1.0)
    assert param_digest(a) != param_digest(b)
    assert param_digest(a, buffers=False) == param_digest(b, buffers=False)
    assert issubclass(ReplicaMismatch, RuntimeError)


def test_mixer_seeds_do_not_collide_and_rank0_keeps_the_single_process_seed():
    assert mixer_seed(0, 0) == derive_seed(0, "mixer")  # what single-process runs always used
    assert mixer_seed(5) == derive_seed(5, "mixer")
    assert mixer_seed(0, 1) != mixer_seed(1, 0)  # seed + rank collided here
    seeds = {mixer_seed(s, r) for s in range(40) for r in range(16)}
    assert len(seeds) == 40 * 16
    assert mixer_seed(0, 1, restart_epoch=3) not in seeds | {mixer_seed(0, 1)}
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="rank must be a non-negative int"):
            mixer_seed(0, bad)


def test_setup_seeds_rank0_mixer_as_before(tmp_path):
    t = make_trainer(tmp_path)
    assert torch.equal(t.mixer_generator.get_state(), torch.Generator().manual_seed(derive_seed(0, "mixer")).get_state())
    t.close()


@pytest.mark.parametrize("device,local_rank,world,expected,warns", [
    ("cuda:0", 1, 1, "cuda:0", False),      # one process: as given
    ("cuda", 3, 4, "cuda", False),          # bare cuda resolves to cuda:LOCAL_RANK
    ("auto", 3, 4, "auto", False),
    ("cpu", 1, 2, "cpu", False),
    ("cuda:1", 1, 2, "cuda:1", False),      # already this process's GPU
    ("cuda:0", 1, 2, "cuda:1", True),       # every rank on cuda:0 -> overridden
    (torch.device("cuda", 0), 2, 4, "cuda:2", True),
])
def test_torchrun_device_rule(device, local_rank, world, expected, warns):
    setting, note = process_device_setting(device, local_rank=local_rank, world_size=world)
    assert setting == expected
    assert (note is not None) == warns
    if warns:
        assert "LOCAL_RANK" in note and f"cuda:{local_rank}" in note
    with pytest.raises(ValueError, match="world_size must be a positive int"):
        process_device_setting("cpu", local_rank=0, world_size=0)


def _doctor_checkpoint(path: Path, *, world: int, step: int) -> None:
    state = torch.load(path, map_location="cpu", weights_only=False)
    state["rng"] = [state["rng"][0]] * world
    state["world_size"] = world
    state["step"] = step
    if step:
        state["partial"] = {"loss": torch.zeros((), dtype=torch.float64), "correct": torch.zeros((), dtype=torch.float64),
                            "count": 8, "time_s": 0.1, "steps": step}
        state["epoch"] = 0
    state["sha256"] = state_digest(state)  # a doctored checkpoint that is still self-consistent
    torch.save(state, path)


def test_resume_on_another_world_size_refused_mid_epoch(tmp_path):
    t = make_trainer(tmp_path, epochs=1)
    t.fit()
    _doctor_checkpoint(t.checkpoint_path, world=2, step=1)
    with pytest.raises(ValueError, match=r"middle of epoch 1 \(step 1\) by 2 process\(es\).*not 1"):
        make_trainer(tmp_path, epochs=2).fit(resume=True)


def test_resume_on_another_world_size_reports_the_global_batch(tmp_path):
    t = make_trainer(tmp_path, epochs=1)
    t.fit()
    _doctor_checkpoint(t.checkpoint_path, world=2, step=0)
    lines: list[str] = []
    t2 = make_trainer(tmp_path, epochs=2)
    t2._log = lines.append
    summary = t2.fit(resume=True)
    assert summary["finished"] and summary["epochs_done"] == 2
    note = next(x for x in lines if x.startswith("note: checkpoint from 2"))
    assert "global batch changes from 16 to 8 (8 per process)" in note


def test_mixer_pools_use_spawn():
    from sagemix.mixers import create_mixer

    for name in ("puzzlemix", "comixup"):
        mixer = create_mixer(name, num_classes=3, num_workers=1)
        try:
            assert mixer.pool is not None and mixer.pool.start_method == "spawn"
            assert mixer.pool.map(abs, [-2, 3]) == [2, 3]
            assert mixer.pool._executor._mp_context.get_start_method() == "spawn"
        finally:
            mixer.close()


class _FakeCuda:
    """Stands in for torch.cuda: records which device each call names."""

    def __init__(self):
        self.calls: list[tuple[str, object]] = []
        self.current = torch.device("cuda", 0)
        outer = self

        class Event:
            def __init__(self, enable_timing=False):
                self.stream = None

            def record(self, stream=None):
                outer.calls.append(("record", stream))
                self.stream = stream

            def elapsed_time(self, other):
                return 2.5

        class _Device:
            def __init__(self, dev):
                self.dev = torch.device(dev)

            def __enter__(self):
                self.prev, outer.current = outer.current, self.dev
                outer.calls.append(("enter", self.dev))

            def __exit__(self, *exc):
                outer.current = self.prev

        self.Event, self.device = Event, _Device

    def current_stream(self, device=None):
        return ("stream", str(torch.device(device) if device is not None else self.current))

    def synchronize(self, device=None):
        self.calls.append(("synchronize", None if device is None else str(torch.device(device))))


def test_bench_clock_times_the_benchmarked_device(monkeypatch):
    fake = _FakeCuda()
    for name in ("Event", "device", "current_stream", "synchronize"):
        monkeypatch.setattr(torch.cuda, name, getattr(fake, name))
    clock = Clock(torch.device("cuda", 1))
    assert clock.time("step", lambda: 42) == 42
    assert clock.median("step") == 2.5
    records = [c[1] for c in fake.calls if c[0] == "record"]
    assert records == [("stream", "cuda:1")] * 2
    assert ("synchronize", "cuda:1") in fake.calls and ("synchronize", None) not in fake.calls


def test_tf32_option():
    assert TrainConfig().tf32 is None
    assert TrainConfig(tf32=True).tf32 is True
    with pytest.raises(TypeError, match="config key 'tf32' must be true, false or null, got 'yes'"):
        TrainConfig(tf32="yes")
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
    try:
        set_tf32(None)
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
                torch.get_float32_matmul_precision()) == before
        set_tf32(True)
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "high"
        set_tf32(False)
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "highest"
        with pytest.raises(TypeError, match="tf32 must be"):
            set_tf32(1)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before[0], before[1]
        torch.set_float32_matmul_precision(before[2])


@pytest.mark.slow
def test_torchrun_trainer_errors_reach_every_rank_and_resume_reports_the_global_batch(tmp_path):
    env = _env(tmp_path)
    out = tmp_path / "run"
    common = ["offline", "--method", "mixup", "--device", "cpu", "--batch-size", "8", "--no-progress",
              "--out", str(out), "--set", 'dataset_kwargs={"n_train": 32, "n_test": 10}', "--set", "image_size=16",
              "--set", 'model_kwargs={"width": 4}', "--set", "threads=1"]
    # one epoch on one process
    r = subprocess.run([sys.executable, "-m", "sagemix", "train", *common, "--epochs", "1"], capture_output=True,
                       text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    # two processes, no --resume: rank 0 finds the checkpoint and both ranks stop with its message (no hang)
    r = _torchrun(["-m", "sagemix", "train", *common, "--epochs", "2"], env)
    assert r.returncode != 0
    assert r.stderr.count("already holds a checkpoint") >= 2, r.stderr[-3000:]
    assert "raised on rank 0" in r.stderr
    # two processes, --resume at the epoch boundary: allowed, and the new global batch is reported
    r = _torchrun(["-m", "sagemix", "train", *common, "--epochs", "2", "--resume"], env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "global batch changes from 8 to 16 (8 per process)" in r.stdout + r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs_done"] == 2 and summary["world_size"] == 2 and summary["replicas_in_sync"]
