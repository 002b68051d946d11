"""One command that checks sagemix on a CUDA GPU and records what it measured.

Usage:
    python benchmarks/gpu_check.py                 # about 8 minutes on one GPU
    python benchmarks/gpu_check.py --budget-s 300 --out results/gpu

Parts, each in its own subprocess with its own time budget (a crash, a hang or an exception in one
part leaves the others' numbers), run in this order:

1. ``tests``: ``pytest -m cuda tests/test_cuda.py`` (every mixer on CUDA equals its CPU result, the
   step under bf16 and fp16 autocast with a GradScaler, channels_last, compile);
2. ``sync_debug``: a few training steps of each pure method (SAGE first) under
   ``torch.cuda.set_sync_debug_mode("error")``, after an untimed warm-up step: any host sync inside
   the step is an error, recorded with where it happened;
3. ``bench_methods``: ``sagemix bench`` for every method without a graph cut (PreActResNet18,
   B = 100, 32 px), and ``bench_graphcut`` the same for Puzzle Mix and Co-Mixup (their graph cuts run
   on the CPU and are slow: a part of their own, so that they cannot cost the others' numbers);
4. ``bench_kernels``: the mixing kernels alone, SAGE's exhaustive search (all 3,969 shifts) among them;
5. ``train``: a 2-epoch CIFAR-shaped training run (synthetic uint8 data resident on the GPU, no
   download) of vanilla and of SAGE, images per second and peak memory.

After every part ``results/gpu/<device>.json`` and ``.md`` are rewritten (atomically), so an
interrupted check still leaves what it measured. Without CUDA it says so and exits 0.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:  # check this checkout's sagemix (the parts' processes do too)
    sys.path.insert(0, str(ROOT / "src"))

from sagemix.utils import atomic_write_text  # noqa: E402

#: The step methods with no graph-cut extra (the sync-debug part runs these).
PURE_METHODS = ("sage", "vanilla", "mixup", "manifold_mixup", "cutmix", "cutout")


# -- orchestration -------------------------------------------------------------------
@dataclass
class Part:
    """One part of the check: a name, its share of the time and how to run it (``run(budget_s) -> dict``)."""

    name: str
    budget_s: float
    run: Callable[[float], dict[str, Any]]


def device_slug(name: str) -> str:
    """A file name for a device: ``"NVIDIA H200"`` -> ``"NVIDIA_H200"``."""
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_")
    return slug or "device"


def to_markdown(record: dict[str, Any]) -> str:
    """The record as a Markdown page: the set-up, then one section per part."""
    lines = [f"# GPU check: {record.get('device_name', '?')}", "",
             f"torch {record.get('torch_version')}, CUDA {record.get('cuda_version')}, sagemix "
             f"{record.get('sagemix_version')}, started {record.get('started')}", ""]
    for name, part in record.get("parts", {}).items():
        lines += [f"## {name}: {part.get('status')} ({part.get('seconds', 0):.0f} s)", ""]
        if part.get("error"):
            lines += ["```", str(part["error"])[-2000:], "```", ""]
        if part.get("markdown"):
            lines += [part["markdown"], ""]
        summary = {k: v for k, v in part.items() if k not in ("status", "seconds", "error", "markdown", "raw")}
        if summary:
            lines += ["```json", json.dumps(summary, indent=1, default=str)[:6000], "```", ""]
    return "\n".join(lines)


def write_record(record: dict[str, Any], out_dir: Path, slug: str) -> None:
    """Write ``<out_dir>/<slug>.json`` and ``.md`` atomically."""
    atomic_write_text(out_dir / f"{slug}.json", json.dumps(record, indent=2, default=str) + "\n")
    atomic_write_text(out_dir / f"{slug}.md", to_markdown(record))


def run_parts(parts: list[Part], record: dict[str, Any], *, out_dir: Path, slug: str, budget_s: float,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run each part within its budget (and what is left of the total), recording as it goes.

    A part that raises (or runs past its budget, which its ``run`` reports as TimeoutError) is
    recorded with ``status: "error"`` and the next part runs; the record is written after each part.
    """
    deadline = time.monotonic() + budget_s
    record.setdefault("parts", {})
    for part in parts:
        left = deadline - time.monotonic()
        budget = min(part.budget_s, left)
        if budget < 5:
            record["parts"][part.name] = {"status": "skipped", "seconds": 0.0, "error": "no time left in the budget"}
            write_record(record, out_dir, slug)
            continue
        log(f"[gpu_check] {part.name} (budget {budget:.0f} s) ...")
        t0 = time.monotonic()
        try:
            result = dict(part.run(budget))
            status = result.pop("status", "ok")
            entry = {"status": status, **result}
        except Exception as e:  # noqa: BLE001 - one failing part must not stop the others
            entry = {"status": "error", "error": f"{type(e).__name__}: {e}"}
        entry["seconds"] = time.monotonic() - t0
        record["parts"][part.name] = entry
        write_record(record, out_dir, slug)
        log(f"[gpu_check] {part.name}: {entry['status']} in {entry['seconds']:.0f} s")
    return record


def run_subprocess(cmd: list[str], *, timeout_s: float, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``cmd``; ``(returncode, output tail)``; TimeoutError when it runs past ``timeout_s`` (it is killed)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        tail = (e.stdout or "")[-1500:] if isinstance(e.stdout, str) else ""
        raise TimeoutError(f"ran past its budget of {timeout_s:.0f} s; output tail: {tail}") from None
    return r.returncode, (r.stdout + r.stderr)[-4000:]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _part_in_subprocess(name: str) -> Callable[[float], dict[str, Any]]:
    """A part's ``run``: this script with ``--part name`` in a fresh process, reading back its JSON."""

    def run(budget_s: float) -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "part.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--part", name, "--part-out", str(out),
                   "--part-budget-s", str(budget_s)]
            code, tail = run_subprocess(cmd, timeout_s=budget_s, env=_env())
            if out.is_file():
                result = json.loads(out.read_text())
                if code != 0:
                    result.setdefault("status", "error")
                    result.setdefault("error", tail)
                return result
            raise RuntimeError(f"the part exited with code {code} and no result: {tail}")

    return run


def _tests_part(budget_s: float) -> dict[str, Any]:
    import xml.etree.ElementTree as ET

    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "tests/test_cuda.py",
               f"--junitxml={junit}"]
        code, tail = run_subprocess(cmd, timeout_s=budget_s - 2, env=_env())
        cases: dict[str, str] = {}
        failures: dict[str, str] = {}
        if junit.is_file():
            for case in ET.parse(junit).getroot().iter("testcase"):
                key = case.get("name", "?")
                bad = case.find("failure") if case.find("failure") is not None else case.find("error")
                if bad is not None:
                    cases[key] = "failed"
                    failures[key] = (bad.get("message") or "")[:500]
                elif case.find("skipped") is not None:
                    cases[key] = "skipped"
                else:
                    cases[key] = "passed"
    counts = {s: sum(v == s for v in cases.values()) for s in ("passed", "failed", "skipped")}
    return {"status": "ok" if code == 0 else "failed", **counts, "failures": failures, "exit_code": code,
            "output_tail": tail[-1500:] if code != 0 else ""}


def default_parts() -> list[Part]:
    """The check's parts and their budgets (seconds; 480 s in all, cut to what is left of ``--budget-s``)."""
    return [Part("tests", 170, _tests_part),
            Part("sync_debug", 40, _part_in_subprocess("sync_debug")),
            Part("bench_methods", 80, _part_in_subprocess("bench_methods")),
            Part("bench_graphcut", 50, _part_in_subprocess("bench_graphcut")),
            Part("bench_kernels", 40, _part_in_subprocess("bench_kernels")),
            Part("train", 100, _part_in_subprocess("train"))]


# -- the parts that need torch (run in their own process) -------------------------------------------------
def _sync_debug(budget_s: float) -> dict[str, Any]:
    import torch

    from sagemix.models import create_model
    from sagemix.train.setup import build_mixer, build_step

    dev = torch.device("cuda", 0)
    torch.cuda.set_device(dev)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 3, 32, 32, generator=g).to(dev)
    y = torch.randint(0, 10, (100,), generator=g).to(dev)
    results: dict[str, Any] = {}
    start = time.monotonic()
    for method in PURE_METHODS:
        if time.monotonic() - start > budget_s * 0.8:
            results[method] = {"ok": None, "error": "not run: out of time"}
            continue
        torch.manual_seed(0)
        model = create_model("preactresnet18", num_classes=10).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        step = build_step(model, build_mixer(method, num_classes=10, generator=torch.Generator().manual_seed(0)),
                          num_classes=10, device=dev)

        def one() -> None:
            opt.zero_grad(set_to_none=True)
            step(x, y)
            opt.step()

        one()  # warm-up: first-call allocations and cuDNN set-up may sync
        torch.cuda.synchronize(dev)
        try:
            torch.cuda.set_sync_debug_mode("error")
            for _ in range(3):
                one()
            results[method] = {"ok": True, "error": None}
        except Exception as e:  # noqa: BLE001 - record where the step synchronised
            frames = [f for f in traceback.extract_tb(e.__traceback__) if "sagemix" in f.filename]
            where = f"{frames[-1].filename.split('sagemix/')[-1]}:{frames[-1].lineno}" if frames else "?"
            results[method] = {"ok": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}",
                               "where": where}
        finally:
            torch.cuda.set_sync_debug_mode(0)
            torch.cuda.synchronize(dev)
    ok = all(r["ok"] for r in results.values())
    return {"status": "ok" if ok else "failed", "methods": results,
            "markdown": "\n".join(["| method | no sync in the step | where |", "|---|---|---|"]
                                  + [f"| {m} | {r['ok']} | {r.get('where', '')} {r.get('error') or ''} |"
                                     for m, r in results.items()])}


GRAPH_CUT_METHODS = ("puzzlemix", "comixup")


def _bench_methods(budget_s: float, graph_cut: bool = False) -> dict[str, Any]:
    from sagemix.bench import bench_methods
    from sagemix.mixers import list_mixers

    methods = [m for m in list_mixers() if (m in GRAPH_CUT_METHODS) == graph_cut]
    report = bench_methods(methods, model="preactresnet18", batch_size=100, input_size=32, device="cuda:0",
                           steps=5 if graph_cut else 20, warmup=1 if graph_cut else 3, progress=False)
    if graph_cut:
        return {"ratios": report.ratios(), "markdown": report.to_markdown(), "raw": report.to_dict()}
    ratios = report.ratios()
    sage = next((m for m in report.methods if m.method == "sage"), None)
    targets = {"sage_ratio_le_2.1": ratios.get("sage") is not None and ratios["sage"] <= 2.1,
               "sage_mix_share_le_3pct": bool(sage and sage.mix_ms is not None and sage.step_ms
                                               and sage.mix_ms / sage.step_ms <= 0.03)}
    return {"ratios": ratios, "targets": targets, "markdown": report.to_markdown(), "raw": report.to_dict()}


def _bench_kernels(budget_s: float) -> dict[str, Any]:
    from dataclasses import asdict

    from sagemix.bench import bench_kernels

    kernels = bench_kernels(input_size=32, batch_size=100, device="cuda:0", repeats=10, warmup=2, progress=False)
    rows = [asdict(k) for k in kernels]
    # bench_kernels times SAGE's exhaustive search (every one of the 3,969 shifts) next to the sampled one
    sage_full = [r for r in rows if r["name"].startswith("sage_mix (exhaustive")]
    target = bool(sage_full and sage_full[0]["ms"] is not None and sage_full[0]["ms"] <= 3.0)
    md = "\n".join(["| kernel | ms | detail | error |", "|---|---|---|---|"]
                   + [f"| {r['name']} | {r['ms'] if r['ms'] is None else round(r['ms'], 3)} | {r['detail']} | "
                      f"{r['error'] or ''} |" for r in rows])
    return {"kernels": rows, "targets": {"sage_mix_exhaustive_le_3ms": target}, "markdown": md}


def _train(budget_s: float) -> dict[str, Any]:
    import torch

    from sagemix.data import ImageData
    from sagemix.train import TrainConfig, Trainer

    dev = torch.device("cuda", 0)
    g = torch.Generator().manual_seed(0)
    n_train, n_test = 50_000, 10_000

    def synthetic(n: int) -> ImageData:
        labels = torch.arange(n) % 10
        images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
        return ImageData(images, labels, [f"c{i}" for i in range(10)], (0.49, 0.48, 0.45), (0.25, 0.24, 0.26),
                         "cifar-shaped")

    train_data, test_data = synthetic(n_train), synthetic(n_test)
    runs: dict[str, Any] = {}
    start = time.monotonic()
    for method in ("vanilla", "sage"):
        if time.monotonic() - start > budget_s * 0.5:
            runs[method] = {"error": "not run: out of time"}
            continue
        with tempfile.TemporaryDirectory() as tmp:
            cfg = TrainConfig(method=method, model="preactresnet18", dataset="cifar-shaped", epochs=2, batch_size=100,
                              lr=0.1, milestones=[2], device="cuda:0", amp="bf16", channels_last=True,
                              out=str(Path(tmp) / method), progress=False, nan_check_every=100)
            torch.cuda.reset_peak_memory_stats(dev)
            trainer = Trainer(cfg, train_data=train_data, test_data=test_data, log=None)
            try:
                t0 = time.monotonic()
                trainer.fit()
                wall = time.monotonic() - t0
            finally:
                trainer.close()
            hist = trainer.history
            runs[method] = {"images_per_s": [round(r["images_per_s"], 1) for r in hist],
                            "epoch_time_s": [round(r["epoch_time_s"], 3) for r in hist],
                            "wall_s": round(wall, 2),
                            "data_resident_on_device": bool(getattr(trainer.train_loader, "resident", False)),
                            "peak_mem_mb": round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)}
    md = "\n".join(["| method | img/s (epoch 1, 2) | epoch s | peak MiB |", "|---|---|---|---|"]
                   + [f"| {m} | {r.get('images_per_s')} | {r.get('epoch_time_s')} | {r.get('peak_mem_mb')} |"
                      for m, r in runs.items()])
    return {"setting": "PreActResNet18, B=100, 32 px, bf16 autocast, channels_last, 50,000 synthetic images",
            "runs": runs, "markdown": md}


PART_FUNCTIONS: dict[str, Callable[[float], dict[str, Any]]] = {
    "sync_debug": _sync_debug, "bench_methods": _bench_methods,
    "bench_graphcut": lambda budget_s: _bench_methods(budget_s, graph_cut=True), "bench_kernels": _bench_kernels, "train": _train}


def _run_one_part(name: str, out: Path, budget_s: float) -> int:
    """The subprocess side: run one part, write its JSON result (also its error) to ``out``."""
    try:
        result = PART_FUNCTIONS[name](budget_s)
        code = 0
    except Exception as e:  # noqa: BLE001 - the parent records it
        result = {"status": "error", "error": f"{type(e).__name__}: {e}\n{traceback.format_exc()[-2000:]}"}
        code = 1
    atomic_write_text(out, json.dumps(result, default=str))
    return code


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "results" / "gpu"), help="folder of <device>.json and .md")
    p.add_argument("--budget-s", type=float, default=480.0, help="time for the whole check (seconds)")
    p.add_argument("--parts", nargs="+", default=None, help="run only these parts")
    p.add_argument("--part", default=None, help=argparse.SUPPRESS)
    p.add_argument("--part-out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--part-budget-s", type=float, default=60.0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.part is not None:
        return _run_one_part(args.part, Path(args.part_out), args.part_budget_s)

    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine; nothing to check (exit 0)")
        return 0
    import sagemix

    name = torch.cuda.get_device_name(0)
    record: dict[str, Any] = {"device_name": name, "torch_version": torch.__version__,
                              "cuda_version": torch.version.cuda, "sagemix_version": sagemix.__version__,
                              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "budget_s": args.budget_s, "parts": {}}
    parts = default_parts()
    if args.parts:
        unknown = sorted(set(args.parts) - {q.name for q in parts})
        if unknown:
            p.error(f"unknown part(s) {unknown}; expected some of {[q.name for q in parts]}")
        parts = [q for q in parts if q.name in args.parts]
    slug = device_slug(name)
    run_parts(parts, record, out_dir=Path(args.out), slug=slug, budget_s=args.budget_s)
    print(f"gpu_check: wrote {Path(args.out) / slug}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
