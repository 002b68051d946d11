"""sagemix: saliency-guided mixing data augmentation for PyTorch.

SAGE (Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113) and the methods it is compared with,
behind one mixer call, one registry and one two-pass training step.
"""
from __future__ import annotations

__version__ = "0.1.0"


def _quiet_openmp_for_cli() -> None:
    """In the ``sagemix`` command (not in library use), make OpenMP threads sleep while they wait.

    ``OMP_WAIT_POLICY=PASSIVE`` halves the CPU time on a shared machine with bit-identical results;
    OpenMP reads it when torch loads, so it is set here, before the import of torch, unless the user
    set it. See :mod:`sagemix.cli`.
    """
    import os
    import sys

    argv = list(getattr(sys, "orig_argv", sys.argv))
    is_cli = os.path.basename(sys.argv[0]) == "sagemix" or any(
        a == "-m" and b == "sagemix" for a, b in zip(argv, argv[1:]))
    if is_cli and "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


_quiet_openmp_for_cli()

from .losses import bce_softmax, soft_cross_entropy
from .mixers import Mixer, MixOutput, create_mixer, list_mixers
from .step import MixStep, StepOutput

__all__ = ["__version__", "Mixer", "MixOutput", "create_mixer", "list_mixers", "MixStep", "StepOutput",
           "soft_cross_entropy", "bce_softmax", "SAGE"]


def __getattr__(name: str):
    # Mixer classes are importable from the top level (sagemix.SAGE, sagemix.CutMix, ...).
    from .mixers import registry

    for cls in (registry.get_mixer_class(n) for n in registry.list_mixers()):
        if cls.__name__ == name:
            return cls
    raise AttributeError(f"module 'sagemix' has no attribute {name!r}")
