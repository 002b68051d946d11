"""Throughput and memory measurements of the streaming loader: the loader half of ``sagemix bench --scale``.

:func:`measure_decode_limit` times decoding and transforming images in one process (the work one
worker does per image), from which the limit of ``w`` workers is ``w`` times that rate;
:func:`measure_loader` times the whole streaming loader (workers, collation, transfer and
normalisation). Their ratio says how close the loader comes to the decode limit;
:func:`measure_loader_vs_decode` measures both in alternating rounds, as the benchmark does.
:func:`measure_loader_rss` runs the loader in a fresh process and reports its peak resident memory
(and its workers'), to check that RAM does not grow with the number of files;
:func:`prepare_jpeg_folder` generates a benchmark folder with several processes (or reuses it), and
:func:`loader_scale_report` puts it all together (the loader half of ``sagemix bench --scale``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from ..checks import check_int, is_int
from ..data.stream_loader import make_stream_loader, open_image_folder
from ..data.synthetic import make_jpeg_folder

__all__ = ["measure_loader", "measure_decode_limit", "measure_loader_vs_decode", "measure_loader_rss", "prepare_jpeg_folder",
           "loader_scale_report", "loader_report_markdown", "LOADER_TARGETS"]

#: The issue's targets: loader >= 85% of the decode limit; RSS growth 10,000 -> 40,000 files <= 100 MB.
LOADER_TARGETS = {"loader_fraction_of_decode_limit": 0.85, "rss_growth_mb": 100.0}


def measure_decode_limit(folder: str | os.PathLike, n: int = 200, *, image_size: int = 224, train: bool = True,
                         seed: int = 0) -> dict[str, Any]:
    """Images per second that one process decodes and transforms (``n`` files of ``folder``).

    Returns:
        ``{"images": n, "seconds": s, "images_per_s": r}`` (one process; a loader with ``w``
        workers is limited to about ``w * r`` on ``w`` free cores).
    """
    ds = open_image_folder(folder, train=train, image_size=image_size, mean=(0.5,) * 3, std=(0.25,) * 3)
    n = min(int(n), len(ds))
    ds[0]  # warm up (imports, first file open)
    t0 = time.perf_counter()
    for i in range(n):
        ds[(i, seed + i)]
    dt = time.perf_counter() - t0
    return {"images": n, "seconds": dt, "images_per_s": n / dt}


def measure_loader(folder: str | os.PathLike, workers: int = 4, batch_size: int = 64, steps: int = 20, *,
                   image_size: int = 224, device: str = "cpu", warmup: int = 2) -> dict[str, Any]:
    """Images per second served by :func:`make_stream_loader` on ``folder`` (after ``warmup`` batches).

    Returns:
        ``{"workers", "batch_size", "steps", "images", "seconds", "images_per_s"}``.
    """
    ds = open_image_folder(folder, train=True, image_size=image_size, mean=(0.5,) * 3, std=(0.25,) * 3)
    loader = make_stream_loader(ds, batch_size=batch_size, train=True, device=device, workers=workers)
    dev = torch.device(device)

    def now() -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter()

    done, images, t0 = 0, 0, now()
    while done < warmup + steps:  # as many epochs as it takes
        for x, _ in loader:
            done += 1
            if done <= warmup:
                t0 = now()
                continue
            images += x.shape[0]
            if done == warmup + steps:
                break
    dt = now() - t0
    return {"workers": workers, "batch_size": batch_size, "steps": steps, "images": images, "seconds": dt,
            "images_per_s": images / dt if dt > 0 else float("nan")}


def measure_loader_vs_decode(folder: str | os.PathLike, workers: int = 1, batch_size: int = 64, steps: int = 100, *,
                             rounds: int = 5, decode_n: int = 300, image_size: int = 224, seed: int = 0,
                             main_threads: int | None = None) -> dict[str, Any]:
    """The streaming loader's images/s and the decode limit, measured in alternating rounds (CPU).

    Each of ``rounds`` rounds: (1) waits until the workers have filled their prefetch queues and sit
    idle; (2) decodes and transforms ``decode_n`` files drawn at random from the folder (each once,
    a new draw per round) in this process, flat out; (3) takes the prefetched batches, untimed;
    (4) times ``steps // rounds`` batches of the loader. Both rates are totals over the rounds, so a
    machine whose speed drifts (a shared host: one 300-image pass ranged from 460 to 790 images/s
    here within a minute) moves both alike; the limit is the decode rate times ``workers``.

    This process normalises the batches with ``main_threads`` torch threads (default: the CPUs the
    workers leave, at least 1; restored afterwards), as a training process should. With torch's
    default of one thread per CPU, one probe on a 2-CPU machine found the only worker running 82% of
    the time instead of 100%; a later pair of runs showed no difference (93.8% vs 93.5% of the limit).

    Returns:
        ``{"workers", "batch_size", "steps", "rounds", "main_threads", "images", "seconds",
        "images_per_s", "decode": {"images", "seconds", "images_per_s", "workers",
        "limit_images_per_s"}, "fraction", "per_round": [{"decode_images_per_s",
        "loader_images_per_s"}, ...]}``.
    """
    for arg, val, lo in (("workers", workers, 1), ("rounds", rounds, 1), ("decode_n", decode_n, 1)):
        check_int(val, arg, lo)
    if not is_int(steps) or steps < rounds:
        raise ValueError(f"steps must be an int >= rounds={rounds}, got {steps!r}")
    threads = max(1, (os.cpu_count() or 1) - workers) if main_threads is None else main_threads
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ds = open_image_folder(folder, train=True, image_size=image_size, mean=(0.5,) * 3, std=(0.25,) * 3)
        loader = make_stream_loader(ds, batch_size=batch_size, train=True, device="cpu", workers=workers, seed=seed)
        queued = workers * loader._loader.prefetch_factor  # batches the workers prepare ahead

        def batches() -> Iterator[Tensor]:
            while True:  # as many epochs as it takes
                for x, _ in loader:
                    yield x

        it = batches()
        t0 = time.perf_counter()
        next(it), next(it)  # start the workers
        batch_s = (time.perf_counter() - t0) / 2
        ds[0]  # warm this process up too
        dec_n = dec_s = load_n = load_s = 0.0
        per_round = []
        for r in range(rounds):
            time.sleep(1.2 * queued * batch_s)  # (1) the workers fill their queues, then wait
            files = np.random.default_rng([seed, r]).choice(len(ds), min(decode_n, len(ds)), replace=False)
            t0 = time.perf_counter()
            for k, i in enumerate(files.tolist()):  # (2)
                ds[(i, k)]
            d_s = time.perf_counter() - t0
            for _ in range(queued):  # (3)
                next(it)
            n, t0 = 0, time.perf_counter()
            for _ in range(steps // rounds):  # (4)
                n += next(it).shape[0]
            l_s = time.perf_counter() - t0
            batch_s = l_s / (steps // rounds)
            dec_n, dec_s, load_n, load_s = dec_n + len(files), dec_s + d_s, load_n + n, load_s + l_s
            per_round.append({"decode_images_per_s": len(files) / d_s, "loader_images_per_s": n / l_s})
    finally:
        torch.set_num_threads(before)
    rate = dec_n / dec_s
    decode = {"images": int(dec_n), "seconds": dec_s, "images_per_s": rate, "workers": workers,
              "limit_images_per_s": rate * workers}
    return {"workers": workers, "batch_size": batch_size, "steps": rounds * (steps // rounds), "rounds": rounds,
            "main_threads": threads, "images": int(load_n), "seconds": load_s, "images_per_s": load_n / load_s,
            "decode": decode, "fraction": load_n / load_s / decode["limit_images_per_s"], "per_round": per_round}


def prepare_jpeg_folder(root: str | os.PathLike, n: int, *, size: int = 256, classes: int = 100, seed: int = 0,
                        processes: int | None = None) -> dict[str, Any]:
    """A benchmark folder of ``n`` JPEGs of ``size`` px in ``classes`` class folders, written and timed.

    :func:`sagemix.data.synthetic.make_jpeg_folder` writes it with ``processes`` processes (default:
    the CPUs, at most ``n // classes``), so the folder depends on that number. A folder that already
    holds ``n`` files of this layout is reused.

    Returns:
        ``{"root", "files", "seconds", "processes", "reused"}``.
    """
    if not is_int(n) or n < classes:
        raise ValueError(f"n must be an int >= classes={classes}, got {n!r}")
    root = Path(root)
    have = sum(1 for _ in root.glob("class_*/*.jpg")) if root.is_dir() else 0
    procs = max(1, min(processes or os.cpu_count() or 1, n // classes))
    if have == n:
        return {"root": str(root), "files": n, "seconds": 0.0, "processes": procs, "reused": True}
    t0 = time.perf_counter()
    make_jpeg_folder(root, n, size, classes, seed, 90, 0, procs)
    return {"root": str(root), "files": n, "seconds": time.perf_counter() - t0, "processes": procs, "reused": False}


_RSS_CHILD = """
import json, resource, sys, time
from sagemix.data.stream_loader import make_stream_loader, open_image_folder
folder, workers, batch_size, steps, image_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
t0 = time.perf_counter()
ds = open_image_folder(folder, train=True, image_size=image_size, mean=(0.5,) * 3, std=(0.25,) * 3)
scan_s = time.perf_counter() - t0
after_open = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
loader = make_stream_loader(ds, batch_size=batch_size, train=True, device="cpu", workers=workers)
done = 0
while done < steps:
    for x, _ in loader:
        done += 1
        if done >= steps:
            break
print(json.dumps({"files": len(ds), "scan_s": scan_s, "main_rss_after_open_kb": after_open,
                  "main_peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "workers_peak_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def measure_loader_rss(folder: str | os.PathLike, *, workers: int = 4, batch_size: int = 64, steps: int = 20,
                       image_size: int = 224, timeout: float = 1800.0) -> dict[str, Any]:
    """Peak resident memory of a fresh process that opens ``folder`` and serves ``steps`` batches.

    The loader runs in a new Python process (so nothing else is counted); ``main_peak_rss_mb`` is
    that process's peak RSS (Linux ``ru_maxrss``), ``workers_peak_rss_mb`` the largest peak of its
    decoding workers (which share the parent's pages copy-on-write).

    Returns:
        ``{"files", "scan_s", "main_rss_after_open_mb", "main_peak_rss_mb", "workers_peak_rss_mb",
        "workers", "steps"}``.
    """
    env = dict(os.environ)
    pkg_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    r = subprocess.run([sys.executable, "-c", _RSS_CHILD, str(folder), str(workers), str(batch_size), str(steps),
                        str(image_size)], capture_output=True, text=True, env=env, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"the loader RSS process failed ({r.returncode}): {r.stderr[-2000:]}")
    raw = json.loads(r.stdout.strip().splitlines()[-1])
    out = {"files": raw["files"], "scan_s": raw["scan_s"], "workers": workers, "steps": steps}
    for key in ("main_rss_after_open", "main_peak_rss", "workers_peak_rss"):
        out[f"{key}_mb"] = raw[f"{key}_kb"] / 1024.0
    return out


def loader_scale_report(root: str | os.PathLike, *, n_small: int = 10_000, n_large: int | None = 40_000,
                        size: int = 256, image_size: int = 224, classes: int = 100, workers: int | None = None,
                        batch_size: int = 64, steps: int = 100, decode_n: int = 300, rounds: int = 5,
                        log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The loader half of the scale benchmark: throughput against the decode limit, RSS against file count.

    Generates ``n_small`` (and ``n_large``; None skips it) JPEGs of ``size`` px under ``root``
    (reused when already there), measures the streaming loader with ``workers`` workers (default:
    CPUs - 1, at most 8) against one process decoding flat out, in alternating rounds
    (:func:`measure_loader_vs_decode`), and the loader's peak RSS on each folder.

    Returns:
        A JSON-ready dict: ``generate``, ``decode_limit``, ``loader``, ``loader_fraction``, ``rss``
        (one row per folder), ``rss_growth_mb`` (None without the large folder), ``targets`` and
        ``passed`` (target name -> bool, or None when not measured).
    """
    say = log or (lambda _m: None)
    cpus = os.cpu_count() or 1
    workers = workers if workers is not None else max(1, min(8, cpus - 1))
    root = Path(root)
    gen = []
    folders = [(n_small, root / f"jpeg{n_small}")] + ([(n_large, root / f"jpeg{n_large}")] if n_large else [])
    for n, folder in folders:
        say(f"generating {n} JPEGs of {size}px in {folder} ...")
        gen.append(prepare_jpeg_folder(folder, n, size=size, classes=classes))
        say(f"  {gen[-1]['seconds']:.1f} s ({gen[-1]['processes']} processes, reused={gen[-1]['reused']})")
    small = folders[0][1]
    say(f"loader ({workers} workers, batch {batch_size}, {steps} batches) and decode limit (one process, "
        f"{decode_n} random files), in {rounds} alternating rounds ...")
    both = measure_loader_vs_decode(small, workers=workers, batch_size=batch_size, steps=steps, rounds=rounds,
                                    decode_n=decode_n, image_size=image_size)
    one, fraction = both.pop("decode"), both.pop("fraction")
    loader, limit = both, one["limit_images_per_s"]
    say(f"  decode {one['images_per_s']:.1f} images/s per process -> limit {limit:.1f} images/s with {workers} "
        f"workers; loader {loader['images_per_s']:.1f} images/s = {100 * fraction:.1f}% of the limit")
    rss = []
    for n, folder in folders:
        say(f"loader RSS on {n} files ...")
        rss.append(measure_loader_rss(folder, workers=workers, batch_size=batch_size, steps=min(steps, 20),
                                      image_size=image_size))
        say(f"  main {rss[-1]['main_peak_rss_mb']:.1f} MB, workers {rss[-1]['workers_peak_rss_mb']:.1f} MB")
    growth = rss[-1]["main_peak_rss_mb"] - rss[0]["main_peak_rss_mb"] if n_large else None
    targets = dict(LOADER_TARGETS)
    return {"cpus": cpus, "workers": workers, "image_size": image_size, "file_size": size, "generate": gen,
            "decode_limit": one, "loader": loader,
            "loader_fraction": fraction, "rss": rss, "rss_growth_mb": growth, "targets": targets,
            "passed": {"loader_fraction_of_decode_limit": fraction >= targets["loader_fraction_of_decode_limit"],
                       "rss_growth_mb": None if growth is None else growth <= targets["rss_growth_mb"]}}


def loader_report_markdown(r: dict[str, Any]) -> str:
    """The :func:`loader_scale_report` results as a Markdown section (a table with the targets)."""
    t = r["targets"]
    lines = [f"## Streaming loader ({r['cpus']} CPUs, {r['workers']} workers, {r['image_size']} px crops of "
             f"{r['file_size']} px JPEGs)", "",
             "| measurement | value | target | met |", "|---|---|---|---|"]
    for g in r["generate"]:
        lines.append(f"| generate {g['files']} JPEGs | {g['seconds']:.1f} s ({g['processes']} processes"
                     f"{', reused' if g['reused'] else ''}) | | |")
    d = r["decode_limit"]
    lines.append(f"| decode limit | {d['images_per_s']:.1f} img/s x {d['workers']} = {d['limit_images_per_s']:.1f} "
                 "img/s | | |")
    ok = r["passed"]["loader_fraction_of_decode_limit"]
    lines.append(f"| loader ({r['loader']['main_threads']} torch thread(s) in its process, {r['loader']['rounds']} "
                 f"rounds) | {r['loader']['images_per_s']:.1f} img/s = {100 * r['loader_fraction']:.1f}% of the limit "
                 f"| >= {100 * t['loader_fraction_of_decode_limit']:.0f}% | {'yes' if ok else 'no'} |")
    for row in r["rss"]:
        lines.append(f"| peak RSS, {row['files']} files | main {row['main_peak_rss_mb']:.1f} MB, worker "
                     f"{row['workers_peak_rss_mb']:.1f} MB (scan {row['scan_s']:.2f} s) | | |")
    if r["rss_growth_mb"] is not None:
        ok = r["passed"]["rss_growth_mb"]
        lines.append(f"| RSS growth | {r['rss_growth_mb']:.1f} MB | <= {t['rss_growth_mb']:.0f} MB | "
                     f"{'yes' if ok else 'no'} |")
    return "\n".join(lines) + "\n"
