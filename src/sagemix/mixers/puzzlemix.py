"""Puzzle Mix: saliency-guided graph-cut masks with greedy block transport.

Puzzle Mix: Exploiting Saliency and Local Statistics for Optimal Mixup (Kim, Choo & Song, ICML 2020),
https://arxiv.org/abs/2009.06962. The kernels live in :mod:`sagemix.functional.puzzlemix`; this
module draws the per-batch parameters and speaks the step protocol of :class:`sagemix.step.MixStep`:

- saliency: the input gradient of the mean cross-entropy of the clean batch (``saliency_loss =
  "ce"``), reduced per pixel to ``sqrt(mean_c g^2)`` by :meth:`PuzzleMix.reduce_saliency`; the
  clean pass runs in eval mode unless ``clean_lam > 0``, whose clean loss keeps its parameter
  gradients with weight ``2 * clean_lam / K``;
- per batch: ``lam ~ Beta(alpha, alpha)``, one permutation, one grid side drawn uniformly from the
  ``grid_sizes`` that divide both H and W (a ValueError names the image size when none does).

The adversarial option (``adv_p > 0``) needs the sign of the input gradient, which the mixer call
(``mixer(images, targets, saliency)``) does not carry: :meth:`PuzzleMix.reduce_saliency` therefore
keeps ``sign(grad)`` for the next call (``MixStep`` calls the two in turn). The research code takes
that gradient at a randomly perturbed input; here it is the clean input's gradient (the one the
saliency comes from), and the random start is added afterwards.

The graph cuts, one per sample, run in this process (``num_workers=0``) or in the mixer's
:class:`sagemix.functional.pool.WorkerPool` (spawn processes started on the first batch, reused for
every later batch and stopped by :meth:`PuzzleMix.close` or when the mixer is garbage-collected).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor

from ..functional.graphcut import import_gco
from ..functional.puzzlemix import TRANSPORT_RESOLVE, fgsm_draws, fgsm_noise, puzzle_mix, transport_cell
from ..checks import check_int, check_nonnegative, check_probability
from .base import MixOutput, MixParams, Mixer
from .constants import CIFAR10_MEAN, CIFAR10_STD
from .sampling import random_permutation, sample_beta
from .targets import mix_targets
from .registry import register_mixer

__all__ = ["PuzzleMix", "PuzzleMixParams", "CIFAR10_MEAN", "CIFAR10_STD"]


@dataclass(frozen=True, eq=False, kw_only=True)
class PuzzleMixParams(MixParams):
    """Puzzle Mix's draw.

    Attributes:
        lam: the prior weight ``lam ~ Beta(alpha, alpha)`` (0.5 when ``alpha = 0``).
        index: (B,) int64 CPU permutation: the partner of each sample.
        grid_size: the drawn grid side ``n``.
        adversarial: whether the FGSM noise is added to (the image, its partner).
        noise_draws: the CPU ``(start, c)`` of :func:`~sagemix.functional.puzzlemix.fgsm_draws` when either
            image gets noise, else None.
        grad_sign: the sign of the input gradient the noise follows (kept by
            :meth:`PuzzleMix.reduce_saliency`; on the gradient's device, not a draw) when noise is added.
    """

    lam: float
    index: Tensor
    grid_size: int
    adversarial: tuple[bool, bool] = (False, False)
    noise_draws: tuple[Tensor, Tensor] | None = None
    grad_sign: Tensor | None = None


@register_mixer("puzzlemix")
class PuzzleMix(Mixer):
    """Puzzle Mix (Kim, Choo & Song, ICML 2020), the research code's CIFAR protocol by default.

    Args:
        alpha: Beta(alpha, alpha) parameter of the prior weight ``lam`` (0: ``lam = 0.5``).
        n_labels: number of mask levels ``m`` (3: z in {1, 1/2, 0}).
        beta: label smoothness (``beta' = beta / (16 n)``).
        gamma: data smoothness weight.
        eta: weight of the Binomial(m-1, lam) prior (``eta' = eta / n^2``).
        neigh_size: pooling cell of the data-smoothness term (``min(neigh_size, block)``).
        transport: move each image's salient blocks towards the region its mask keeps.
        t_eps: weight of the transport distance.
        t_size: transport cell side in pixels (``min(t_size, block)``), or ``"auto"`` (default:
            ``max(4, min(H, W) // 8)`` px, the research code's 4 px on CIFAR, 28 px at 224 px) or
            ``"block"`` (the graph-cut block, as the authors' ImageNet code); see
            :func:`sagemix.functional.puzzlemix.transport_cell`.
        grid_sizes: grid sides ``n`` to draw from, uniformly among those dividing H and W.
        clean_lam: weight of the clean loss (> 0: clean pass in train mode, its gradients kept with
            weight ``2 * clean_lam / K``).
        adv_p: probability, for each of the two images of a mix, of adding FGSM noise (per batch).
        adv_eps: bound of the adversarial noise on the 0-1 pixel scale.
        mean, std: per-channel normalisation of the inputs (0-1 scale); CIFAR-10's by default.
        num_workers: > 0 solves the cuts in a process pool of that size (started on first use, reused).
        transport_resolve: ``"cheapest"`` (the spec) or ``"research"``, the research code's conflict
            rule (see :data:`sagemix.functional.puzzlemix.TRANSPORT_RESOLVE`). Off by default.
        start_method: multiprocessing start method of the pool (None: ``"spawn"``).
        num_classes: K, needed when targets are integer labels.
        generator: torch generator for every random draw.

    Example:
        >>> import torch
        >>> mixer = PuzzleMix(num_classes=10, generator=torch.Generator().manual_seed(0))
        >>> out = mixer(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]), torch.rand(4, 32, 32))
        >>> out.images.shape, out.targets.sum(1).allclose(torch.ones(4))
        (torch.Size([4, 3, 32, 32]), True)
    """

    needs_gradient_saliency = True
    saliency_loss = "ce"
    needs_normalization: ClassVar[bool] = True

    def __init__(self, *, alpha: float = 1.0, n_labels: int = 3, beta: float = 1.2, gamma: float = 0.5,
                 eta: float = 0.2, neigh_size: int = 4, transport: bool = True, t_eps: float = 0.8,
                 t_size: int | str = "auto", grid_sizes: Sequence[int] = (2, 4, 8, 16), clean_lam: float = 0.0,
                 adv_p: float = 0.0, adv_eps: float = 10 / 255, mean: Sequence[float] = CIFAR10_MEAN,
                 std: Sequence[float] = CIFAR10_STD, num_workers: int = 0, transport_resolve: str = "cheapest",
                 start_method: str | None = None, num_classes: int | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(num_classes=num_classes, generator=generator)
        self.set_checked(check_nonnegative, alpha=alpha, beta=beta, gamma=gamma, eta=eta, t_eps=t_eps,
                         clean_lam=clean_lam, adv_eps=adv_eps)
        self.n_labels = check_int(n_labels, "n_labels", 2)
        self.neigh_size = check_int(neigh_size, "neigh_size", 1)
        self.set_options(transport=transport)
        transport_cell(8, 8, (8, 8), t_size)  # validates t_size
        self.t_size = t_size
        if isinstance(grid_sizes, (str, bytes)) or not isinstance(grid_sizes, Sequence) or len(grid_sizes) == 0:
            raise ValueError(f"grid_sizes must be a non-empty sequence of ints >= 1, got {grid_sizes!r}")
        self.grid_sizes = tuple(check_int(n, "grid_sizes entries", 1) for n in grid_sizes)
        self.adv_p = check_probability(adv_p, "adv_p")
        self.set_normalization(mean, std)
        if transport_resolve not in TRANSPORT_RESOLVE:
            raise ValueError(f"transport_resolve must be one of {TRANSPORT_RESOLVE}, got {transport_resolve!r}")
        self.transport_resolve = transport_resolve
        self.init_pool(num_workers, start_method)
        import_gco()  # fail at construction, naming the extra, rather than on the first batch
        self._adv_sign: Tensor | None = None

    # -- the step protocol -------------------------------------------------------------------
    @property
    def saliency_train_mode(self) -> bool:  # type: ignore[override]
        """The clean pass runs in train mode only when its loss is kept (``clean_lam > 0``)."""
        return self.clean_lam > 0

    def clean_weight(self, num_classes: int) -> float:
        """``2 * clean_lam / K`` (the research code's clean-loss weight)."""
        return 2.0 * self.clean_lam / num_classes

    def reduce_saliency(self, grad: Tensor) -> Tensor:
        """``sqrt(mean_c grad^2)``: (B, C, H, W) -> (B, H, W) float32.

        With ``adv_p > 0`` the sign of ``grad`` is kept for the next call's adversarial noise.
        """
        if not isinstance(grad, Tensor) or grad.ndim != 4:
            raise ValueError(f"grad must be a (B, C, H, W) tensor, got "
                             f"{tuple(grad.shape) if isinstance(grad, Tensor) else type(grad).__name__}")
        grad = grad.detach()
        if self.adv_p > 0:
            self._adv_sign = grad.sign()
        return grad.float().pow(2).mean(dim=1).sqrt()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_adv_sign"] = None  # the pool drops its own processes when pickled
        return state

    # -- the mix -----------------------------------------------------------------------------
    def valid_grid_sizes(self, height: int, width: int) -> tuple[int, ...]:
        """The ``grid_sizes`` that divide both ``height`` and ``width``."""
        return tuple(n for n in self.grid_sizes if height % n == 0 and width % n == 0)

    Params = PuzzleMixParams

    def _saliency(self, images: Tensor, saliency: Tensor) -> Tensor:
        """The (B, H, W) saliency (a (B, 1, H, W) one squeezed), shape and dtype checked."""
        b, c, h, w = images.shape
        if saliency.ndim == 4 and saliency.shape[1] == 1:
            saliency = saliency[:, 0]
        if saliency.shape != (b, h, w):
            raise ValueError(f"saliency must have shape (B, H, W) = {(b, h, w)} (or (B, 1, H, W)), "
                             f"got {tuple(saliency.shape)}")
        if not saliency.is_floating_point():
            raise TypeError(f"saliency must be a floating tensor, got dtype {saliency.dtype}")
        if c != len(self.mean):
            raise ValueError(f"images have {c} channels but mean/std have {len(self.mean)} values")
        return saliency

    def draw_params(self, images: Tensor, targets: Tensor, saliency: Tensor | None) -> PuzzleMixParams:
        b, c, h, w = images.shape
        assert saliency is not None  # checked by Mixer.check_inputs
        self._saliency(images, saliency)
        sides = self.valid_grid_sizes(h, w)
        if not sides:
            raise ValueError(f"no grid side in grid_sizes={self.grid_sizes} divides the image size "
                             f"H={h}, W={w}; pass grid_sizes with divisors of both")
        sign = None
        if self.adv_p > 0:
            sign, self._adv_sign = self._adv_sign, None
            if sign is None or sign.shape != images.shape:
                raise ValueError("adv_p > 0 needs the sign of the input gradient of this batch: call "
                                 "mixer.reduce_saliency(grad) before mixing (sagemix.MixStep does)")
        g = self.generator
        lam = float(sample_beta(self.alpha, size=1, generator=g)[0])
        index = random_permutation(b, generator=g)
        n = sides[int(torch.randint(len(sides), (1,), generator=g))]
        adv, draws = (False, False), None
        if self.adv_p > 0:
            u = torch.rand(2, generator=g)
            adv = (bool(u[0] < self.adv_p), bool(u[1] < self.adv_p))
            if adv[0] or adv[1]:
                draws = fgsm_draws(images.shape, self.adv_eps, g)
        return PuzzleMixParams(lam=lam, index=index, grid_size=n, adversarial=adv, noise_draws=draws,
                               grad_sign=sign if draws is not None else None)

    def apply_params(self, images: Tensor, targets: Tensor, params: PuzzleMixParams,
                     saliency: Tensor | None) -> MixOutput:
        b, c, h, w = images.shape
        saliency = self._saliency(images, saliency).to(images.device)  # it may come from another device
        ok = torch.isfinite(saliency).all() & (saliency >= 0).all()
        msg = "saliency must be finite and non-negative (e.g. sqrt(mean_c grad^2))"
        if saliency.device.type == "cpu":
            if not bool(ok):
                raise ValueError(msg)
        else:  # no host read of a device value: checked asynchronously
            torch._assert_async(ok, msg)
        index = params.index.to(images.device)
        noise1 = noise2 = None
        if params.noise_draws is not None:
            mean_t = torch.tensor(self.mean, device=images.device).reshape(1, c, 1, 1)
            std_t = torch.tensor(self.std, device=images.device).reshape(1, c, 1, 1)
            noise = fgsm_noise(images.float() * std_t + mean_t, params.grad_sign.to(images.device), self.adv_eps,
                               draws=params.noise_draws)
            noise1 = noise if params.adversarial[0] else None
            noise2 = noise[index] if params.adversarial[1] else None
        res = puzzle_mix(images, saliency, index, params.lam, grid_size=params.grid_size, mean=self.mean,
                         std=self.std, n_labels=self.n_labels, beta=self.beta, gamma=self.gamma, eta=self.eta,
                         neigh_size=self.neigh_size, transport=self.transport, t_eps=self.t_eps,
                         t_size=self.t_size, transport_resolve=self.transport_resolve, noise1=noise1,
                         noise2=noise2, pool=self.pool)
        rho = res.lam.to(targets.dtype)
        return MixOutput(res.images, mix_targets(targets, index, rho), rho, index,
                         {"grid_size": params.grid_size, "mask": res.mask, "prior_lam": params.lam,
                          "adversarial": params.adversarial})
