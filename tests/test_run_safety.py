"""Runs you can trust: exact resume after Ctrl-C at any step, honest timings, the run-folder lock,
checkpoint checksums, NaN weights, full and read-only disks."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from sagemix.run_folder import LOCK_FILE, CheckpointError, RunFolderInUse, RunLock, load_model
from sagemix.train import TrainConfig, Trainer
from sagemix.train.checkpoint import load_checkpoint, save_checkpoint
from sagemix.utils import DiskWriteError, atomic_write_text

from test_train import TEST, TRAIN, make_trainer

TIMING = ("epoch_time_s", "step_time_s", "images_per_s", "epoch_cpu_s", "step_cpu_s")


def strip_times(history):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in history]


def states_equal(a: Trainer, b: Trainer) -> None:
    sa, sb = a.raw_model.state_dict(), b.raw_model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:  # weights and BatchNorm buffers (running stats, num_batches_tracked)
        assert torch.equal(sa[k], sb[k]), k
    oa, ob = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert oa.keys() == ob.keys()
    for k in oa:
        assert torch.equal(oa[k]["momentum_buffer"], ob[k]["momentum_buffer"])
    assert torch.equal(a.mixer_generator.get_state(), b.mixer_generator.get_state())
    assert strip_times(a.history) == strip_times(b.history)


def sigint_after_forward(trainer: Trainer, n: int) -> list[int]:
    """Send a real SIGINT to this process right after the n-th training forward pass (BatchNorm has
    updated its buffers, the optimizer has not stepped yet): a Ctrl-C in the middle of a step."""
    calls: list[int] = []

    def hook(module, inputs, output):
        if module.training:
            calls.append(1)
            if len(calls) == n:
                os.kill(os.getpid(), signal.SIGINT)

    trainer.raw_model.register_forward_hook(hook)
    return calls


@pytest.mark.parametrize("method,forwards", [("mixup", 1), ("mixup", 3), ("mixup", 6), ("sage", 4)])
def test_ctrl_c_mid_step_resumes_bitwise_equal(tmp_path, method, forwards):
    # 30 images, batch 8: 4 steps per epoch; SAGE runs two forwards per step (saliency, then training).
    straight = make_trainer(tmp_path, "a", method=method, epochs=2)
    straight.fit()
    t = make_trainer(tmp_path, "b", method=method, epochs=2)
    sigint_after_forward(t, forwards)
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    state = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    per_step = 2 if method == "sage" else 1
    done = -(-forwards // per_step)  # the interrupted step completes before the loop stops
    assert (state["epoch"], state["step"]) == divmod(done, 4)
    if state["step"]:
        assert state["partial"]["steps"] == state["step"] and state["partial"]["time_s"] > 0
    resumed = make_trainer(tmp_path, "b", method=method, epochs=2)
    resumed.fit(resume=True)
    states_equal(straight, resumed)


def test_request_stop_at_every_step_of_an_epoch_resumes_equal(tmp_path):
    straight = make_trainer(tmp_path, "a", method="cutmix", epochs=2)
    straight.fit()
    for stop_after in range(1, 4):  # stop after steps 1, 2, 3 of epoch 2 (4 steps per epoch)
        run = f"b{stop_after}"
        t = make_trainer(tmp_path, run, method="cutmix", epochs=2)
        real_step, calls = t.step, []

        def step(images, labels, t=t, real_step=real_step, calls=calls, n=4 + stop_after):
            out = real_step(images, labels)
            calls.append(1)
            if len(calls) == n:
                t.request_stop()
            return out

        t.setup.step = step
        with pytest.raises(KeyboardInterrupt):
            t.fit()
        assert load_checkpoint(tmp_path / run / "checkpoint.pt")["step"] == stop_after
        resumed = make_trainer(tmp_path, run, method="cutmix", epochs=2)
        resumed.fit(resume=True)
        states_equal(straight, resumed)


def test_resumed_epoch_times_count_the_steps_before_the_interrupt(tmp_path):
    t = make_trainer(tmp_path, "b", epochs=1)
    slow_step, calls = t.step, []

    def step(images, labels):
        calls.append(1)
        if len(calls) <= 3:  # the steps before Ctrl-C are slow
            import time
            time.sleep(0.2)
        if len(calls) == 3:
            t.request_stop()
        return slow_step(images, labels)

    t.setup.step = step
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    partial = load_checkpoint(tmp_path / "b" / "checkpoint.pt")["partial"]
    assert partial["steps"] == 3 and partial["time_s"] >= 0.6 and partial["cpu_s"] >= 0
    resumed = make_trainer(tmp_path, "b", epochs=1)
    summary = resumed.fit(resume=True)
    row = resumed.history[0]
    assert row["epoch_time_s"] >= 0.6  # not just the one step run after --resume
    assert row["images_per_s"] == pytest.approx(30 / row["epoch_time_s"])
    assert row["step_time_s"] == pytest.approx(row["epoch_time_s"] / 4)
    assert row["epoch_cpu_s"] > 0 and row["step_cpu_s"] == pytest.approx(row["epoch_cpu_s"] / 4)
    assert summary["mean_epoch_cpu_s"] == row["epoch_cpu_s"] and summary["mean_step_cpu_s"] == row["step_cpu_s"]
    header = (tmp_path / "b" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[-2:] == ["epoch_cpu_s", "step_cpu_s"]


# -- the lock -----------------------------------------------------------------------------------
def test_run_lock_excludes_and_names_the_holder(tmp_path):
    with RunLock(tmp_path / "run") as lock:
        assert lock.held and (tmp_path / "run" / LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(RunFolderInUse, match=rf"in use by another sagemix process \(pid {os.getpid()}\)"):
            RunLock(tmp_path / "run").acquire()
        with pytest.raises(RunFolderInUse, match="--out"):
            make_trainer(tmp_path, "run", epochs=1).fit()
    RunLock(tmp_path / "run").acquire().release()  # free again
    with pytest.raises(TypeError, match="folder"):
        RunLock(3)


def test_lock_of_a_killed_process_is_free(tmp_path):
    (tmp_path / "run").mkdir()
    # The child takes the lock as RunLock does (flock + its pid in the file), without importing torch.
    code = textwrap.dedent(f"""
        import fcntl, os, time
        fd = os.open({str(tmp_path / 'run' / LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{{os.getpid()}}\\n".encode())
        print("locked", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderInUse, match=f"pid {proc.pid}"):
            RunLock(tmp_path / "run").acquire()
        proc.kill()  # kill -9: the OS drops the lock, the stale file does not block
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (tmp_path / "run" / LOCK_FILE).exists()
    RunLock(tmp_path / "run").acquire().release()


def test_the_lock_is_released_after_fit_and_on_errors(tmp_path):
    t = make_trainer(tmp_path, "run", epochs=1)
    t.fit()
    with RunLock(tmp_path / "run"):
        pass  # fit released it
    t2 = make_trainer(tmp_path, "run", epochs=1)
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        t2.fit()
    RunLock(tmp_path / "run").acquire().release()


# -- checksums and NaN weights ----------------------------------------------------------------------
def test_flipped_bytes_inside_a_weight_tensor_are_refused(tmp_path):
    t = make_trainer(tmp_path, "run", epochs=1)
    t.fit()
    path = tmp_path / "run" / "checkpoint.pt"
    raw = bytearray(path.read_bytes())
    weight = max(t.raw_model.state_dict().values(), key=lambda v: v.numel())
    at = raw.find(weight.numpy().tobytes()[:256])
    assert at > 0  # the tensor's bytes are stored as they are
    raw[at + 64:at + 128] = bytes(b ^ 0xFF for b in raw[at + 64:at + 128])
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="do not match the SHA-256.*delete it"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="damaged"):
        load_model(tmp_path / "run")
    with pytest.raises(CheckpointError, match=str(path)):
        make_trainer(tmp_path, "run", epochs=2).fit(resume=True)


def test_nan_weights_warn_at_load(tmp_path):
    t = make_trainer(tmp_path, "run", epochs=1)
    t.fit()
    path = tmp_path / "run" / "checkpoint.pt"
    state = load_checkpoint(path)
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][name][...] = float("nan")
    save_checkpoint({k: v for k, v in state.items() if k not in ("format", "format_version", "sha256")}, path)
    with pytest.warns(RuntimeWarning, match=f"NaN/inf weights \\({name}"):
        load_model(path)


# -- disk faults ------------------------------------------------------------------------------------
def no_temp_files(folder) -> bool:
    return not [p for p in os.listdir(folder) if p.endswith(".tmp")]


def test_disk_full_during_epoch_2_keeps_the_checkpoint_of_epoch_1(tmp_path, monkeypatch):
    t = make_trainer(tmp_path, "run", epochs=2)
    t.fit(until_epoch=1)
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskWriteError) as info:
        t.fit()
    msg = str(info.value)
    assert "checkpoint.pt" in msg and "no space left" in msg and "free some space" in msg and "\n" not in msg
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, ValueError)
    monkeypatch.undo()
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before and no_temp_files(tmp_path / "run")
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 1
    RunLock(tmp_path / "run").acquire().release()  # the failed fit let go of the lock


def test_read_only_targets_are_one_line_errors(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(DiskWriteError, match="cannot write run folder .*a-file/run"):
        make_trainer(tmp_path, "a-file/run", epochs=1)  # --out below a file
    real_mkstemp = __import__("tempfile").mkstemp

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    with pytest.raises(DiskWriteError, match="read-only; choose a writable folder"):
        atomic_write_text(tmp_path / "x.json", "{}")
    monkeypatch.setattr("tempfile.mkstemp", real_mkstemp)
    real_open = os.open

    def ro_open(path, *a, **k):
        if str(path).endswith(LOCK_FILE):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", ro_open)
    with pytest.raises(DiskWriteError, match="run folder .*read-only"):
        make_trainer(tmp_path, "ro", epochs=1).fit()


def test_other_os_errors_pass_through(tmp_path, monkeypatch):
    def broken(fd):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError) as info:
        atomic_write_text(tmp_path / "x.txt", "hi")
    assert not isinstance(info.value, DiskWriteError) and no_temp_files(tmp_path)


def test_trainer_config_type_is_checked():
    with pytest.raises(TypeError, match="TrainConfig"):
        Trainer({"method": "vanilla"}, train_data=TRAIN, test_data=TEST)
    assert isinstance(TrainConfig(), TrainConfig)


# -- run-related errors: one line each ------------------------------------------------------------
def cli_main(capsys, *args):
    from sagemix.cli import main

    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_resume_of_a_missing_run_says_so(tmp_path, capsys):
    rc, _, err = cli_main(capsys, "train", "--resume", "--out", str(tmp_path / "nonexistent"))
    assert rc == 2 and f"no run to resume at {tmp_path / 'nonexistent'}" in err and "CIFAR" not in err
    (tmp_path / "empty").mkdir()
    rc, _, err = cli_main(capsys, "train", "offline", "--resume", "--out", str(tmp_path / "empty"))
    assert rc == 2 and "holds no checkpoint.pt" in err


def test_broken_or_missing_config_json_on_resume(tmp_path, capsys):
    t = make_trainer(tmp_path, "run", epochs=1)
    t.fit()
    run = tmp_path / "run"
    saved = (run / "config.json").read_text()
    (run / "config.json").write_text('{"method": "vanilla", ')
    rc, _, err = cli_main(capsys, "train", "--resume", "--out", str(run), "--show-config")
    assert rc == 2 and "config.json" in err and "not valid JSON" in err and len(err.strip().splitlines()) == 1
    (run / "config.json").write_text("[1, 2]")
    rc, _, err = cli_main(capsys, "train", "--resume", "--out", str(run), "--show-config")
    assert rc == 2 and "must hold a JSON object" in err
    (run / "config.json").write_text('{"lr": "fast"}')
    rc, _, err = cli_main(capsys, "train", "--resume", "--out", str(run), "--show-config")
    assert rc == 2 and "config.json" in err and "'lr'" in err
    (run / "config.json").unlink()  # lost: the checkpoint's copy is used
    rc, out, err = cli_main(capsys, "train", "--resume", "--out", str(run), "--show-config")
    assert rc == 0, err
    shown = __import__("json").loads(out)
    assert shown["dataset"] == "tiny" and shown["model_kwargs"] == {"width": 4}
    assert __import__("json").loads(saved)["dataset"] == "tiny"


def test_overflowing_settings_name_the_key(capsys):
    rc, _, err = cli_main(capsys, "train", "--set", "lr=1e308", "--show-config")
    assert rc == 2 and "config key 'lr'" in err and "float32" in err
    with pytest.raises(ValueError, match="'weight_decay'"):
        TrainConfig(weight_decay=1e39).validate()
    with pytest.raises(ValueError, match="'lr'"):
        TrainConfig(lr=10 ** 400).validate()
    assert TrainConfig(lr=1e30).validate().lr == 1e30


def test_last_batch_of_one_image_is_not_trained_on(tmp_path):
    from test_train import tiny_data

    t = Trainer(TrainConfig(method="vanilla", model="smallnet", model_kwargs={"width": 4}, dataset="tiny", epochs=1,
                            batch_size=8, lr=0.05, milestones=[1], device="cpu", out=str(tmp_path / "r"),
                            progress=False), train_data=tiny_data(9, 0, size=(8, 8)), test_data=TEST, log=None)
    assert t.steps_per_epoch == 1
    assert t.fit()["finished"]
    with pytest.raises(ValueError, match="no training step per epoch.*one image"):
        Trainer(TrainConfig(method="vanilla", model="smallnet", dataset="tiny", epochs=1, batch_size=8,
                            device="cpu", out=str(tmp_path / "s"), progress=False),
                train_data=tiny_data(1, 0, size=(8, 8)), test_data=TEST, log=None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_eval_on_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    make_trainer(tmp_path, "run", epochs=1).fit()
    rc, _, err = cli_main(capsys, "eval", str(tmp_path / "run"), "--device", "cuda")
    assert rc == 2 and "CUDA is not available" in err and "Traceback" not in err


def test_run_records_its_data_hash_threads_and_cpu_kernels(tmp_path):
    import json

    t = make_trainer(tmp_path, "run", epochs=1)
    summary = t.fit()
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["torch_threads"] == torch.get_num_threads() == summary["torch_threads"]
    assert cfg["cpu_capability"] == torch.backends.cpu.get_cpu_capability()  # e.g. AVX512: the kernels used
    assert "onednn_max_cpu_isa" in cfg
    assert "data_hash" in cfg and cfg["data_hash"] == summary["data_hash"]
    if hasattr(TRAIN, "data_hash"):  # ImageData.data_hash (the data branch)
        assert cfg["data_hash"] == TRAIN.data_hash and cfg["test_data_hash"] == TEST.data_hash
    assert TrainConfig.from_dict(cfg).lr == 0.05  # the new keys read back as run info


def test_eval_of_a_run_on_a_read_only_mount_is_one_line(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    make_trainer(tmp_path, "run", epochs=1).fit()
    real_mkdir = Path.mkdir

    def ro_mkdir(self, *a, **k):
        if self.name == "eval":
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", ro_mkdir)
    rc, _, err = cli_main(capsys, "eval", str(tmp_path / "run"), "--device", "cpu")
    assert rc == 2 and "cannot write evaluation folder" in err and "read-only" in err and "Traceback" not in err


@pytest.mark.slow
def test_kill_9_at_any_moment_resumes_to_the_uninterrupted_weights(tmp_path):
    """A training process killed with SIGKILL while it runs (maybe while writing a checkpoint) leaves
    a checkpoint that loads and resumes to exactly the weights of the run never killed."""
    import time

    here = os.path.dirname(os.path.abspath(__file__))
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {here!r})
        from test_train import make_trainer
        from pathlib import Path
        t = make_trainer(Path({str(tmp_path)!r}), "k", method="mixup", epochs=40)
        t._log = lambda s: print(s, flush=True)
        t.fit()
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        for line in proc.stdout:
            if line.startswith("epoch 3/40"):
                time.sleep(0.05)  # somewhere in epoch 4 or so: not at a chosen point
                break
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    state = load_checkpoint(tmp_path / "k" / "checkpoint.pt")
    done = state["epoch"]
    assert done >= 3
    target = done + 1
    straight = make_trainer(tmp_path, "a", method="mixup", epochs=40)
    straight.fit(until_epoch=target)
    resumed = make_trainer(tmp_path, "k", method="mixup", epochs=40)
    resumed.fit(resume=True, until_epoch=target)
    states_equal(straight, resumed)
    assert no_temp_files(tmp_path / "k")  # a temp file of a write cut by the kill is removed on resume


def test_resume_on_other_data_warns(tmp_path, monkeypatch):
    from test_train import tiny_data

    import sagemix.train.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "data_hash", lambda d: f"n{len(d.labels)}-{int(d.images.sum())}")
    make_trainer(tmp_path, "run", epochs=1).fit()
    lines: list[str] = []
    t = Trainer(TrainConfig(method="vanilla", model="smallnet", model_kwargs={"width": 4}, dataset="tiny", epochs=2,
                            batch_size=8, lr=0.05, milestones=[1], device="cpu", out=str(tmp_path / "run"),
                            progress=False, nan_check_every=2), train_data=tiny_data(30, 7), test_data=TEST,
                log=lines.append)
    t.fit(resume=True)
    assert any("training data differ" in line and "data_hash" in line for line in lines)
