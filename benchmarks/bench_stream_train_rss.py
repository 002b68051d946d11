"""Peak RSS of ``sagemix train --set stream=true`` on image folders of different sizes (one measurement, no test).

Target (issue 9): the peak RSS of training on a streamed folder of 8,000 files is within 20% of that
with 2,000 files: RAM does not grow with the number of files. Each run is a fresh ``sagemix train``
process (smallnet, one full epoch, ``workers`` decoding workers); its peak RSS and its workers' are
read from ``resource.getrusage(RUSAGE_CHILDREN)`` after it exits.

Usage: python benchmarks/bench_stream_train_rss.py --root /tmp/rss [--sizes 2000 8000] [--workers 1]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sagemix.bench.loader import prepare_jpeg_folder


def train_peak_rss(folder: Path, out: Path, *, workers: int, image_size: int, batch_size: int) -> dict:
    """Run one streamed ``sagemix train`` epoch in a child process; its peak RSS (MB) and wall time."""
    cmd = [sys.executable, "-m", "sagemix", "train", "--method", "mixup", "--model", "smallnet", "--dataset",
           "imagefolder", "--data-dir", str(folder), "--epochs", "1", "--batch-size", str(batch_size), "--device", "cpu",
           "--no-progress", "--out", str(out), "--overwrite", "--set", "stream=true", "--set",
           f"image_size={image_size}", "--set", f"workers={workers}", "--set", "eval_batch_size=200",
           "--set", "threads=1"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-3000:])
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": after / 1024.0,
            "note": "" if after > before else "peak not above an earlier child's (ru_maxrss is a maximum over children)"}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=None, help="folder for the generated JPEGs and runs (default: a temp dir)")
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 8000], help="numbers of files, smallest first")
    p.add_argument("--file-size", type=int, default=64, help="JPEG side in px (default 64)")
    p.add_argument("--image-size", type=int, default=32, help="training crop side (default 32)")
    p.add_argument("--workers", type=int, default=1, help="decoding workers (default 1)")
    p.add_argument("--batch-size", type=int, default=100)
    args = p.parse_args(argv)
    root = Path(args.root or tempfile.mkdtemp(prefix="sagemix-rss-"))
    rows = []
    # ru_maxrss of RUSAGE_CHILDREN is the largest child so far: measure the smallest folder first.
    for n in sorted(args.sizes):
        gen = prepare_jpeg_folder(root / f"jpeg{n}", n, size=args.file_size, classes=10)
        row = {"files": n, "generate_s": gen["seconds"],
               **train_peak_rss(root / f"jpeg{n}", root / f"run{n}", workers=args.workers,
                                image_size=args.image_size, batch_size=args.batch_size)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    ratio = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    print(f"peak RSS {rows[0]['files']} files: {rows[0]['peak_rss_mb']:.1f} MB; {rows[-1]['files']} files: "
          f"{rows[-1]['peak_rss_mb']:.1f} MB; ratio {ratio:.3f} (target <= 1.20: {'met' if ratio <= 1.2 else 'not met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
