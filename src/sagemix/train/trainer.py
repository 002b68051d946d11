"""The trainer: every mixing method through :class:`sagemix.MixStep`, on one device or under torchrun.

It follows the CIFAR protocol of SAGE ("Saliency-Guided Mixup with Optimal Rearrangements", Ma et
al., BMVC 2022, https://arxiv.org/abs/2211.00113, docs/SAGE.md §7): SGD with Nesterov momentum and a
multi-step learning-rate schedule stepped once per epoch, clean test accuracy after every epoch, and
the best, final and median-of-last-10 accuracies at the end.

What it does and why:

- The data set stays in memory as uint8 (on the GPU when it fits) and the loader from
  :func:`sagemix.data.make_loader` flips and crops whole batches there, as airbench does; no worker
  processes are needed.
- Mixed precision (``amp="bf16"`` or ``"fp16"`` with a GradScaler), channels-last and
  ``torch.compile`` are options for CUDA; MixStep keeps the saliency in float32.
- The loss is checked for NaN/inf only every ``nan_check_every`` steps and at the end of each epoch,
  on a running sum kept on the device: a non-finite step poisons the sum, so nothing is missed and
  the GPU is not synchronised every step.
- Every randomness source has its own generator: torch's global RNG (model initialisation), the
  loader's (shuffle, flip, crop) and the mixer's (seeded from (seed, rank), see ``setup.mixer_seed``). Their states are saved
  with the checkpoint before each step, so ``--resume`` continues exactly where the run stopped,
  after an epoch or after Ctrl-C in the middle of one.
- Ctrl-C never cuts a step in half: while the loop runs (single process, main thread) a SIGINT
  handler only sets a flag, which the loop reads between steps; the checkpoint then holds the state
  of the last completed step (weights, optimizer, BatchNorm buffers, RNG states and the epoch's
  running sums and timings), so the resumed run equals the uninterrupted one bit for bit on the
  CPU. A second Ctrl-C stops at once and keeps the previous checkpoint.
- One process at a time: :meth:`Trainer.fit` holds an OS lock on the run folder
  (:class:`sagemix.run_folder.RunLock`); a second ``train`` or ``--resume`` into it is refused.
- Timings are honest across an interruption: the wall and process-CPU time of the steps run before
  Ctrl-C are saved with the partial checkpoint and added to the resumed epoch's.
- Under ``torchrun`` the model is wrapped in DistributedDataParallel; each process mixes within its
  own batch and only rank 0 writes files. Rank 0 alone reads the run folder (is there a checkpoint,
  does it fit) and broadcasts the checkpoint or the error; batch-norm buffers are broadcast from rank 0
  before each evaluation and checkpoint, and a final replica check (parameters and buffers) raises on
  a mismatch. Resuming on another number of processes is refused mid-epoch and reported (with the new
  global batch) at an epoch boundary. See :mod:`sagemix.train.distributed`.
- ``train_acc`` in the metrics is the agreement of the predictions on the mixed batch with the
  dominant label of each mixed target (for vanilla training, the plain training accuracy).

Example:
    >>> from sagemix.train import TrainConfig, Trainer  # doctest: +SKIP
    >>> cfg = TrainConfig(method="sage", model="smallnet", dataset="offline", epochs=3, lr=0.05,
    ...                   milestones=[2], out="runs/demo")  # doctest: +SKIP
    >>> summary = Trainer(cfg).fit()  # doctest: +SKIP
    >>> summary["best_acc"]  # doctest: +SKIP
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

import torch

from .. import __version__
from ..checks import is_int
from ..evaluate.accuracy import accuracy_sums, evaluate_accuracy
from ..models.protocol import unwrap_model
from ..run_folder import CHECKPOINT_FILE, RunLock
from ..utils import Stopwatch
from .checkpoint import check_compatible, load_checkpoint, save_checkpoint
from .config import TrainConfig, config_hash
from .distributed import (all_gather_objects, all_reduce_sum, barrier, broadcast_buffers, check_replicas,
                          cleanup_distributed, decide_on_main, setup_distributed)
from .interrupt import StopOnSigint, data_hash
from .logging import EpochSums, RunLogger, git_commit, summarize
from .setup import Setup, derive_seed, mixer_seed, setup_from_valid

__all__ = ["Trainer", "TrainingDiverged", "evaluate_accuracy", "train", "derive_seed"]

CHECKPOINT_NAME = CHECKPOINT_FILE


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


def _setup_part(name: str) -> property:
    return property(lambda self: getattr(self.setup, name), doc=f"``setup.{name}`` (read-only).")


class Trainer:
    """Train one model with one mixing method, as configured.

    The constructor validates the config (once), joins the torchrun group (when there is one) and
    builds the set-up as :func:`sagemix.train.setup.build_setup` does (data, model, optimizer, mixer,
    step), kept as :attr:`setup`; its parts read through it (``trainer.model`` is
    ``trainer.setup.model``). :meth:`fit` runs the epochs. This is the package's only training loop.

    Args:
        config: the run's settings.
        train_data: an ``ImageData`` to train on instead of ``load_dataset(config.dataset)``.
        test_data: an ``ImageData`` to evaluate on instead of the dataset's test split.
        log: where progress lines go (``print`` on rank 0 by default; None silences them).
    """

    train_data, test_data, num_classes = _setup_part("train_data"), _setup_part("test_data"), _setup_part("num_classes")
    train_loader, test_loader = _setup_part("train_loader"), _setup_part("test_loader")
    steps_per_epoch, raw_model, model = _setup_part("steps_per_epoch"), _setup_part("raw_model"), _setup_part("model")
    optimizer, scheduler = _setup_part("optimizer"), _setup_part("scheduler")
    autocast_dtype, scaler = _setup_part("autocast_dtype"), _setup_part("scaler")
    mixer_generator, mixer, step = _setup_part("mixer_generator"), _setup_part("mixer"), _setup_part("step")

    def __init__(self, config: TrainConfig, *, train_data: Any = None, test_data: Any = None,
                 log: Callable[[str], None] | None = print) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.config = cfg = config.validate()
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.dist, self.device = setup_distributed(cfg.device)
        self._log = log if self.dist.is_main else None
        try:
            self._setup(train_data, test_data)
        except BaseException:
            cleanup_distributed(self.dist)  # do not leave a process group behind a failed set-up
            raise

    def _setup(self, train_data: Any, test_data: Any) -> None:
        self.setup: Setup = setup_from_valid(self.config, train_data=train_data, test_data=test_data, dist=self.dist,
                                             device=self.device, log=self._log)
        cfg = self.config
        self.run_dir = cfg.run_dir()
        self.checkpoint_path = self.run_dir / CHECKPOINT_NAME

        self.logger = RunLogger(self.run_dir, enabled=self.dist.is_main, tensorboard=cfg.tensorboard)
        self.history: list[dict[str, Any]] = []
        self.epoch = 0  # completed epochs
        self.step_in_epoch = 0  # completed steps of the current epoch
        self._sums = EpochSums(self.device)
        self._rng_at_step: dict[str, Any] | None = None
        self.stopped: str | None = None
        self._sigint = StopOnSigint(enabled=not self.dist.distributed)
        self._lock: RunLock | None = None
        self.replica_digests: list[str] | None = None
        self._git_commit = git_commit() if self.dist.is_main else None
        self._data_hashes = (data_hash(self.train_data), data_hash(self.test_data))
        self._started = False

    # -- info ---------------------------------------------------------------------------------
    def run_info(self) -> dict[str, Any]:
        """config.json: the settings plus the version, commit and data facts."""
        d = self.train_data
        return {**self.config.to_dict(), "out": str(self.run_dir), "sagemix_version": __version__,
                "git_commit": self._git_commit, "torch_version": str(torch.__version__), "num_classes": self.num_classes,
                "classes": list(d.classes), "mean": list(d.mean), "std": list(d.std),
                "input_size": list(getattr(d, "image_size", None) or d.images.shape[-2:]),
                "world_size": self.dist.world_size, "device_used": str(self.device), "data_hash": self._data_hashes[0],
                "test_data_hash": self._data_hashes[1], "torch_threads": torch.get_num_threads(),
                # the CPU kernels torch picked: the same run on CPUs with other instruction sets (AVX2 against
                # AVX-512) differs from its first step; ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA set them
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA")}

    def _print(self, text: str) -> None:
        if self._log is not None:
            self._log(text)

    def request_stop(self) -> None:
        """Ask the running :meth:`fit` to stop as Ctrl-C does: at the next step boundary, after saving
        a checkpoint of the last completed step, with KeyboardInterrupt (single process)."""
        self._sigint.requested = True

    # -- RNG states --------------------------------------------------------------------------
    def _rng_state(self) -> dict[str, Any]:
        return {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
                "mixer": self.mixer_generator.get_state(),
                "loader_base_seed": int(getattr(self.train_loader, "base_seed", 0))}

    def _set_rng_state(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        if state.get("cuda") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)
        self.mixer_generator.set_state(state["mixer"])
        if hasattr(self.train_loader, "base_seed"):
            self.train_loader.base_seed = int(state["loader_base_seed"])

    # -- checkpoints --------------------------------------------------------------------------
    def _checkpoint_state(self, rng: list[dict[str, Any]], partial: dict[str, Any] | None) -> dict[str, Any]:
        return {"sagemix_version": __version__, "config": self.run_info(), "config_hash": config_hash(self.config),
                "epoch": self.epoch, "step": self.step_in_epoch, "partial": partial,
                "model": unwrap_model(self.raw_model).state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
                "rng": rng, "world_size": self.dist.world_size, "history": self.history}

    def save_checkpoint(self, *, partial: bool = False) -> None:
        """Write ``checkpoint.pt`` (collective under torchrun: every rank's RNG state is gathered).

        Args:
            partial: the checkpoint is taken in the middle of an epoch (Ctrl-C); the RNG states are
                those from before the step in progress, and the epoch's running sums are kept.
        """
        rng_state = self._rng_at_step if (partial and self._rng_at_step is not None) else self._rng_state()
        rngs = all_gather_objects(rng_state)
        if self.dist.is_main:
            save_checkpoint(self._checkpoint_state(rngs, self._sums.state() if partial else None),
                            self.checkpoint_path)

    def _read_checkpoint(self) -> dict[str, Any]:
        state = load_checkpoint(self.checkpoint_path, map_location="cpu")
        check_compatible(state, self.config, self.checkpoint_path)
        return state

    def _restore(self) -> None:
        # Rank 0 reads and checks; every rank gets its state or its error (no shared filesystem needed).
        state = decide_on_main(self._read_checkpoint)
        saved_world = int(state.get("world_size", len(state["rng"])))
        if saved_world != self.dist.world_size and int(state["step"]) > 0:
            raise ValueError(f"checkpoint {str(self.checkpoint_path)!r} was taken in the middle of epoch "
                             f"{int(state['epoch']) + 1} (step {int(state['step'])}) by {saved_world} process(es); "
                             f"it can only be resumed on {saved_world} process(es), not {self.dist.world_size} "
                             "(the epoch's shards would be counted twice)")
        try:
            unwrap_model(self.raw_model).load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.scaler is not None and state.get("scaler") is not None:
                self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise ValueError(f"checkpoint {str(self.checkpoint_path)!r} does not fit this run: "
                             f"{str(e).splitlines()[0]}") from None
        saved_hash = state["config"].get("data_hash") if isinstance(state["config"], dict) else None
        if saved_hash is not None and self._data_hashes[0] is not None and saved_hash != self._data_hashes[0]:
            self._print(f"warning: the training data differ from those the run started with (data_hash "
                        f"{saved_hash} -> {self._data_hashes[0]}); the resumed run is another experiment")
        self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step"])
        self.history = list(state["history"])
        rngs = state["rng"]
        if len(rngs) == self.dist.world_size:
            self._set_rng_state(rngs[self.dist.rank])
        else:  # another number of processes (at an epoch boundary): shuffle as before, fresh mixer streams
            b = self.config.batch_size
            self._print(f"note: checkpoint from {len(rngs)} process(es), resuming on {self.dist.world_size}: the "
                        f"global batch changes from {b * len(rngs)} to {b * self.dist.world_size} "
                        f"({b} per process) and the mixer streams restart")
            if hasattr(self.train_loader, "base_seed"):
                self.train_loader.base_seed = int(rngs[0]["loader_base_seed"])
            self.mixer_generator.manual_seed(mixer_seed(self.config.seed, self.dist.rank, restart_epoch=self.epoch))
        self._sums = EpochSums(self.device)
        if state.get("partial") is not None and self.step_in_epoch > 0:
            self._sums.load(state["partial"])
        where = (f"epoch {self.epoch + 1}, after step {self.step_in_epoch}" if self.step_in_epoch
                 else f"the end of epoch {self.epoch}")  # 1-based epochs, as the progress bar counts
        self._print(f"resumed from {self.checkpoint_path} at {where}")

    # -- the loop -----------------------------------------------------------------------------
    def _check_finite(self, epoch: int, step: int) -> None:
        bad = (~torch.isfinite(self._sums.loss)).to(torch.float64).reshape(1)
        if self.dist.distributed:
            all_reduce_sum(bad)
        if bool(bad.item()):
            self.stopped = "nonfinite_loss"
            last = f"the checkpoint of epoch {self.epoch}" if self.epoch else "no checkpoint (first epoch)"
            raise TrainingDiverged(
                f"the training loss became NaN/inf in epoch {epoch + 1} (checked at step {step}); stopping. "
                f"Kept: {last}. Try a lower learning rate (lr={self.config.lr:g}), amp='none', or "
                "another seed.")

    def _train_epoch(self, epoch: int, pbar: Any) -> None:
        self.train_loader.set_epoch(epoch)
        it = iter(self.train_loader)
        for _ in range(self.step_in_epoch):  # resuming inside an epoch: replay the loader's draws
            next(it)
        self.model.train()
        sums = self._sums
        watch = Stopwatch().start()
        try:
            self._run_steps(epoch, it, pbar, watch)
        finally:  # also on Ctrl-C: the partial checkpoint keeps the time of the steps that ran
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            watch.stop()
            sums.time_s += watch.wall_s
            sums.cpu_s += watch.cpu_s
        self._rng_at_step = None
        self._check_finite(epoch, self.steps_per_epoch)
        if pbar is not None:
            pbar.set_postfix(loss=f"{sums.loss.item() / max(sums.count, 1):.3f}",
                             acc=f"{100 * sums.correct.item() / max(sums.count, 1):.1f}",
                             img_s=f"{sums.count * self.dist.world_size / max(sums.time_s, 1e-9):.0f}")

    def _stop_if_requested(self) -> None:
        """At a step boundary: raise KeyboardInterrupt when Ctrl-C (or :meth:`request_stop`) asked to stop."""
        if self._sigint.requested:
            self._rng_at_step = None  # the state is that of the last completed step: save it as it is
            raise KeyboardInterrupt

    def _run_steps(self, epoch: int, it: Any, pbar: Any, watch: Stopwatch) -> None:
        cfg = self.config
        sums = self._sums
        for i in range(self.step_in_epoch, self.steps_per_epoch):
            self._stop_if_requested()
            # Kept for an interrupt raised from inside a step without the SIGINT handler (not in the
            # main thread): the checkpoint then rewinds to the start of that step.
            self._rng_at_step = self._rng_state()
            images, labels = next(it)
            self.optimizer.zero_grad(set_to_none=True)
            out = self.step(images, labels)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            b = labels.shape[0]
            sums.loss += out.loss.detach().double() * b
            sums.correct += (out.logits.argmax(1) == out.mix.targets.argmax(1)).sum()
            sums.count += b
            sums.steps += 1
            self.step_in_epoch = i + 1
            if pbar is not None:
                pbar.update(1)
            if (i + 1) % cfg.nan_check_every == 0:
                self._check_finite(epoch, i + 1)
                if pbar is not None:
                    elapsed = sums.time_s + watch.wall_s
                    pbar.set_postfix(loss=f"{sums.loss.item() / max(sums.count, 1):.3f}",
                                     acc=f"{100 * sums.correct.item() / max(sums.count, 1):.1f}",
                                     img_s=f"{sums.count * self.dist.world_size / max(elapsed, 1e-9):.0f}",
                                     refresh=False)

    def _end_epoch(self, epoch: int) -> dict[str, Any]:
        cfg = self.config
        s = self._sums
        broadcast_buffers(self.raw_model)  # rank 0's BatchNorm statistics everywhere: evaluated and saved alike
        totals = torch.stack([s.loss, s.correct, torch.tensor(float(s.count), dtype=torch.float64,
                                                              device=self.device)])
        all_reduce_sum(totals)
        loss_sum, correct, count = totals.tolist()
        lr = self.optimizer.param_groups[0]["lr"]
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": loss_sum / count, "train_acc": 100.0 * correct / count,
                               "test_loss": None, "test_acc": None, "lr": lr, "epoch_time_s": s.time_s,
                               "step_time_s": s.time_s / max(s.steps, 1), "images_per_s": count / max(s.time_s, 1e-9),
                               "epoch_cpu_s": s.cpu_s, "step_cpu_s": s.cpu_s / max(s.steps, 1)}
        if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
            sums = accuracy_sums(unwrap_model(self.raw_model), self.test_loader, self.autocast_dtype).to(self.device)
            all_reduce_sum(sums)
            c, l, n = sums.tolist()
            row["test_acc"], row["test_loss"] = 100.0 * c / n, l / n
        return row

    def summary(self) -> dict[str, Any]:
        """The run's summary (what ``summary.json`` holds)."""
        cfg = self.config
        out = {"method": cfg.method, "model": cfg.model, "dataset": cfg.dataset, "seed": cfg.seed,
               **summarize(self.history, epochs=cfg.epochs), "stopped": self.stopped,
               "world_size": self.dist.world_size, "torch_threads": torch.get_num_threads(),
               "data_hash": self._data_hashes[0], "run_dir": str(self.run_dir)}
        if self.replica_digests is not None:
            out["replica_param_digests"] = self.replica_digests
            out["replicas_in_sync"] = len(set(self.replica_digests)) == 1
        return out

    def fit(self, *, resume: bool = False, overwrite: bool = False, until_epoch: int | None = None) -> dict[str, Any]:
        """Train until ``config.epochs`` (or ``until_epoch``); returns the summary.

        Args:
            resume: continue from the run folder's checkpoint (refused if its config differs).
            overwrite: start over even if the run folder already holds a checkpoint.
            until_epoch: stop after this many completed epochs (at most ``config.epochs``); a later
                ``fit()`` call on the same trainer continues in memory (``resume`` and ``overwrite``
                only matter on the first call). Used to interleave several runs epoch by epoch.

        Raises:
            TrainingDiverged: the loss became NaN/inf (the last epoch's checkpoint is kept).
            KeyboardInterrupt: after saving a checkpoint of the last completed step (single process).
            RunFolderInUse: another process trains or resumes into the run folder.
            DiskWriteError: the run folder's disk is full or not writable (the last checkpoint is kept).
        """
        cfg = self.config
        if until_epoch is not None and (not is_int(until_epoch)
                                        or until_epoch < 1):
            raise ValueError(f"until_epoch must be a positive int or None, got {until_epoch!r}")
        target = cfg.epochs if until_epoch is None else min(until_epoch, cfg.epochs)
        if self.dist.is_main:  # one process at a time in a run folder (released when fit returns)
            self._lock = RunLock(self.run_dir).acquire()
            for stale in self.run_dir.glob(".*.tmp"):  # temp files of writes cut by a kill -9
                stale.unlink(missing_ok=True)
        try:
            return self._fit(target, resume=resume, overwrite=overwrite)
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _fit(self, target: int, *, resume: bool, overwrite: bool) -> dict[str, Any]:
        cfg = self.config
        if not self._started:
            if resume:
                self._restore()
            else:
                decide_on_main(lambda: self._refuse_existing(overwrite))
            barrier()  # nobody starts writing before every rank has read the old checkpoint
            self.logger.write_config(self.run_info())
            self._print(f"training {cfg.method} on {cfg.dataset} with {cfg.model}: {len(self.train_data.labels)} "
                        f"train / {len(self.test_data.labels)} test images, {self.steps_per_epoch} steps/epoch, "
                        f"{cfg.epochs} epochs, device {self.device}, {self.dist.world_size} process(es) -> "
                        f"{self.run_dir}")
            self._started = True
            if self.epoch >= cfg.epochs:
                self._print(f"nothing to do: {self.epoch} of {cfg.epochs} epochs already done")
        if self.epoch >= target:
            return self._finish() if self.epoch >= cfg.epochs else self.summary()
        return self._loop(target)

    def _refuse_existing(self, overwrite: bool) -> None:
        if self.checkpoint_path.exists() and not overwrite:
            raise ValueError(f"run folder {str(self.run_dir)!r} already holds a checkpoint; pass resume=True "
                             "(--resume) to continue it, overwrite=True (--overwrite) to start over, or "
                             "choose another folder (--out)")

    def _loop(self, target: int) -> dict[str, Any]:
        cfg = self.config
        pbar = None
        if cfg.progress and self.dist.is_main:
            from tqdm.auto import tqdm

            total = (target - self.epoch) * self.steps_per_epoch - self.step_in_epoch
            pbar = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr, leave=False)
        write = (pbar.write if pbar is not None else self._print) if self._log is not None else (lambda s: None)
        try:
            with self._sigint:
                self._epochs(target, pbar, write)
        except KeyboardInterrupt:
            self.stopped = "interrupted"
            if pbar is not None:
                pbar.close()
                pbar = None
            where = (f"in epoch {self.epoch + 1} after step {self.step_in_epoch} of {self.steps_per_epoch}"
                     if self.step_in_epoch else f"after epoch {self.epoch}")
            if self._sigint.forced:
                self._print(f"interrupted again: stopped at once, not saved; the previous checkpoint remains "
                            f"({self.checkpoint_path})")
            elif not self.dist.distributed:
                self.save_checkpoint(partial=self.step_in_epoch > 0)
                self._print(f"interrupted: checkpoint saved {where} ({self.checkpoint_path}); "
                            "continue with --resume")
            else:
                self._print(f"interrupted: the checkpoint of epoch {self.epoch} remains ({self.checkpoint_path})")
            self.logger.write_summary(self.summary())
            raise
        except TrainingDiverged:
            if pbar is not None:
                pbar.close()
                pbar = None
            self.logger.write_summary(self.summary())
            raise
        finally:
            if pbar is not None:
                pbar.close()
        return self._finish() if self.epoch >= cfg.epochs else self.summary()

    def _epochs(self, target: int, pbar: Any, write: Callable[[str], None]) -> None:
        cfg = self.config
        while self.epoch < target:
            self._stop_if_requested()
            epoch = self.epoch
            if pbar is not None:
                pbar.set_description(f"epoch {epoch + 1}/{cfg.epochs}")
            self._train_epoch(epoch, pbar)
            row = self._end_epoch(epoch)
            self.scheduler.step()
            self.history.append(row)
            self.epoch, self.step_in_epoch = epoch + 1, 0
            self._sums = EpochSums(self.device)
            self.save_checkpoint()
            self.logger.write_metrics(self.history)
            self.logger.write_summary(self.summary())
            test = (f" test_loss {row['test_loss']:.4f} test_acc {row['test_acc']:.2f}"
                    if row["test_acc"] is not None else "")
            write(f"epoch {epoch + 1}/{cfg.epochs} train_loss {row['train_loss']:.4f} "
                  f"train_acc {row['train_acc']:.2f}{test} lr {row['lr']:.4g} {row['epoch_time_s']:.1f}s "
                  f"({row['images_per_s']:.0f} img/s)")

    def _finish(self) -> dict[str, Any]:
        if self.dist.distributed:
            # DDP keeps the parameters identical and the buffers were broadcast at the end of the last
            # epoch; check both once and record it (ReplicaMismatch on every rank otherwise).
            self.replica_digests = check_replicas(unwrap_model(self.raw_model))
        summary = self.summary()
        self.logger.write_metrics(self.history)
        self.logger.write_summary(summary)
        self.logger.close()
        if summary["best_acc"] is not None:
            window = min(10, summary["epochs_done"])  # accuracy_summary's window: the last 10 epochs, or all
            self._print(f"done: best {summary['best_acc']:.2f}% (epoch {summary['best_epoch']}), final "
                        f"{summary['final_acc']:.2f}%, median of the last {window} epoch{'s' * (window != 1)} "
                        f"{summary['median_last10_acc']:.2f}%")
        return summary

    def close(self, *, sync: bool = False) -> None:
        """Stop the mixer's workers, close the TensorBoard writer and leave the process group (when this
        trainer created it); ``sync`` meets every rank first (see :func:`cleanup_distributed`)."""
        self.mixer.close()
        self.logger.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        cleanup_distributed(self.dist, sync=sync)


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False,
          log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Build a :class:`Trainer`, run :meth:`Trainer.fit`, leave the process group; returns the summary."""
    trainer = Trainer(config, log=log)
    try:
        summary = trainer.fit(resume=resume, overwrite=overwrite)
    except BaseException:
        trainer.close()
        raise
    trainer.close(sync=True)  # every rank finished: meet before the process group goes
    return summary
