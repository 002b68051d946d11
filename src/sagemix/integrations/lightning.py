"""Train any sagemix method with PyTorch Lightning under automatic optimization.

:class:`MixLightningModule` wraps a model and a mixer; its ``training_step`` returns
:meth:`sagemix.MixStep.objective`'s loss, so Lightning runs the single backward, the precision plugin
(``precision="bf16-mixed"``: the saliency and the mix stay float32; ``"16-mixed"``: the plugin's
``GradScaler`` also scales the clean pass's input gradient), gradient accumulation
(``accumulate_grad_batches``) and the DDP strategies (Lightning wraps the module, the step runs the
plain model inside it: one DDP forward, one all-reduce)::

    import lightning as L
    from sagemix import create_mixer
    from sagemix.integrations.lightning import MixLightningModule

    module = MixLightningModule(model, create_mixer("sage", num_classes=10), seed=0)
    L.Trainer(max_epochs=10, precision="bf16-mixed", strategy="ddp").fit(module, train_loader, val_loader)

It logs ``train/loss`` (the objective), ``train/mixed_loss`` and, for the methods with a clean pass,
``train/clean_loss``; with a validation loader ``val/loss`` and ``val/acc``. The mixer draws from a
generator the module seeds from ``seed`` and the process's global rank in :meth:`setup` (rank 0 gets the
single-process seed of :func:`sagemix.train.setup.mixer_seed`), and every rank's generator state is
saved in Lightning checkpoints and restored from them, so ``trainer.fit(module, ..., ckpt_path=...)``
continues with the draws an uninterrupted run would have made.

Needs ``pip install "sagemix[lightning]"``.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

try:
    import lightning.pytorch as pl
    from lightning.pytorch.utilities import rank_zero_warn
except ImportError as e:  # pragma: no cover - exercised with lightning hidden
    raise ImportError(f'sagemix.integrations.lightning needs Lightning ({e}): pip install "sagemix[lightning]"') from e

from ..losses import soft_cross_entropy
from ..mixers.base import Mixer
from ..step import MixStep, StepOutput
from ..train.setup import mixer_seed

__all__ = ["MixLightningModule", "CHECKPOINT_KEY"]

#: Where the mixer's generator states live in a Lightning checkpoint.
CHECKPOINT_KEY = "sagemix"

OptimizerFactory = Callable[[Any], torch.optim.Optimizer]


def _default_optimizer(params: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)


class MixLightningModule(pl.LightningModule):
    """A LightningModule training ``model`` with ``mixer`` (any registered method) in one backward.

    Args:
        model: the network; for Manifold Mixup it must implement the stage protocol.
        mixer: a :class:`sagemix.mixers.Mixer` (``sagemix.create_mixer(name, num_classes=K, ...)``); its
            generator is replaced in :meth:`setup` by one seeded from ``seed`` and the rank.
        loss: ``loss(logits, soft_targets) -> scalar``; soft-target cross-entropy by default.
        num_classes: K when the mixer has none (needed for integer labels).
        optimizer: ``optimizer(params) -> torch.optim.Optimizer``; SGD (lr 0.1, Nesterov momentum 0.9,
            weight decay 5e-4) by default.
        lr_scheduler: optional ``lr_scheduler(optimizer) -> scheduler``, stepped every epoch.
        seed: the seed of the mixer's draws (a non-negative int).

    Batches are ``(images, targets, ...)``: (B, C, H, W) float images and int (B,) labels or (B, K)
    soft labels.
    """

    def __init__(self, model: nn.Module, mixer: Mixer, *, loss: Callable[[Tensor, Tensor], Tensor] = soft_cross_entropy,
                 num_classes: int | None = None, optimizer: OptimizerFactory | None = None,
                 lr_scheduler: Callable[[torch.optim.Optimizer], Any] | None = None, seed: int = 0) -> None:
        super().__init__()
        mixer_seed(seed)  # validates seed: a non-negative int
        if optimizer is not None and not callable(optimizer):
            raise TypeError(f"optimizer must be callable as optimizer(params), got {optimizer!r}")
        if lr_scheduler is not None and not callable(lr_scheduler):
            raise TypeError(f"lr_scheduler must be callable as lr_scheduler(optimizer) or None, got {lr_scheduler!r}")
        self.model = model
        self.mix_step = MixStep(model, mixer, loss, num_classes=num_classes)  # checks model, mixer and loss
        self.mixer = mixer
        self.seed = seed
        self.optimizer_factory = optimizer or _default_optimizer
        self.lr_scheduler_factory = lr_scheduler

    # -- training ---------------------------------------------------------------------------------
    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def setup(self, stage: str) -> None:
        """Seed the mixer's generator for this rank; hand the precision plugin's GradScaler to the step."""
        self.mixer.generator = torch.Generator().manual_seed(mixer_seed(self.seed, self.global_rank))
        plugin = getattr(self.trainer, "precision_plugin", None) if self._trainer is not None else None
        scaler = getattr(plugin, "scaler", None)
        self.mix_step.scaler = scaler if isinstance(scaler, torch.amp.GradScaler) else None

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        images, targets = _split(batch)
        out: StepOutput = self.mix_step.objective(images, targets)
        b = images.shape[0]
        self.log("train/loss", out.loss.detach(), prog_bar=True, batch_size=b)
        self.log("train/mixed_loss", out.mixed_loss, batch_size=b)
        if out.clean_loss is not None:
            self.log("train/clean_loss", out.clean_loss, batch_size=b)
        return out.loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        images, targets = _split(batch)
        logits = self.model(images)
        if targets.ndim == 2:  # soft labels: their arg-max is the class scored
            loss, labels = soft_cross_entropy(logits, targets), targets.argmax(1)
        else:
            loss, labels = nn.functional.cross_entropy(logits.float(), targets), targets
        acc = (logits.argmax(1) == labels).float().mean() * 100
        b = images.shape[0]
        self.log("val/loss", loss, sync_dist=True, batch_size=b)
        self.log("val/acc", acc, prog_bar=True, sync_dist=True, batch_size=b)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.model.parameters())
        if self.lr_scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.lr_scheduler_factory(optimizer)}

    def teardown(self, stage: str) -> None:
        self.mixer.close()  # stop a mixer's worker processes, if any (a later call starts new ones)

    # -- checkpoints -----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store every rank's mixer generator state (a collective: Lightning calls this on every rank)."""
        state = self._generator().get_state()
        world = self.trainer.world_size if self._trainer is not None else 1
        if world > 1:
            states = [s.cpu() for s in self.all_gather(state.to(self.device)).unbind(0)]
        else:
            states = [state]
        checkpoint[CHECKPOINT_KEY] = {"mixer_generator_states": states, "seed": self.seed, "method": self.mixer.name}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore this rank's mixer generator state (a fresh stream when the number of processes changed)."""
        saved = checkpoint.get(CHECKPOINT_KEY)
        if saved is None:
            rank_zero_warn("the checkpoint holds no sagemix mixer state (not saved by MixLightningModule): "
                           "the mixer's draws restart from the seed")
            return
        states = saved["mixer_generator_states"]
        rank = self.global_rank
        world = self.trainer.world_size if self._trainer is not None else 1
        if len(states) == world:
            self._generator().set_state(states[rank])
        else:
            epoch = int(checkpoint.get("epoch", 0))
            rank_zero_warn(f"the checkpoint was saved by {len(states)} process(es), not {world}: each rank's mixer "
                           f"starts a fresh stream (seed {self.seed}, restart epoch {epoch})")
            self.mixer.generator = torch.Generator().manual_seed(mixer_seed(self.seed, rank, restart_epoch=epoch))

    def _generator(self) -> torch.Generator:
        if self.mixer.generator is None:  # used before setup(): seed as setup() would
            self.mixer.generator = torch.Generator().manual_seed(mixer_seed(self.seed, self.global_rank))
        return self.mixer.generator


def _split(batch: Any) -> tuple[Tensor, Tensor]:
    """``(images, targets)`` from a ``(images, targets, ...)`` batch; a clear error otherwise."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError(f"MixLightningModule expects batches (images, targets, ...), got {type(batch).__name__}"
                        + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""))
    return batch[0], batch[1]
