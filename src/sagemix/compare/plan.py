"""The runs of a comparison: their folders and config overrides, their state, their evaluation options."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import run_folder as rf
from ..checks import is_int
from .config import ComparisonConfig

__all__ = ["RunSpec", "plan_runs", "check_plan", "run_state", "expected_eval_files",
           "eval_options_for"]


@dataclass
class RunSpec:
    """One cell of the matrix: its folder and its config overrides.

    ``method`` is the name in ``methods`` (a variant's name for a variant), ``overrides["method"]`` the
    registry method that trains it.
    """

    method: str
    model: str | None
    seed: int
    run_dir: Path
    overrides: dict[str, Any]

    @property
    def name(self) -> str:
        return self.run_dir.name


def plan_runs(cfg: ComparisonConfig) -> list[RunSpec]:
    """The runs of the matrix, seed-major (all methods and models at seed 0 first)."""
    from ..train import load_config

    base_model = load_config(cfg.recipe).model
    specs = []
    for seed in cfg.seeds:
        for model in (cfg.models or [None]):
            for method in cfg.methods:
                variant = dict(cfg.variants.get(method, {}))
                base = variant.pop("method", method)
                ov = {**cfg.overrides, **variant, **cfg.method_overrides.get(method, {}), "method": base,
                      "seed": seed}
                if method in cfg.variants:
                    ov["name"] = method
                if model is not None:
                    ov["model"] = model
                run_dir = Path(cfg.out) / f"{model or base_model}-{method}-s{seed}"
                ov["out"] = str(run_dir)
                specs.append(RunSpec(method, model or base_model, seed, run_dir, ov))
    return specs


def check_plan(cfg: ComparisonConfig, specs: Sequence[RunSpec] | None = None) -> None:
    """Build every run's config and check its mixer options as ``sagemix train`` does
    (:func:`sagemix.train.setup.check_mixer_options`), so that a misspelt key or a bad value fails
    before any work (also with ``--dry-run``).

    Raises:
        ValueError: a run's config is invalid, or its ``method_kwargs`` name an option the mixer lacks
            or a value it refuses.
    """
    from ..train import load_config
    from ..train.setup import check_mixer_options

    checked: set[tuple[str, str]] = set()
    for spec in plan_runs(cfg) if specs is None else specs:
        try:
            config = load_config(cfg.recipe, overrides=spec.overrides)
        except (TypeError, ValueError) as e:
            raise ValueError(f"comparison run {spec.name} ({spec.method}): {e}") from None
        kwargs = config.mixer_kwargs()
        key = (config.method, json.dumps(kwargs, sort_keys=True, default=str))
        if key in checked:
            continue
        checked.add(key)
        try:
            check_mixer_options(config.method, kwargs)
        except ValueError as e:
            raise ValueError(f"comparison run {spec.name} (method_kwargs {kwargs}): {e}") from None


def run_state(run_dir: str | os.PathLike) -> str:
    """``"finished"`` (summary says so), ``"interrupted"`` (a checkpoint, not finished) or ``"new"``."""
    state = rf.RunFolder(run_dir).state()
    return "new" if state == "missing" else state


def expected_eval_files(options: Any) -> list[str]:
    """The result files in the eval folder that an evaluation with these :class:`sagemix.evaluate.EvalOptions`
    writes (so that it can be skipped)."""
    from ..evaluate.stage import EvalOptions

    if not isinstance(options, EvalOptions):
        raise TypeError(f"options must be an EvalOptions, got {type(options).__name__}")
    return options.expected_files()


def _fields(cfg: ComparisonConfig, spec: RunSpec) -> dict[str, Any]:
    return {"seed": spec.seed, "method": spec.method, "model": spec.model, "out": cfg.out}


def _fill(value: Any, fields: Mapping[str, Any], where: str) -> Any:
    if isinstance(value, str):
        try:
            return value.format(**fields)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"comparison {where} {value!r} has an unknown placeholder ({e}); use {{seed}}, "
                             "{method}, {model} or {out}") from None
    if isinstance(value, list):
        return [_fill(v, fields, where) for v in value]
    return value


def eval_options_for(cfg: ComparisonConfig, spec: RunSpec) -> Any:
    """The run's :class:`sagemix.evaluate.EvalOptions`, built from the comparison's ``eval_options`` values
    with ``{seed}``, ``{method}``, ``{model}`` and ``{out}`` filled in.

    E.g. ``"corruptions": "{out}/corrupted-s{seed}"`` shares one generated corrupted test set between the
    runs of a seed (the offline dataset is drawn from the run's seed, so each seed has its own test set).
    The runs' ``threads`` override, when set, is the evaluation's thread count too (unless
    ``eval_options`` sets ``threads``).
    """
    from ..evaluate.stage import EvalOptions

    threads = spec.overrides.get("threads")
    fields = {"threads": threads} if is_int(threads) and threads > 0 else {}
    fields.update({k: _fill(v, _fields(cfg, spec), f"eval option {k!r}") for k, v in cfg.eval_options.items()})
    return EvalOptions(**fields)
