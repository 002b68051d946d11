"""The runs of a comparison: their folders and config overrides, their state, their evaluation options."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import run_folder as rf
from .config import ComparisonConfig, _check_eval_options

__all__ = ["RunSpec", "plan_runs", "check_plan", "run_state", "expected_eval_files", "eval_args_for",
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
    """Build every run's config and check its mixer options against the mixer's signature, so that a
    misspelt key fails before any work (also with ``--dry-run``).

    Raises:
        ValueError: a run's config is invalid, or its ``method_kwargs`` name an option the mixer lacks.
    """
    import inspect

    from ..mixers.registry import get_mixer_class
    from ..train import load_config

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
        params = inspect.signature(get_mixer_class(config.method).__init__).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            continue
        known = sorted(n for n, p in params.items() if n != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL)
        bad = sorted(set(kwargs) - set(known))
        if bad:
            raise ValueError(f"comparison run {spec.name}: method {config.method!r} has no option(s) {bad} "
                             f"(method_kwargs {kwargs}); its options are {known}")


def run_state(run_dir: str | os.PathLike) -> str:
    """``"finished"`` (summary says so), ``"interrupted"`` (a checkpoint, not finished) or ``"new"``."""
    state = rf.RunFolder(run_dir).state()
    return "new" if state == "missing" else state


def expected_eval_files(eval_args: Sequence[str] | Any) -> list[str]:
    """The result files in the eval folder that an evaluation writes (so that it can be skipped).

    Args:
        eval_args: ``sagemix eval`` flags (read by the command's parser) or an
            :class:`sagemix.evaluate.EvalOptions`.
    """
    from ..evaluate.stage import EvalOptions

    opts = eval_args if isinstance(eval_args, EvalOptions) else _parse_eval_args(eval_args)
    return opts.expected_files()


def _parse_eval_args(args: Sequence[str], threads: int | None = None) -> Any:
    from ..evaluate.options import parse_options

    return parse_options(list(args), threads=threads)


def eval_args_for(cfg: ComparisonConfig, spec: RunSpec) -> list[str]:
    """The run's ``sagemix eval`` arguments: ``{seed}``, ``{method}``, ``{model}`` and ``{out}`` filled in.

    E.g. ``--corruptions {out}/corrupted-s{seed}`` shares one generated corrupted test set between the
    runs of a seed (the offline dataset is drawn from the run's seed, so each seed has its own test set).
    """
    return [_fill(a, _fields(cfg, spec), "eval argument") for a in cfg.eval_args]


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
    """The run's :class:`sagemix.evaluate.EvalOptions`: ``eval.args`` read by the ``sagemix eval`` parser
    (placeholders filled in, see :func:`eval_args_for`), then ``eval.options`` on top; the runs'
    ``threads`` override, when set, is the evaluation's thread count too.
    """
    threads = spec.overrides.get("threads")
    threads = threads if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0 else None
    opts = _parse_eval_args(eval_args_for(cfg, spec), threads=threads)
    if cfg.eval_options:
        _check_eval_options(cfg.eval_options)
        extra = {k: _fill(v, _fields(cfg, spec), f"eval option {k!r}") for k, v in cfg.eval_options.items()}
        extra = {k: tuple(v) if isinstance(v, list) else v for k, v in extra.items()}
        opts = dataclasses.replace(opts, **extra)
    return opts
