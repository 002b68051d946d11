"""Mixing methods: one file per method, each a thin class over its functional kernel."""
from .base import Mixer, MixOutput, mix_targets, to_soft_targets
from .registry import create_mixer, get_mixer_class, list_mixers, register_mixer

__all__ = ["Mixer", "MixOutput", "mix_targets", "to_soft_targets", "create_mixer", "get_mixer_class",
           "list_mixers", "register_mixer"]
