"""SaliencyMix: CutMix whose box is centred on the partner's most salient pixel.

Uddin, Monira, Shin, Chung & Bae, "SaliencyMix: A Saliency Guided Data Augmentation Strategy for
Better Regularization", ICLR 2021, https://arxiv.org/abs/2006.01791.

Per batch, with probability ``prob`` (0.5): ``lam ~ Beta(alpha, alpha)``, a permutation ``pi``;
for each sample a box of side ``sqrt(1-lam)`` × image side centred on the peak of its partner's
saliency map, clipped; the partner's pixels are pasted from the same location and ``lam`` is
recomputed from the clipped area. The saliency is OpenCV's static fine-grained saliency
(Montabone & Soto 2010) of the de-normalised uint8 image (``pip install "sagemix[saliencymix]"``);
no model is involved. Kernels: :mod:`sagemix.functional.saliencymix` and
:func:`sagemix.functional.boxes.paste_boxes`.

Differences from the research code, which computes one box from the first partner only and
applies it to the whole batch, and feeds the detector normalised float input whose output it wraps
by ``*255`` in uint8: the default here is the paper's per-image box on correct uint8 input;
``per_batch_box=True`` reproduces the box sharing (the wrap bug is not reproduced).
"""
from __future__ import annotations

from typing import Callable, ClassVar, Sequence

import torch
from torch import Tensor

from ..functional.saliencymix import (denormalize_to_uint8, opencv_saliency, require_opencv_saliency,
                                      saliency_boxes)
from ..debug import to_device
from .base import MixOutput, Mixer
from .cutmix import BoxMixParams, paste_partner_boxes
from .constants import AUTO_POOL_PIXELS, CIFAR10_MEAN, CIFAR10_STD
from .sampling import draw_apply, random_permutation, sample_beta
from .registry import register_mixer

__all__ = ["SaliencyMix", "CIFAR10_MEAN", "CIFAR10_STD", "AUTO_POOL_PIXELS"]

SaliencyFn = Callable[[Tensor], Tensor]


@register_mixer("saliencymix")
class SaliencyMix(Mixer):
    """SaliencyMix (Uddin et al., ICLR 2021).

    Args:
        alpha: Beta(alpha, alpha) concentration of the drawn ``lam`` (> 0); 1.0 on CIFAR.
        prob: probability of mixing a batch (0.5 in the paper); otherwise the clean batch is returned
            with ``lam = 1`` and ``extras["applied"] = False``.
        per_batch_box: the research code's behaviour: one box, centred on the saliency peak of the
            first sample's partner, for the whole batch (off by default).
        mean: per-channel mean of the normalisation the images went through (0-1 scale); CIFAR-10's
            by default. Used to recover the uint8 image for OpenCV.
        std: per-channel std of that normalisation; CIFAR-10's by default.
        saliency_fn: optional callable ``images (N, C, H, W) normalised -> (N, H, W)`` saliency, used
            instead of OpenCV (e.g. in tests, or for another detector). Without it the constructor
            refuses to create the mixer when OpenCV's contrib build is missing (ImportError naming
            ``pip install "sagemix[saliencymix]"``).
        num_workers: > 0 runs OpenCV's detector in a :class:`sagemix.functional.pool.WorkerPool` of
            that many spawn processes (the graph-cut mixers' pool; started on first use, reused, stopped
            by :meth:`close`), one slice of the batch per worker; 0 runs it in this process.
            ``"auto"`` (default): a pool of 2 workers (none on a 1-core machine) for images of at least
            :data:`AUTO_POOL_PIXELS` pixels, in process for smaller ones (and on a 1-core machine).
            Measured with benchmarks/bench_scale.py (B = 64, 2 loaded cores): 224 px 6.2 s in process
            vs 4.2 s with 2 workers, 64 px 0.60 vs 0.16 s, 32 px 0.20 vs 0.11 s; the pool start
            (seconds, once) is only worth it where a batch costs that much.
        start_method: multiprocessing start method of the pool (None: ``"spawn"``).
        num_classes: K, needed when targets are integer labels.
        generator: optional CPU ``torch.Generator`` for every draw.

    A precomputed saliency may also be passed to the call, ``mixer(images, targets, saliency)``,
    as a (B, H, W) tensor for the whole batch; then neither OpenCV nor ``saliency_fn`` runs.
    The output's ``extras`` hold ``applied`` and ``boxes`` ((B, 4) int64 ``(x0, y0, x1, y1)``).

    Example:
        >>> import torch
        >>> peak = lambda x: x.mean(1)  # brightness as saliency, no OpenCV needed
        >>> mixer = SaliencyMix(prob=1.0, saliency_fn=peak, num_classes=2,
        ...                     generator=torch.Generator().manual_seed(0))
        >>> out = mixer(torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 0, 1]))
        >>> out.targets.sum(1).allclose(torch.ones(4))
        True
    """

    needs_normalization: ClassVar[bool] = True

    def __init__(self, *, alpha: float = 1.0, prob: float = 0.5, per_batch_box: bool = False,
                 mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                 saliency_fn: SaliencyFn | None = None, num_workers: int | str = "auto",
                 start_method: str | None = None,
                 num_classes: int | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__(num_classes=num_classes, generator=generator)
        self.set_options(alpha=alpha, prob=prob, per_batch_box=per_batch_box)
        self.set_normalization(mean, std)
        if saliency_fn is not None and not callable(saliency_fn):
            raise TypeError(f"saliency_fn must be callable as saliency_fn(images) -> (N, H, W), got {saliency_fn!r}")
        self.saliency_fn = saliency_fn
        if saliency_fn is None:
            require_opencv_saliency()  # fail at construction, naming the extra, rather than on the first batch
        self.init_pool(num_workers, start_method)  # "auto": 2 workers (1 worker gained nothing on 2 cores)

    def compute_saliency(self, images: Tensor) -> Tensor:
        """Saliency (N, H, W) of normalised images (N, C, H, W): ``saliency_fn`` or OpenCV's detector."""
        if self.saliency_fn is not None:
            sal = self.saliency_fn(images)
        else:
            if len(self.mean) != images.shape[1]:
                raise ValueError(f"mean/std have {len(self.mean)} channels but the images have "
                                 f"C={images.shape[1]}; pass mean=... and std=... of your normalisation")
            sal = opencv_saliency(denormalize_to_uint8(images, self.mean, self.std), pool=self.pool_for(images))
        return self._check_saliency(sal, images.shape[0], images.shape[2], images.shape[3], "saliency_fn output")

    @staticmethod
    def _check_saliency(sal: object, n: int, h: int, w: int, name: str) -> Tensor:
        if not isinstance(sal, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of shape ({n}, {h}, {w}), got {type(sal).__name__}")
        if tuple(sal.shape) != (n, h, w):
            raise ValueError(f"{name} must have shape ({n}, {h}, {w}) (one map per image), got {tuple(sal.shape)}")
        return sal

    def check_inputs(self, images: Tensor, targets: Tensor, saliency: Tensor | None) -> tuple[Tensor, Tensor]:
        """The call's checks, and a given ``saliency`` must be (B, H, W)."""
        images, soft = super().check_inputs(images, targets, saliency)
        if saliency is not None:
            b, _, h, w = images.shape
            self._check_saliency(saliency, b, h, w, "saliency")
        return images, soft

    Params = BoxMixParams

    def draw_params(self, images: Tensor, targets: Tensor, saliency: Tensor | None) -> BoxMixParams:
        if not draw_apply(self.prob, self.generator):
            return BoxMixParams(applied=False)
        lam0 = float(sample_beta(self.alpha, size=1, generator=self.generator)[0])
        return BoxMixParams(index=random_permutation(images.shape[0], generator=self.generator), lam=lam0)

    def apply_params(self, images: Tensor, targets: Tensor, params: BoxMixParams,
                     saliency: Tensor | None) -> MixOutput:
        boxes = None
        if params.applied:
            perm = to_device(params.index, images.device)
            # Only the partners' maps are needed: all of them per image, the first one per batch.
            src = perm[:1] if self.per_batch_box else perm
            if saliency is not None:
                sal = saliency.detach()[src.to(saliency.device)]
            else:
                sal = self.compute_saliency(images[src])
            boxes = saliency_boxes(sal, params.lam).to(images.device)
        return paste_partner_boxes(images, targets, params, boxes)
