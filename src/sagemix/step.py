"""The two-pass training step: model + loss + mixer.

Gradient saliency needs the model and the loss, which no common mixing API takes. :class:`MixStep`
owns all three and runs one training step of any registered method (docs/SAGE.md §6)::

    step = MixStep(model, create_mixer("sage", num_classes=10))
    for x, y in loader:
        optimizer.zero_grad(set_to_none=True)
        out = step(x, y)           # forward/backward passes, gradients left in the parameters
        optimizer.step()

For a method that needs gradient saliency the step

1. runs the clean batch with ``x.requires_grad_(True)`` in the mode the method asks for (train mode
   for SAGE and Co-Mixup, eval mode for Puzzle Mix with ``clean_lam = 0``), under ``no_sync`` for a
   DDP model so that this backward does not all-reduce on its own;
2. back-propagates ``w * L_clean`` with ``w = mixer.clean_weight(K)``: the parameter gradients are
   kept (SAGE ``1 - update_ratio``, Puzzle Mix ``2 clean_lam / K``, Co-Mixup ``clean_lam``) and
   accumulate with the mixed loss's. With ``w = 0`` only the input gradient is computed
   (``torch.autograd.grad``), so no parameter gradient is touched and none is computed;
3. reduces the input gradient (in float32, also under autocast) with ``mixer.reduce_saliency``;
4. mixes, runs the mixed batch in train mode and back-propagates ``mixer.mixed_weight() * L_mixed``.

The training gradient is therefore ``w * grad L_clean + v * grad L_mixed``. The optimizer step is
left to the caller, so the step drops into any loop (gradient clipping, accumulation, schedulers).

A framework that owns the backward (Lightning, Accelerate) calls :meth:`MixStep.objective` instead:
the same passes and draws, the saliency from the input gradient alone, and the returned
``w * L_clean + v * L_mixed`` still attached to both graphs, so that one backward gives the same
parameter gradients (the clean graph stays alive until then: more memory, measured in the README)::

    out = step.objective(x, y)
    accelerator.backward(out.loss)     # or return out.loss from a LightningModule's training_step

On a GPU the step never waits for the device: the mixers' random draws are made on the CPU and
copied without blocking, and value checks of the inputs are asynchronous (:mod:`sagemix.debug`).
Under float16 with a ``GradScaler``, an input gradient that overflowed in the clean pass is not
silently used: the step's gradients are made NaN, so ``scaler.step`` skips the update and lowers
the scale exactly as for any other overflow (``StepOutput.saliency_overflow`` says so).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from .losses import soft_cross_entropy
from .mixers.base import Mixer, MixOutput, check_images, to_soft_targets
from .models.protocol import supports_manifold_mixup, unwrap_model
from .utils import train_mode

__all__ = ["MixStep", "StepOutput"]

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class StepOutput:
    """What one :class:`MixStep` call returns (all tensors detached).

    Attributes:
        loss: the objective whose gradient was accumulated, ``w * clean_loss + v * mixed_loss``.
        mixed_loss: the loss on the mixed batch.
        clean_loss: the clean (saliency) pass loss, or None when the method has no clean pass.
        logits: (B, K) logits of the mixed batch.
        clean_logits: (B, K) logits of the clean batch, or None.
        mix: the mixer's :class:`MixOutput` (mixed images, soft targets, lam, index).
        saliency: the saliency the mixer received, or None.
        saliency_overflow: 0-d bool tensor (on the device, not read): the clean pass's input gradient
            held non-finite values (a float16 overflow) and the saliency treated them as 0; with a
            ``GradScaler`` the step's gradients were then made NaN so that ``scaler.step`` skips this
            update. None when the method has no clean pass.
    """

    loss: Tensor
    mixed_loss: Tensor
    clean_loss: Tensor | None
    logits: Tensor
    clean_logits: Tensor | None
    mix: MixOutput
    saliency: Tensor | None
    saliency_overflow: Tensor | None = None


class MixStep:
    """One training step of any mixing method (see the module docstring).

    Args:
        model: the network, possibly wrapped in DDP or ``torch.compile``.
        mixer: a :class:`sagemix.mixers.Mixer`.
        loss: ``loss(logits, soft_targets) -> scalar``; soft-target cross-entropy by default.
        num_classes: K, needed when targets are integer labels (defaults to ``mixer.num_classes``).
        autocast_dtype: run forward passes under ``torch.autocast`` with this dtype (e.g.
            ``torch.bfloat16``); the saliency is still computed and reduced in float32.
        scaler: an optional ``torch.amp.GradScaler`` for float16 training; the losses are scaled
            before each backward and the saliency is unscaled.

    Example:
        >>> import torch
        >>> from sagemix import MixStep, create_mixer
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
        >>> step = MixStep(model, create_mixer("sage", num_classes=4, generator=torch.Generator().manual_seed(0)))
        >>> out = step(torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1]))
        >>> out.mix.targets.sum(1).allclose(torch.ones(6))
        True
    """

    def __init__(self, model: nn.Module, mixer: Mixer, loss: LossFn = soft_cross_entropy, *,
                 num_classes: int | None = None, autocast_dtype: torch.dtype | None = None,
                 scaler: "torch.amp.GradScaler | None" = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(mixer, Mixer):
            raise TypeError(f"mixer must be a sagemix Mixer (see sagemix.create_mixer), got {type(mixer).__name__}")
        if not callable(loss):
            raise TypeError(f"loss must be callable as loss(logits, soft_targets), got {loss!r}")
        if not any(p.requires_grad for p in model.parameters()):
            n = sum(1 for _ in model.parameters())
            raise ValueError(f"model {type(unwrap_model(model)).__name__} has no trainable parameters ({n} parameters, "
                             "none with requires_grad=True); MixStep trains the model, so unfreeze some")
        if mixer.mixes_hidden and not supports_manifold_mixup(model):
            inner = unwrap_model(model)
            torchvision_resnet = type(inner).__module__.startswith("torchvision.models") and type(inner).__name__ == "ResNet"
            fix = ("wrap it as sagemix.models.TorchvisionResNet(model), or build it with "
                   "sagemix.models.create_model('tv_resnet18', num_classes=K) (also tv_resnet50, tv_resnext*, "
                   "tv_wide_resnet*)" if torchvision_resnet else "see sagemix.models.protocol")
            raise ValueError(f"mixer {mixer.name!r} mixes hidden states, but model {type(inner).__name__} does not "
                             "implement the stage protocol (an int attribute `mix_layers` and forward(x, mix_layer=k, "
                             f"mix_fn=fn)); {fix}")
        if autocast_dtype is not None and autocast_dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"autocast_dtype must be torch.float16, torch.bfloat16 or None, got {autocast_dtype}")
        self.model = model
        self.mixer = mixer
        self.loss = loss
        self.num_classes = num_classes if num_classes is not None else mixer.num_classes
        self.autocast_dtype = autocast_dtype
        self.scaler = scaler

    # ------------------------------------------------------------------------------------------
    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    def _scale(self, loss: Tensor) -> Tensor:
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def _scaling(self) -> bool:
        return self.scaler is not None and self.scaler.is_enabled()

    def _no_sync(self) -> contextlib.AbstractContextManager:
        no_sync = getattr(self.model, "no_sync", None)
        return no_sync() if callable(no_sync) else contextlib.nullcontext()

    def clean_pass(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Run the saliency pass; returns ``(saliency, clean_loss, clean_logits)`` (detached).

        The kept parameter gradients (``w * grad L_clean``) are accumulated in the model.
        """
        saliency, loss, logits, _ = self._clean_pass(images, targets)
        return saliency, loss.detach(), logits

    def _clean_pass(self, images: Tensor, targets: Tensor, *,
                    keep_graph: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """:meth:`clean_pass` plus the 0-d bool device tensor "the input gradient was not finite".

        With ``keep_graph`` no parameter gradient is touched: only the input gradient is computed
        (``torch.autograd.grad``), and the returned loss stays attached to the clean graph (kept alive
        when ``clean_weight > 0``) for :meth:`objective`'s single backward.
        """
        mixer, model = self.mixer, self.model
        x = images.detach().clone().requires_grad_(True)
        weight = float(mixer.clean_weight(targets.shape[1]))
        if keep_graph and isinstance(model, nn.parallel.DistributedDataParallel) and (weight > 0 or model.static_graph):
            # objective(): the mixed forward must be the step's only DDP forward, preparing the one gradient
            # all-reduce of both losses; a DDP forward whose graph joins that backward, or any with
            # static_graph=True (whose output hook asks the reducer for an all-reduce even under no_sync),
            # would break it. So the clean pass runs on the wrapped module: in train mode it reads no
            # buffer and the mixed forward's broadcast sets them as in __call__.
            model = model.module
        with train_mode(model, mixer.saliency_train_mode), self._no_sync():
            with self._autocast(images.device):
                logits = model(x)
            loss = (self.loss(logits, targets) if mixer.saliency_loss == "train"
                    else soft_cross_entropy(logits, targets))
            # The input gradient of the weighted loss, as the backward of step() computes it, so that
            # step() and objective() reduce the same saliency.
            scaled = self._scale(weight * loss if weight > 0 else loss)
            if weight > 0 and not keep_graph:
                scaled.backward()
                grad = x.grad
            else:
                (grad,) = torch.autograd.grad(scaled, x, retain_graph=weight > 0)
        grad = grad.detach().float()
        found_inf = ~torch.isfinite(grad).all()
        factor = weight if weight > 0 else 1.0
        if self._scaling():
            # The scale as a device tensor (GradScaler.get_scale() would read it on the host). It is a
            # power of two, so the float32 factor equals float32(weight * scale) computed in float64.
            grad = grad / (self.scaler._get_scale_async().double() * factor).float()
        else:
            grad = grad / factor
        grad = torch.nan_to_num(grad, nan=0.0, posinf=0.0, neginf=0.0)
        with _no_autocast(images.device):
            saliency = mixer.reduce_saliency(grad)
        return saliency, loss, logits.detach(), found_inf

    def _mixed_pass(self, images: Tensor, soft: Tensor, saliency: Tensor | None) -> tuple[MixOutput, Tensor, Tensor]:
        """Mix (in float32, also inside an outer autocast region) and run the mixed batch in train mode;
        returns ``(mix, logits, mixed_loss)`` with the loss attached."""
        model, mixer = self.model, self.mixer
        with _no_autocast(images.device):
            mix = mixer.mix(images, soft, saliency)  # inputs checked by the step: the unchecked draw + apply
        model.train()
        with self._autocast(images.device):
            if mixer.mixes_hidden:
                logits = model(mix.images, mix_layer=mix.extras["mix_layer"], mix_fn=mix.extras["mix_fn"])
            else:
                logits = model(mix.images)
        return mix, logits, self.loss(logits, mix.targets)

    def _poison(self, loss: Tensor, found_inf: Tensor | None) -> Tensor:
        """``loss`` made NaN where the saliency overflowed under a GradScaler (no host read): NaN gradients
        make ``scaler.step`` skip this update and lower the scale, as AMP does for an overflow in the
        parameter gradients."""
        if found_inf is None or not self._scaling():
            return loss
        return loss * torch.where(found_inf, float("nan"), 1.0).to(loss.dtype)

    def __call__(self, images: Tensor, targets: Tensor) -> StepOutput:
        """Run one step on a batch.

        Args:
            images: (B, C, H, W) float normalised images.
            targets: int (B,) labels or float (B, K) soft labels.

        Returns:
            StepOutput; the parameter gradients of the training objective are accumulated in the model.

        Raises:
            ValueError: the model is a DDP model with ``static_graph=True`` and the method has a clean
                pass (use :meth:`objective`).
        """
        return self._run(images, targets, one_backward=False)

    def objective(self, images: Tensor, targets: Tensor) -> StepOutput:
        """The step's training objective, for a framework that owns the backward (one backward per step).

        Runs the same passes as :meth:`__call__` but back-propagates nothing into the parameters: the
        saliency is the clean pass's input gradient (``torch.autograd.grad`` with respect to the input
        only), and the returned ``loss = w * L_clean + v * L_mixed`` is still attached to both graphs, so
        one ``loss.backward()`` (or ``accelerator.backward(loss)``, or Lightning's) accumulates the same
        parameter gradients as :meth:`__call__` with the same generator state. The clean graph stays
        alive until that backward when ``w > 0`` (more memory than :meth:`__call__`; see the README).

        The loss is not scaled: scale it as usual (``scaler.scale(out.loss).backward()``). A ``scaler``
        given to the step is used for the clean pass's input gradient, and when that gradient overflowed
        the returned loss is NaN so that ``scaler.step`` skips the update. Inside an outer autocast region
        (Lightning ``precision="bf16-mixed"``) the saliency and the mix are still computed in float32 and
        the two forwards cast the weights separately, so the gradients of the two losses are summed in
        float32 as in :meth:`__call__`.

        For a DDP model whose clean loss is kept (``w > 0``) the clean forward runs on ``model.module``:
        the mixed forward is then the step's only DDP forward, it prepares the gradient all-reduce and
        the single backward performs it once, for both losses (also with ``find_unused_parameters`` or
        ``static_graph``). With ``w = 0`` the clean pass runs as in :meth:`__call__` (through the DDP
        wrapper under ``no_sync``), except with ``static_graph=True``, where it too runs on the module: an
        eval-mode clean pass (Puzzle Mix's default) then reads this rank's batch-norm running statistics
        rather than rank 0's broadcast ones. Inside a LightningModule the step holds the plain model
        (Lightning wraps the module itself).

        Args:
            images: (B, C, H, W) float normalised images.
            targets: int (B,) labels or float (B, K) soft labels.

        Returns:
            StepOutput whose ``loss`` is attached to the graph (every other tensor is detached).

        Example:
            >>> import torch
            >>> from sagemix import MixStep, create_mixer
            >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
            >>> step = MixStep(model, create_mixer("sage", num_classes=4, generator=torch.Generator().manual_seed(0)))
            >>> out = step.objective(torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 0, 1]))
            >>> out.loss.requires_grad, model[1].weight.grad is None
            (True, True)
            >>> out.loss.backward()
        """
        return self._run(images, targets, one_backward=True)

    def _run(self, images: Tensor, targets: Tensor, *, one_backward: bool) -> StepOutput:
        """:meth:`__call__` (``one_backward=False``: back-propagates each loss) or :meth:`objective`."""
        images = check_images(images)
        soft = to_soft_targets(targets, self.num_classes, images.shape[0], device=images.device)
        mixer = self.mixer
        saliency = clean_loss = clean_logits = found_inf = None
        weight = float(mixer.clean_weight(soft.shape[1])) if mixer.needs_gradient_saliency else 0.0
        keep = one_backward and weight > 0  # the clean graph joins the single backward
        if not one_backward and mixer.needs_gradient_saliency and \
                isinstance(self.model, nn.parallel.DistributedDataParallel) and self.model.static_graph:
            # DDP's static graph counts the clean backward's gradient hooks (or its first iteration's output
            # hook asks for an all-reduce): an internal assert or, from the second step, wrong gradients.
            raise ValueError(f"{mixer.name!r} runs a clean pass before the mixed one, which a DDP model with "
                             "static_graph=True cannot back-propagate separately; call step.objective(images, "
                             "targets) and back-propagate its loss once, or wrap the model without static_graph")
        if keep and not mixer.saliency_train_mode:
            # An eval-mode graph keeps the batch-norm running statistics, which the mixed forward then
            # updates in place: the single backward would fail deep inside autograd.
            raise ValueError(f"mixer {mixer.name!r} keeps its clean loss (clean_weight {weight:g}) from an "
                             "eval-mode clean pass, which MixStep.objective cannot back-propagate after the "
                             "train-mode mixed forward; use step(images, targets) for it")
        if mixer.needs_gradient_saliency:
            saliency, clean_loss, clean_logits, found_inf = self._clean_pass(images, soft, keep_graph=one_backward)
            if not keep:
                clean_loss = clean_loss.detach()
        if keep:
            # Inside any outer autocast region (even a disabled one) each weight's cast is cached until the
            # region ends: the mixed forward would reuse the clean forward's casts and the two losses'
            # gradients would be summed in low precision. A cleared cache costs one cast per weight.
            torch.clear_autocast_cache()
        mix, logits, mixed_loss = self._mixed_pass(images, soft, saliency)
        v = float(mixer.mixed_weight())
        total = v * mixed_loss
        if weight > 0:
            total = total + weight * clean_loss
        if one_backward:
            total = self._poison(total, found_inf)
        else:
            self._poison(self._scale(v * mixed_loss), found_inf).backward()
            total = total.detach()
        return StepOutput(total, mixed_loss.detach(), None if clean_loss is None else clean_loss.detach(),
                          logits.detach(), clean_logits, mix, saliency, found_inf)


def _autocast_on(device: torch.device) -> bool:
    """Whether an autocast region is active for ``device``'s type (torch < 2.4: CPU and CUDA only)."""
    try:
        return torch.is_autocast_enabled(device.type)
    except TypeError:  # torch < 2.4 takes no device type
        if device.type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return device.type == "cuda" and torch.is_autocast_enabled()
    except RuntimeError:  # a device type autocast does not know (meta): no region can be active
        return False


def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Leave an outer autocast region for a block (the saliency and the mix run in their own precision)."""
    return torch.autocast(device.type, enabled=False) if _autocast_on(device) else contextlib.nullcontext()
