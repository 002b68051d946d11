"""sagemix.run_folder: state detection (missing / new / interrupted / finished) and reading, on real run
folders made by tiny trainings; and the checkpoint reader shared with evaluation."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sagemix import run_folder as rf
from sagemix.run_folder import RunFolder

TINY = {"epochs": 2, "batch_size": 32, "train_limit": 64, "test_limit": 32, "milestones": [], "device": "cpu",
        "progress": False}


def _train(out: Path, *, stop_after_epoch: int | None = None) -> None:
    from sagemix.train import load_config, train

    def log(line: str) -> None:
        if stop_after_epoch is not None and line.startswith(f"epoch {stop_after_epoch}/"):
            raise KeyboardInterrupt  # as if Ctrl-C arrived right after that epoch

    cfg = load_config("offline", overrides={**TINY, "out": str(out)})
    if stop_after_epoch is None:
        train(cfg)
    else:
        with pytest.raises(KeyboardInterrupt):
            train(cfg, log=log)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runfolder")
    _train(root / "finished")
    _train(root / "interrupted", stop_after_epoch=1)
    (root / "empty").mkdir()
    return {"finished": root / "finished", "interrupted": root / "interrupted", "empty": root / "empty",
            "missing": root / "missing"}


def test_states_of_real_runs(runs):
    assert RunFolder(runs["missing"]).state() == "missing"
    assert RunFolder(runs["empty"]).state() == "new"
    assert RunFolder(runs["interrupted"]).state() == "interrupted"
    assert RunFolder(runs["finished"]).state() == "finished"
    assert all(s in rf.STATES for s in (RunFolder(p).state() for p in runs.values()))
    # compare's run_state is the same reading (a missing folder is a run still to start)
    from sagemix.compare import run_state

    assert [run_state(runs[k]) for k in ("missing", "empty", "interrupted", "finished")] == [
        "new", "new", "interrupted", "finished"]


def test_reading_a_finished_run(runs):
    run = RunFolder(runs["finished"])
    assert run.is_run() and run.finished()
    assert run.checkpoint() == runs["finished"] / rf.CHECKPOINT_FILE
    config, summary = run.read_config(), run.read_summary()
    assert config["method"] == "vanilla" and config["dataset"] == "offline"
    assert summary["finished"] is True and summary["epochs_done"] == 2
    rows = run.read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2] and summary["final_acc"] == rows[-1]["test_acc"]
    # metrics.csv is the fallback, with numbers parsed
    (runs["finished"] / rf.METRICS_JSONL).rename(runs["finished"] / "m.bak")
    try:
        csv_rows = run.read_metrics()
    finally:
        (runs["finished"] / "m.bak").rename(runs["finished"] / rf.METRICS_JSONL)
    assert [r["epoch"] for r in csv_rows] == [1, 2]
    assert csv_rows[1]["test_acc"] == pytest.approx(rows[1]["test_acc"])
    assert run.read_eval() == {}


def test_interrupted_run_has_a_checkpoint_but_no_finished_summary(runs):
    run = RunFolder(runs["interrupted"])
    assert run.checkpoint() is not None and not run.finished()
    assert run.read_summary().get("finished") is not True
    model, config = rf.load_model(runs["interrupted"])
    assert config["epoch"] == 1 and not model.training


def test_empty_and_missing_folders(runs):
    empty = RunFolder(runs["empty"])
    assert not empty.is_run() and empty.checkpoint() is None
    assert empty.read_config() == {} and empty.read_summary() == {} and empty.read_metrics() == []
    with pytest.raises(FileNotFoundError, match="has no checkpoint.pt"):
        rf.resolve_checkpoint(runs["empty"])
    with pytest.raises(FileNotFoundError, match="no run folder or checkpoint"):
        rf.resolve_checkpoint(runs["missing"])
    with pytest.raises(TypeError, match="path must be"):
        RunFolder(3)  # type: ignore[arg-type]


def test_damaged_summary_is_not_finished(tmp_path):
    (tmp_path / rf.SUMMARY_FILE).write_text("{not json")
    (tmp_path / rf.CHECKPOINT_FILE).write_bytes(b"x")
    assert RunFolder(tmp_path).state() == "interrupted"
    with pytest.raises(ValueError, match="not valid JSON"):
        RunFolder(tmp_path).read_summary()


def test_train_checkpoint_reexports_the_reader():
    from sagemix.train import checkpoint

    assert checkpoint.load_model is rf.load_model and checkpoint.load_checkpoint is rf.load_checkpoint
    assert checkpoint.CheckpointError is rf.CheckpointError


def test_evaluate_never_imports_train():
    code = ("import sys, sagemix.evaluate, sagemix.evaluate.stage, sagemix.run_folder, sagemix.report; "
            "bad = [m for m in sys.modules if m.startswith('sagemix.train')]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    code = ("import sys, sagemix.run_folder; bad = [m for m in sys.modules if m.startswith(('sagemix.train', "
            "'sagemix.evaluate'))]; sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_eval_result_names_are_the_files_evaluation_reads():
    assert rf.EVAL_RESULTS == {"clean": "clean.json", "corruptions": "corruptions.json",
                               "adversarial": "adversarial.json", "fewshot": "fewshot.json",
                               "train_fit": "train_fit.json"}
    from sagemix.evaluate import EvalOptions

    every = EvalOptions(corruptions=True, adversarial=("fgsm",), fewshot=True, train_fit=True)
    assert sorted(every.expected_files()) == sorted(rf.EVAL_RESULTS.values())  # each file evaluation writes
