"""Co-Mixup: saliency guided joint mixup with supermodular diversity.

Kim, Choo, Jeong & Song, "Co-Mixup: Saliency Guided Joint Mixup with Supermodular Diversity",
ICLR 2021, https://arxiv.org/abs/2102.03065.

The batch is cut into partitions of ``m_part`` inputs (the last one may be smaller, down to a
single input); each partition's ``m`` outputs are labelled jointly on an ``m_block_num`` square
block grid by graph cuts (see :mod:`sagemix.functional.comixup`), and each output ``j`` mixes the
inputs of its partition block by block. Output ``j`` corresponds to input ``j``: ``lam[j]`` is the
realised pixel share of input ``j`` in output ``j`` and ``index[j]`` the other input with the
largest share (``j`` itself when output ``j`` uses no other input). The soft labels are the
area-weighted labels of the inputs used.

Needs ``gco-wrapper``: ``pip install "sagemix[comixup]"``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from ..functional.comixup import HALF_BIAS, VARIANTS, comixup, initial_labels, partition_bounds
from ..functional.graphcut import import_gco
from ..checks import check_alpha, check_int, check_nonnegative, check_probability
from .base import MixOutput, MixParams, Mixer
from .sampling import sample_dirichlet
from .registry import register_mixer

__all__ = ["CoMixup", "CoMixupParams"]


@dataclass(frozen=True, eq=False, kw_only=True)
class CoMixupParams(MixParams):
    """Co-Mixup's draw.

    Attributes:
        prior: (B,) float64 CPU Dirichlet(alpha 1_m) weights, one draw per partition laid end to end.
        init: the initial labelling, one (m, n, n) int64 CPU tensor per partition
            (:func:`~sagemix.functional.comixup.initial_labels`).
    """

    prior: Tensor
    init: tuple[Tensor, ...]


@register_mixer("comixup")
class CoMixup(Mixer):
    """Co-Mixup (Kim et al., ICLR 2021), the research code's defaults on CIFAR.

    Args:
        num_classes: K, needed when targets are integer labels.
        generator: source of every random draw (Dirichlet prior, initial labelling).
        m_part: inputs per partition (each solved independently; the last may be smaller).
        m_block_num: n, the side of the label grid (``H, W >= n``).
        alpha: Dirichlet concentration of the prior over inputs, ``w ~ Dirichlet(alpha 1_m)``, in
            [1e-3, 1e3] (``ALPHA_RANGE``); small values give nearly one-hot weights (see
            :func:`~sagemix.mixers.sampling.sample_dirichlet`).
        beta: smoothness (Potts) weight, divided by ``N = n^2``.
        gamma: diversity weight, divided by N.
        eta: prior weight, divided by N.
        omega: weight of the saliency-peak distance in the compatibility matrix.
        thres: tau of the hard threshold on the modular diversity penalty (``r_i > tau N``).
        niter: outer iterations of the block-coordinate descent.
        set_resolve: at iteration ``niter - 2`` push apart outputs that use the same input set.
        clean_lam: weight of the clean loss whose parameter gradients are kept.
        num_workers: 0 solves the partitions in this process; ``> 0`` uses the mixer's
            :class:`sagemix.functional.pool.WorkerPool` of that many spawn workers, started on first
            use and reused (call :meth:`close` to shut it down). ``"auto"`` (default): 2 workers
            (none on a 1-core machine) for images of at least
            :data:`~sagemix.mixers.base.AUTO_POOL_PIXELS` pixels, in process for smaller ones.
            Measured (``sagemix bench --scale --scale-parts mixers``, B = 64, the quiet 2-core
            machine): 64 px 0.33 s in process vs 0.24 s with 2 workers, 224 px 0.93 vs 0.81 s (32 px
            0.26 vs 0.14 s, but a loaded machine lost with the pool, so small images stay in process).
            The result is the same either way.
        warm_start: option, off by default (the research code starts every cut from label 0):
            start each graph cut from the output's current labelling, so a cut never raises its
            block energy.
        half_bias: bonus subtracted from the half-half labels' unary (5e-4 in the research code).
        stop_before_resolve: option, off by default: the research code's order, in which the
            convergence test (relative change < 1e-6) may end the descent right after the set
            resolution at iteration ``niter - 2``, before its costs are used. By default the sweep
            after a non-empty resolution always runs, so that the outputs it targets can diverge.
        pool_size: average-pool size before locating the saliency peaks (8 in the research code).
        variant: ``"paper"`` (default) or ``"research"``: the authors' code's capped usage term
            (``(mask * A) @ p``, an operator-precedence quirk) and ``torch.topk`` tie-breaking among
            the most-used inputs (see :mod:`sagemix.functional.comixup`).

    Example:
        >>> import torch
        >>> mixer = CoMixup(num_classes=10, generator=torch.Generator().manual_seed(0))
        >>> x, y = torch.randn(7, 3, 32, 32), torch.arange(7)
        >>> out = mixer(x, y, saliency=torch.rand(7, 32, 32))
        >>> out.targets.shape, bool(out.targets.sum(1).allclose(torch.ones(7)))
        (torch.Size([7, 10]), True)
    """

    needs_gradient_saliency = True
    saliency_train_mode = True
    saliency_loss = "ce"

    def __init__(self, *, num_classes: int | None = None, generator: torch.Generator | None = None,
                 m_part: int = 20, m_block_num: int = 4, alpha: float = 2.0, beta: float = 0.32,
                 gamma: float = 1.0, eta: float = 0.05, omega: float = 0.001, thres: float = 0.83,
                 niter: int = 4, set_resolve: bool = True, clean_lam: float = 1.0, num_workers: int | str = "auto",
                 warm_start: bool = False, half_bias: float = HALF_BIAS, stop_before_resolve: bool = False,
                 pool_size: int = 8, variant: str = "paper") -> None:
        super().__init__(num_classes=num_classes, generator=generator)
        self.set_checked(functools.partial(check_int, minimum=1), m_part=m_part, m_block_num=m_block_num, niter=niter,
                         pool_size=pool_size)
        self.alpha = check_alpha(alpha, "alpha")
        self.set_checked(check_nonnegative, beta=beta, gamma=gamma, eta=eta, thres=thres, clean_lam=clean_lam,
                         half_bias=half_bias)
        self.omega = check_probability(omega, "omega")
        self.set_options(set_resolve=set_resolve, warm_start=warm_start, stop_before_resolve=stop_before_resolve)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self.init_pool(num_workers)
        import_gco("comixup")  # fail at construction, naming the extra, rather than on the first batch

    # -- the step protocol -------------------------------------------------------------------
    def clean_weight(self, num_classes: int) -> float:
        """Co-Mixup keeps the clean loss with weight ``clean_lam``."""
        return self.clean_lam

    def reduce_saliency(self, grad: Tensor) -> Tensor:
        """``sqrt(mean_c grad^2)``: (B, C, H, W) -> (B, H, W)."""
        return grad.pow(2).mean(1).sqrt()

    # -- the draws and the mix -----------------------------------------------------------------
    Params = CoMixupParams

    def _saliency(self, images: Tensor, saliency: Tensor) -> Tensor:
        """The (B, H, W) saliency (a (B, 1, H, W) one squeezed), its shape and the grid checked."""
        b, _, h, w = images.shape
        if saliency.ndim == 4 and saliency.shape[1] == 1:
            saliency = saliency[:, 0]
        if tuple(saliency.shape) != (b, h, w):
            raise ValueError(f"saliency must have shape {(b, h, w)} (one map per image), got {tuple(saliency.shape)}")
        if self.m_block_num > h or self.m_block_num > w:
            raise ValueError(f"m_block_num={self.m_block_num} needs images of at least "
                             f"{self.m_block_num}x{self.m_block_num} pixels, got {h}x{w}")
        return saliency

    def draw_params(self, images: Tensor, targets: Tensor, saliency: Tensor | None) -> CoMixupParams:
        """The Dirichlet prior of every partition, then the initial labelling of every partition."""
        b = images.shape[0]
        self._saliency(images, saliency)
        sizes = [e - s for s, e in partition_bounds(b, self.m_part)]
        prior = sample_dirichlet(self.alpha, sizes, self.generator)
        return CoMixupParams(prior=prior, init=tuple(initial_labels(b, self.m_part, self.m_block_num,
                                                                    self.generator)))

    def apply_params(self, images: Tensor, targets: Tensor, params: CoMixupParams,
                     saliency: Tensor | None) -> MixOutput:
        """Mix a batch; ``saliency`` is (B, H, W) or (B, 1, H, W), non-negative."""
        b = images.shape[0]
        saliency = self._saliency(images, saliency)
        res = comixup(images, targets, saliency.detach(), params.prior, m_part=self.m_part,
                      block_num=self.m_block_num, beta=self.beta, gamma=self.gamma, eta=self.eta, omega=self.omega,
                      thres=self.thres, niter=self.niter, set_resolve=self.set_resolve,
                      warm_start=self.warm_start, half_bias=self.half_bias,
                      stop_before_resolve=self.stop_before_resolve, variant=getattr(self, "variant", "paper"),
                      pool_size=self.pool_size, init=params.init, pool=self.pool_for(images))
        weights = res.weights
        lam = weights.diagonal().clone()
        others = weights.clone()
        others.fill_diagonal_(-1.0)
        best, index = others.max(1)
        own = torch.arange(b, device=weights.device)
        index = torch.where(best > 0, index, own)
        return MixOutput(res.images, res.targets, lam, index,
                         {"weights": weights, "masks": res.masks, "objective": res.objectives,
                          "partitions": res.partitions, "prior": params.prior})
