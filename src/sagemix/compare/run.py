"""Running a comparison: train (or resume) each run, evaluate it, write the report; one job or several."""
from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from .. import run_folder as rf
from ..checks import is_int
from .config import ComparisonConfig
from .plan import RunSpec, check_plan, eval_options_for, plan_runs, run_state

__all__ = ["run_comparison", "run_one"]


def run_one(cfg: ComparisonConfig, spec: RunSpec, *, head: str, do_eval: bool,
            log: Callable[[str], None] = print, train_fn: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Train (or resume, or skip when finished) one run of the matrix, then evaluate it.

    Returns:
        ``{"name", "state": "trained" | "resumed" | "skipped" | None (training failed), "evaluated": bool,
        "failed": error text or None}``. A failure is returned, not raised (KeyboardInterrupt is raised).
    """
    from ..evaluate.stage import evaluate_run
    from ..train import load_config

    if train_fn is None:
        from ..train import train

        def train_fn(config: Any, *, resume: bool) -> Any:  # the trainer's lines go to this run's log
            return train(config, resume=resume, log=log)
    out: dict[str, Any] = {"name": spec.name, "state": None, "evaluated": False, "failed": None}
    state = run_state(spec.run_dir)
    if state == "finished":
        log(f"{head}: finished, not trained again")
        out["state"] = "skipped"
    else:
        log(f"{head}: {'resuming' if state == 'interrupted' else 'training'}")
        t0 = time.perf_counter()
        try:
            config = load_config(cfg.recipe, overrides=spec.overrides)
            train_fn(config, resume=state == "interrupted")
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one failed run must not lose the others; reported at the end
            out["failed"] = f"training: {type(e).__name__}: {e}"
            log(f"{head}: training failed: {type(e).__name__}: {e}")
            return out
        out["state"] = "resumed" if state == "interrupted" else "trained"
        log(f"{head}: done in {time.perf_counter() - t0:.0f} s")
    if do_eval:
        try:
            opts = eval_options_for(cfg, spec)
            if opts.done(spec.run_dir):
                log(f"{head}: evaluation already done")
                return out
            log(f"{head}: evaluating ({', '.join(opts.expected_files())})")
            evaluate_run(spec.run_dir, opts, log=log)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one failed evaluation must not lose the others; reported at the end
            out["failed"] = f"evaluation: {type(e).__name__}: {e}"
            log(f"{head}: evaluation failed: {type(e).__name__}: {e}")
        else:
            out["evaluated"] = True
    return out


def _print_flush(line: str) -> None:
    print(line, flush=True)


def _run_one_in_worker(cfg: ComparisonConfig, spec: RunSpec, head: str, do_eval: bool,
                       train_fn: Callable[..., Any] | None) -> dict[str, Any]:
    return run_one(cfg, spec, head=head, do_eval=do_eval, log=lambda s: _print_flush(f"{head}| {s}"),
                   train_fn=train_fn)


@contextmanager
def _worker_threads(specs: Sequence[RunSpec]) -> Iterator[None]:
    """Spawned workers inherit ``OMP_NUM_THREADS``: the runs' ``threads`` (1 when unset) unless already set."""
    threads = {s.overrides.get("threads") for s in specs}
    n = next(iter(threads)) if len(threads) == 1 and isinstance(next(iter(threads)), int) else 1
    old = os.environ.get("OMP_NUM_THREADS")
    if old is None:
        os.environ["OMP_NUM_THREADS"] = str(n if n and n > 0 else 1)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("OMP_NUM_THREADS", None)


def _check_eval_extras(cfg: ComparisonConfig, specs: Sequence[RunSpec]) -> None:
    """Refuse before any training an evaluation whose optional extra is missing (it would fail after it)."""
    from ..evaluate.stage import check_eval_extras
    from ..train import load_config

    for spec in specs:
        opts = eval_options_for(cfg, spec)
        try:
            check_eval_extras(opts, opts.dataset or load_config(cfg.recipe, overrides=spec.overrides).dataset)
        except ImportError as e:
            raise ImportError(f"the evaluation of {spec.name} would fail after its training: {e} "
                              "(or skip the evaluations: --no-eval)") from None


def run_comparison(cfg: ComparisonConfig, *, only: Mapping[str, Sequence[Any]] | None = None,
                   dry_run: bool = False, evaluate: bool | None = None, report: bool = True,
                   log: Callable[[str], None] = print,
                   train_fn: Callable[..., Any] | None = None, jobs: int = 1) -> dict[str, Any]:
    """Train (or resume) every run of the matrix, evaluate it, and write the report.

    Args:
        cfg: the comparison.
        only: restrict to some ``{"methods": [...], "seeds": [...], "models": [...]}``.
        dry_run: only log the plan and each run's state.
        evaluate: override ``cfg.eval_enabled``.
        report: write the report at the end (over every run of the matrix that has files).
        log: where progress lines go (with ``jobs > 1`` the workers print theirs, prefixed by the run).
        train_fn: ``train_fn(config, resume=bool) -> summary``; default :func:`sagemix.train.train` (with
            ``jobs > 1`` it must be picklable: a module-level function).
        jobs: runs at once, each in its own spawned process (1: all in this process, one after the other).
            Workers take the runs in plan order (seed-major); a generated corrupted set that two workers
            want at once is written by both, identically (atomic files, a fixed seed).

    Returns:
        ``{"trained": [...], "resumed": [...], "skipped": [...], "evaluated": [...], "failed": {name: error},
        "report": path or None}``.
    """
    if not is_int(jobs) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1 (runs at once), got {jobs!r}")
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
    if do_eval:
        _check_eval_extras(cfg, specs)
    result: dict[str, Any] = {"trained": [], "resumed": [], "skipped": [], "evaluated": [], "failed": {},
                              "report": None}
    n = len(specs)
    heads = [f"[{i}/{n}] {spec.name}" for i, spec in enumerate(specs, 1)]
    if dry_run:
        for head, spec in zip(heads, specs):
            ev = "eval done" if do_eval and eval_options_for(cfg, spec).done(spec.run_dir) else "eval to do"
            log(f"{head}: {run_state(spec.run_dir)}" + (f", {ev}" if do_eval else ""))
        return result
    if jobs == 1 or n <= 1:
        outcomes = [run_one(cfg, spec, head=head, do_eval=do_eval, log=log, train_fn=train_fn)
                    for head, spec in zip(heads, specs)]
    else:
        log(f"running {n} runs, {min(jobs, n)} at once (one process each)")
        sys.stdout.flush()
        with _worker_threads(specs), ProcessPoolExecutor(
                max_workers=min(jobs, n), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_run_one_in_worker, cfg, spec, head, do_eval, train_fn)
                       for head, spec in zip(heads, specs)]
            outcomes = [f.result() for f in futures]
    for o in outcomes:
        if o["state"] is not None:
            result[o["state"]].append(o["name"])
        if o["evaluated"]:
            result["evaluated"].append(o["name"])
        if o["failed"]:
            result["failed"][o["name"]] = o["failed"]
    if report:
        from ..report import collect_runs, write_report
        from ..report.verdict import parse_endpoints, parse_gate

        dirs = [s.run_dir for s in plan_runs(cfg) if rf.RunFolder(s.run_dir).summary_path.is_file()]
        if dirs:
            out = Path(cfg.report_out or Path(cfg.out) / "report")
            ro = cfg.report_options
            written = write_report(collect_runs(dirs), out, plots=cfg.report_plots,
                                   clean_key=ro.get("clean_metric", "final_acc"),
                                   references=ro.get("references", ("vanilla", "sage")), ci=ro.get("ci", "t"),
                                   endpoints=parse_endpoints(ro["endpoints"]) if "endpoints" in ro else (),
                                   gate=parse_gate(ro["gate"]) if "gate" in ro else None)
            result["report"] = written["report"]
            log(f"report: {written['report']}")
    return result
