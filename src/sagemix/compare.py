"""Comparison runs: a matrix of methods x seeds (x models) trained with one recipe, evaluated, reported.

This is how the SAGE paper ("Saliency-Guided Mixup with Optimal Rearrangements", Ma et al., BMVC 2022,
https://arxiv.org/abs/2211.00113) compares methods: every method trained with the same recipe and
budget on the same model, over several seeds, then tabulated (:mod:`sagemix.report`).

A comparison is described by a JSON file (see ``configs/offline_comparison.json``)::

    {
      "description": "...",
      "recipe": "offline",                      # a bundled recipe name or a recipe JSON file
      "out": "runs/offline_comparison",         # runs go to <out>/<model>-<method>-s<seed>
      "methods": ["vanilla", "mixup", "sage"],
      "seeds": [0, 1, 2],
      "models": ["smallnet"],                   # optional (default: the recipe's model)
      "overrides": {"epochs": 8},               # applied to every run (dotted keys allowed)
      "method_overrides": {"sage": {"method_kwargs.rand_pos": 0.01}},   # per method (or variant)
      "variants": {"sage_exhaustive": {"method": "sage", "method_kwargs.rand_pos": null}},
                                                # a registry method with other settings under its own
                                                # name: list the name in "methods"; its runs go to
                                                # <out>/<model>-<name>-s<seed> and the report shows it
      "eval": {"enabled": true, "args": ["--adversarial", "fgsm"]},     # the flags of `sagemix eval RUN`
                                                # ({seed} {method} {model} {out} in args are filled in);
                                                # or/and "options": {"adversarial": ["fgsm"], ...}, the
                                                # fields of sagemix.evaluate.EvalOptions (applied after args)
      "report": {"out": "runs/offline_comparison/report", "plots": true},
      "estimate": {...}                         # optional free-form notes (how the budget was sized)
    }

The matrix is resumable: a run whose ``summary.json`` says ``finished: true`` is not trained again,
a run with a checkpoint but no finished summary is resumed (``resume=True``), and an evaluation is
skipped when every result file its options ask for exists (:meth:`EvalOptions.expected_files`).
Training runs in this process through :func:`sagemix.train.train`, and so does evaluation, through
:func:`sagemix.evaluate.evaluate_run`: the ``eval.args`` flags are read by the ``sagemix eval``
command's own parser into :class:`sagemix.evaluate.EvalOptions`. Runs are ordered seed by seed, so a
partial comparison has every method at the first seeds.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from . import run_folder as rf

__all__ = ["ComparisonConfig", "RunSpec", "load_comparison", "plan_runs", "run_state", "expected_eval_files",
           "eval_args_for", "eval_options_for", "check_plan", "run_comparison"]

_KEYS = {"description", "recipe", "out", "methods", "seeds", "models", "overrides", "method_overrides", "variants",
         "eval", "report", "estimate"}
#: Config keys that the matrix sets for each run (not allowed in overrides or variants).
_MATRIX_KEYS = ("method", "model", "seed", "out", "name")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]*$")


@dataclass
class ComparisonConfig:
    """A comparison (see the module docstring for the JSON layout).

    Attributes:
        recipe: a bundled recipe name or a recipe JSON file.
        out: folder of the runs and the report.
        methods: registry names or variant names.
        seeds: one run per seed (and method and model).
        models: model names; None uses the recipe's.
        overrides: config overrides for every run (``{"epochs": 8, "method_kwargs.x": 1}``).
        method_overrides: per-method overrides on top of ``overrides`` (and of the variant's settings).
        variants: ``{name: {"method": registry name, **config overrides}}``: a registry method with other
            settings (usually ``method_kwargs``) under its own name in the run folders and the report.
        eval_enabled: evaluate each finished run (:func:`sagemix.evaluate.evaluate_run`).
        eval_args: flags of ``sagemix eval`` (placeholders allowed), read into the evaluation options.
        eval_options: :class:`sagemix.evaluate.EvalOptions` fields applied on top of ``eval_args``.
        report_out: the report folder (default ``<out>/report``).
        report_plots: draw the report's plots.
        description: free text.
    """

    recipe: str
    out: str
    methods: list[str]
    seeds: list[int]
    models: list[str] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_enabled: bool = False
    eval_args: list[str] = field(default_factory=list)
    eval_options: dict[str, Any] = field(default_factory=dict)
    report_out: str | None = None
    report_plots: bool = True
    description: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, base_dir: str | os.PathLike | None = None) -> "ComparisonConfig":
        """Validate a parsed JSON comparison; errors name the key, the value and what was expected.

        A relative recipe file path is resolved against ``base_dir`` (the comparison file's folder) when
        it exists there; ``out`` stays relative to the working directory.
        """
        if not isinstance(d, Mapping):
            raise TypeError(f"a comparison must be a JSON object, got {type(d).__name__}")
        unknown = sorted(set(d) - _KEYS)
        if unknown:
            raise ValueError(f"unknown comparison key(s) {unknown}; expected some of {sorted(_KEYS)}")
        for key in ("recipe", "out", "methods", "seeds"):
            if key not in d:
                raise ValueError(f"comparison key {key!r} is required")
        recipe, out = d["recipe"], d["out"]
        if not isinstance(recipe, str) or not recipe:
            raise TypeError(f"comparison key 'recipe' must be a recipe name or JSON file, got {recipe!r}")
        if base_dir is not None and recipe.endswith(".json") and not Path(recipe).is_absolute():
            cand = Path(base_dir) / recipe
            if cand.is_file():
                recipe = str(cand)
        if not isinstance(out, str) or not out:
            raise TypeError(f"comparison key 'out' must be a folder path, got {out!r}")
        methods = _str_list(d["methods"], "methods")
        models = None if d.get("models") is None else _str_list(d["models"], "models")
        seeds = d["seeds"]
        if (not isinstance(seeds, list) or not seeds
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
            raise ValueError(f"comparison key 'seeds' must be a non-empty list of ints >= 0, got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"comparison key 'seeds' has duplicates: {seeds!r}")
        overrides = d.get("overrides", {}) or {}
        if not isinstance(overrides, dict):
            raise TypeError(f"comparison key 'overrides' must be an object of config overrides, got {overrides!r}")
        for k in _MATRIX_KEYS:
            if k in overrides:
                raise ValueError(f"comparison key 'overrides' must not set {k!r} (the matrix sets it), got "
                                 f"{k}={overrides[k]!r}")
        mo = d.get("method_overrides", {}) or {}
        if not isinstance(mo, dict) or not all(isinstance(v, dict) for v in mo.values()):
            raise TypeError(f"comparison key 'method_overrides' must map method names to override objects, got {mo!r}")
        for m in mo:
            if m not in methods:
                raise ValueError(f"comparison key 'method_overrides' names {m!r}, which is not in methods {methods}")
        variants = _check_variants(d.get("variants", {}) or {}, methods)
        _check_methods(methods, variants)
        ev = d.get("eval", {}) or {}
        if not isinstance(ev, dict) or set(ev) - {"enabled", "args", "options"}:
            raise ValueError(f"comparison key 'eval' must be an object with 'enabled', 'args' and 'options', "
                             f"got {ev!r}")
        enabled = ev.get("enabled", bool(ev))
        if not isinstance(enabled, bool):
            raise TypeError(f"comparison key 'eval.enabled' must be true or false, got {enabled!r}")
        eval_args = ev.get("args", []) or []
        if not isinstance(eval_args, list) or not all(isinstance(a, str) for a in eval_args):
            raise TypeError(f"comparison key 'eval.args' must be a list of strings (sagemix eval flags), got {eval_args!r}")
        eval_options = ev.get("options", {}) or {}
        _check_eval_options(eval_options)
        rep = d.get("report", {}) or {}
        if not isinstance(rep, dict) or set(rep) - {"out", "plots"}:
            raise ValueError(f"comparison key 'report' must be an object with 'out' and 'plots', got {rep!r}")
        desc = d.get("description", "")
        if not isinstance(desc, str):
            raise TypeError(f"comparison key 'description' must be a string, got {desc!r}")
        return cls(recipe=recipe, out=out, methods=methods, seeds=list(seeds), models=models,
                   overrides=dict(overrides), method_overrides={k: dict(v) for k, v in mo.items()}, variants=variants,
                   eval_enabled=enabled, eval_args=list(eval_args), eval_options=dict(eval_options), report_out=rep.get("out"),
                   report_plots=bool(rep.get("plots", True)), description=desc)


def _check_variants(variants: Any, methods: list[str]) -> dict[str, dict[str, Any]]:
    """Validate ``variants``: names usable in folder names, not registry names, each with a registry
    ``method`` and config overrides whose keys are config fields (``method_kwargs`` keys are checked
    against the mixer's options by :func:`check_plan`)."""
    from .mixers.registry import list_mixers
    from .train import TrainConfig

    if not isinstance(variants, dict):
        raise TypeError(f"comparison key 'variants' must map variant names to objects, got {variants!r}")
    registry = list_mixers()
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    out: dict[str, dict[str, Any]] = {}
    for name, spec in variants.items():
        where = f"comparison key 'variants.{name}'"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(f"comparison variant name {name!r} must be letters, digits, '_' or '.' (it names "
                             "run folders)")
        if name.lower().replace("-", "_") in registry:
            raise ValueError(f"comparison variant name {name!r} is a registry method; choose another name "
                             f"(registry methods: {registry})")
        if name not in methods:
            raise ValueError(f"{where} is not listed in methods {methods}; add it there to run it")
        if not isinstance(spec, dict):
            raise TypeError(f"{where} must be an object with 'method' and config overrides, got {spec!r}")
        method = spec.get("method")
        if not isinstance(method, str) or method.lower().replace("-", "_") not in registry:
            raise ValueError(f"{where}.method must be a registry method, got {method!r}; expected one of {registry}")
        for key in spec:
            head = key.partition(".")[0]
            if key != "method" and head in _MATRIX_KEYS:
                raise ValueError(f"{where} must not set {key!r} (the matrix sets it), got {key}={spec[key]!r}")
            if head not in fields:
                raise ValueError(f"{where} has unknown config key {key!r}; expected 'method' and config keys "
                                 f"(dotted keys allowed) from {sorted(fields)}")
        out[name] = dict(spec)
    return out


def _check_methods(methods: list[str], variants: Mapping[str, Any]) -> None:
    from .mixers.registry import list_mixers

    registry = list_mixers()
    bad = [m for m in methods if m not in variants and m.lower().replace("-", "_") not in registry]
    if bad:
        raise ValueError(f"comparison key 'methods' has unknown method(s) {bad}; expected registry methods "
                         f"{registry}" + (f" or variants {sorted(variants)}" if variants else
                                          " (or names defined under 'variants')"))


def _check_eval_options(opts: Any) -> None:
    from .evaluate.stage import EvalOptions

    if not isinstance(opts, dict):
        raise TypeError(f"comparison key 'eval.options' must be an object of EvalOptions fields, got {opts!r}")
    known = {f.name for f in dataclasses.fields(EvalOptions)}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ValueError(f"comparison key 'eval.options' has unknown field(s) {unknown}; expected some of "
                         f"{sorted(known)}")


def _str_list(v: Any, key: str) -> list[str]:
    if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
        raise ValueError(f"comparison key {key!r} must be a non-empty list of names, got {v!r}")
    if len(set(v)) != len(v):
        raise ValueError(f"comparison key {key!r} has duplicates: {v!r}")
    return list(v)


def load_comparison(path: str | os.PathLike) -> ComparisonConfig:
    """Read and validate a comparison JSON file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"comparison config {str(p)!r} does not exist")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"comparison config {p} is not valid JSON ({e})") from None
    return ComparisonConfig.from_dict(data, base_dir=p.parent)


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
    from .train import load_config

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

    from .mixers.registry import get_mixer_class
    from .train import load_config

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
    from .evaluate.stage import EvalOptions

    opts = eval_args if isinstance(eval_args, EvalOptions) else _parse_eval_args(eval_args)
    return opts.expected_files()


def _parse_eval_args(args: Sequence[str], threads: int | None = None) -> Any:
    from .commands.eval import parse_options

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


def run_comparison(cfg: ComparisonConfig, *, only: Mapping[str, Sequence[Any]] | None = None,
                   dry_run: bool = False, evaluate: bool | None = None, report: bool = True,
                   log: Callable[[str], None] = print,
                   train_fn: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Train (or resume) every run of the matrix, evaluate it, and write the report.

    Args:
        cfg: the comparison.
        only: restrict to some ``{"methods": [...], "seeds": [...], "models": [...]}``.
        dry_run: only log the plan and each run's state.
        evaluate: override ``cfg.eval_enabled``.
        report: write the report at the end (over every run of the matrix that has files).
        log: where progress lines go.
        train_fn: ``train_fn(config, resume=bool) -> summary``; default :func:`sagemix.train.train`.

    Returns:
        ``{"trained": [...], "resumed": [...], "skipped": [...], "evaluated": [...], "failed": {name: error},
        "report": path or None}``.
    """
    from .evaluate.stage import evaluate_run
    from .train import load_config

    if train_fn is None:
        from .train import train as train_fn  # noqa: PLW0127
    specs = plan_runs(cfg)
    only = dict(only or {})
    for key, attr in (("methods", "method"), ("seeds", "seed"), ("models", "model")):
        if only.get(key):
            wanted = list(only[key])
            known = {getattr(s, attr) for s in specs}
            bad = [w for w in wanted if w not in known]
            if bad:
                raise ValueError(f"--{key} {bad} not in the comparison's {key} {sorted(known, key=str)}")
            specs = [s for s in specs if getattr(s, attr) in wanted]
    check_plan(cfg, specs)
    do_eval = cfg.eval_enabled if evaluate is None else evaluate
    result: dict[str, Any] = {"trained": [], "resumed": [], "skipped": [], "evaluated": [], "failed": {},
                              "report": None}
    n = len(specs)
    for i, spec in enumerate(specs, 1):
        state = run_state(spec.run_dir)
        head = f"[{i}/{n}] {spec.name}"
        if dry_run:
            ev = "eval done" if do_eval and eval_options_for(cfg, spec).done(spec.run_dir) else "eval to do"
            log(f"{head}: {state}" + (f", {ev}" if do_eval else ""))
            continue
        if state == "finished":
            log(f"{head}: finished, not trained again")
            result["skipped"].append(spec.name)
        else:
            log(f"{head}: {'resuming' if state == 'interrupted' else 'training'}")
            t0 = time.perf_counter()
            try:
                config = load_config(cfg.recipe, overrides=spec.overrides)
                train_fn(config, resume=state == "interrupted")
            except KeyboardInterrupt:
                raise
            except Exception as e:  # one failed run must not lose the others; reported at the end
                result["failed"][spec.name] = f"training: {type(e).__name__}: {e}"
                log(f"{head}: training failed: {type(e).__name__}: {e}")
                continue
            result["resumed" if state == "interrupted" else "trained"].append(spec.name)
            log(f"{head}: done in {time.perf_counter() - t0:.0f} s")
        if do_eval:
            try:
                opts = eval_options_for(cfg, spec)
                if opts.done(spec.run_dir):
                    log(f"{head}: evaluation already done")
                    continue
                log(f"{head}: evaluating: " + " ".join(["sagemix eval", str(spec.run_dir),
                                                        *eval_args_for(cfg, spec)]))
                evaluate_run(spec.run_dir, opts, log=log)
            except KeyboardInterrupt:
                raise
            except Exception as e:  # one failed evaluation must not lose the others; reported at the end
                result["failed"][spec.name] = f"evaluation: {type(e).__name__}: {e}"
                log(f"{head}: evaluation failed: {type(e).__name__}: {e}")
            else:
                result["evaluated"].append(spec.name)
    if report and not dry_run:
        from .report import collect_runs, write_report

        dirs = [s.run_dir for s in plan_runs(cfg) if rf.RunFolder(s.run_dir).summary_path.is_file()]
        if dirs:
            out = Path(cfg.report_out or Path(cfg.out) / "report")
            written = write_report(collect_runs(dirs), out, plots=cfg.report_plots)
            result["report"] = written["report"]
            log(f"report: {written['report']}")
    return result
