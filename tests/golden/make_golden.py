"""Regenerate the golden files of tests/test_golden.py.

ONLY RUN THIS WHEN A BEHAVIOUR CHANGE IS INTENDED. The golden files pin, for fixed seeds, every
registered mixer's outputs, a 2-epoch offline training's metrics and a ``sagemix report`` over a
tiny comparison built from those trainings; tests/test_golden.py regenerates each one and asserts
bit-identical equality, so a refactor that changes any number fails it. After an intended change,
run (from the repository root)::

    PYTHONPATH=$PWD/src python tests/golden/make_golden.py

and commit the rewritten files together with the change, saying why the numbers moved.

Bit-identical floats need the same CPU kernels, and torch picks them by the CPU's instruction set: an
AVX-512 machine's convolutions and reductions differ in the last bits from an AVX2 machine's, and training
amplifies that. So the files are made, and checked, in a process whose kernels are pinned to AVX2
(:data:`PINNED_ENV`), which every x86-64 machine of the last decade runs: this script re-runs itself
under it, and tests/test_golden.py regenerates the files the same way (``--into DIR``).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
#: numpy's names of its AVX-512 code paths (numpy 2.4's, then numpy 1's); a name it does not dispatch is ignored.
_NPY_AVX512 = "X86_V4 AVX512_ICL AVX512_SPR AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_KNL AVX512_KNM"
#: The environment the golden files are made and checked in: AVX2 kernels for torch (ATen, oneDNN) and for
#: numpy (its SIMD loops and OpenBLAS, which Co-Mixup's solver uses), one thread.
PINNED_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "NPY_DISABLE_CPU_FEATURES": _NPY_AVX512,
              "OPENBLAS_CORETYPE": "Haswell", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
#: What ``torch.backends.cpu.get_cpu_capability()`` says under :data:`PINNED_ENV` on a machine that has AVX2.
PINNED_CAPABILITY = "AVX2"
MIXERS_FILE = HERE / "mixers.pt"
TRAIN_FILE = HERE / "training.json"
REPORT_DIR = HERE / "report"

B, C, H, W = 6, 3, 16, 16
NUM_CLASSES = 5
CALLS = 2  # calls per mixer, from one generator: pins how the draws follow each other

#: (case name, registry name, constructor options). Every registered mixer appears at least once
#: (tests/test_golden.py checks that); pools are off so that the cases run in this process.
MIXER_CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("vanilla", "vanilla", {}),
    ("mixup", "mixup", {}),
    ("mixup_per_sample_prob", "mixup", {"alpha": 0.4, "prob": 0.5, "per_sample": True}),
    ("manifold_mixup", "manifold_mixup", {}),
    ("manifold_mixup_per_sample", "manifold_mixup", {"alpha": 0.2, "per_sample": True}),
    ("cutmix", "cutmix", {}),
    ("cutmix_per_sample_prob", "cutmix", {"alpha": 0.5, "prob": 0.5, "per_sample": True}),
    ("cutout", "cutout", {"size": 6}),
    ("cutout_per_batch_prob", "cutout", {"size": 20, "prob": 0.5, "per_sample": False}),
    ("saliencymix", "saliencymix", {"prob": 1.0, "num_workers": 0}),
    ("saliencymix_given_saliency", "saliencymix", {"prob": 0.5, "per_batch_box": True, "num_workers": 0}),
    ("puzzlemix", "puzzlemix", {"num_workers": 0}),
    ("puzzlemix_adv", "puzzlemix", {"num_workers": 0, "adv_p": 1.0, "alpha": 0.0, "transport": False}),
    ("comixup", "comixup", {"num_workers": 0, "m_part": 4}),
    ("sage", "sage", {}),
    ("sage_coarse_to_fine", "sage", {"search": "coarse_to_fine", "mixup_alpha": 0.0}),
    ("sage_exhaustive", "sage", {"rand_pos": None, "force_zero_shift": True}),
]


def inputs() -> dict[str, torch.Tensor]:
    """The fixed inputs: normalised images, labels, a saliency map, a gradient and a hidden state."""
    g = torch.Generator().manual_seed(1234)
    return {"images": torch.randn(B, C, H, W, generator=g),
            "labels": torch.randint(0, NUM_CLASSES, (B,), generator=g),
            "saliency": torch.rand(B, H, W, generator=g),
            "grad": torch.randn(B, C, H, W, generator=g),
            "hidden": torch.randn(B, 4, 4, 4, generator=g)}


def _tensors(extras: dict[str, Any]) -> dict[str, Any]:
    """The extras that can be stored and compared: tensors, numbers, strings, tuples of them."""
    keep = (torch.Tensor, int, float, str, bool, tuple, list)
    return {k: v for k, v in extras.items() if isinstance(v, keep) and k != "partitions"}


def mixer_outputs() -> dict[str, list[dict[str, Any]]]:
    """Every case's outputs for :data:`CALLS` calls (plus, for Manifold Mixup, the hidden mix)."""
    from sagemix.mixers import create_mixer

    x = inputs()
    out: dict[str, list[dict[str, Any]]] = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # float sums are only bit-identical under the same thread count
    try:
        _mix_cases(x, out)
    finally:
        torch.set_num_threads(threads)
    return out


def _mix_cases(x: dict[str, torch.Tensor], out: dict[str, list[dict[str, Any]]]) -> None:
    from sagemix.mixers import create_mixer

    for case, name, opts in MIXER_CASES:
        mixer = create_mixer(name, num_classes=NUM_CLASSES, generator=torch.Generator().manual_seed(7), **opts)
        rows = []
        for _ in range(CALLS):
            if case == "puzzlemix_adv":
                mixer.reduce_saliency(x["grad"])
            given = x["saliency"] if (mixer.needs_gradient_saliency or case == "saliencymix_given_saliency") \
                else None
            res = mixer(x["images"], x["labels"], given)
            row = {"images": res.images, "targets": res.targets, "lam": res.lam, "index": res.index,
                   "extras": _tensors(res.extras)}
            if "mix_fn" in res.extras:
                row["hidden_mix"] = res.extras["mix_fn"](x["hidden"])
            rows.append(row)
        mixer.close()
        out[case] = rows


#: The tiny comparison: (method, seed) runs of the offline recipe, 2 epochs, on 1 CPU thread.
TRAIN_RUNS = [("mixup", 0), ("mixup", 1), ("sage", 0), ("sage", 1)]
#: Fields of metrics.jsonl / summary.json that measure time or name a path: left out of the golden
#: metrics and set to fixed values in the report's run folders.
TIMING_FIELDS = ("epoch_time_s", "step_time_s", "images_per_s", "epoch_cpu_s", "step_cpu_s",
                 "mean_epoch_time_s", "mean_step_time_s", "mean_epoch_cpu_s", "mean_step_cpu_s", "run_dir")


def train_runs(root: Path) -> dict[str, Any]:
    """Train :data:`TRAIN_RUNS` into ``root/<method>-s<seed>``; returns their metrics and summaries
    without the timing fields."""
    from sagemix.train import TrainConfig
    from sagemix.train.trainer import train

    golden: dict[str, Any] = {}
    for method, seed in TRAIN_RUNS:
        folder = root / f"smallnet-{method}-s{seed}"
        cfg = TrainConfig(method=method, dataset="offline", model="smallnet", epochs=2, batch_size=32, lr=0.05,
                          milestones=[1], seed=seed, dataset_kwargs={"n_train": 128, "n_test": 64, "cache": False},
                          device="cpu", threads=1, progress=False, out=str(folder))
        summary = train(cfg, log=None)
        rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
        golden[f"{method}-s{seed}"] = {
            "metrics": [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in rows],
            "summary": {k: v for k, v in summary.items() if k not in TIMING_FIELDS}}
        _fix_timing(folder)
    return golden


def _fix_timing(folder: Path) -> None:
    """Replace the measured times of a run folder with constants (the report's input is then fixed)."""
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    rows = [{k: (1.0 if k in TIMING_FIELDS else v) for k, v in r.items()} for r in rows]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "metrics.csv").unlink(missing_ok=True)
    summary = json.loads((folder / "summary.json").read_text())
    summary = {k: (1.0 if k in TIMING_FIELDS else v) for k, v in summary.items() if k != "run_dir"}
    (folder / "summary.json").write_text(json.dumps(summary))


def report_texts(root: Path, out: Path) -> dict[str, str]:
    """``sagemix report root --out out --no-plots``'s text files, by name (``root`` written as ``RUNS``)."""
    from sagemix.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(["report", str(root), "--out", str(out), "--no-plots"])
    if rc not in (0, None):
        raise RuntimeError(f"sagemix report exited with {rc}")
    # The run folders' location is the only text that depends on where the report ran.
    return {p.name: p.read_text().replace(str(root), "RUNS") for p in sorted(out.iterdir())
            if p.suffix in (".csv", ".md")}


def write_all(folder: Path) -> list[str]:
    """Make every golden file in ``folder`` (``mixers.pt``, ``training.json``, ``report/``); returns the report's
    file names. Run it under :data:`PINNED_ENV` (:func:`run_pinned`)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(mixer_outputs(), folder / MIXERS_FILE.name)
    tmp = Path(tempfile.mkdtemp())
    try:
        runs = tmp / "runs"
        (folder / TRAIN_FILE.name).write_text(json.dumps(train_runs(runs), indent=1, sort_keys=True) + "\n")
        texts = report_texts(runs, tmp / "report")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = folder / REPORT_DIR.name
    shutil.rmtree(report, ignore_errors=True)
    report.mkdir()
    for name, text in texts.items():
        (report / name).write_text(text)
    return list(texts)


def pinned() -> bool:
    """This process runs under :data:`PINNED_ENV` (the variables only act when set before torch starts)."""
    return all(os.environ.get(k) == v for k, v in PINNED_ENV.items())


def run_pinned(folder: Path) -> subprocess.CompletedProcess:
    """Run this script with ``--into folder`` in a new process under :data:`PINNED_ENV`, with this process's
    sagemix first on the path."""
    import sagemix

    src = str(Path(sagemix.__file__).resolve().parents[1])
    path = [src, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    env = {**os.environ, **PINNED_ENV, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.run([sys.executable, str(Path(__file__).resolve()), "--into", str(folder)], env=env,
                          capture_output=True, text=True, timeout=1800)


def main(argv: list[str]) -> int:
    if not pinned():  # re-run under the pinned kernels
        res = run_pinned(HERE) if argv[:1] != ["--into"] else run_pinned(Path(argv[1]))
        sys.stderr.write(res.stderr)
        return res.returncode
    cap = torch.backends.cpu.get_cpu_capability()
    if cap != PINNED_CAPABILITY:
        print(f"golden files need {PINNED_CAPABILITY} kernels; this CPU gives {cap!r} under {PINNED_ENV}",
              file=sys.stderr)
        return 3
    folder = Path(argv[1]) if argv[:1] == ["--into"] else HERE
    names = write_all(folder)
    print(f"wrote {MIXERS_FILE.name}, {TRAIN_FILE.name} and report/ ({', '.join(names)}) in {folder}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
