"""Comparison configs: the JSON layout (see :mod:`sagemix.compare`), read and validated."""
from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..checks import is_int

__all__ = ["ComparisonConfig", "load_comparison", "MATRIX_KEYS"]

_KEYS = {"description", "recipe", "out", "methods", "seeds", "models", "overrides", "method_overrides", "variants",
         "eval", "report", "estimate"}
#: Config keys that the matrix sets for each run (not allowed in overrides or variants).
MATRIX_KEYS = ("method", "model", "seed", "out", "name")
_REPORT_KEYS = {"out", "plots", "clean_metric", "ci", "references", "endpoints", "gate"}
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
        eval_options: the :class:`sagemix.evaluate.EvalOptions` fields of every run's evaluation (string
            values may hold the placeholders ``{seed}``, ``{method}``, ``{model}``, ``{out}``). A file's
            ``eval.args`` (``sagemix eval`` flags, the former format) are read into these fields once, when
            the file is loaded, with ``eval.options`` applied on top.
        report_out: the report folder (default ``<out>/report``).
        report_plots: draw the report's plots.
        report_options: ``clean_metric``, ``ci`` and ``references`` of the report's paired tables
            (:func:`sagemix.report.write_report`'s ``clean_key``, ``ci``, ``references``), and the primary
            ``endpoints`` and the ``gate`` of :mod:`sagemix.report.verdict` (fixed here, before the runs).
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
    eval_options: dict[str, Any] = field(default_factory=dict)
    report_out: str | None = None
    report_plots: bool = True
    report_options: dict[str, Any] = field(default_factory=dict)
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
        from ..train.config import SEED_MAX
        if (not isinstance(seeds, list) or not seeds
                or not all(is_int(s) and 0 <= s <= SEED_MAX for s in seeds)):
            raise ValueError("comparison key 'seeds' must be a non-empty list of ints >= 0 (at most 2**64 - 1, "
                             f"torch's seed range), got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"comparison key 'seeds' has duplicates: {seeds!r}")
        overrides = d.get("overrides", {}) or {}
        if not isinstance(overrides, dict):
            raise TypeError(f"comparison key 'overrides' must be an object of config overrides, got {overrides!r}")
        for k in MATRIX_KEYS:
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
        eval_options = {**_fields_of_args(ev.get("args", []) or []), **_check_eval_options(ev.get("options", {}) or {})}
        from ..evaluate.stage import EvalOptions

        try:  # the values, before any work (placeholders in strings are filled in per run)
            EvalOptions(**eval_options)
        except (TypeError, ValueError) as e:
            raise type(e)(f"comparison key 'eval': {e}") from None
        rep = d.get("report", {}) or {}
        if not isinstance(rep, dict) or set(rep) - _REPORT_KEYS:
            raise ValueError(f"comparison key 'report' must be an object with some of {sorted(_REPORT_KEYS)}, "
                             f"got {rep!r}")
        _check_report_options(rep)
        desc = d.get("description", "")
        if not isinstance(desc, str):
            raise TypeError(f"comparison key 'description' must be a string, got {desc!r}")
        return cls(recipe=recipe, out=out, methods=methods, seeds=list(seeds), models=models,
                   overrides=dict(overrides), method_overrides={k: dict(v) for k, v in mo.items()}, variants=variants,
                   eval_enabled=enabled, eval_options=eval_options, report_out=rep.get("out"),
                   report_options={k: rep[k] for k in ("clean_metric", "ci", "references", "endpoints", "gate")
                                   if k in rep},
                   report_plots=bool(rep.get("plots", True)), description=desc)


def _check_variants(variants: Any, methods: list[str]) -> dict[str, dict[str, Any]]:
    """Validate ``variants``: names usable in folder names, not registry names, each with a registry
    ``method`` and config overrides whose keys are config fields (``method_kwargs`` keys are checked
    against the mixer's options by :func:`check_plan`)."""
    from ..mixers.registry import list_mixers
    from ..train import TrainConfig

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
            if key != "method" and head in MATRIX_KEYS:
                raise ValueError(f"{where} must not set {key!r} (the matrix sets it), got {key}={spec[key]!r}")
            if head not in fields:
                raise ValueError(f"{where} has unknown config key {key!r}; expected 'method' and config keys "
                                 f"(dotted keys allowed) from {sorted(fields)}")
        out[name] = dict(spec)
    return out


def _check_methods(methods: list[str], variants: Mapping[str, Any]) -> None:
    from ..mixers.registry import list_mixers

    registry = list_mixers()
    bad = [m for m in methods if m not in variants and m.lower().replace("-", "_") not in registry]
    if bad:
        raise ValueError(f"comparison key 'methods' has unknown method(s) {bad}; expected registry methods "
                         f"{registry}" + (f" or variants {sorted(variants)}" if variants else
                                          " (or names defined under 'variants')"))


def _check_report_options(rep: Mapping[str, Any]) -> None:
    from ..report.paired import CLEAN_KEYS
    from ..report.stats import CI_METHODS

    if "clean_metric" in rep and rep["clean_metric"] not in CLEAN_KEYS:
        raise ValueError(f"comparison key 'report.clean_metric' must be one of {CLEAN_KEYS}, got {rep['clean_metric']!r}")
    if "ci" in rep and rep["ci"] not in CI_METHODS:
        raise ValueError(f"comparison key 'report.ci' must be one of {CI_METHODS}, got {rep['ci']!r}")
    if "references" in rep:
        _str_list(rep["references"], "report.references")
    if "endpoints" in rep:
        from ..report.verdict import parse_endpoints

        parse_endpoints(rep["endpoints"], "comparison key 'report.endpoints'")
    if "gate" in rep:
        from ..report.verdict import parse_gate

        parse_gate({k: v for k, v in rep["gate"].items() if k != "grid"} if isinstance(rep["gate"], dict)
                   else rep["gate"], "comparison key 'report.gate'")
    if "plots" in rep and not isinstance(rep["plots"], bool):
        raise TypeError(f"comparison key 'report.plots' must be true or false, got {rep['plots']!r}")


def _check_eval_options(opts: Any) -> dict[str, Any]:
    """``opts`` if it is a dict of :class:`sagemix.evaluate.EvalOptions` fields, else a TypeError/ValueError."""
    from ..evaluate.stage import EvalOptions

    if not isinstance(opts, dict):
        raise TypeError(f"comparison key 'eval.options' must be an object of EvalOptions fields, got {opts!r}")
    known = {f.name for f in dataclasses.fields(EvalOptions)}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ValueError(f"comparison key 'eval.options' has unknown field(s) {unknown}; expected some of "
                         f"{sorted(known)}")
    return dict(opts)


def _fields_of_args(args: Any) -> dict[str, Any]:
    """The EvalOptions fields that ``sagemix eval`` flags set (those that differ from the defaults).

    A comparison file's ``eval.args`` are read by the command's parser once, here; string values keep
    their placeholders (``--corruptions {out}/c-s{seed}``), which are filled in per run.
    """
    from ..evaluate.options import parse_options
    from ..evaluate.stage import EvalOptions

    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise TypeError(f"comparison key 'eval.args' must be a list of strings (sagemix eval flags), got {args!r}")
    try:
        opts = parse_options(args)
    except ValueError as e:
        raise ValueError(f"comparison key 'eval.args': {e}") from None
    default = EvalOptions()
    return {f.name: list(v) if isinstance(v, tuple) else v for f in dataclasses.fields(EvalOptions)
            if (v := getattr(opts, f.name)) != getattr(default, f.name)}


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
