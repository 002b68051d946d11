"""Training: configs and recipes, the trainer loop, checkpoints, run-folder logging, torchrun DDP.

The trainer reproduces the CIFAR protocol of SAGE ("Saliency-Guided Mixup with Optimal
Rearrangements", Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113) for every mixing method,
through :class:`sagemix.MixStep`.

Example:
    >>> from sagemix.train import load_config, train  # doctest: +SKIP
    >>> summary = train(load_config("offline", overrides={"method": "sage", "epochs": 2}))  # doctest: +SKIP
"""
from .checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from .config import TrainConfig, config_hash, list_recipes, load_config, load_recipe, parse_overrides
from .trainer import Trainer, TrainingDiverged, evaluate_accuracy, train

__all__ = ["TrainConfig", "load_config", "load_recipe", "list_recipes", "parse_overrides", "config_hash",
           "Trainer", "TrainingDiverged", "train", "evaluate_accuracy", "load_model", "load_checkpoint",
           "save_checkpoint", "CheckpointError"]
