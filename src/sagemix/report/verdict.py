"""A comparison's verdict: the gate that must pass before any verdict, and the primary endpoints.

**The gate** asks whether the regime can show a benefit of mixing at all, before SAGE is judged in it:

- *a tuned control*: vanilla's learning rate and weight decay chosen on a grid of at least 4 settings
  (the grid's runs are read from their own folder; the comparison's setting must be the grid's best, or
  within ``tuned_tolerance`` points of it);
- *vanilla fits and converges*: its final train accuracy is at least ``min_train_acc`` (eval mode on
  the clean training images where ``sagemix eval --train-fit`` measured it, else the logged accuracy on
  the augmented training batches), and its test accuracy moved by at most ``max_last_change`` points between the
  last evaluation at or before 90% of the epochs and the end (mean over seeds; with sparse evaluations this
  spans more than the last 10%);
- *stable training*: vanilla's final test accuracy has a standard deviation of at most ``max_sd`` points
  over at least ``min_seeds`` seeds, and no gate run stayed on the initial plateau (ended more than
  ``plateau_drop`` points below its method's median);
- *the positive control*: at least one established non-saliency method (``controls``: Mixup, Manifold
  Mixup, CutMix) beats vanilla with a paired t-test whose Holm-adjusted p-value over the controls is
  below ``alpha`` (equivalently, its interval at the Holm level excludes 0) and a positive mean.

A regime where no mixing method beats vanilla cannot tell "SAGE does not help" from "no mixing helps
here"; the gate says which.

**Primary endpoints** are fixed in the comparison config before the runs (e.g. SAGE against vanilla,
Mixup, Puzzle Mix and Co-Mixup, on clean accuracy and corruptions): each is a paired difference over the
seeds with its 95% interval, raw p-value and Holm-adjusted p-value over the endpoint family
(:mod:`sagemix.report.stats`). The verdict reads them only once each is paired on at least the gate's
``endpoint_seeds`` seeds (default 5); before that it says "pending", however small the p-values. Then it
names each endpoint whose Holm p is below ``alpha``, the better method first, and lists the unresolved ones.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..checks import is_number
from .paired import _by_seed, metric_value
from .runs import Run
from .stats import format_p, holm, paired_difference
from .tables import DASH, Table, _groups

__all__ = ["Endpoint", "parse_endpoints", "parse_gate", "endpoint_results", "endpoints_table", "GateOptions", "gate_result",
           "gate_table", "dataset_verdict", "METRICS"]

#: The metrics an endpoint can compare.
METRICS = ("clean", "corruptions", "fgsm")


@dataclass(frozen=True)
class Endpoint:
    """One pre-registered comparison: method ``a`` minus method ``b`` on ``metric`` (same model and seed)."""

    a: str
    b: str
    metric: str = "clean"


def parse_endpoints(value: Any, where: str = "endpoints") -> list[Endpoint]:
    """Endpoints from a config: a list of ``{"a", "b", "metric"}`` objects or ``"a:b:metric"`` strings."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"{where} must be a non-empty list of {{'a', 'b', 'metric'}} objects or 'a:b:metric' "
                         f"strings, got {value!r}")
    out = []
    for item in value:
        if isinstance(item, str):
            parts = item.split(":")
            if len(parts) not in (2, 3) or not all(parts):
                raise ValueError(f"{where}: {item!r} is not 'a:b' or 'a:b:metric'")
            item = dict(zip(("a", "b", "metric"), parts))
        if not isinstance(item, Mapping) or not {"a", "b"} <= set(item) or set(item) - {"a", "b", "metric"}:
            raise ValueError(f"{where}: each endpoint needs keys 'a' and 'b' (and optionally 'metric'), got {item!r}")
        ep = Endpoint(str(item["a"]), str(item["b"]), str(item.get("metric", "clean")))
        if ep.metric not in METRICS:
            raise ValueError(f"{where}: metric must be one of {METRICS}, got {ep.metric!r} in {item!r}")
        if ep.a == ep.b:
            raise ValueError(f"{where}: an endpoint compares two different methods, got {ep.a!r} twice")
        out.append(ep)
    if len(set(out)) != len(out):
        raise ValueError(f"{where}: an endpoint is listed twice in {value!r}")
    return out


def _values(runs: Sequence[Run], clean_key: str) -> dict[str, dict[str, dict[int, float]]]:
    """``{metric: {method: {seed: value}}}`` of the finished runs (one model: the first in the runs' order)."""
    groups = _groups(runs)
    models = sorted({g[0] for g in groups})
    if len(models) > 1:
        raise ValueError(f"a verdict is for one model; the runs hold {models}: report them separately")
    return {m: {method: _by_seed(rs, lambda r, m=m: metric_value(r, m, clean_key)) for _, method, rs in groups}
            for m in METRICS}


def endpoint_results(runs: Sequence[Run], endpoints: Sequence[Endpoint], *, clean_key: str = "final_acc",
                     confidence: float = 0.95) -> list[dict[str, Any]]:
    """Each endpoint's paired difference (``a - b``), interval, p and Holm-adjusted p over the endpoints.

    Each row records the seeds it paired (both methods finished). An endpoint without at least 2 of them has
    ``diff`` etc. None and takes no part in Holm.
    """
    values = _values(runs, clean_key)
    rows: list[dict[str, Any]] = []
    for ep in endpoints:
        a, b = values[ep.metric].get(ep.a, {}), values[ep.metric].get(ep.b, {})
        seeds = sorted(set(a) & set(b))
        row: dict[str, Any] = {"a": ep.a, "b": ep.b, "metric": ep.metric, "n": len(seeds), "seeds": seeds,
                               "diff": None, "ci": None, "p": None, "p_holm": None, "resolvable": None}
        if len(seeds) >= 2:
            d = paired_difference([a[s] for s in seeds], [b[s] for s in seeds], confidence=confidence, seeds=seeds)
            row.update(diff=d.mean, ci=[d.lo, d.hi], p=d.p, resolvable=d.resolvable)
        rows.append(row)
    q = holm([r["p"] if r["p"] is not None else math.nan for r in rows])
    for r, qi in zip(rows, q):
        r["p_holm"] = None if math.isnan(qi) else qi
    return rows


def _num(v: float | None, fmt: str) -> str:
    return DASH if v is None else format(v, fmt)


def _pfmt(p: float | None) -> str:
    return DASH if p is None else format_p(p)


def _call(r: Mapping[str, Any], alpha: float) -> str:
    """One measured endpoint's reading: "a better", "b better" (Holm p below ``alpha``) or "not resolved"."""
    return ("a better" if r["diff"] > 0 else "b better") if r["p_holm"] < alpha else "not resolved"


def _readout(ends: Sequence[Mapping[str, Any]], alpha: float) -> str:
    """The verdict in words, from complete endpoints: which differences Holm resolves, and which it does not."""
    parts, unresolved = [], []
    for r in ends:
        call, where = _call(r, alpha), f"on {r['metric']}"
        if call == "a better":
            parts.append(f"{r['a']} better than {r['b']} {where} ({r['diff']:+.2f})")
        elif call == "b better":
            parts.append(f"{r['b']} better than {r['a']} {where} ({-r['diff']:+.2f})")
        else:
            unresolved.append(f"{r['a']} vs {r['b']} {where}")
    head = f"the {len(ends)} endpoint{'s' * (len(ends) != 1)} (Holm p < {alpha}): "
    return (head + ("; ".join(parts) or "none resolved")
            + (f"; not resolved: {', '.join(unresolved)}" if unresolved else ""))


def endpoints_table(results: Sequence[Mapping[str, Any]], alpha: float = 0.05, min_seeds: int = 2) -> Table:
    """The primary endpoints as a report table (from :func:`endpoint_results`).

    An endpoint paired on fewer than ``min_seeds`` seeds keeps its numbers but its verdict reads "pending".
    """
    rows, raw = [], []
    for r in results:
        ci = r["ci"]
        if r["p_holm"] is None:
            verdict = DASH
        elif r["n"] < min_seeds:
            verdict = f"pending ({r['n']} of {min_seeds} seeds)"
        else:
            verdict = _call(r, alpha)
        rows.append([r["a"], r["b"], r["metric"], str(r["n"]), _num(r["diff"], "+.2f"),
                     DASH if ci is None else f"[{ci[0]:.2f}, {ci[1]:.2f}]", _pfmt(r["p"]), _pfmt(r["p_holm"]),
                     _num(r["resolvable"], ".2f"), verdict])
        raw.append([r["a"], r["b"], r["metric"], r["n"], r["diff"], None if ci is None else ci[0],
                    None if ci is None else ci[1], r["p"], r["p_holm"], r["resolvable"], verdict])
    return Table("endpoints", "Primary endpoints (the comparison config's report.endpoints, or --endpoints)",
                 ["a", "b", "metric", "seeds", "Δ = a − b", "95% CI", "p", "p (Holm)", "resolvable", "verdict"],
                 rows, raw,
                 note=f"Paired over seeds (same model and seed). p: the paired t-test's two-sided p-value; p (Holm): "
                      f"adjusted with Holm's method over these {len(results)} endpoints, held against "
                      f"{alpha}; resolvable: the smallest difference these seeds resolve at their paired spread "
                      f"(the 95% interval's half-width). 'not resolved' does not mean equal; 'pending': fewer "
                      f"paired seeds than the {min_seeds} a verdict needs.",
                 csv_columns=["a", "b", "metric", "n", "diff", "ci_lo", "ci_hi", "p", "p_holm", "resolvable",
                              "verdict"])


@dataclass(frozen=True)
class GateOptions:
    """The gate's thresholds (see the module docstring); ``grid`` is the vanilla tuning grid's runs."""

    vanilla: str = "vanilla"
    controls: tuple[str, ...] = ("mixup", "manifold_mixup", "cutmix")
    alpha: float = 0.05
    min_seeds: int = 3
    max_sd: float = 2.0
    min_train_acc: float = 99.0
    max_last_change: float = 0.5
    plateau_drop: float = 10.0
    min_grid: int = 4
    tuned_tolerance: float = 1.0
    #: the paired seeds each primary endpoint needs before the verdict reads it (the full comparison's >= 5)
    endpoint_seeds: int = 5
    grid: tuple[Run, ...] = field(default=(), repr=False)


def parse_gate(value: Any, where: str = "gate") -> GateOptions:
    """:class:`GateOptions` from a config object: any of its fields, ``grid`` a folder (or list) of run folders."""
    if value is True:
        value = {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be an object with some of {sorted(GateOptions.__dataclass_fields__)}, "
                         f"got {value!r}")
    unknown = set(value) - set(GateOptions.__dataclass_fields__)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; expected some of "
                         f"{sorted(GateOptions.__dataclass_fields__)}")
    kw = dict(value)
    if "controls" in kw:
        if isinstance(kw["controls"], str) or not isinstance(kw["controls"], Sequence) or not kw["controls"]:
            raise ValueError(f"{where}.controls must be a non-empty list of method names, got {kw['controls']!r}")
        kw["controls"] = tuple(str(c) for c in kw["controls"])
    for key in ("alpha", "max_sd", "min_train_acc", "max_last_change", "plateau_drop", "tuned_tolerance",
                "min_seeds", "min_grid", "endpoint_seeds"):
        if key in kw and (not is_number(kw[key]) or not math.isfinite(kw[key]) or kw[key] < 0):
            raise ValueError(f"{where}.{key} must be a non-negative number, got {kw[key]!r}")
    if "grid" in kw:
        from .runs import collect_runs

        paths = [kw["grid"]] if isinstance(kw["grid"], str) else kw["grid"]
        # A grid not run yet is no grid (the tuning check then fails, naming no settings), not an error: a
        # comparison writes its report before its grid may have run.
        paths = [p for p in paths if Path(p).exists()]
        kw["grid"] = tuple(collect_runs(paths)) if paths else ()
    return GateOptions(**kw)


def _setting(run: Run) -> tuple[float, float] | None:
    cfg = run.config or {}
    if "lr" not in cfg or "weight_decay" not in cfg:
        return None
    return float(cfg["lr"]), float(cfg["weight_decay"])


def _last_change(run: Run) -> float | None:
    """|test accuracy at the last evaluated epoch − at the last evaluated epoch at or before 90% of the run|."""
    rows = [r for r in run.metrics if r.get("test_acc") not in (None, "") and r.get("epoch") not in (None, "")]
    if len(rows) < 2:
        return None
    last = rows[-1]
    cut = int(last["epoch"]) - max(1, round(0.1 * int(last["epoch"])))
    before = [r for r in rows if int(r["epoch"]) <= cut]
    return None if not before else abs(float(last["test_acc"]) - float(before[-1]["test_acc"]))


def _final_train_acc(run: Run) -> float | None:
    """The run's eval-mode accuracy on its clean training images (``eval/train_fit.json``, ``sagemix eval
    --train-fit``) when measured, else the last logged train accuracy (on the augmented training batches)."""
    fit = run.eval.get("train_fit")
    if isinstance(fit, dict) and isinstance(fit.get("acc"), (int, float)):
        return float(fit["acc"])
    for row in reversed(run.metrics):
        if row.get("train_acc") not in (None, ""):
            return float(row["train_acc"])
    return None


def _fit_source(measured: int, runs: int) -> str:
    """How the train accuracies of ``runs`` vanilla runs were measured, ``measured`` of them in eval mode."""
    if measured == runs:
        return f"eval mode on clean training images ({runs} of {runs} runs)"
    if measured == 0:
        return f"the trainer's last logged train accuracy, on augmented batches ({runs} of {runs} runs)"
    return (f"eval mode on clean training images ({measured} of {runs} runs; "
            "the others: logged on augmented batches)")


def gate_result(runs: Sequence[Run], opts: GateOptions = GateOptions(), *,
                clean_key: str = "final_acc") -> dict[str, Any]:
    """The gate (module docstring) over ``runs``: every check with its measurement and ``passed``."""
    by_method = {method: [r for r in rs if r.finished] for _, method, rs in _groups(runs)}
    van_runs = by_method.get(opts.vanilla, [])
    clean = _values(runs, clean_key)["clean"]
    van = clean.get(opts.vanilla, {})
    checks: dict[str, Any] = {}
    # stability
    sd = statistics.stdev(van.values()) if len(van) >= 2 else None
    checks["vanilla_seeds"] = {"value": len(van), "needed": opts.min_seeds, "ok": len(van) >= opts.min_seeds}
    checks["vanilla_sd"] = {"value": sd, "max": opts.max_sd, "ok": sd is not None and sd <= opts.max_sd}
    stuck = []
    for method in (opts.vanilla, *opts.controls):
        vals = clean.get(method, {})
        if vals:
            med = statistics.median(vals.values())
            stuck += [f"{method} seed {s} ({v:.2f} vs median {med:.2f})" for s, v in sorted(vals.items())
                      if v < med - opts.plateau_drop]
    checks["no_plateau_runs"] = {"value": stuck, "max_drop": opts.plateau_drop, "ok": not stuck}
    # fit and convergence
    train = [a for a in (_final_train_acc(r) for r in van_runs) if a is not None]
    change = [c for c in (_last_change(r) for r in van_runs) if c is not None]
    checks["vanilla_fits"] = {"value": min(train) if train else None, "min": opts.min_train_acc,
                              "measured": _fit_source(sum(isinstance(r.eval.get("train_fit"), dict) for r in van_runs),
                                                      len(van_runs)),
                              "ok": bool(train) and min(train) >= opts.min_train_acc}
    mean_change = statistics.fmean(change) if change else None
    checks["vanilla_converged"] = {"value": mean_change, "max": opts.max_last_change,
                                   "ok": mean_change is not None and mean_change <= opts.max_last_change}
    # tuning grid
    grid: dict[tuple[float, float], list[float]] = {}
    for r in [*opts.grid, *van_runs]:
        s, v = _setting(r), metric_value(r, "clean", clean_key) if r.finished else None
        if s is not None and v is not None and r.base_method == "vanilla":
            grid.setdefault(s, []).append(float(v))
    means = {s: statistics.fmean(v) for s, v in grid.items()}
    chosen = _setting(van_runs[0]) if van_runs else None
    best = max(means, key=means.__getitem__) if means else None
    tuned = (chosen in means and len(means) >= opts.min_grid
             and means[best] - means[chosen] <= opts.tuned_tolerance)  # type: ignore[index]
    checks["vanilla_tuned"] = {
        "grid": [{"lr": s[0], "weight_decay": s[1], "seeds": len(grid[s]), "mean": means[s]} for s in sorted(means)],
        "chosen": None if chosen is None else {"lr": chosen[0], "weight_decay": chosen[1]},
        "best": None if best is None else {"lr": best[0], "weight_decay": best[1]},
        "min_settings": opts.min_grid, "tolerance": opts.tuned_tolerance, "ok": bool(tuned)}
    # the positive control
    ctrl = []
    for c in opts.controls:
        vals = clean.get(c, {})
        seeds = sorted(set(vals) & set(van))
        if len(seeds) >= 2:
            d = paired_difference([vals[s] for s in seeds], [van[s] for s in seeds], seeds=seeds)
            ctrl.append({"method": c, "n": d.n, "diff": d.mean, "ci": [d.lo, d.hi], "p": d.p})
    for item, q in zip(ctrl, holm([c["p"] for c in ctrl])):
        item["p_holm"] = q
        item["passes"] = item["diff"] > 0 and q < opts.alpha and item["n"] >= opts.min_seeds
    # the control that passed, else the one nearest to passing: the most significant gain, else the smallest loss
    best_ctrl = max(ctrl, key=lambda c: (c["passes"], c["diff"] > 0, -c["p_holm"] if c["diff"] > 0 else c["diff"],
                                         c["diff"])) if ctrl else None
    checks["positive_control"] = {"controls": ctrl, "alpha": opts.alpha,
                                  "ok": any(c["passes"] for c in ctrl) and len(ctrl) == len(opts.controls)}
    passed = all(v["ok"] for v in checks.values())
    return {"passed": passed,
            "control": None if best_ctrl is None else best_ctrl["method"],
            "control_minus_vanilla": None if best_ctrl is None else best_ctrl["diff"],
            "ci": None if best_ctrl is None else best_ctrl["ci"],
            "p_holm": None if best_ctrl is None else best_ctrl["p_holm"],
            "seeds": len(van), "vanilla_mean": statistics.fmean(van.values()) if van else None,
            "vanilla_sd": sd, "checks": checks}


def gate_table(gate: Mapping[str, Any]) -> Table:
    """The gate's checks as a report table (from :func:`gate_result`)."""
    c = gate["checks"]
    rows = [["vanilla seeds", str(c["vanilla_seeds"]["value"]), f">= {c['vanilla_seeds']['needed']}"],
            ["vanilla sd of test accuracy", _num(c["vanilla_sd"]["value"], ".2f"), f"<= {c['vanilla_sd']['max']}"],
            ["runs stuck on the plateau", "; ".join(c["no_plateau_runs"]["value"]) or "none",
             f"none more than {c['no_plateau_runs']['max_drop']} points below their method's median"],
            ["vanilla train accuracy (lowest seed; " + c["vanilla_fits"]["measured"] + ")",
             _num(c["vanilla_fits"]["value"], ".2f"),
             f">= {c['vanilla_fits']['min']}"],
            ["vanilla test-accuracy change from the last evaluation at or before 90% of the epochs to the end "
             "(mean absolute)", _num(c["vanilla_converged"]["value"], ".2f"),
             f"<= {c['vanilla_converged']['max']}"],
            ["vanilla lr / weight decay grid", "; ".join(
                f"{g['lr']}/{g['weight_decay']}: {g['mean']:.2f} (n={g['seeds']})"
                for g in c["vanilla_tuned"]["grid"]) or DASH,
             f">= {c['vanilla_tuned']['min_settings']} settings; the chosen within "
             f"{c['vanilla_tuned']['tolerance']} of the best"]]
    for ctl in c["positive_control"]["controls"]:
        rows.append([f"{ctl['method']} − vanilla", f"{ctl['diff']:+.2f} [{ctl['ci'][0]:.2f}, {ctl['ci'][1]:.2f}], "
                     f"p {_pfmt(ctl['p'])}, Holm {_pfmt(ctl['p_holm'])}",
                     f"> 0 with Holm p < {c['positive_control']['alpha']} (one control suffices)"])
    ok = {0: "vanilla_seeds", 1: "vanilla_sd", 2: "no_plateau_runs", 3: "vanilla_fits", 4: "vanilla_converged",
          5: "vanilla_tuned"}
    for i, row in enumerate(rows):
        row.append(("yes" if c[ok[i]]["ok"] else "NO") if i in ok else
                   ("yes" if c["positive_control"]["controls"][i - len(ok)]["passes"] else "no"))
    return Table("gate", f"The gate before any verdict: {'PASSED' if gate['passed'] else 'NOT PASSED'}",
                 ["check", "measured", "needed", "ok"], rows, [r[:] for r in rows],
                 note="See sagemix.report.verdict: a regime in which no established mixing method beats a tuned, "
                      "stable vanilla cannot show whether SAGE helps.",
                 csv_columns=["check", "measured", "needed", "ok"])


def dataset_verdict(runs: Sequence[Run], *, endpoints: Sequence[Endpoint] = (), gate: GateOptions | None = None,
                    clean_key: str = "final_acc") -> dict[str, Any]:
    """One dataset's entry of ``verdict.json``: the gate, the methods and seeds, the endpoints."""
    finished = [r for r in runs if r.finished]
    out: dict[str, Any] = {
        "datasets": sorted({r.dataset for r in runs}),
        "methods": [m for _, m, _ in _groups(finished)],
        "seeds": sorted({r.seed for r in finished if r.seed is not None}),
    }
    g = gate_result(runs, gate, clean_key=clean_key) if gate is not None else None
    failed = [name for name, check in g["checks"].items() if not check["ok"]] if g else []
    if g:
        out["gate"] = {k: g[k] for k in ("passed", "control", "control_minus_vanilla", "ci", "p_holm", "seeds",
                                         "vanilla_mean", "vanilla_sd")} | {"failed": failed, "checks": g["checks"]}
    ends = endpoint_results(runs, endpoints, clean_key=clean_key) if endpoints else []
    if endpoints:
        out["endpoints"] = ends
    measured = sum(e["diff"] is not None for e in ends)
    complete = sum(e["diff"] is not None and e["n"] >= gate.endpoint_seeds for e in ends) if gate else 0
    if g and not g["passed"]:
        out["verdict"] = (f"none: the gate failed ({', '.join(failed)}), so this regime cannot say whether SAGE helps"
                          + ("" if measured else "; the full comparison was not run"))
    elif g and not ends:
        out["verdict"] = "none named: the gate passed, but no primary endpoints were given (--endpoints)"
    elif g:
        out["verdict"] = (_readout(ends, gate.alpha) if complete == len(ends) else
                          f"pending: the gate passed; {complete} of {len(ends)} endpoints measured on at least "
                          f"{gate.endpoint_seeds} paired seeds (the full comparison is not finished)")
    return out
