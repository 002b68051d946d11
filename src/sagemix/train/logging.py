"""The files of a run folder: config.json, metrics.jsonl, metrics.csv, summary.json, TensorBoard.

Every file is rewritten atomically (temp file + ``os.replace``) from the full history after each
epoch, so the files always agree with the checkpoint, also after ``--resume``. The summary reports
what the SAGE paper (Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113) and its baselines
report: the best test accuracy, the final one and the median of the last 10 epochs (percent).
"""
from __future__ import annotations

import csv
import io
import os
import statistics
import subprocess
from pathlib import Path
from typing import Any, Sequence

import torch

from ..run_folder import CONFIG_FILE, METRICS_CSV, METRICS_JSONL, SUMMARY_FILE, accuracy_summary
from ..utils import atomic_write_json, atomic_write_text, disk_write_error

__all__ = ["EpochSums", "METRIC_FIELDS", "RunLogger", "summarize", "git_commit"]

# One row per epoch, in this column order (metrics.csv). The times count only the training steps
# that ran (across a Ctrl-C and --resume); ``*_cpu_s`` is process-CPU time (``time.process_time``, all
# threads), which holds when other jobs share the machine and wall time does not.
METRIC_FIELDS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_time_s",
                 "step_time_s", "images_per_s", "epoch_cpu_s", "step_cpu_s")


def git_commit(path: str | os.PathLike | None = None) -> str | None:
    """The git commit of the sagemix source tree (None when it is not a git checkout)."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def summarize(history: Sequence[dict[str, Any]], *, epochs: int) -> dict[str, Any]:
    """Best, final and median-of-last-10 test accuracy and the mean times (wall and process-CPU) of a
    metrics history.

    Epochs without an evaluation (``test_acc`` None) are skipped in the accuracy statistics.
    """
    times = [float(r["epoch_time_s"]) for r in history if r.get("epoch_time_s") is not None]
    steps = [float(r["step_time_s"]) for r in history if r.get("step_time_s") is not None]
    cpu = [float(r["epoch_cpu_s"]) for r in history if r.get("epoch_cpu_s") is not None]
    step_cpu = [float(r["step_cpu_s"]) for r in history if r.get("step_cpu_s") is not None]
    done = int(history[-1]["epoch"]) if history else 0
    return {
        "epochs": epochs,
        "epochs_done": done,
        "finished": done >= epochs,
        **accuracy_summary(history),
        "mean_epoch_time_s": statistics.fmean(times) if times else None,
        "mean_step_time_s": statistics.fmean(steps) if steps else None,
        "mean_epoch_cpu_s": statistics.fmean(cpu) if cpu else None,
        "mean_step_cpu_s": statistics.fmean(step_cpu) if step_cpu else None,
    }


class RunLogger:
    """Writes a run folder (on the main process only; a no-op elsewhere).

    Args:
        run_dir: the run folder (created).
        enabled: False on the non-main processes of a distributed run.
        tensorboard: also write TensorBoard scalars to ``run_dir/tb``.
    """

    def __init__(self, run_dir: str | os.PathLike, *, enabled: bool = True, tensorboard: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._tb = None
        if enabled:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise disk_write_error(e, self.run_dir, "run folder") from e
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:
                    raise ImportError('TensorBoard logging needs the tensorboard package: '
                                      'pip install "sagemix[tensorboard]"') from None
                self._tb = SummaryWriter(log_dir=str(self.run_dir / "tb"))

    def write_config(self, config: dict[str, Any]) -> None:
        """Write ``config.json``."""
        if self.enabled:
            atomic_write_json(self.run_dir / CONFIG_FILE, config)

    def write_metrics(self, history: Sequence[dict[str, Any]]) -> None:
        """Rewrite ``metrics.jsonl`` and ``metrics.csv`` from the whole history; log the last row to TensorBoard."""
        if not self.enabled:
            return
        import json

        atomic_write_text(self.run_dir / METRICS_JSONL, "".join(json.dumps(r) + "\n" for r in history))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(METRIC_FIELDS), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in history:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in METRIC_FIELDS})
        atomic_write_text(self.run_dir / METRICS_CSV, buf.getvalue())
        if self._tb is not None and history:
            row = history[-1]
            for key in METRIC_FIELDS[1:]:
                if row.get(key) is not None:
                    self._tb.add_scalar(key, float(row[key]), int(row["epoch"]))
            self._tb.flush()

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json``."""
        if self.enabled:
            atomic_write_json(self.run_dir / SUMMARY_FILE, summary)

    def close(self) -> None:
        """Close TensorBoard's writer."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class EpochSums:
    """Running sums of one training epoch, kept on the device (no sync per step)."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.float64, device=device)
        self.count = 0
        self.time_s = 0.0  # wall-clock seconds of the steps run (across interruptions)
        self.cpu_s = 0.0  # process-CPU seconds of the same steps
        self.steps = 0

    def state(self) -> dict[str, Any]:
        """The sums as CPU values, for a checkpoint taken inside the epoch."""
        return {"loss": self.loss.cpu(), "correct": self.correct.cpu(), "count": self.count,
                "time_s": self.time_s, "cpu_s": self.cpu_s, "steps": self.steps}

    def load(self, state: dict[str, Any]) -> None:
        """Restore the sums of :meth:`state` (on this object's device)."""
        self.loss = state["loss"].to(self.loss.device)
        self.correct = state["correct"].to(self.correct.device)
        self.count, self.time_s, self.steps = int(state["count"]), float(state["time_s"]), int(state["steps"])
        self.cpu_s = float(state.get("cpu_s", 0.0))
