"""Reading run folders for the report: :class:`Run`, :func:`load_run`, :func:`collect_runs`.

The files and their names are :mod:`sagemix.run_folder`'s; this module gathers one run's parsed
files into a :class:`Run` and finds run folders under a folder.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..run_folder import CONFIG_FILE, EVAL_DIR, SUMMARY_FILE, RunFolder

__all__ = ["Run", "load_run", "collect_runs"]


@dataclass
class Run:
    """One run folder's files, parsed.

    Attributes:
        path: the folder.
        method: the run's label in the tables: its config ``name`` (a comparison's variant name) when
            set, else the registry method.
        model, dataset: from ``summary.json`` (or ``config.json``).
        seed: the run's seed (None when unknown).
        summary: ``summary.json`` (empty when absent).
        config: ``config.json`` (empty when absent).
        metrics: the rows of ``metrics.jsonl`` (or ``metrics.csv``), one per epoch.
        eval: ``{"clean": ..., "corruptions": ..., "adversarial": ..., "fewshot": ...}`` from ``eval/*.json``.
        base_method: the registry method that trained it (equals ``method`` unless the run is a variant).
    """

    path: Path
    method: str
    model: str
    dataset: str
    seed: int | None
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    eval: dict[str, Any] = field(default_factory=dict)
    base_method: str = ""

    def __post_init__(self) -> None:
        if not self.base_method:
            self.base_method = self.method

    @property
    def finished(self) -> bool:
        """``summary.json`` says the run finished."""
        return bool(self.summary.get("finished", False))


def load_run(path: str | os.PathLike) -> Run:
    """Read one run folder (it must hold ``summary.json`` or ``config.json``)."""
    folder = RunFolder(path)
    if not folder.path.is_dir():
        raise FileNotFoundError(f"run folder {str(folder.path)!r} does not exist")
    summary = folder.read_summary()
    config = folder.read_config()
    if not summary and not config:
        raise ValueError(f"{folder.path} is not a run folder: it has neither {SUMMARY_FILE} nor {CONFIG_FILE}")

    def pick(key: str, default: Any = None) -> Any:
        return summary.get(key, config.get(key, default))

    seed = pick("seed")
    method = str(pick("method", "?"))
    label = pick("name") or method
    return Run(path=folder.path, method=str(label), model=str(pick("model", "?")),
               dataset=str(pick("dataset", "?")), seed=int(seed) if seed is not None else None,
               summary=summary, config=config, metrics=folder.read_metrics(), eval=folder.read_eval(),
               base_method=method)


def collect_runs(paths: Iterable[str | os.PathLike]) -> list[Run]:
    """Load run folders; a folder that is not a run is searched (recursively) for run folders.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: no run folder was found.
    """
    runs: list[Run] = []
    seen: set[Path] = set()
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"run folder {str(p)!r} does not exist")
        if RunFolder(p).is_run():
            found = [p]
        else:
            found = sorted({f.parent for pat in (SUMMARY_FILE, CONFIG_FILE) for f in p.rglob(pat)
                            if f.parent.name != EVAL_DIR})
        for f in found:
            r = f.resolve()
            if r not in seen:
                seen.add(r)
                runs.append(load_run(f))
    if not runs:
        raise ValueError(f"no run folders (with {SUMMARY_FILE} or {CONFIG_FILE}) under {[str(p) for p in paths]}")
    return runs
